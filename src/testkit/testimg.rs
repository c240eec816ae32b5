//! Test painters with known truth: a backdrop with noise and an optional
//! gradient, a head (ellipse face under a dark hair cap), a neck, shoulders,
//! and frames with JPEG-like ringing. Only compiled for tests.

#![allow(dead_code)] // painters serve tests in several modules

use crate::image::RgbImage;

/// A small deterministic generator (SplitMix64) so noise is identical
/// everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() >> 32) % u64::from(n)) as u32
    }
    /// Roughly normal, mean 0, deviation 1 (sum of uniforms).
    pub fn gauss(&mut self) -> f64 {
        let mut s = 0.0;
        for _ in 0..4 {
            s += (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        }
        (s - 2.0) * (3.0f64).sqrt()
    }
}

#[derive(Clone, Debug)]
pub struct Person {
    pub cx: f64,
    /// Centre of the face ellipse.
    pub cy: f64,
    /// Half the face width (cheek to cheek).
    pub a: f64,
    /// Half the face height.
    pub b: f64,
    pub skin: [u8; 3],
    pub hair: [u8; 3],
    pub clothes: [u8; 3],
    /// Shoulder line row; the right shoulder is lowered by `tilt` px.
    pub shoulder_y: f64,
    pub tilt: f64,
}

impl Person {
    /// A head whose face is `face` px wide, centred at `cx`, crown at `crown`.
    pub fn new(cx: f64, crown: f64, face: f64) -> Person {
        let a = face / 2.0;
        let b = 1.4 * a;
        let cy = crown + 1.16 * b;
        Person {
            cx,
            cy,
            a,
            b,
            skin: [224, 172, 140],
            hair: [28, 22, 20],
            clothes: [30, 34, 48],
            shoulder_y: cy + 1.35 * b,
            tilt: 0.0,
        }
    }
    pub fn crown(&self) -> f64 {
        self.cy - 1.16 * self.b
    }
    pub fn chin(&self) -> f64 {
        self.cy + self.b
    }
    pub fn eye_line(&self) -> f64 {
        self.cy - 0.05 * self.b
    }
    pub fn face_width(&self) -> f64 {
        2.0 * self.a
    }

    /// The colour of this person at (x, y), or None where backdrop shows.
    pub fn colour_at(&self, x: f64, y: f64) -> Option<[u8; 3]> {
        let (a, b) = (self.a, self.b);
        let dx = x - self.cx;
        let face = (dx / a).powi(2) + ((y - self.cy) / b).powi(2) <= 1.0;
        let hair_cy = self.cy - 0.06 * b;
        let hair = (dx / (1.2 * a)).powi(2) + ((y - hair_cy) / (1.1 * b)).powi(2) <= 1.0
            && y < self.cy + 0.2 * b;
        if face && y >= self.cy - 0.45 * b {
            // Eyes: two dark spots on the eye line.
            let ey = self.eye_line();
            for side in [-1.0, 1.0] {
                let ex = self.cx + side * 0.4 * a;
                if ((x - ex) / (0.14 * a)).powi(2) + ((y - ey) / (0.06 * a)).powi(2) <= 1.0 {
                    return Some([40, 30, 30]);
                }
            }
            return Some(self.skin);
        }
        if hair {
            return Some(self.hair);
        }
        if face {
            return Some(self.skin);
        }
        // Neck.
        if dx.abs() <= 0.5 * a && y >= self.cy + 0.5 * b && y <= self.shoulder_y + 5.0 {
            return Some(self.skin);
        }
        // Shoulders: a trapezoid widening downwards, tilted by `tilt`.
        let top = self.shoulder_y + self.tilt * (dx / (3.0 * a)).clamp(-1.0, 1.0) / 2.0;
        if y >= top {
            let half = 1.7 * a + (y - top) * 1.2;
            if dx.abs() <= half.min(3.6 * a) {
                return Some(self.clothes);
            }
        }
        None
    }
}

#[derive(Clone, Debug)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    pub backdrop: [u8; 3],
    /// Added to the backdrop at the bottom row (a vertical light fall-off).
    pub gradient: [f64; 3],
    pub noise: f64,
    pub people: Vec<Person>,
    pub seed: u64,
}

impl Scene {
    pub fn new(width: u32, height: u32, backdrop: [u8; 3]) -> Scene {
        Scene {
            width,
            height,
            backdrop,
            gradient: [0.0; 3],
            noise: 3.0,
            people: Vec::new(),
            seed: 7,
        }
    }

    pub fn with(mut self, p: Person) -> Scene {
        self.people.push(p);
        self
    }

    /// Paints with 2x2 supersampled edges so silhouettes are antialiased.
    pub fn paint(&self) -> RgbImage {
        let mut img = RgbImage::filled(self.width, self.height, self.backdrop);
        let mut rng = Rng::new(self.seed);
        for y in 0..self.height {
            let t = f64::from(y) / f64::from(self.height.max(2) - 1);
            for x in 0..self.width {
                let mut acc = [0.0f64; 3];
                for (sx, sy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let (fx, fy) = (f64::from(x) + sx, f64::from(y) + sy);
                    let c = self
                        .people
                        .iter()
                        .find_map(|p| p.colour_at(fx, fy))
                        .map(|c| c.map(f64::from))
                        .unwrap_or_else(|| {
                            let b = self.backdrop.map(f64::from);
                            [
                                b[0] + self.gradient[0] * t,
                                b[1] + self.gradient[1] * t,
                                b[2] + self.gradient[2] * t,
                            ]
                        });
                    for k in 0..3 {
                        acc[k] += c[k] / 4.0;
                    }
                }
                let n = self.noise;
                let px =
                    [0, 1, 2].map(|k| (acc[k] + rng.gauss() * n).round().clamp(0.0, 255.0) as u8);
                img.put_pixel(x, y, px);
            }
        }
        img
    }
}

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
    let mut rng = Rng::new(seed);
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
    let mut rng = Rng::new(seed);
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
