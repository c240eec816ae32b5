//! Portraits with a known alpha matte, for testing backdrop recolouring.
//!
//! The person is painted by the portrait renderer twice, on black and on
//! white with no noise: the difference gives each pixel's coverage (alpha)
//! and the black one its premultiplied colour. The layer is then defocused
//! a little (soft edges), fine hair strands are laid over the hair's outline
//! (sub-pixel wide, tapering, partly transparent), and the layer is
//! composited over a backdrop field (flat, gradient or shadowed) with sensor
//! noise. The matte and the person's layer are the truth a matte is scored
//! against. The cohort generator does not use this module, so cohorts made
//! before it are unchanged.

use crate::image::RgbImage;
use crate::testkit::synth::{Sitter, Sitting, SplitMix64, SynthError};

/// The backdrop behind a matte portrait.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MatteBackdrop {
    Flat([u8; 3]),
    /// From `top` at the first row to `bottom` at the last.
    Gradient {
        top: [u8; 3],
        bottom: [u8; 3],
    },
    /// `colour` darkened by up to `depth` (0-1) in a soft disc of `radius`
    /// around `(x, y)`: the subject's shadow on the backdrop.
    Shadow {
        colour: [u8; 3],
        depth: f64,
        x: f64,
        y: f64,
        radius: f64,
    },
}

impl MatteBackdrop {
    /// The backdrop's colour at pixel `(x, y)` of a `height`-row picture.
    pub fn at(&self, x: f64, y: f64, height: u32) -> [f64; 3] {
        let f = |c: [u8; 3]| c.map(f64::from);
        match *self {
            MatteBackdrop::Flat(c) => f(c),
            MatteBackdrop::Gradient { top, bottom } => {
                let t = y / f64::from(height.max(2) - 1);
                let (a, b) = (f(top), f(bottom));
                [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * t)
            }
            MatteBackdrop::Shadow {
                colour,
                depth,
                x: sx,
                y: sy,
                radius,
            } => {
                let d = ((x - sx).powi(2) + (y - sy).powi(2)).sqrt() / radius.max(1.0);
                // Smooth fall from full depth at the centre to none at the rim.
                let t = (1.0 - d).clamp(0.0, 1.0);
                let k = 1.0 - depth * t * t * (3.0 - 2.0 * t);
                f(colour).map(|v| v * k)
            }
        }
    }
}

/// What a matte portrait is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct MatteSpec {
    pub width: u32,
    pub height: u32,
    pub sitter: Sitter,
    pub backdrop: MatteBackdrop,
    pub hair: [u8; 3],
    pub clothing: [u8; 3],
    pub shirt: [u8; 3],
    /// Fine strands laid over the hair's outline.
    pub strands: u32,
    /// Sensor noise amplitude in 8-bit levels.
    pub noise: f64,
    pub seed: u64,
}

impl MatteSpec {
    /// A 480x640 head-and-shoulders portrait on `backdrop`, the head at
    /// the composition rule's place, with 60 strands of hair.
    pub fn new(backdrop: MatteBackdrop) -> Self {
        MatteSpec {
            width: 480,
            height: 640,
            sitter: Sitter::new(240.0, 90.0, 230.0),
            backdrop,
            hair: [34, 26, 22],
            clothing: [32, 34, 42],
            shirt: [238, 238, 236],
            strands: 60,
            noise: 3.0,
            seed: 7,
        }
    }
}

/// A matte portrait and its truth.
pub struct MattePortrait {
    pub image: RgbImage,
    /// Coverage of the person, 0-1, row-major.
    pub alpha: Vec<f32>,
    /// The person's colour times alpha (premultiplied), row-major.
    pub premultiplied: Vec<[f32; 3]>,
}

impl MattePortrait {
    /// What the true matte composited onto a flat `reference` gives.
    pub fn composited_onto(&self, reference: [u8; 3]) -> Vec<[f64; 3]> {
        self.alpha
            .iter()
            .zip(&self.premultiplied)
            .map(|(a, p)| {
                [0, 1, 2].map(|i| f64::from(p[i]) + (1.0 - f64::from(*a)) * f64::from(reference[i]))
            })
            .collect()
    }
}

