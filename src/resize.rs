//! Resize stage: cuts the planned 3:4 box out of the image and scales it to
//! exactly the output size with a Lanczos-3 filter.
//!
//! Width and height are always scaled by the same factor: the box has the
//! output's aspect ratio (to within a pixel's rounding), so nothing is
//! stretched.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::image::{Rect, RgbImage};

#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error("crop box {rect:?} does not lie inside the {width}x{height} image")]
    CropOutside { rect: Rect, width: u32, height: u32 },
    #[error("output size {0}x{1} is empty")]
    EmptyOutput(u32, u32),
    #[error("resizer failed: {0}")]
    Resizer(String),
}

thread_local! {
    /// One resizer per thread, kept: it holds the intermediate image between
    /// its two passes, which a new resizer allocates and zeroes on every
    /// call. Every pixel of it is written before it is read, so what an
    /// earlier photo left there never shows.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Scales the `crop` part of `img` to `out_width` x `out_height`.
pub fn resize_crop(
    img: &RgbImage,
    crop: Rect,
    out_width: u32,
    out_height: u32,
) -> Result<RgbImage, ResizeError> {
    if !crop.fits_in(img.width(), img.height()) {
        return Err(ResizeError::CropOutside {
            rect: crop,
            width: img.width(),
            height: img.height(),
        });
    }
    if out_width == 0 || out_height == 0 {
        return Err(ResizeError::EmptyOutput(out_width, out_height));
    }
    let failed = |e: &dyn std::fmt::Display| ResizeError::Resizer(e.to_string());
    let src = ImageRef::new(img.width(), img.height(), img.as_bytes(), PixelType::U8x3)
        .map_err(|e| failed(&e))?;
    let mut dst = Image::new(out_width, out_height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(
            f64::from(crop.x),
            f64::from(crop.y),
            f64::from(crop.width),
            f64::from(crop.height),
        );
    RESIZER
        .with_borrow_mut(|resizer| resizer.resize(&src, &mut dst, &options))
        .map_err(|e| failed(&e))?;
    RgbImage::new(out_width, out_height, dst.into_vec()).map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_has_the_requested_size_and_keeps_flat_colour() {
        let img = RgbImage::filled(960, 1280, [100, 197, 255]);
        let out = resize_crop(&img, Rect::new(0, 0, 960, 1280), 480, 640).unwrap();
        assert_eq!((out.width(), out.height()), (480, 640));
        assert!(out.as_bytes().chunks(3).all(|p| p == [100, 197, 255]));
    }

    #[test]
    fn crop_selects_the_region() {
        // Left half red, right half blue; cropping the right half gives blue.
        let mut img = RgbImage::filled(800, 600, [255, 0, 0]);
        for y in 0..600 {
            for x in 400..800 {
                img.put_pixel(x, y, [0, 0, 255]);
            }
        }
        let out = resize_crop(&img, Rect::new(450, 0, 300, 400), 30, 40).unwrap();
        assert_eq!(out.pixel(15, 20), [0, 0, 255]);
    }

    #[test]
    fn a_resize_is_the_same_after_others_on_the_thread() {
        let img = crate::synth::portrait(900, 1200, 0.3, 4);
        let rect = Rect::new(31, 47, 701, 935);
        let first = resize_crop(&img, rect, 480, 640).unwrap();
        // A wider intermediate image of other pixels in between.
        let other = RgbImage::filled(2000, 1500, [7, 250, 31]);
        resize_crop(&other, Rect::new(0, 0, 1999, 1500), 480, 640).unwrap();
        assert_eq!(resize_crop(&img, rect, 480, 640).unwrap(), first);
    }

    #[test]
    fn crop_outside_is_an_error() {
        let img = RgbImage::filled(10, 10, [0; 3]);
        assert!(resize_crop(&img, Rect::new(5, 5, 6, 6), 3, 4).is_err());
        assert!(resize_crop(&img, Rect::new(0, 0, 6, 8), 0, 4).is_err());
    }
}
