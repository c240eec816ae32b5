//! Simple seeded test pictures (gradient, noise, a rough portrait) for the
//! codec tests, benches and size-model measurements.
//! The generators panic on a zero dimension, like [`RgbImage::filled`];
//! they take constants, never user input.

use super::SplitMix64;
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

/// A head-and-shoulders figure on a light-blue backdrop. `detail` (0-1)
/// scales sensor noise, hair texture and clothing pattern, so one seed
/// spans studio-clean to grainy phone shots.
pub fn portrait(width: u32, height: u32, detail: f32, seed: u64) -> RgbImage {
    let mut rng = SplitMix64::new(seed);
    let mut img = RgbImage::filled(width, height, [0, 0, 0]);
    let (w, h) = (width as f32, height as f32);
    let (cx, cy) = (w * 0.5, h * 0.42);
    let (rx, ry) = (w * 0.22, h * 0.2);
    let grain = 2.0 + 14.0 * detail;
    let stripe = 4.0 + 6.0 * (seed % 5) as f32;
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32, y as f32);
            let n = grain * signed(&mut rng);
            let dx = (fx - cx) / rx;
            let dy = (fy - cy) / ry;
            let head = dx * dx + dy * dy;
            let hair = {
                let hy = (fy - (cy - ry * 0.35)) / (ry * 0.85);
                let hx = (fx - cx) / (rx * 1.1);
                hx * hx + hy * hy < 1.0 && fy < cy - ry * 0.2
            };
            let shoulders = fy > h * 0.68 && ((fx - cx).abs() < w * 0.15 + (fy - h * 0.68) * 1.6);
            let px = if hair {
                let strand = ((fx * 0.9 + (fy * 0.13).sin() * 6.0).sin() * 18.0) * detail;
                [20.0 + strand + n, 16.0 + strand + n, 14.0 + strand + n]
            } else if head < 1.0 {
                let shade = 25.0 * dx;
                let eye = ((fy - cy).abs() < 6.0 && (dx.abs() - 0.4).abs() < 0.12) as u8 as f32;
                [
                    225.0 - shade - 150.0 * eye + n,
                    180.0 - shade - 120.0 * eye + n,
                    150.0 - shade - 100.0 * eye + n,
                ]
            } else if shoulders {
                let pattern = if ((fx / stripe) as i32 + (fy / stripe) as i32) % 2 == 0 {
                    30.0 * detail
                } else {
                    0.0
                };
                [40.0 + pattern + n, 45.0 + pattern + n, 70.0 + pattern + n]
            } else {
                let g = 12.0 * (fy / h);
                [
                    100.0 - g + n * 0.5,
                    197.0 - g + n * 0.5,
                    255.0 - g + n * 0.5,
                ]
            };
            img.put_pixel(x, y, [clamp8(px[0]), clamp8(px[1]), clamp8(px[2])]);
        }
    }
    img
}
