//! Orient stage: applies the EXIF orientation to the pixels, so every later
//! stage (and the registry) sees the portrait upright and no tag is needed.

use serde::{Deserialize, Serialize};

use crate::image::RgbImage;

/// The eight EXIF orientations, named by what must be done to the stored
/// pixels to display them. Serialised as the EXIF number (1–8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u16", try_from = "u16")]
pub enum Orientation {
    #[default]
    Normal,
    MirrorHorizontal,
    Rotate180,
    MirrorVertical,
    /// Mirror along the top-left to bottom-right diagonal.
    Transpose,
    /// Rotate 90° clockwise.
    Rotate90,
    /// Mirror along the top-right to bottom-left diagonal.
    Transverse,
    /// Rotate 90° counter-clockwise.
    Rotate270,
}

impl Orientation {
    pub fn from_exif(value: u16) -> Option<Self> {
        use Orientation::*;
        Some(match value {
            1 => Normal,
            2 => MirrorHorizontal,
            3 => Rotate180,
            4 => MirrorVertical,
            5 => Transpose,
            6 => Rotate90,
            7 => Transverse,
            8 => Rotate270,
            _ => return None,
        })
    }

    pub fn exif_value(self) -> u16 {
        use Orientation::*;
        match self {
            Normal => 1,
            MirrorHorizontal => 2,
            Rotate180 => 3,
            MirrorVertical => 4,
            Transpose => 5,
            Rotate90 => 6,
            Transverse => 7,
            Rotate270 => 8,
        }
    }

    /// Whether displaying swaps width and height.
    pub fn swaps_axes(self) -> bool {
        self.exif_value() >= 5
    }
}

impl From<Orientation> for u16 {
    fn from(o: Orientation) -> u16 {
        o.exif_value()
    }
}

impl TryFrom<u16> for Orientation {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        Orientation::from_exif(v).ok_or_else(|| format!("EXIF orientation {v} is not 1-8"))
    }
}

/// Returns the image as it is meant to be displayed.
pub fn apply_orientation(img: RgbImage, orientation: Orientation) -> RgbImage {
    if orientation == Orientation::Normal {
        return img;
    }
    let (w, h) = (img.width() as usize, img.height() as usize);
    use Orientation::*;
    if !orientation.swaps_axes() {
        // Output rows are stored rows, some reversed: a row at a time, with
        // none of the general loop's index arithmetic per pixel.
        let flip_rows = matches!(orientation, Rotate180 | MirrorVertical);
        let mirror = matches!(orientation, MirrorHorizontal | Rotate180);
        let stride = w * 3;
        let mut out = vec![0u8; w * h * 3];
        for (y, dst) in out.chunks_exact_mut(stride).enumerate() {
            let row = if flip_rows { h - 1 - y } else { y };
            let src_row = &img.as_bytes()[row * stride..(row + 1) * stride];
            if mirror {
                for (d, s) in dst.chunks_exact_mut(3).zip(src_row.chunks_exact(3).rev()) {
                    d.copy_from_slice(s);
                }
            } else {
                dst.copy_from_slice(src_row);
            }
        }
        return oriented(w, h, out, img);
    }
    // The four left swap the axes (see `StoredAxis`).
    let (out_w, out_h) = (h, w);
    let stored_rows = StoredAxis {
        len: h,
        reversed: matches!(orientation, Rotate90 | Transverse),
    };
    let stored_columns = StoredAxis {
        len: w,
        reversed: matches!(orientation, Transverse | Rotate270),
    };
    let src = img.as_bytes();
    let stride = w * 3;
    let mut out = vec![0u8; out_w * out_h * 3];
    // In tiles, each first copied out of the stored image row by row into
    // a small buffer. Reading the stored image down its columns directly
    // (a tile's rows straight from the image) stalled on a cache miss per
    // pixel: a 1500x2000 rotation took 37 ms, ten times a copy of it.
    const TILE: usize = 32;
    let mut tile = [[0u8; TILE * 3]; TILE];
    for ty in (0..out_h).step_by(TILE) {
        let y_end = (ty + TILE).min(out_h);
        let (c0, c1) = stored_columns.span(ty, y_end);
        for tx in (0..out_w).step_by(TILE) {
            let x_end = (tx + TILE).min(out_w);
            let (r0, r1) = stored_rows.span(tx, x_end);
            for (buffered, r) in tile.iter_mut().zip(r0..r1) {
                let stored = &src[r * stride + c0 * 3..r * stride + c1 * 3];
                buffered[..stored.len()].copy_from_slice(stored);
            }
            for y in ty..y_end {
                let j = (stored_columns.index(y) - c0) * 3;
                let dst = &mut out[(y * out_w + tx) * 3..(y * out_w + x_end) * 3];
                for (px, x) in dst.chunks_exact_mut(3).zip(tx..) {
                    px.copy_from_slice(&tile[stored_rows.index(x) - r0][j..j + 3]);
                }
            }
        }
    }
    oriented(out_w, out_h, out, img)
}

