//! Simple seeded test pictures (gradient, noise, and portraits of a given
//! size from the portrait renderer) for the codec tests, benches and
//! size-model measurements.
//! The generators panic on a zero dimension, like [`RgbImage::filled`];
//! they take constants, never user input.

use super::{BorderSpec, PortraitSpec, SplitMix64, render};
use crate::image::RgbImage;

/// Uniform in `-1.0..1.0`.
fn signed(rng: &mut SplitMix64) -> f32 {
    rng.range(-1.0, 1.0) as f32
}

fn clamp8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// A smooth two-way gradient: almost no detail.
pub fn gradient(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::filled(width, height, [0, 0, 0]);
    for y in 0..height {
        for x in 0..width {
            let fx = x as f32 / width as f32;
            let fy = y as f32 / height as f32;
            img.put_pixel(
                x,
                y,
                [
                    clamp8(60.0 + 150.0 * fx),
                    clamp8(180.0 - 80.0 * fy),
                    clamp8(120.0 + 100.0 * fx * fy),
                ],
            );
        }
    }
    img
}

/// Uniform noise of amplitude `amp` (0-128) over mid grey: detail at will.
pub fn noise(width: u32, height: u32, amp: f32, seed: u64) -> RgbImage {
    let mut rng = SplitMix64::new(seed);
    let mut img = RgbImage::filled(width, height, [0, 0, 0]);
    for y in 0..height {
        for x in 0..width {
            let base = 128.0;
            img.put_pixel(
                x,
                y,
                [
                    clamp8(base + amp * signed(&mut rng)),
                    clamp8(base + amp * signed(&mut rng)),
                    clamp8(base + amp * signed(&mut rng)),
                ],
            );
        }
    }
    img
}

/// A head-and-shoulders portrait of `width` x `height` on the reference
/// backdrop, painted by the one portrait renderer ([`super::render`]) with
/// the default sitter. `detail` (0-1) scales the sensor noise (2 to 16
/// levels), so one seed spans studio-clean to grainy phone shots; the codec
/// tests and benches use it for pictures of a given size and grain.
pub fn portrait(width: u32, height: u32, detail: f32, seed: u64) -> RgbImage {
    let spec = PortraitSpec {
        seed,
        width,
        height,
        noise: 2.0 + 14.0 * f64::from(detail.clamp(0.0, 1.0)),
        ..PortraitSpec::default()
    };
    match render(&spec) {
        Ok((img, _truth)) => img,
        Err(e) => panic!("test portrait {width}x{height}: {e}"),
    }
}

/// A 3000x4000 (12 MP) portrait inside a white frame 40 px deep at the top
/// and bottom and 30 px at the sides, for the border and composition
/// benches.
pub fn framed_portrait_12mp() -> RgbImage {
    let spec = PortraitSpec {
        width: 3000,
        height: 4000,
        border: BorderSpec {
            top: 40,
            bottom: 40,
            left: 30,
            right: 30,
            colour: [255, 255, 255],
            ..BorderSpec::default()
        },
        ..PortraitSpec::default()
    };
    match render(&spec) {
        Ok((img, _truth)) => img,
        Err(e) => panic!("12 MP bench portrait: {e}"),
    }
}
