//! Discover stage: turns the user's files and folders into the list of
//! photos to process, in a stable order.
//!
//! Folders are walked recursively. What counts as a photo is decided by the
//! bytes: a file whose first bytes are an image is a photo whatever its
//! name; a file whose name says image but whose bytes don't is still taken,
//! so that it fails with a clear reason instead of vanishing; anything else
//! (notes, spreadsheets, sidecars) is passed over and counted.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::codec::decode::{Sniffed, sniff};

/// Extensions that claim to be photos.
const PHOTO_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "jfif", "png", "heic", "heif", "webp", "tif", "tiff", "bmp", "gif",
];

/// macOS writes `._name` AppleDouble files beside photos on foreign disks.
const APPLE_DOUBLE_MAGIC: &[u8] = &[0x00, 0x05, 0x16, 0x07];

/// The result of walking the inputs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Files to process, sorted by path.
    pub photos: Vec<PathBuf>,
    /// Files passed over because they are not images.
    pub skipped: Vec<PathBuf>,
    /// Hidden files and folders (names starting with a dot) met in the
    /// folders walked: passed over, and folders not looked into.
    pub hidden: Vec<PathBuf>,
    /// Inputs that could not be walked at all, with the reason.
    pub problems: Vec<(PathBuf, String)>,
}

fn claims_to_be_photo(path: &Path) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| PHOTO_EXTENSIONS.contains(&e.as_str()))
}

fn head_of(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(16);
    File::open(path)?.take(16).read_to_end(&mut head)?;
    Ok(head)
}

/// Walks `inputs`. Paths under `exclude` (the output folder) are left out,
/// so a rerun never takes its own outputs as inputs.
pub fn discover(inputs: &[PathBuf], exclude: Option<&Path>) -> Discovery {
    let mut found = Discovery::default();
    let exclude = exclude.and_then(|p| p.canonicalize().ok());
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(meta) if meta.is_dir() => walk(input, exclude.as_deref(), &mut found),
            Ok(meta) if meta.is_file() => classify(input, true, &mut found),
            Ok(meta) => found.problems.push((input.clone(), special_file(&meta))),
            Err(e) => found
                .problems
                .push((input.clone(), format!("cannot open: {e}"))),
        }
    }
    found.photos.sort();
    found.photos.dedup();
    found.skipped.sort();
    found.hidden.sort();
    found
}

/// Why a path that is neither file nor folder is not read: opening a FIFO
/// blocks until someone writes to it, and a device never ends.
fn special_file(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        let kind = if t.is_fifo() {
            "a named pipe (FIFO)"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else {
            "a special file"
        };
        format!("not a regular file: {kind}")
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        "not a regular file".to_owned()
    }
}

fn walk(dir: &Path, exclude: Option<&Path>, found: &mut Discovery) {
    if let (Some(ex), Ok(canon)) = (exclude, dir.canonicalize())
        && canon == ex
    {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.problems.push((dir.to_owned(), e.to_string()));
            return;
        }
    };
    let mut children: Vec<_> = entries.filter_map(Result::ok).collect();
    children.sort_by_key(|e| e.file_name());
    for entry in children {
        let path = entry.path();
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            // Hidden files and folders (.DS_Store, AppleDouble `._x.jpg`,
            // `.thumbnails/`): counted, never taken.
            found.hidden.push(path);
            continue;
        }
        // Symlinked folders are not followed: they can loop, and a studio's
        // export folder has no reason to hold them.
        let Ok(kind) = entry.file_type() else {
            found.problems.push((path, "cannot read file type".into()));
            continue;
        };
        if kind.is_dir() {
            walk(&path, exclude, found);
        } else if kind.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => classify(&path, false, found),
                Ok(meta) if meta.is_dir() => found.skipped.push(path),
                Ok(meta) => special(path, &meta, found),
                Err(e) => found.problems.push((path, format!("broken link: {e}"))),
            }
        } else if kind.is_file() {
            classify(&path, false, found);
        } else if let Ok(meta) = entry.metadata() {
            special(path, &meta, found);
        }
    }
}

/// A FIFO, socket or device met in a folder: reported when its name claims
/// a photo, passed over otherwise, never opened.
fn special(path: PathBuf, meta: &std::fs::Metadata, found: &mut Discovery) {
    if claims_to_be_photo(&path) {
        found.problems.push((path, special_file(meta)));
    } else {
        found.skipped.push(path);
    }
}

/// Decides whether one file is a photo. Files named explicitly on the
/// command line are always taken: the user asked for them.
fn classify(path: &Path, named_explicitly: bool, found: &mut Discovery) {
    let take = match head_of(path) {
        // Unreadable: take it, so the failure is reported per photo.
        Err(_) => true,
        Ok(head) if head.starts_with(APPLE_DOUBLE_MAGIC) => false,
        Ok(head) => match sniff(&head) {
            Sniffed::Supported(_) | Sniffed::Unsupported(_) => true,
            Sniffed::NotAnImage => named_explicitly || claims_to_be_photo(path),
        },
    };
    if take {
        found.photos.push(path.to_owned());
    } else {
        found.skipped.push(path.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_by_content_not_name() {
        let root = std::env::temp_dir().join(format!("gradphoto-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0];
        std::fs::write(root.join("b.jpg"), jpeg).unwrap();
        std::fs::write(root.join("sub/photo.dat"), jpeg).unwrap(); // image, odd name
        std::fs::write(root.join("sub/deeper/empty.jpg"), b"").unwrap(); // claims photo
        std::fs::write(root.join("sub/notes.txt"), b"hello").unwrap(); // skipped
        std::fs::write(root.join("sub/._b.jpg"), APPLE_DOUBLE_MAGIC).unwrap(); // hidden
        std::fs::write(root.join("out/previous.jpg"), jpeg).unwrap(); // our output
        let found = discover(std::slice::from_ref(&root), Some(&root.join("out")));
        let rel: Vec<_> = found
            .photos
            .iter()
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(rel, ["b.jpg", "sub/deeper/empty.jpg", "sub/photo.dat"]);
        assert_eq!(found.skipped, vec![root.join("sub/notes.txt")]);
        assert_eq!(found.hidden, vec![root.join("sub/._b.jpg")]);
        assert!(found.problems.is_empty());
        let missing = discover(&[root.join("nope")], None);
        assert_eq!(missing.problems.len(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
