//! The EXIF orientation tag and colour space, read from the TIFF structure
//! EXIF is stored in: JPEG keeps it in an APP1 segment, PNG in an eXIf
//! chunk, WebP in an EXIF chunk, and their decoders ask here.

use crate::transform::orient::Orientation;

/// Reads the Orientation tag (0x0112) from IFD0 of a TIFF-structured EXIF
/// block. Returns `None` for anything malformed: a bad tag must not fail the
/// photo, it just means "as stored".
pub(super) fn exif_orientation(tiff: &[u8]) -> Option<Orientation> {
    const ORIENTATION_TAG: u16 = 0x0112;
    let t = Tiff::new(tiff)?;
    let entry = t.entry(t.u32_at(4)? as usize, ORIENTATION_TAG)?;
    Orientation::from_exif(t.short_value(entry)?)
}

/// Whether EXIF marks the photo as Adobe RGB the way cameras do (DCF 2.0):
/// ColorSpace (0xA001) "uncalibrated" (0xFFFF) and the interoperability
/// index (tag 1 of the interoperability IFD) "R03". ColorSpace 1 (sRGB),
/// anything else or anything malformed is sRGB.
pub(super) fn exif_is_adobe_rgb(tiff: &[u8]) -> bool {
    const EXIF_IFD: u16 = 0x8769;
    const COLOR_SPACE: u16 = 0xA001;
    const INTEROP_IFD: u16 = 0xA005;
    let adobe = || -> Option<bool> {
        let t = Tiff::new(tiff)?;
        let ifd0 = t.u32_at(4)? as usize;
        let exif_ifd = t.u32_at(t.entry(ifd0, EXIF_IFD)? + 8)? as usize;
        if t.short_value(t.entry(exif_ifd, COLOR_SPACE)?)? != 0xFFFF {
            return Some(false);
        }
        let interop = t.u32_at(t.entry(exif_ifd, INTEROP_IFD)? + 8)? as usize;
        let index = t.entry(interop, 1)?;
        // Four ASCII bytes ("R03\0") fit in the entry itself.
        Some(t.bytes.get(index + 8..index + 11)? == b"R03")
    };
    adobe().unwrap_or(false)
}

/// A TIFF structure (what EXIF is stored as), read defensively.
struct Tiff<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl<'a> Tiff<'a> {
    fn new(tiff: &'a [u8]) -> Option<Tiff<'a>> {
        // Some writers keep the APP1 "Exif\0\0" preamble in what they hand over.
        let bytes = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
        let big_endian = match bytes.get(..4)? {
            b"II*\0" => false,
            b"MM\0*" => true,
            _ => return None,
        };
        Some(Tiff { bytes, big_endian })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// The offset of `tag`'s 12-byte entry in the IFD at `ifd`.
    fn entry(&self, ifd: usize, tag: u16) -> Option<usize> {
        let entries = self.u16_at(ifd)? as usize;
        (0..entries)
            .map(|i| ifd + 2 + i * 12)
            .find(|&e| self.u16_at(e) == Some(tag))
    }

    /// The value of a SHORT entry.
    fn short_value(&self, entry: usize) -> Option<u16> {
        const SHORT: u16 = 3;
        if self.u16_at(entry + 2)? != SHORT {
            return None;
        }
        self.u16_at(entry + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff_with_orientation(big_endian: bool, value: u16) -> Vec<u8> {
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut t = Vec::new();
        t.extend_from_slice(if big_endian { b"MM\0*" } else { b"II*\0" });
        t.extend_from_slice(&w32(8));
        t.extend_from_slice(&w16(2)); // two entries: a decoy, then orientation
        t.extend_from_slice(&w16(0x010F)); // Make, ASCII
        t.extend_from_slice(&w16(2));
        t.extend_from_slice(&w32(4));
        t.extend_from_slice(b"abc\0");
        t.extend_from_slice(&w16(0x0112));
        t.extend_from_slice(&w16(3));
        t.extend_from_slice(&w32(1));
        t.extend_from_slice(&w16(value));
        t.extend_from_slice(&[0, 0]);
        t.extend_from_slice(&w32(0));
        t
    }

    #[test]
    fn reads_orientation_in_both_byte_orders() {
        for be in [false, true] {
            for v in 1..=8 {
                let o = exif_orientation(&tiff_with_orientation(be, v)).map(|o| o.exif_value());
                assert_eq!(o, Some(v), "big endian {be}, value {v}");
            }
        }
        let mut with_preamble = b"Exif\0\0".to_vec();
        with_preamble.extend(tiff_with_orientation(false, 6));
        assert_eq!(
            exif_orientation(&with_preamble),
            Some(Orientation::Rotate90)
        );
    }

    #[test]
    fn adobe_rgb_needs_both_colour_space_and_r03() {
        // IFD0 with the EXIF pointer; the EXIF IFD with ColorSpace and the
        // interoperability pointer; the interoperability IFD with its index.
        let tiff = |colour_space: u16, index: &[u8; 4]| {
            let mut t = b"II*\0\x08\0\0\0".to_vec();
            t.extend_from_slice(&[1, 0, 0x69, 0x87, 4, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0, 0, 0, 0]);
            t.extend_from_slice(&[2, 0, 0x01, 0xA0, 3, 0, 1, 0, 0, 0]);
            t.extend_from_slice(&colour_space.to_le_bytes());
            t.extend_from_slice(&[0, 0, 0x05, 0xA0, 4, 0, 1, 0, 0, 0, 56, 0, 0, 0, 0, 0, 0, 0]);
            t.extend_from_slice(&[1, 0, 1, 0, 2, 0, 4, 0, 0, 0]);
            t.extend_from_slice(index);
            t.extend_from_slice(&[0, 0, 0, 0]);
            t
        };
        assert!(exif_is_adobe_rgb(&tiff(0xFFFF, b"R03\0")));
        assert!(!exif_is_adobe_rgb(&tiff(1, b"R03\0")));
        assert!(!exif_is_adobe_rgb(&tiff(0xFFFF, b"R98\0")));
        let good = tiff(0xFFFF, b"R03\0");
        for cut in 0..good.len() {
            let _ = exif_is_adobe_rgb(&good[..cut]);
        }
    }

    #[test]
    fn malformed_exif_is_ignored_not_fatal() {
        let good = tiff_with_orientation(false, 6);
        for cut in 0..good.len() {
            // No panic on any truncation; a cut before the value reads nothing.
            let _ = exif_orientation(&good[..cut]);
        }
        assert_eq!(exif_orientation(&tiff_with_orientation(false, 9)), None);
        assert_eq!(exif_orientation(b"garbage!"), None);
    }
}
