//! Painters that work on a finished picture, for unit tests: frames with
//! noise, a double frame's rule and JPEG-like ringing, a blur, and a JPEG
//! written by an encoder that is not ours. Portraits themselves come from
//! [`synth`](crate::testkit::synth) (`render`, or `Sitting` for subjects
//! placed by hand). Only compiled for tests.

use crate::image::RgbImage;
use crate::testkit::synth::SplitMix64;

/// Frame widths per side and their colour.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

/// Puts `img` inside a frame of `colour` (new, larger canvas), with noise.
pub fn add_frame(img: &RgbImage, f: Frame, colour: [u8; 3], noise: f64, seed: u64) -> RgbImage {
    let w = img.width() + f.left + f.right;
    let h = img.height() + f.top + f.bottom;
    let mut out = RgbImage::filled(w, h, colour);
    let mut rng = SplitMix64::new(seed);
    for y in 0..h {
        for x in 0..w {
            let inside =
                x >= f.left && x < f.left + img.width() && y >= f.top && y < f.top + img.height();
            if inside {
                out.put_pixel(x, y, img.pixel(x - f.left, y - f.top));
            } else if noise > 0.0 {
                let c = colour.map(|c| {
                    (f64::from(c) + rng.gauss() * noise)
                        .round()
                        .clamp(0.0, 255.0) as u8
                });
                out.put_pixel(x, y, c);
            }
        }
    }
    out
}

/// Paints a line of `colour`, `thickness` px, `inset` px inside each framed
/// side's outer edge of `img` (the dark rule of a double frame).
pub fn draw_rule(img: &mut RgbImage, f: Frame, inset: u32, thickness: u32, colour: [u8; 3]) {
    let (w, h) = (img.width(), img.height());
    for y in 0..h {
        for x in 0..w {
            let on = |edge: u32, width: u32, pos: u32| {
                width > 0 && pos >= edge + inset && pos < edge + inset + thickness
            };
            let top = f.top > 0 && on(0, f.top, y) && x >= inset && x < w - inset;
            let bottom = f.bottom > 0 && on(0, f.bottom, h - 1 - y) && x >= inset && x < w - inset;
            let left = f.left > 0 && on(0, f.left, x) && y >= inset && y < h - inset;
            let right = f.right > 0 && on(0, f.right, w - 1 - x) && y >= inset && y < h - inset;
            if top || bottom || left || right {
                img.put_pixel(x, y, colour);
            }
        }
    }
}

/// Imitates JPEG ringing: a damped oscillation on both sides of each frame
/// edge, varying along the edge like 8x8 block artefacts do.
pub fn add_ringing(img: &mut RgbImage, f: Frame, amp: f64, seed: u64) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut rng = SplitMix64::new(seed);
    let along: Vec<f64> = (0..w.max(h))
        .map(|_| 0.6 + 0.4 * rng.gauss().abs().min(1.0))
        .collect();
    let apply = |img: &mut RgbImage, x: i64, y: i64, d: i64, k: usize| {
        if x < 0 || y < 0 || x >= w || y >= h {
            return;
        }
        let v =
            amp * along[k] * (-(d.abs() as f64) / 2.5).exp() * if d % 2 == 0 { 1.0 } else { -1.0 };
        let p = img.pixel(x as u32, y as u32);
        let q = p.map(|c| (f64::from(c) + v).round().clamp(0.0, 255.0) as u8);
        img.put_pixel(x as u32, y as u32, q);
    };
    for d in -4..4i64 {
        if f.top > 0 {
            for x in 0..w {
                apply(img, x, f.top as i64 + d, d, x as usize);
            }
        }
        if f.bottom > 0 {
            for x in 0..w {
                apply(img, x, h - f.bottom as i64 - 1 - d, d, x as usize);
            }
        }
        if f.left > 0 {
            for y in 0..h {
                apply(img, f.left as i64 + d, y, d, y as usize);
            }
        }
        if f.right > 0 {
            for y in 0..h {
                apply(img, w - f.right as i64 - 1 - d, y, d, y as usize);
            }
        }
    }
}

/// A (2r+1)-wide box blur, repeated, for "soft focus".
pub fn blur(img: &RgbImage, r: u32, passes: u32) -> RgbImage {
    let mut cur = img.clone();
    let (w, h) = (img.width() as i64, img.height() as i64);
    let r = r as i64;
    for _ in 0..passes {
        let mut tmp = cur.clone();
        for y in 0..h {
            for x in 0..w {
                let mut s = [0u32; 3];
                let mut n = 0;
                for xx in (x - r).max(0)..=(x + r).min(w - 1) {
                    let p = cur.pixel(xx as u32, y as u32);
                    for k in 0..3 {
                        s[k] += u32::from(p[k]);
                    }
                    n += 1;
                }
                tmp.put_pixel(x as u32, y as u32, s.map(|v| (v / n) as u8));
            }
        }
        for y in 0..h {
            for x in 0..w {
                let mut s = [0u32; 3];
                let mut n = 0;
                for yy in (y - r).max(0)..=(y + r).min(h - 1) {
                    let p = tmp.pixel(x as u32, yy as u32);
                    for k in 0..3 {
                        s[k] += u32::from(p[k]);
                    }
                    n += 1;
                }
                cur.put_pixel(x as u32, y as u32, s.map(|v| (v / n) as u8));
            }
        }
    }
    cur
}

/// `img` as written by jpeg-encoder, an encoder that is not ours, at
/// `quality`, after `configure` has set anything else (restart interval,
/// sampling, tables).
pub fn reference_jpeg(
    img: &RgbImage,
    quality: u8,
    configure: impl FnOnce(&mut jpeg_encoder::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut jpeg = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, quality);
    configure(&mut encoder);
    encoder
        .encode(
            img.as_bytes(),
            img.width() as u16,
            img.height() as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("jpeg-encoder writes a test picture");
    jpeg
}
