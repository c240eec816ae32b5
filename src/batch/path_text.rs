//! Paths as text in the manifest (JSON, CSV, journal) and back.
//!
//! A Unix path is bytes; JSON and CSV hold Unicode text. Most paths are
//! UTF-8 and are written as they are. A path that is not (a Latin-1 or GBK
//! name from an old camera, a Windows zip or a Samba share), or whose UTF-8
//! already contains `\\` or `\x`, is written escaped: every byte that is
//! not part of valid UTF-8 as `\xHH` (two lower-case hex digits) and every
//! backslash as `\\`. The two forms cannot be confused: a path written as
//! it is never contains `\\` or `\x`, and an escaped one always does. So a
//! reader takes a value that contains `\\` or `\x` as escaped and undoes
//! it ([`text_path`]), and any other value as the path itself; resuming
//! and `check` find every file by exactly that rule.

use std::path::{Path, PathBuf};

/// Whether UTF-8 `text` would read as escaped.
fn looks_escaped(text: &str) -> bool {
    text.contains("\\\\") || text.contains("\\x")
}

/// The manifest's text for `path`; [`text_path`] gives the path back.
pub fn path_text(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    if let Ok(text) = std::str::from_utf8(bytes)
        && !looks_escaped(text)
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The path a manifest's text names (the inverse of [`path_text`]).
pub fn text_path(text: &str) -> PathBuf {
    if !looks_escaped(text) {
        return PathBuf::from(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at..at + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) if hex(i + 2).is_some() => {
                out.extend(hex(i + 2));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    from_bytes(out)
}

#[cfg(unix)]
fn from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// Elsewhere paths are Unicode already and never escaped but for their
/// backslashes, which come back as they were.
#[cfg(not(unix))]
fn from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn raw(bytes: &[u8]) -> PathBuf {
        Path::new(std::ffi::OsStr::from_bytes(bytes)).to_owned()
    }

    #[test]
    fn every_path_round_trips_and_plain_ones_are_unchanged() {
        let cases: [(&[u8], &str); 8] = [
            (b"in/2025001.jpg", "in/2025001.jpg"),
            ("in/张三 照片.jpg".as_bytes(), "in/张三 照片.jpg"),
            (b"in/back\\slash.jpg", "in/back\\slash.jpg"),
            (b"in/latin1_\xe9.jpg", "in/latin1_\\xe9.jpg"),
            (b"in/\xd5\xc5\xc8\xfd.jpg", "in/\\xd5\\xc5\\xc8\\xfd.jpg"),
            (b"in/a\\b_\xff.jpg", "in/a\\\\b_\\xff.jpg"),
            (b"in/lit\\x41.jpg", "in/lit\\\\x41.jpg"),
            (b"in/two\\\\.jpg", "in/two\\\\\\\\.jpg"),
        ];
        for (bytes, text) in cases {
            let path = raw(bytes);
            assert_eq!(path_text(&path), text, "{path:?}");
            assert_eq!(text_path(text), path, "{text}");
        }
        // Every two-byte name, valid UTF-8 or not, comes back.
        for a in 0..=255u8 {
            for b in [b'\\', b'x', b'4', 0x80, 0xc3, 0xa9, b'a'] {
                let path = raw(&[a, b, b'\\', a]);
                assert_eq!(text_path(&path_text(&path)), path, "{path:?}");
            }
        }
    }
}
