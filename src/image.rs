//! The plain pixel data every stage passes along.

use serde::{Deserialize, Serialize};

/// An 8-bit sRGB image: rows top to bottom, pixels interleaved R, G, B.
///
/// The length invariant (`width * height * 3 == data.len()`) is checked on
/// construction, so stages can index without re-checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

/// A rectangle in pixel coordinates of some image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// The rectangle covering a whole `width` x `height` image.
    pub fn full(width: u32, height: u32) -> Self {
        Rect::new(0, 0, width, height)
    }

    /// One past the last column.
    pub fn right(&self) -> u32 {
        self.x + self.width
    }

    /// One past the last row.
    pub fn bottom(&self) -> u32 {
        self.y + self.height
    }

    /// Whether this rectangle lies inside a `width` x `height` image.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        self.width > 0
            && self.height > 0
            && u64::from(self.x) + u64::from(self.width) <= u64::from(width)
            && u64::from(self.y) + u64::from(self.height) <= u64::from(height)
    }
}

/// The pixel buffer does not match the stated dimensions.
#[derive(Debug, thiserror::Error)]
#[error("pixel buffer holds {actual} bytes, {width}x{height} RGB needs {expected}")]
pub struct BufferSizeError {
    pub width: u32,
    pub height: u32,
    pub expected: usize,
    pub actual: usize,
}

impl RgbImage {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, BufferSizeError> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected || width == 0 || height == 0 {
            return Err(BufferSizeError {
                width,
                height,
                expected,
                actual: data.len(),
            });
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// An image of one colour.
    ///
    /// # Panics
    /// If either dimension is zero; callers pass constants or checked sizes.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        assert!(width > 0 && height > 0, "empty image");
        let data = rgb.repeat(width as usize * height as usize);
        RgbImage {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// The RGB bytes of row `y`.
    pub fn row(&self, y: u32) -> &[u8] {
        let stride = self.width as usize * 3;
        let start = y as usize * stride;
        &self.data[start..start + stride]
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    pub fn put_pixel(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// A copy of the pixels inside `rect`, which the caller has checked with
    /// [`Rect::fits_in`]; a rectangle reaching outside is clamped.
    pub fn crop(&self, rect: Rect) -> RgbImage {
        let x0 = rect.x.min(self.width - 1);
        let y0 = rect.y.min(self.height - 1);
        let x1 = rect.right().min(self.width).max(x0 + 1);
        let y1 = rect.bottom().min(self.height).max(y0 + 1);
        let mut data = Vec::with_capacity((x1 - x0) as usize * (y1 - y0) as usize * 3);
        for y in y0..y1 {
            let row = self.row(y);
            data.extend_from_slice(&row[x0 as usize * 3..x1 as usize * 3]);
        }
        RgbImage {
            width: x1 - x0,
            height: y1 - y0,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_wrong_length() {
        assert!(RgbImage::new(2, 2, vec![0; 11]).is_err());
        assert!(RgbImage::new(0, 2, vec![]).is_err());
        assert!(RgbImage::new(2, 2, vec![0; 12]).is_ok());
    }

    #[test]
    fn crop_copies_the_right_pixels() {
        let mut img = RgbImage::filled(4, 3, [0, 0, 0]);
        img.put_pixel(2, 1, [9, 8, 7]);
        let c = img.crop(Rect::new(1, 1, 2, 2));
        assert_eq!((c.width(), c.height()), (2, 2));
        assert_eq!(c.pixel(1, 0), [9, 8, 7]);
        assert_eq!(c.pixel(0, 0), [0, 0, 0]);
    }

    #[test]
    fn rect_fits() {
        assert!(Rect::new(1, 1, 3, 2).fits_in(4, 3));
        assert!(!Rect::new(2, 0, 3, 1).fits_in(4, 3));
        assert!(!Rect::new(0, 0, 0, 1).fits_in(4, 3));
    }
}