/// A stored axis that an output axis of a rotation runs along, forwards
/// or backwards: output row y shows stored column y (or w - 1 - y), output
/// column x stored row x (or h - 1 - x).
struct StoredAxis {
    len: usize,
    reversed: bool,
}

impl StoredAxis {
    /// The stored line that output line `v` shows.
    fn index(&self, v: usize) -> usize {
        if self.reversed { self.len - 1 - v } else { v }
    }

    /// The stored lines, low to high, that output lines `start..end` show.
    fn span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.reversed {
            (self.len - end, self.len - start)
        } else {
            (start, end)
        }
    }
}

/// `out` as an image, or `img` unchanged if `out` were not `out_w` x `out_h`.
fn oriented(out_w: usize, out_h: usize, out: Vec<u8>, img: RgbImage) -> RgbImage {
    match RgbImage::new(out_w as u32, out_h as u32, out) {
        Ok(oriented) => oriented,
        // Unreachable: the buffer is built to the stated size.
        Err(_) => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image whose pixels are numbered 0..6 row by row:
    /// ```text
    /// 0 1 2
    /// 3 4 5
    /// ```
    fn numbered() -> RgbImage {
        let data = (0..6u8).flat_map(|v| [v, v, v]).collect();
        RgbImage::new(3, 2, data).unwrap()
    }

    fn grid(img: &RgbImage) -> Vec<Vec<u8>> {
        (0..img.height())
            .map(|y| (0..img.width()).map(|x| img.pixel(x, y)[0]).collect())
            .collect()
    }

    #[test]
    fn every_orientation_matches_the_exif_definition() {
        let cases: [(u16, Vec<Vec<u8>>); 8] = [
            (1, vec![vec![0, 1, 2], vec![3, 4, 5]]),
            (2, vec![vec![2, 1, 0], vec![5, 4, 3]]),
            (3, vec![vec![5, 4, 3], vec![2, 1, 0]]),
            (4, vec![vec![3, 4, 5], vec![0, 1, 2]]),
            (5, vec![vec![0, 3], vec![1, 4], vec![2, 5]]),
            (6, vec![vec![3, 0], vec![4, 1], vec![5, 2]]),
            (7, vec![vec![5, 2], vec![4, 1], vec![3, 0]]),
            (8, vec![vec![2, 5], vec![1, 4], vec![0, 3]]),
        ];
        for (tag, expected) in cases {
            let o = Orientation::from_exif(tag).unwrap();
            assert_eq!(
                grid(&apply_orientation(numbered(), o)),
                expected,
                "tag {tag}"
            );
        }
    }

    #[test]
    fn large_images_cross_tiles_correctly() {
        // Pixels name their own position; 70x45 spans several tiles and
        // ends in partial ones.
        let (w, h) = (70u32, 45u32);
        let data = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 7]))
            .collect();
        let img = RgbImage::new(w, h, data).unwrap();
        let t = apply_orientation(img.clone(), Orientation::Transpose);
        assert_eq!((t.width(), t.height()), (h, w));
        for y in 0..w {
            for x in 0..h {
                assert_eq!(t.pixel(x, y), [y as u8, x as u8, 7], "({x}, {y})");
            }
        }
        use Orientation::*;
        let then = |img: RgbImage, a, b| apply_orientation(apply_orientation(img, a), b);
        let same = |a: &RgbImage, b: &RgbImage| a.as_bytes() == b.as_bytes();
        assert!(same(&then(img.clone(), Rotate90, Rotate270), &img));
        assert!(same(
            &then(img.clone(), MirrorHorizontal, MirrorHorizontal),
            &img
        ));
        assert!(same(
            &then(img.clone(), MirrorVertical, MirrorVertical),
            &img
        ));
        assert!(same(
            &then(img.clone(), Rotate90, Rotate90),
            &apply_orientation(img.clone(), Rotate180)
        ));
        assert!(same(
            &then(img.clone(), Transpose, Rotate180),
            &apply_orientation(img.clone(), Transverse)
        ));
        assert!(same(
            &then(img.clone(), Transpose, MirrorHorizontal),
            &apply_orientation(img.clone(), Rotate90)
        ));
        assert!(same(
            &then(img.clone(), Transpose, MirrorVertical),
            &apply_orientation(img, Rotate270)
        ));
    }

    #[test]
    fn serialises_as_the_exif_number() {
        assert_eq!(serde_json::to_string(&Orientation::Rotate90).unwrap(), "6");
        let o: Orientation = serde_json::from_str("8").unwrap();
        assert_eq!(o, Orientation::Rotate270);
        assert!(serde_json::from_str::<Orientation>("9").is_err());
    }
}