/// Paints `spec`.
pub fn render_matte(spec: &MatteSpec) -> Result<MattePortrait, SynthError> {
    let (w, h) = (spec.width, spec.height);
    let on = |bg: [u8; 3]| -> Result<RgbImage, SynthError> {
        let mut sc = Sitting::new(w, h, bg).with(spec.sitter);
        sc.spec.noise = 0.0;
        sc.spec.backdrop_gradient = 0.0;
        sc.spec.hair = spec.hair;
        sc.spec.clothing = spec.clothing;
        sc.spec.shirt = spec.shirt;
        sc.spec.seed = spec.seed;
        Ok(sc.render()?.0)
    };
    let (black, white) = (on([0, 0, 0])?, on([255, 255, 255])?);
    let n = w as usize * h as usize;
    let mut alpha = vec![0f32; n];
    let mut pre = vec![[0f32; 3]; n];
    for (i, (b, wh)) in black
        .as_bytes()
        .chunks_exact(3)
        .zip(white.as_bytes().chunks_exact(3))
        .enumerate()
    {
        let gap: f32 = (0..3)
            .map(|c| f32::from(wh[c]) - f32::from(b[c]))
            .sum::<f32>()
            / 3.0;
        let a = (1.0 - gap / 255.0).clamp(0.0, 1.0);
        alpha[i] = a;
        pre[i] = [0, 1, 2].map(|c| f32::from(b[c]).min(255.0 * a));
    }
    // Soft edges: a slight defocus of the person's layer.
    blur_121(&mut alpha, w, h);
    blur_121(&mut pre, w, h);
    let mut rng = SplitMix64::new(spec.seed ^ 0x5EED);
    add_strands(spec, &mut alpha, &mut pre, &mut rng);
    let mut data = Vec::with_capacity(n * 3);
    for y in 0..h {
        for x in 0..w {
            let i = y as usize * w as usize + x as usize;
            let bg = spec.backdrop.at(f64::from(x), f64::from(y), h);
            let a = f64::from(alpha[i]);
            let luma = tri(rng.next_u64()) * spec.noise;
            for c in 0..3 {
                let chroma = tri(rng.next_u64()) * spec.noise * 0.35;
                let v = f64::from(pre[i][c]) + (1.0 - a) * bg[c] + luma + chroma;
                data.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    let image = RgbImage::new(w, h, data).map_err(|e| SynthError::Spec(e.to_string()))?;
    Ok(MattePortrait {
        image,
        alpha,
        premultiplied: pre,
    })
}

/// Triangular noise in `[-1, 1]`.
fn tri(h: u64) -> f64 {
    ((h & 0xFF) as f64 + ((h >> 8) & 0xFF) as f64 - 255.0) / 255.0
}

/// A separable [1 2 1]/4 blur, edges clamped.
fn blur_121<T: Copy + Blend>(v: &mut [T], w: u32, h: u32) {
    let (w, h) = (w as usize, h as usize);
    let src = v.to_vec();
    for y in 0..h {
        for x in 0..w {
            let l = src[y * w + x.saturating_sub(1)];
            let r = src[y * w + (x + 1).min(w - 1)];
            v[y * w + x] = T::mix3(l, src[y * w + x], r);
        }
    }
    let src = v.to_vec();
    for y in 0..h {
        for x in 0..w {
            let u = src[y.saturating_sub(1) * w + x];
            let d = src[(y + 1).min(h - 1) * w + x];
            v[y * w + x] = T::mix3(u, src[y * w + x], d);
        }
    }
}

trait Blend {
    fn mix3(a: Self, b: Self, c: Self) -> Self;
}

impl Blend for f32 {
    fn mix3(a: f32, b: f32, c: f32) -> f32 {
        (a + 2.0 * b + c) / 4.0
    }
}

impl Blend for [f32; 3] {
    fn mix3(a: Self, b: Self, c: Self) -> Self {
        [0, 1, 2].map(|i| (a[i] + 2.0 * b[i] + c[i]) / 4.0)
    }
}

/// Lays `spec.strands` strands of hair over the outline of the hair: each
/// leaves the outline along a ray from the head's centre, bends a little,
/// 6-28 px long, 0.5-1.3 px wide, tapering to nothing, 50-90% opaque.
fn add_strands(spec: &MatteSpec, alpha: &mut [f32], pre: &mut [[f32; 3]], rng: &mut SplitMix64) {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let s = spec.sitter;
    let hh = s.face_width / (2.0 * 0.38);
    let (cx, cy) = (s.cx, s.crown + 0.42 * hh);
    let hair = spec.hair.map(f32::from);
    for _ in 0..spec.strands {
        // Upward half of the head, -165..-15 degrees.
        let theta = rng.range(-165.0, -15.0).to_radians();
        let (dx, dy) = (theta.cos(), theta.sin());
        // The outline: the last point along the ray still mostly person.
        let mut r = 0.0;
        while r < hh * 1.5 {
            let (x, y) = (cx + dx * r, cy + dy * r);
            if x < 0.0 || y < 0.0 || x >= w as f64 || y >= h as f64 {
                break;
            }
            if alpha[y as usize * w + x as usize] < 0.5 {
                break;
            }
            r += 0.5;
        }
        let start = (cx + dx * (r - 2.0), cy + dy * (r - 2.0));
        let len = rng.range(6.0, 28.0);
        let bend = rng.range(-0.5, 0.5);
        let width = rng.range(0.5, 1.3);
        let opacity = rng.range(0.5, 0.9) as f32;
        // The strand as a polyline of short segments.
        let steps = (len * 2.0) as usize;
        let pts: Vec<(f64, f64)> = (0..=steps)
            .map(|k| {
                let t = k as f64 / steps as f64;
                let a = theta + bend * t;
                let along = len * t;
                (start.0 + a.cos() * along, start.1 + a.sin() * along)
            })
            .collect();
        let x0 = pts.iter().map(|p| p.0).fold(f64::MAX, f64::min).floor() as i64 - 2;
        let x1 = pts.iter().map(|p| p.0).fold(f64::MIN, f64::max).ceil() as i64 + 2;
        let y0 = pts.iter().map(|p| p.1).fold(f64::MAX, f64::min).floor() as i64 - 2;
        let y1 = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max).ceil() as i64 + 2;
        for py in y0.max(0)..=y1.min(h as i64 - 1) {
            for px in x0.max(0)..=x1.min(w as i64 - 1) {
                // 4x4 supersampled coverage of the tapering strand.
                let mut cover = 0.0;
                for sy in 0..4 {
                    for sx in 0..4 {
                        let q = (
                            px as f64 + (sx as f64 + 0.5) / 4.0,
                            py as f64 + (sy as f64 + 0.5) / 4.0,
                        );
                        let (d, t) = nearest_on(&pts, q);
                        if d <= width * 0.5 * (1.0 - t) {
                            cover += 1.0 / 16.0;
                        }
                    }
                }
                if cover == 0.0 {
                    continue;
                }
                let sa = opacity * cover as f32;
                let i = py as usize * w + px as usize;
                alpha[i] = sa + (1.0 - sa) * alpha[i];
                for c in 0..3 {
                    pre[i][c] = sa * hair[c] + (1.0 - sa) * pre[i][c];
                }
            }
        }
    }
}

/// Distance from `q` to the polyline `pts`, and how far along it (0-1) the
/// nearest point is.
fn nearest_on(pts: &[(f64, f64)], q: (f64, f64)) -> (f64, f64) {
    let mut best = (f64::MAX, 0.0);
    let n = (pts.len() - 1).max(1) as f64;
    for (k, seg) in pts.windows(2).enumerate() {
        let (a, b) = (seg[0], seg[1]);
        let (vx, vy) = (b.0 - a.0, b.1 - a.1);
        let l2 = (vx * vx + vy * vy).max(1e-12);
        let t = (((q.0 - a.0) * vx + (q.1 - a.1) * vy) / l2).clamp(0.0, 1.0);
        let (px, py) = (a.0 + vx * t, a.1 + vy * t);
        let d = ((q.0 - px).powi(2) + (q.1 - py).powi(2)).sqrt();
        if d < best.0 {
            best = (d, (k as f64 + t) / n);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matte_explains_the_picture() {
        let spec = MatteSpec {
            noise: 0.0,
            ..MatteSpec::new(MatteBackdrop::Flat([67, 142, 219]))
        };
        let m = render_matte(&spec).expect("renders");
        // Without noise, the picture is the layer over the backdrop to
        // within rounding.
        let bg = [67.0, 142.0, 219.0];
        for (i, px) in m.image.as_bytes().chunks_exact(3).enumerate() {
            let a = f64::from(m.alpha[i]);
            for c in 0..3 {
                let want = f64::from(m.premultiplied[i][c]) + (1.0 - a) * bg[c];
                assert!((f64::from(px[c]) - want).abs() <= 0.51, "pixel {i}");
            }
        }
        // Soft edges and strands: many pixels strictly between 0 and 1,
        // some of them well outside the head's outline.
        let partial = m.alpha.iter().filter(|a| **a > 0.02 && **a < 0.98).count();
        assert!(partial > 3000, "{partial}");
        let corners = m.alpha[0] + m.alpha[479];
        assert_eq!(corners, 0.0);
    }
}
