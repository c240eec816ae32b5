//! Resize stage: cuts the planned 3:4 box out of the image and scales it to
//! exactly the output size with a Lanczos-3 filter.
//!
//! Width and height are always scaled by the same factor: the box has the
//! output's aspect ratio (to within a pixel's rounding), so nothing is
//! stretched.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{Filter, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

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
    let lanczos3 = Filter::new("Lanczos3", lanczos3, 3.0).map_err(|e| failed(&e))?;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Custom(lanczos3)))
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

/// The Lanczos-3 kernel, as fast_image_resize's own `Lanczos3` computes
/// it but with [`sin_pi`] instead of libm's `sin`: the resizer evaluates
/// it twice per tap for every photo, and libm's `sin` (with its rounding
/// mode save and restore) was 0.8% of the whole run's CPU.
fn lanczos3(x: f64) -> f64 {
    if !(-3.0..3.0).contains(&x) {
        0.0
    } else if x == 0.0 {
        1.0
    } else {
        let pi_x = std::f64::consts::PI * x;
        3.0 * sin_pi(x) * sin_pi(x / 3.0) / (pi_x * pi_x)
    }
}

/// sin(pi * y) for |y| < 64, more than any filter spans: reduced to
/// |r| <= 1/2 around the nearest integer, then a Taylor polynomial to the
/// 15th power, whose error there is under 1e-11, far below the 2^-15 step
/// the resizer rounds its weights to.
fn sin_pi(y: f64) -> f64 {
    // The nearest integer by truncation of a shifted positive value:
    // `round` and `rem_euclid` would be libm calls on baseline x86-64.
    let n = (y + 64.5) as i64 - 64;
    let t = std::f64::consts::PI * (y - n as f64);
    let t2 = t * t;
    // Horner over t^2 of sin's series: 1/1!, -1/3!, 1/5!, ..., -1/15!.
    let series = [
        -1.0 / 1_307_674_368_000.0,
        1.0 / 6_227_020_800.0,
        -1.0 / 39_916_800.0,
        1.0 / 362_880.0,
        -1.0 / 5_040.0,
        1.0 / 120.0,
        -1.0 / 6.0,
        1.0,
    ];
    let s = t * series.iter().fold(0.0, |acc, &c| acc * t2 + c);
    // sin(pi (n + r)) = (-1)^n sin(pi r)
    if n & 1 == 1 { -s } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_matches_the_libm_lanczos3() {
        for i in -3200..=3200 {
            let x = f64::from(i) / 1000.0 + 1e-4;
            let libm = if x.abs() < 3.0 {
                let pi_x = std::f64::consts::PI * x;
                let sinc = |v: f64| v.sin() / v;
                sinc(pi_x) * sinc(pi_x / 3.0)
            } else {
                0.0
            };
            assert!((lanczos3(x) - libm).abs() < 1e-10, "x={x}");
        }
        assert_eq!(lanczos3(0.0), 1.0);
        assert_eq!(lanczos3(3.0), 0.0);
        assert_eq!(lanczos3(-3.0), 0.0);
        for n in -6i32..=6 {
            assert!(sin_pi(f64::from(n)).abs() < 1e-12);
            let half = f64::from(n) + 0.5;
            let want = if n.rem_euclid(2) == 0 { 1.0 } else { -1.0 };
            assert!((sin_pi(half) - want).abs() < 1e-11, "{half}");
        }
    }

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
