//! Write stage: output names and atomic writes.
//!
//! A file is written to a temporary name in the same folder, synced, then
//! moved into place in one step, so a crash or kill leaves either the old
//! state or the complete new file, never half a photo.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} already exists (pass --overwrite to replace it)")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WriteError {
    pub fn into_io(self) -> std::io::Error {
        match self {
            WriteError::Exists(p) => std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", p.display()),
            ),
            WriteError::Io { source, .. } => source,
        }
    }
}

/// Writes `bytes` to `path` atomically. Without `overwrite`, an existing file
/// is never replaced, even one that appears while we write.
pub fn write_file_atomically(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), WriteError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    if !overwrite && path.exists() {
        return Err(WriteError::Exists(path.to_owned()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Hidden, and unique per process and call, so parallel writers and
    // leftovers of a killed run never collide with a real output.
    let temp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            std::fs::rename(&temp, path)
        } else {
            // A hard link fails if the target exists, which closes the race
            // between the check above and the move.
            std::fs::hard_link(&temp, path)?;
            std::fs::remove_file(&temp)
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(WriteError::Exists(path.to_owned()))
        }
        other => other.map_err(io),
    }
}

/// Why an output name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("output name is empty")]
    Empty,
    #[error("output name {0:?} could leave the output folder or is not a plain file name")]
    Escapes(String),
    #[error("output name {0:?} contains control characters")]
    Control(String),
}

/// Checks that `name` is one plain file name: no separators, no `..`, no
/// control characters, nothing a filesystem would read as a path.
pub fn validate_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control(name.to_owned()));
    }
    let escapes = name.contains(['/', '\\', ':'])
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name.ends_with(' ')
        || name.ends_with('.');
    if escapes {
        return Err(NameError::Escapes(name.to_owned()));
    }
    Ok(())
}

/// The output file name for an input: its stem with `.jpg`.
pub fn output_name_for(input: &Path) -> Result<String, NameError> {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = format!("{}.jpg", stem.trim());
    validate_file_name(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gradphoto-out-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_and_refuses_to_clobber() {
        let dir = temp_dir("clobber");
        let path = dir.join("a.jpg");
        write_file_atomically(&path, b"one", false).unwrap();
        assert!(matches!(
            write_file_atomically(&path, b"two", false),
            Err(WriteError::Exists(_))
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_file_atomically(&path, b"three", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_folder_is_an_io_error() {
        let path = Path::new("/nonexistent-gradphoto-dir/a.jpg");
        assert!(matches!(
            write_file_atomically(path, b"x", false),
            Err(WriteError::Io { .. })
        ));
    }

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "../x.jpg",
            "a/b.jpg",
            "a\\b.jpg",
            "..",
            ".hidden.jpg",
            "a\u{0}.jpg",
            "c:x.jpg",
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        for good in ["2021001.jpg", "张三.jpg", "a b.jpg"] {
            assert!(validate_file_name(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            output_name_for(Path::new("in/IMG 1.PNG")).unwrap(),
            "IMG 1.jpg"
        );
    }
}
