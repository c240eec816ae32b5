//! Write stage: output names and atomic writes.
//!
//! A file is written to a temporary name in the same folder, synced, then
//! moved into place in one step, so a crash or kill leaves either the old
//! state or the complete new file, never half a photo.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0} already exists (pass --overwrite to replace it)")]
    Exists(PathBuf),
    #[error(
        "{0} is a symbolic link; gradphoto never writes through a link in its output folder: remove it"
    )]
    Link(PathBuf),
    #[error(
        "output name {name:?} is {bytes} bytes, longer than the {max} bytes the file system of {dir} allows in a name: choose a shorter name (--name)"
    )]
    NameTooLong {
        name: String,
        bytes: usize,
        max: u64,
        dir: PathBuf,
    },
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
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Opens `path` with `options`, refusing to follow a symbolic link at its
/// last component (`O_NOFOLLOW`): a link planted in the output folder under
/// one of our names (`manifest.jsonl -> ~/.bashrc`) must never redirect
/// what we write. A link there is [`WriteError::Link`].
pub fn open_no_follow(options: &mut OpenOptions, path: &Path) -> Result<File, WriteError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path).map_err(|source| {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            WriteError::Link(path.to_owned())
        } else {
            WriteError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

/// Refuses `path` when it is a symbolic link (dangling or not).
pub fn refuse_link(path: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(WriteError::Link(path.to_owned())),
        _ => Ok(()),
    }
}

/// The longest file name, in bytes, the file system holding `dir` takes
/// (255 on ext4, XFS, Btrfs, APFS; less on some encrypted or network file
/// systems); `None` where it cannot be asked.
fn name_max(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::fs::statvfs(dir).ok().map(|s| s.f_namemax)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

fn is_name_too_long(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Writes `bytes` to `path` atomically. Without `overwrite`, an existing file
/// is never replaced, even one that appears while we write.
pub fn write_file_atomically(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), WriteError> {
    write_atomically_with(path, overwrite, |w| w.write_all(bytes))
}

/// [`write_file_atomically`] for content produced by `fill` straight into
/// the temporary file (through a buffer), so that a large document such as
/// the manifest is never held in memory whole.
pub fn write_atomically_with(
    path: &Path,
    overwrite: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(WriteError::Link(path.to_owned())),
        Ok(_) if !overwrite => return Err(WriteError::Exists(path.to_owned())),
        _ => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default();
    let too_long = |max: u64| WriteError::NameTooLong {
        name: name.to_string_lossy().into_owned(),
        bytes: name.len(),
        max,
        dir: dir.to_owned(),
    };
    if let Some(max) = name_max(dir)
        && name.len() as u64 > max
    {
        return Err(too_long(max));
    }
    let temp = dir.join(temporary_name());
    let result = (|| {
        let file = open_no_follow(OpenOptions::new().write(true).create_new(true), &temp).map_err(
            |e| match e {
                WriteError::Io { source, .. } => io(source),
                other => other,
            },
        )?;
        let mut buffered = std::io::BufWriter::with_capacity(64 * 1024, file);
        fill(&mut buffered).map_err(io)?;
        let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        // A link planted while we wrote is refused too; rename and link
        // never follow one at the target, so this is for the message.
        refuse_link(path)?;
        let moved = if overwrite {
            std::fs::rename(&temp, path)
        } else {
            // A hard link fails if the target exists, which closes the race
            // between the check above and the move.
            std::fs::hard_link(&temp, path).and_then(|()| std::fs::remove_file(&temp))
        };
        moved.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => WriteError::Exists(path.to_owned()),
            _ if is_name_too_long(&e) => too_long(255),
            _ => io(e),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A temporary file's name: hidden, short whatever the final name (a
/// 255-byte photo name must not need a longer temporary one), and unique
/// per process and call, so parallel writers and leftovers of a killed run
/// never collide with a real output or with each other.
fn temporary_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{TEMP_PREFIX}{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Temporary files are `.gradphoto-<pid>-<n>.tmp`.
const TEMP_PREFIX: &str = "gradphoto-";

/// The process id in the name of a temporary file this module makes
/// (`.gradphoto-<pid>-<n>.tmp`; earlier versions made `.<name>.<pid>-<n>.tmp`),
/// or of the write probe the pipeline makes.
fn temporary_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    if let Some(pid) = rest.strip_prefix(PROBE_PREFIX) {
        return pid.parse().ok();
    }
    let stem = rest.strip_suffix(".tmp")?;
    if let Some(tag) = stem.strip_prefix(TEMP_PREFIX)
        && let Some((pid, n)) = tag.split_once('-')
        && n.parse::<u64>().is_ok()
    {
        return pid.parse().ok();
    }
    let (_, tag) = stem.rsplit_once('.')?;
    let (pid, n) = tag.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Name of the empty file written to prove a folder is writable.
pub const PROBE_PREFIX: &str = "gradphoto-write-test-";

/// Whether process `pid` may still be writing. Where that cannot be known
/// (no /proc), every process counts as alive, so nothing is removed.
fn may_be_running(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the temporary files a killed run left in `dir`: hidden, never
/// mistaken for outputs, but clutter in a folder a school will upload.
/// Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let own = std::process::id();
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            temporary_owner(&e.file_name().to_string_lossy())
                .is_some_and(|pid| pid != own && !may_be_running(pid))
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Why an output name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("output name is empty")]
    Empty,
    #[error("output name {0:?} could leave the output folder or is not a plain file name")]
    Escapes(String),
    #[error("output name {0:?} contains control or bidirectional-text characters")]
    Control(String),
    #[error("output name {0:?} contains a character Windows forbids in file names")]
    Forbidden(String),
    #[error("output name {0:?} is a reserved device name on Windows")]
    Reserved(String),
    #[error("output name {0:?} is longer than 255 bytes")]
    TooLong(String),
}

/// Characters that reorder how a name is displayed, so a file can look like
/// another; refused along with control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Device names Windows resolves in any folder, whatever the extension
/// (outputs are often copied to a Windows share for the upload).
fn is_windows_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or_default().trim_end();
    let upper = base.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// Checks that `name` is one plain file name, safe on Linux, macOS and
/// Windows: no separators, no `..`, no control characters, nothing a
/// filesystem would read as a path or a device. Every output path is the
/// output folder joined with a name that passed this check.
pub fn validate_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
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
    if name.contains(['<', '>', '"', '|', '?', '*']) {
        return Err(NameError::Forbidden(name.to_owned()));
    }
    if is_windows_device(name) {
        return Err(NameError::Reserved(name.to_owned()));
    }
    // The limit of ext4, APFS and NTFS (in bytes on the first two); longer
    // would fail at write time with a less helpful message.
    if name.len() > 255 {
        return Err(NameError::TooLong(name.to_owned()));
    }
    Ok(())
}

/// The output file name for an input: its stem with `.jpg`.
#[cfg(test)]
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

    #[cfg(unix)]
    #[test]
    fn links_are_never_written_through() {
        let dir = temp_dir("links");
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        for (name, target) in [("to-file.json", "victim.txt"), ("dangling.json", "nowhere")] {
            let link = dir.join(name);
            std::os::unix::fs::symlink(target, &link).unwrap();
            for overwrite in [false, true] {
                assert!(matches!(
                    write_file_atomically(&link, b"journal", overwrite),
                    Err(WriteError::Link(_))
                ));
            }
            assert!(matches!(
                open_no_follow(OpenOptions::new().append(true).create(true), &link),
                Err(WriteError::Link(_))
            ));
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!dir.join("nowhere").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_up_to_the_file_systems_limit_are_written() {
        let dir = temp_dir("long");
        let max = name_max(&dir).unwrap_or(255).min(255) as usize;
        let name = format!("{}.jpg", "x".repeat(max - 4));
        write_file_atomically(&dir.join(&name), b"photo", false).unwrap();
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), b"photo");
        let longer = format!("x{name}");
        match write_file_atomically(&dir.join(&longer), b"photo", false) {
            Err(e @ WriteError::NameTooLong { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&format!("{} bytes", max + 1)), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary left behind");
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
            "/etc/passwd",
            "C:\\Windows\\x.jpg",
            "..\\..\\x.jpg",
            "\\\\server\\share.jpg",
            "a\nb.jpg",
            "a\u{1b}[31m.jpg",
            "gpj.\u{202E}exe",
            "a\u{2066}b.jpg",
            "x.jpg ",
            "x.jpg.",
            "a?.jpg",
            "a*.jpg",
            "a|b.jpg",
            "a<b>.jpg",
            "a\"b.jpg",
            "CON.jpg",
            "nul.jpg",
            "com1.jpg",
            "LPT9.tar.jpg",
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}.jpg", "张".repeat(84)); // 256 bytes
        assert_eq!(
            validate_file_name(&long),
            Err(NameError::TooLong(long.clone()))
        );
        assert!(validate_file_name(&long[3..]).is_ok(), "253 bytes is fine");
        for good in [
            "2021001.jpg",
            "张三.jpg",
            "a b.jpg",
            "console.jpg",
            "com10.jpg",
            "a.b.jpg",
        ] {
            assert!(validate_file_name(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            output_name_for(Path::new("in/IMG 1.PNG")).unwrap(),
            "IMG 1.jpg"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_temporaries_of_dead_processes_are_removed() {
        let dir = temp_dir("stale");
        // PIDs above the kernel's maximum (4,194,304) cannot be running.
        let dead = ".a.jpg.4999999-3.tmp";
        let dead_short = ".gradphoto-4999997-12.tmp";
        let probe = format!(".{PROBE_PREFIX}4999998");
        let own = format!(".gradphoto-{}-0.tmp", std::process::id());
        let keep = [
            own.as_str(),
            ".c.jpg.tmp",
            "a.jpg",
            ".hidden",
            "x.4999999-1.tmp",
        ];
        for name in keep.iter().chain(&[dead, dead_short, probe.as_str()]) {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&dir), 3);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected: Vec<String> = keep.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        assert_eq!(left, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
