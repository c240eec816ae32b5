//! The EXIF orientation tag, read from the TIFF structure EXIF is stored
//! in: JPEG keeps it in an APP1 segment, PNG in an eXIf chunk, and both
//! decoders ask here.

use crate::transform::orient::Orientation;

/// Reads the Orientation tag (0x0112) from IFD0 of a TIFF-structured EXIF
/// block. Returns `None` for anything malformed: a bad tag must not fail the
/// photo, it just means "as stored".
pub(super) fn exif_orientation(tiff: &[u8]) -> Option<Orientation> {
    // Some writers keep the APP1 "Exif\0\0" preamble in what they hand over.
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    let big_endian = match tiff.get(..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd0 = u32_at(4)? as usize;
    let entries = u16_at(ifd0)? as usize;
    const ORIENTATION_TAG: u16 = 0x0112;
    const SHORT: u16 = 3;
    (0..entries).find_map(|i| {
        let entry = ifd0 + 2 + i * 12;
        if u16_at(entry)? != ORIENTATION_TAG || u16_at(entry + 2)? != SHORT {
            return None;
        }
        Orientation::from_exif(u16_at(entry + 8)?)
    })
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
