//! The output folder's lock: one run at a time writes a folder.
//!
//! Two runs into one folder would truncate each other's journal and
//! replace each other's manifests, leaving photos that no manifest lists.
//! A run therefore takes an exclusive `flock` on `.gradphoto.lock` in the
//! folder for as long as it writes there (the photos, the manifests and
//! the report), and a second run is refused with the holder's pid.
//!
//! The kernel drops an flock when its holder dies, however it dies, so a
//! lock file left by a killed run never blocks the next one: only a live
//! holder does. The pid written into the file is for the message only.
//! A run that finishes removes the file (while still holding the lock);
//! a run that had opened it just before then finds, once it has the lock,
//! that the file it locked is no longer the one in the folder, and tries
//! again on the new one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::batch::output::{WriteError, open_no_follow};

/// The lock file's name: hidden, like the rest of our bookkeeping.
pub const LOCK_NAME: &str = ".gradphoto.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "output folder {dir} is in use by another gradphoto run ({holder}); wait for it to finish, or choose another --out"
    )]
    Busy { dir: PathBuf, holder: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Held while a run writes its output folder; dropping it removes the
/// lock file and releases the lock.
#[derive(Debug)]
pub struct FolderLock {
    file: File,
    path: PathBuf,
    /// Held shared, by one of the shards that write the folder side by
    /// side (`--shard`): they exclude a plain run, not each other.
    shared: bool,
}

/// What a shard writes into the lock file instead of its pid: the file is
/// the shards' in common, and the message to a plain run names them all.
const SHARDS_MARK: &str = "shards";

impl FolderLock {
    /// Takes the lock on `dir`, or says who holds it. Never waits.
    pub fn acquire(dir: &Path) -> Result<FolderLock, LockError> {
        Self::take(dir, false)
    }

    /// Takes the lock on `dir` shared with other shards of a batch: a plain
    /// run (or `merge`) holding it excludes this, and this excludes them.
    pub fn acquire_shared(dir: &Path) -> Result<FolderLock, LockError> {
        Self::take(dir, true)
    }

    fn take(dir: &Path, shared: bool) -> Result<FolderLock, LockError> {
        let path = dir.join(LOCK_NAME);
        // Each retry means a holder finished between our open and our lock;
        // a handful of them in a row is somebody starting runs in a loop.
        for _ in 0..8 {
            let mut file = open_no_follow(
                OpenOptions::new().read(true).write(true).create(true),
                &path,
            )?;
            if !try_lock(&file, shared).map_err(|source| WriteError::Io {
                path: path.clone(),
                source,
            })? {
                return Err(LockError::Busy {
                    dir: dir.to_owned(),
                    holder: holder(&mut file),
                });
            }
            if !still_at(&file, &path) {
                continue;
            }
            let io = |source| WriteError::Io {
                path: path.clone(),
                source,
            };
            if shared {
                // Every shard writes the same bytes, so writes that meet
                // leave them whole.
                if file.metadata().map_err(io)?.len() == 0 {
                    file.write_all(SHARDS_MARK.as_bytes()).map_err(io)?;
                }
                return Ok(FolderLock { file, path, shared });
            }
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            writeln!(file, "pid {}", std::process::id()).map_err(io)?;
            return Ok(FolderLock { file, path, shared });
        }
        Err(LockError::Busy {
            dir: dir.to_owned(),
            holder: "runs keep starting and finishing there".to_owned(),
        })
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // A shard removes the file only when no other shard holds it: the
        // last one out. (Changing the lock gives up the shared one first,
        // which is what dropping does anyway.)
        if self.shared && !try_lock(&self.file, false).unwrap_or(false) {
            return;
        }
        // Removed while held, and only if it is still ours.
        if still_at(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Who holds the lock, from what the holder wrote into the file.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.take(64).read_to_string(&mut text);
    if text.trim() == SHARDS_MARK {
        return "shards of a batch (--shard); merge once they are done".to_owned();
    }
    match text.trim().strip_prefix("pid ") {
        Some(pid) if pid.parse::<u32>().is_ok() => format!("pid {pid}"),
        _ => "pid not known yet: it is just starting".to_owned(),
    }
}

/// Tries for the exclusive lock: `Ok(false)` when another process holds
/// it. Where the file system has no locks at all (some network mounts),
/// the run goes on unlocked rather than not at all.
#[cfg(unix)]
fn try_lock(file: &File, shared: bool) -> std::io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    use rustix::io::Errno;
    let operation = if shared {
        FlockOperation::NonBlockingLockShared
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(file, operation) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::WOULDBLOCK => Ok(false),
        Err(e) if e == Errno::NOLCK || e == Errno::OPNOTSUPP => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File, _shared: bool) -> std::io::Result<bool> {
    Ok(true)
}

/// Whether `path` still names the file `file` has open.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(open), Ok(named)) = (file.metadata(), std::fs::symlink_metadata(path)) else {
        return false;
    };
    open.dev() == named.dev() && open.ino() == named.ino()
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gradphoto-lock-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_holder_at_a_time_and_a_stale_file_does_not_block() {
        let dir = temp_dir("one");
        // Left by a run that was killed: a file nobody holds.
        std::fs::write(dir.join(LOCK_NAME), "pid 4999999\n").unwrap();
        let first = FolderLock::acquire(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_NAME)).unwrap(),
            format!("pid {}\n", std::process::id())
        );
        // flock locks belong to the open file, so a second open in this
        // process is refused like another process would be.
        match FolderLock::acquire(&dir) {
            Err(e @ LockError::Busy { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("pid {}", std::process::id())),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!dir.join(LOCK_NAME).exists(), "removed when released");
        let again = FolderLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shards_share_the_lock_and_exclude_a_plain_run() {
        let dir = temp_dir("shared");
        let first = FolderLock::acquire_shared(&dir).unwrap();
        let second = FolderLock::acquire_shared(&dir).unwrap();
        match FolderLock::acquire(&dir) {
            Err(e @ LockError::Busy { .. }) => assert!(e.to_string().contains("--shard"), "{e}"),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(
            dir.join(LOCK_NAME).exists(),
            "the second shard still holds it"
        );
        assert!(FolderLock::acquire(&dir).is_err());
        drop(second);
        assert!(!dir.join(LOCK_NAME).exists(), "removed by the last shard");
        let plain = FolderLock::acquire(&dir).unwrap();
        assert!(matches!(
            FolderLock::acquire_shared(&dir),
            Err(LockError::Busy { .. })
        ));
        drop(plain);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_lock_file_is_refused() {
        let dir = temp_dir("link");
        std::fs::write(dir.join("victim"), "keep").unwrap();
        std::os::unix::fs::symlink("victim", dir.join(LOCK_NAME)).unwrap();
        assert!(matches!(
            FolderLock::acquire(&dir),
            Err(LockError::Write(WriteError::Link(_)))
        ));
        assert_eq!(std::fs::read_to_string(dir.join("victim")).unwrap(), "keep");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
