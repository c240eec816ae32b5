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
    let (out_w, out_h) = if orientation.swaps_axes() {
        (h, w)
    } else {
        (w, h)
    };
    // For each output pixel, the stored pixel it shows.
    let source = |x: usize, y: usize| -> (usize, usize) {
        use Orientation::*;
        match orientation {
            Normal => (x, y),
            MirrorHorizontal => (w - 1 - x, y),
            Rotate180 => (w - 1 - x, h - 1 - y),
            MirrorVertical => (x, h - 1 - y),
            Transpose => (y, x),
            Rotate90 => (y, h - 1 - x),
            Transverse => (w - 1 - y, h - 1 - x),
            Rotate270 => (w - 1 - y, x),
        }
    };
    let src = img.as_bytes();
    let mut out = Vec::with_capacity(out_w * out_h * 3);
    for y in 0..out_h {
        for x in 0..out_w {
            let (sx, sy) = source(x, y);
            let i = (sy * w + sx) * 3;
            out.extend_from_slice(&src[i..i + 3]);
        }
    }
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
    fn serialises_as_the_exif_number() {
        assert_eq!(serde_json::to_string(&Orientation::Rotate90).unwrap(), "6");
        let o: Orientation = serde_json::from_str("8").unwrap();
        assert_eq!(o, Orientation::Rotate270);
        assert!(serde_json::from_str::<Orientation>("9").is_err());
    }
}
