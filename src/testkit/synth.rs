//! Synthetic studio portraits with known geometry, for tests and benchmarks.
//!
//! Real graduation photos cannot be committed (they are personal data), so the
//! pipeline is exercised on drawn head-and-shoulders portraits whose crown,
//! eye line, face width, borders and backdrop are known exactly. Everything is
//! a pure function of a [`PortraitSpec`] (which carries its seed): the same
//! spec gives the same pixels and the same file bytes on any machine, because
//! every pixel value comes from integer hashing and IEEE basic arithmetic
//! (`+ - * /`, `sqrt`) only, never from libm transcendental functions.
//!
//! # Coordinate frame of [`Truth`]
//! All truth coordinates are in the **upright (display) frame**: the picture as
//! a viewer sees it after applying the file's EXIF orientation, including any
//! border. Pixel `(0, 0)` is its top-left corner; rows grow downwards. A file
//! written with orientation 6 stores the pixels rotated, but its truth still
//! describes the upright picture.

pub mod matte;
pub mod patterns;
pub use patterns::{framed_portrait_12mp, gradient, noise, portrait};

use std::borrow::Cow;

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::image::RgbImage;

/// The registry's reference backdrop (SPEC §2).
pub const REFERENCE_BACKDROP: [u8; 3] = [100, 197, 255];

/// Why a portrait or a file could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid portrait spec: {0}")]
    Spec(String),
    #[error("invalid file spec: {0}")]
    File(String),
    #[error("JPEG encoding failed: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

// ---------------------------------------------------------------------------
// Deterministic randomness

/// SplitMix64: tiny, fast, and its output is fixed by its definition, so
/// cohorts are reproducible without depending on a crate's stream stability.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `[0, 1)` from the top 53 bits (exactly representable).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo + 1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// Uniform in `0..n` (`n` > 0), from the top 32 bits.
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() >> 32) % u64::from(n)) as u32
    }

    /// Roughly normal, mean 0, deviation 1: the sum of four uniforms,
    /// centred and scaled.
    pub fn gauss(&mut self) -> f64 {
        let mut s = 0.0;
        for _ in 0..4 {
            s += self.next_f64();
        }
        (s - 2.0) * 3.0f64.sqrt()
    }
}

/// The SplitMix64 finaliser; also used as a stateless per-pixel hash so rows
/// can be rendered in parallel without any shared generator state.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash3(seed: u64, a: u64, b: u64) -> u64 {
    mix64(seed ^ mix64(a.wrapping_mul(0x1000_0000_01B3) ^ mix64(b.wrapping_add(0x5851_F42D))))
}

// ---------------------------------------------------------------------------
// Specs

/// A frame drawn around the photo, as scanners and export tools add them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorderSpec {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
    pub colour: [u8; 3],
    /// Width of a thin line at the inner edge of the frame (a "double frame"),
    /// counted inside the side widths above; 0 for none.
    #[serde(default)]
    pub inner_line: u32,
    #[serde(default)]
    pub inner_line_colour: [u8; 3],
}

impl BorderSpec {
    pub fn is_empty(&self) -> bool {
        self.top == 0 && self.bottom == 0 && self.left == 0 && self.right == 0
    }
}

/// Everything that decides a portrait's pixels.
///
/// Geometry is relative to the *inner* photo (the canvas minus borders) so
/// a spec can be re-bordered without moving the subject within the photo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PortraitSpec {
    pub seed: u64,
    /// Upright canvas size in pixels, borders included.
    pub width: u32,
    pub height: u32,
    pub backdrop: [u8; 3],
    /// Relative brightness change from the middle to the top (and, negated,
    /// to the bottom) of the backdrop, as a studio light falls off.
    pub backdrop_gradient: f64,
    /// Sensor-noise amplitude in 8-bit levels.
    pub noise: f64,
    pub skin: [u8; 3],
    pub hair: [u8; 3],
    pub clothing: [u8; 3],
    pub shirt: [u8; 3],
    /// Crown-to-chin height as a fraction of the inner photo height.
    pub head_height: f64,
    /// Subject centre as a fraction of the inner photo width.
    pub center_x: f64,
    /// Crown row as a fraction of the inner photo height; negative means the
    /// top of the head is cut off.
    pub headroom: f64,
    pub border: BorderSpec,
    /// Adds a second person to the right of the first.
    pub second_person: bool,
    /// 0 for even light; up to 1 darkens the subject's left half (viewer's
    /// left) by that fraction, as a missing fill light does.
    pub uneven_light: f64,
}

impl Default for PortraitSpec {
    fn default() -> Self {
        PortraitSpec {
            seed: 1,
            width: 1200,
            height: 1600,
            backdrop: REFERENCE_BACKDROP,
            backdrop_gradient: 0.03,
            noise: 3.5,
            skin: [224, 180, 150],
            hair: [28, 22, 20],
            clothing: [32, 34, 42],
            shirt: [238, 238, 236],
            head_height: 0.34,
            center_x: 0.5,
            headroom: 0.11,
            border: BorderSpec::default(),
            second_person: false,
            uneven_light: 0.0,
        }
    }
}

/// Options for [`random_spec`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomOptions {
    pub min_mp: f64,
    pub max_mp: f64,
    /// Probability that the canvas is landscape rather than portrait.
    pub landscape: f64,
}

impl Default for RandomOptions {
    fn default() -> Self {
        RandomOptions {
            min_mp: 2.0,
            max_mp: 24.0,
            landscape: 0.05,
        }
    }
}

const SKIN_TONES: [[u8; 3]; 6] = [
    [236, 200, 172],
    [224, 180, 150],
    [210, 164, 130],
    [196, 148, 112],
    [170, 122, 90],
    [141, 98, 72],
];
const HAIR: [[u8; 3]; 4] = [[22, 18, 16], [34, 26, 22], [52, 38, 30], [70, 52, 38]];
const CLOTHES: [[u8; 3]; 6] = [
    [30, 32, 40],
    [24, 26, 30],
    [40, 44, 66],
    [58, 58, 62],
    [236, 236, 232],
    [92, 34, 40],
];

/// An ordinary, fixable vendor portrait drawn from `rng`: varied size, tone,
/// pose and a backdrop within a few ΔE of the reference.
pub fn random_spec(rng: &mut SplitMix64, opts: RandomOptions) -> PortraitSpec {
    let seed = rng.next_u64();
    let mp = rng.range(
        opts.min_mp.max(0.1),
        opts.max_mp.max(opts.min_mp.max(0.1)) + 1e-9,
    );
    let landscape = rng.chance(opts.landscape);
    // Camera aspect ratios: 3:4 (phones, compacts) and 2:3 (DSLRs).
    let aspect = if rng.chance(0.5) { 4.0 / 3.0 } else { 1.5 };
    let long = (mp * 1e6 * aspect).sqrt();
    let short = long / aspect;
    let (w, h) = if landscape {
        (long, short)
    } else {
        (short, long)
    };
    let even = |v: f64| ((v / 2.0) as u32).max(32) * 2;
    let (width, height) = (even(w), even(h));
    let jitter = |rng: &mut SplitMix64, c: [u8; 3], d: i64| {
        c.map(|v| (i64::from(v) + rng.int(-d, d)).clamp(0, 255) as u8)
    };
    let pick =
        |rng: &mut SplitMix64, list: &[[u8; 3]]| list[rng.int(0, list.len() as i64 - 1) as usize];
    let skin = pick(rng, &SKIN_TONES);
    let hair = pick(rng, &HAIR);
    let clothing = pick(rng, &CLOTHES);
    let (head_height, headroom) = if landscape {
        (rng.range(0.30, 0.42), rng.range(0.08, 0.14))
    } else {
        (rng.range(0.24, 0.40), rng.range(0.07, 0.16))
    };
    PortraitSpec {
        seed,
        width,
        height,
        backdrop: jitter(rng, REFERENCE_BACKDROP, 6),
        backdrop_gradient: rng.range(0.0, 0.05),
        noise: rng.range(2.5, 6.0),
        skin: jitter(rng, skin, 6),
        hair: jitter(rng, hair, 4),
        clothing: jitter(rng, clothing, 5),
        shirt: jitter(rng, [238, 238, 236], 4),
        head_height,
        center_x: rng.range(0.46, 0.54),
        headroom,
        border: BorderSpec::default(),
        second_person: false,
        uneven_light: 0.0,
    }
}

// ---------------------------------------------------------------------------
// Truth

/// Widths of the border on each side, in pixels of the upright picture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

/// An axis-aligned box; `right`/`bottom` are one past the last pixel. May
/// reach outside the canvas when the subject is cut off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxI {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

/// What a correct analysis of the rendered picture should find. All
/// coordinates are in the upright (display) frame, borders included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub width: u32,
    pub height: u32,
    pub border: Sides,
    /// Mean of the rendered backdrop pixels, before compression.
    pub backdrop_rgb: [u8; 3],
    /// First row of hair at the subject's centre (top of the head).
    pub crown_row: i64,
    /// Hair and face together, crown to chin.
    pub head_box: BoxI,
    /// Cheek to cheek, in pixels.
    pub face_width: u32,
    /// Row through the centres of both eyes.
    pub eye_row: i64,
    pub center_x: i64,
    pub chin_row: i64,
    /// Row of the top of the shoulders at their outer point.
    pub shoulder_row: i64,
    /// Whether a crop meeting the composition rule (SPEC §2) fits inside the
    /// photo, i.e. gradphoto should produce an output.
    pub fixable: bool,
    /// The main thing gradphoto must report instead of (or besides) fixing:
    /// `subject_cut_off`, `too_close_to_edge`, `two_people`,
    /// `backdrop_not_blue`, `too_small`, `corrupt`.
    pub expected_flag: Option<String>,
    /// Checks expected to warn: `clothing_like_backdrop`, `uneven_light`,
    /// `extension_mismatch`.
    #[serde(default)]
    pub expected_warnings: Vec<String>,
}

// ---------------------------------------------------------------------------
// Rendering

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Backdrop,
    Hair,
    Face,
    Sclera,
    Iris,
    Brow,
    Mouth,
    Neck,
    Suit,
    Shirt,
}

/// One subject's geometry, all in canvas pixels (f64 so shapes are exact).
#[derive(Clone, Debug)]
struct Person {
    cx: f64,
    crown: f64,
    chin: f64,
    // face ellipse
    fa: f64,
    fb: f64,
    fcy: f64,
    // hair ellipse
    ha: f64,
    hb: f64,
    hcy: f64,
    hairline: f64,
    temple_drop: f64,
    hair_bottom: f64,
    eye_y: f64,
    eye_dx: f64,
    eye_rx: f64,
    eye_ry: f64,
    iris_r: f64,
    brow_y: f64,
    brow_rx: f64,
    brow_ry: f64,
    mouth_y: f64,
    mouth_rx: f64,
    mouth_ry: f64,
    neck_half: f64,
    shoulder_y: f64,
    shoulder_half: f64,
    lift: f64,
    round_r: f64,
    collar_depth: f64,
    collar_half: f64,
    /// How much lower the right shoulder point (viewer's right) is than
    /// the left; 0 in every [`PortraitSpec`] portrait.
    tilt: f64,
}

/// Half the face's width per unit of head height (crown to chin).
const FACE_HALF_WIDTH: f64 = 0.38;

impl Person {
    fn new(cx: f64, crown: f64, hh: f64) -> Self {
        let fb = 0.46 * hh;
        let fa = FACE_HALF_WIDTH * hh;
        let chin = crown + hh;
        let hb = 0.42 * hh;
        let neck_base = chin + 0.16 * hh;
        let shoulder_y = chin + 0.42 * hh;
        Person {
            cx,
            crown,
            chin,
            fa,
            fb,
            fcy: chin - fb,
            ha: 1.12 * fa,
            hb,
            hcy: crown + hb,
            hairline: crown + 0.20 * hh,
            temple_drop: 0.10 * hh,
            hair_bottom: crown + 0.50 * hh,
            eye_y: crown + 0.52 * hh,
            eye_dx: 0.40 * fa,
            eye_rx: 0.17 * fa,
            eye_ry: 0.075 * fa,
            iris_r: 0.075 * fa,
            brow_y: crown + 0.52 * hh - 0.085 * hh,
            brow_rx: 0.22 * fa,
            brow_ry: 0.035 * fa,
            mouth_y: crown + 0.83 * hh,
            mouth_rx: 0.24 * fa,
            mouth_ry: 0.028 * hh,
            neck_half: 0.52 * fa,
            shoulder_y,
            shoulder_half: 0.82 * hh,
            lift: shoulder_y - neck_base,
            round_r: 0.22 * hh,
            collar_depth: 0.40 * hh,
            collar_half: 0.62 * fa,
            tilt: 0.0,
        }
    }

    /// Moves the shoulder points to row `y`, keeping the neck's base: the
    /// torso's top rises from there to them (or, when they are above it,
    /// runs level at `y`).
    fn with_shoulders_at(mut self, y: f64) -> Self {
        let neck_base = self.shoulder_y - self.lift;
        self.shoulder_y = y;
        self.lift = (y - neck_base).max(0.0);
        self
    }

    /// Top edge of the torso at horizontal offset `dx` from the centre:
    /// steep from the neck, flat at the shoulder point, then rounding down
    /// over the arm with a continuous slope; tilted by `tilt`.
    fn torso_top(&self, dx: f64) -> f64 {
        let d = dx.abs();
        let top = if d <= self.shoulder_half {
            let t = 1.0 - d / self.shoulder_half;
            self.shoulder_y - self.lift * t * t
        } else {
            let e = d - self.shoulder_half;
            self.shoulder_y + e * e / (2.0 * self.round_r)
        };
        if self.tilt == 0.0 {
            return top;
        }
        top + 0.5 * self.tilt * (dx / self.shoulder_half).clamp(-1.0, 1.0)
    }

    /// How far from the centre any part of this person reaches above row
    /// `y1`; `None` when the rows are all above the crown. Lets a row
    /// skip the shape tests on pure backdrop.
    fn reach(&self, y1: f64) -> Option<f64> {
        if y1 < self.crown {
            return None;
        }
        let mut r = self.ha;
        // A tilt raises one shoulder by up to half of it.
        let raised = 0.5 * self.tilt.abs();
        if y1 >= self.torso_top(0.0) - raised {
            let below = (y1 - (self.shoulder_y - raised)).max(0.0);
            r = r.max(self.shoulder_half + (2.0 * self.round_r * below).sqrt());
        }
        Some(r + 1.0)
    }

    fn classify(&self, x: f64, y: f64) -> Option<Layer> {
        if y < self.crown {
            return None;
        }
        let dx = x - self.cx;
        let d = dx.abs();
        let fx = dx / self.fa;
        let fy = (y - self.fcy) / self.fb;
        let in_face = fx * fx + fy * fy <= 1.0;
        let hx = dx / self.ha;
        let hy = (y - self.hcy) / self.hb;
        let in_hair = hx * hx + hy * hy <= 1.0;
        if in_hair
            && (y < self.hairline + self.temple_drop * fx * fx
                || (!in_face && y < self.hair_bottom))
        {
            return Some(Layer::Hair);
        }
        if in_face {
            let ex = d - self.eye_dx;
            let ey = y - self.eye_y;
            if ex * ex + ey * ey <= self.iris_r * self.iris_r {
                return Some(Layer::Iris);
            }
            let (sx, sy) = (ex / self.eye_rx, ey / self.eye_ry);
            if sx * sx + sy * sy <= 1.0 {
                return Some(Layer::Sclera);
            }
            let (bx, by) = (ex / self.brow_rx, (y - self.brow_y) / self.brow_ry);
            if bx * bx + by * by <= 1.0 {
                return Some(Layer::Brow);
            }
            let (mx, my) = (dx / self.mouth_rx, (y - self.mouth_y) / self.mouth_ry);
            if mx * mx + my * my <= 1.0 {
                return Some(Layer::Mouth);
            }
            return Some(Layer::Face);
        }
        let top = self.torso_top(dx);
        if y >= top {
            let top0 = self.torso_top(0.0);
            let depth = (y - top0) / self.collar_depth;
            if depth < 1.0 && d < self.collar_half * (1.0 - depth) {
                return Some(Layer::Shirt);
            }
            return Some(Layer::Suit);
        }
        if d <= self.neck_half && y >= self.fcy {
            return Some(Layer::Neck);
        }
        None
    }
}

fn scale(c: [u8; 3], f: f64) -> [f64; 3] {
    [
        f64::from(c[0]) * f,
        f64::from(c[1]) * f,
        f64::from(c[2]) * f,
    ]
}

struct Scene<'a> {
    spec: &'a PortraitSpec,
    people: &'a [Person],
    inner_top: f64,
    inner_h: f64,
}

impl Scene<'_> {
    fn classify(&self, x: f64, y: f64) -> (Layer, usize) {
        for (i, p) in self.people.iter().enumerate() {
            if let Some(l) = p.classify(x, y) {
                return (l, i);
            }
        }
        (Layer::Backdrop, 0)
    }

    /// Noise-free colour of `layer` at subsample `(x, y)` of pixel `(px, py)`.
    fn colour(&self, layer: Layer, who: usize, x: f64, y: f64, px: u32, py: u32) -> [f64; 3] {
        let s = self.spec;
        if layer == Layer::Backdrop {
            // Unlit by the subject's light (and there may be no subject).
            let t = (y - self.inner_top) / self.inner_h;
            return scale(s.backdrop, 1.0 + s.backdrop_gradient * (1.0 - 2.0 * t));
        }
        let p = &self.people[who];
        let dx = x - p.cx;
        let mut light = 1.0;
        if s.uneven_light > 0.0 {
            // Soft terminator across the face's middle third.
            let t = ((-dx) / (0.3 * p.fa) + 0.5).clamp(0.0, 1.0);
            light -= s.uneven_light * t;
        }
        let c = match layer {
            Layer::Backdrop => unreachable!("returned above"),
            Layer::Hair => {
                // Strands: columns of slightly different brightness that
                // change every few dozen rows, slanted with the hair's flow.
                let slant = (dx / p.ha * 6.0 * (y - p.crown) / p.hb) as i64;
                let col = (i64::from(px) + slant).div_euclid(3) as u64;
                let h = hash3(s.seed ^ 0xA1, col, u64::from(py / 40));
                let streak = (h & 0xFF) as f64 / 255.0;
                let gloss = 1.0 + 0.5 * (1.0 - ((y - p.crown) / (0.25 * p.hb)).min(1.0));
                scale(s.hair, (0.8 + 0.4 * streak) * gloss)
            }
            Layer::Face => {
                let fx = dx / p.fa;
                let fy = (y - p.fcy) / p.fb;
                // Shape the face with light falling off towards its rim.
                scale(s.skin, 1.05 - 0.2 * (fx * fx + fy * fy))
            }
            Layer::Neck => scale(s.skin, 0.78),
            Layer::Sclera => [232.0, 228.0, 222.0],
            Layer::Iris => [44.0, 32.0, 28.0],
            Layer::Brow => scale(s.hair, 1.1),
            Layer::Mouth => [
                f64::from(s.skin[0]) * 0.78,
                f64::from(s.skin[1]) * 0.48,
                f64::from(s.skin[2]) * 0.50,
            ],
            Layer::Suit => {
                let d = (dx / (2.0 * p.shoulder_half)).min(1.0);
                scale(s.clothing, 1.04 - 0.16 * d * d)
            }
            Layer::Shirt => scale(s.shirt, 0.97),
        };
        c.map(|v| v * light)
    }

    fn texture(&self, layer: Layer) -> f64 {
        match layer {
            Layer::Backdrop => 0.0,
            Layer::Hair => 3.0,
            Layer::Suit | Layer::Shirt => 2.0,
            _ => 1.0,
        }
    }
}

/// Triangular noise in `[-1, 1]` from 16 hash bits, so it looks like sensor
/// noise rather than uniform dither.
fn tri(h: u64) -> f64 {
    let a = (h & 0xFF) as f64;
    let b = ((h >> 8) & 0xFF) as f64;
    (a + b - 255.0) / 255.0
}

fn to_u8(v: f64) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

fn check_spec(s: &PortraitSpec) -> Result<(), SynthError> {
    let bad = |m: String| Err(SynthError::Spec(m));
    if !(8..=20_000).contains(&s.width) || !(8..=20_000).contains(&s.height) {
        return bad(format!("canvas {}x{} outside 8..=20000", s.width, s.height));
    }
    let b = &s.border;
    if b.left + b.right > s.width / 2 || b.top + b.bottom > s.height / 2 {
        return bad("borders leave less than half the canvas".into());
    }
    let finite = [
        s.backdrop_gradient,
        s.noise,
        s.head_height,
        s.center_x,
        s.headroom,
        s.uneven_light,
    ];
    if finite.iter().any(|v| !v.is_finite()) {
        return bad("non-finite number".into());
    }
    if !(0.02..=1.5).contains(&s.head_height) {
        return bad(format!("head_height {} outside 0.02..=1.5", s.head_height));
    }
    if !(0.0..=40.0).contains(&s.noise) || !(0.0..=1.0).contains(&s.uneven_light) {
        return bad("noise or uneven_light out of range".into());
    }
    Ok(())
}

/// Renders the upright portrait and what an analysis should find in it.
pub fn render(spec: &PortraitSpec) -> Result<(RgbImage, Truth), SynthError> {
    check_spec(spec)?;
    let (w, h) = (spec.width, spec.height);
    let b = &spec.border;
    let inner_left = f64::from(b.left);
    let inner_top = f64::from(b.top);
    let inner_w = f64::from(w - b.left - b.right);
    let inner_h = f64::from(h - b.top - b.bottom);
    let hh = spec.head_height * inner_h;
    let crown = inner_top + spec.headroom * inner_h;
    let mut people = Vec::new();
    if spec.second_person {
        // Two graduates side by side, the second a little smaller and lower.
        people.push(Person::new(inner_left + 0.32 * inner_w, crown, hh * 0.9));
        people.push(Person::new(
            inner_left + 0.72 * inner_w,
            crown + 0.04 * inner_h,
            hh * 0.82,
        ));
    } else {
        people.push(Person::new(inner_left + spec.center_x * inner_w, crown, hh));
    }
    let (img, backdrop_rgb) = paint(spec, &people)?;
    let truth = make_truth(spec, &people[0], spec.second_person, backdrop_rgb);
    Ok((img, truth))
}

/// Paints `people` on `spec`'s canvas (its backdrop, colours, light, noise
/// and border); returns the picture and the mean of its backdrop pixels.
fn paint(spec: &PortraitSpec, people: &[Person]) -> Result<(RgbImage, [u8; 3]), SynthError> {
    let (w, h) = (spec.width, spec.height);
    let b = &spec.border;
    let scene = Scene {
        spec,
        people,
        inner_top: f64::from(b.top),
        inner_h: f64::from(h - b.top - b.bottom),
    };

    let stride = w as usize * 3;
    let mut data = vec![0u8; stride * h as usize];
    // Rows are independent (per-pixel hashing), so they render in parallel;
    // the backdrop sums are integers, so their total does not depend on order.
    let sums: [u64; 4] = data
        .par_chunks_mut(stride)
        .enumerate()
        .map(|(py, row)| render_row(&scene, py as u32, row))
        .reduce(
            || [0; 4],
            |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]],
        );
    draw_border(&mut data, w, h, b);

    let img = RgbImage::new(w, h, data).map_err(|e| SynthError::Spec(e.to_string()))?;
    let backdrop_rgb = if sums[3] > 0 {
        [0, 1, 2].map(|i| ((sums[i] + sums[3] / 2) / sums[3]) as u8)
    } else {
        spec.backdrop
    };
    Ok((img, backdrop_rgb))
}

/// Renders one canvas row; returns the backdrop's R, G, B sums and count.
fn render_row(scene: &Scene, py: u32, row: &mut [u8]) -> [u64; 4] {
    let s = scene.spec;
    let b = &s.border;
    let mut sums = [0u64; 4];
    if py < b.top || py >= s.height - b.bottom {
        return sums;
    }
    const SUB: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    let fy = f64::from(py);
    let spans: Vec<(f64, f64)> = scene
        .people
        .iter()
        .filter_map(|p| p.reach(fy + 1.0).map(|r| (p.cx - r, p.cx + r)))
        .collect();
    for px in b.left..s.width - b.right {
        let fx = f64::from(px);
        // 2x2 supersampling: edges get partial coverage like a real lens.
        let mut layers = [(Layer::Backdrop, 0usize); 4];
        if spans.iter().any(|(l, r)| fx + 1.0 >= *l && fx <= *r) {
            for (k, (ox, oy)) in SUB.iter().enumerate() {
                layers[k] = scene.classify(fx + ox, fy + oy);
            }
        }
        let uniform = layers.iter().all(|l| *l == layers[0]);
        let colour = if uniform {
            scene.colour(layers[0].0, layers[0].1, fx + 0.5, fy + 0.5, px, py)
        } else {
            let mut acc = [0.0; 3];
            for (k, (ox, oy)) in SUB.iter().enumerate() {
                let c = scene.colour(layers[k].0, layers[k].1, fx + ox, fy + oy, px, py);
                for i in 0..3 {
                    acc[i] += c[i] * 0.25;
                }
            }
            acc
        };
        let h = hash3(s.seed, u64::from(px), u64::from(py));
        let amp = s.noise + scene.texture(layers[0].0);
        let luma = tri(h) * amp;
        let out = [0, 1, 2].map(|i| {
            let chroma = tri(h >> (16 + 16 * i)) * amp * 0.35;
            to_u8(colour[i] + luma + chroma)
        });
        let o = px as usize * 3;
        row[o..o + 3].copy_from_slice(&out);
        if uniform && layers[0].0 == Layer::Backdrop {
            for i in 0..3 {
                sums[i] += u64::from(out[i]);
            }
            sums[3] += 1;
        }
    }
    sums
}

fn draw_border(data: &mut [u8], w: u32, h: u32, b: &BorderSpec) {
    if b.is_empty() {
        return;
    }
    let (w, h) = (w as i64, h as i64);
    let (l, r, t, bo) = (
        i64::from(b.left),
        i64::from(b.right),
        i64::from(b.top),
        i64::from(b.bottom),
    );
    let line = i64::from(b.inner_line);
    for y in 0..h {
        for x in 0..w {
            let inside = x >= l && x < w - r && y >= t && y < h - bo;
            if inside {
                continue;
            }
            // The line hugs the photo: within `line` px of the inner edge on
            // any side that has a frame.
            let near = |depth: i64, width: i64| width > 0 && depth < line;
            let on_line = line > 0
                && x >= l - line
                && x < w - r + line
                && y >= t - line
                && y < h - bo + line
                && (near(l - 1 - x, l)
                    || near(x - (w - r), r)
                    || near(t - 1 - y, t)
                    || near(y - (h - bo), bo));
            let c = if on_line {
                b.inner_line_colour
            } else {
                b.colour
            };
            let o = ((y * w + x) * 3) as usize;
            data[o..o + 3].copy_from_slice(&c);
        }
    }
}

/// The truth about `p`, one of the people painted by `spec` (`two`: not
/// alone).
fn make_truth(spec: &PortraitSpec, p: &Person, two: bool, backdrop_rgb: [u8; 3]) -> Truth {
    let b = &spec.border;
    let round = |v: f64| (v + 0.5).floor() as i64;
    let inner = BoxI {
        left: i64::from(b.left),
        top: i64::from(b.top),
        right: i64::from(spec.width - b.right),
        bottom: i64::from(spec.height - b.bottom),
    };
    let face_width = (2.0 * p.fa + 0.5) as u32;
    let mut flag = None;
    let mut warnings = Vec::new();
    let cut_off = p.crown < inner.top as f64 + 1.0;
    let room = crop_fits(
        p,
        &inner,
        crate::analysis::compose::CompositionRule::default().centre_tolerance,
    );
    if cut_off {
        flag = Some("subject_cut_off");
    } else if two {
        flag = Some("two_people");
    } else if delta_e_approx(backdrop_rgb, REFERENCE_BACKDROP) > 25.0 {
        flag = Some("backdrop_not_blue");
    } else if face_width < 120 {
        // Below half the output's target face width the crop would be
        // upscaled more than 2x: too small to be a usable portrait.
        flag = Some("too_small");
    } else if !room {
        flag = Some("too_close_to_edge");
    }
    if delta_e_approx(spec.clothing, spec.backdrop) < 20.0 {
        warnings.push("clothing_like_backdrop".to_string());
    }
    if spec.uneven_light >= 0.25 {
        warnings.push("uneven_light".to_string());
    }
    let fixable = room && !cut_off && !two && face_width >= 120;
    Truth {
        width: spec.width,
        height: spec.height,
        border: Sides {
            top: b.top,
            bottom: b.bottom,
            left: b.left,
            right: b.right,
        },
        backdrop_rgb,
        crown_row: round(p.crown),
        head_box: BoxI {
            left: round(p.cx - p.ha),
            top: round(p.crown),
            right: round(p.cx + p.ha),
            bottom: round(p.chin),
        },
        face_width,
        eye_row: round(p.eye_y),
        center_x: round(p.cx),
        chin_row: round(p.chin),
        shoulder_row: round(p.shoulder_y),
        fixable,
        expected_flag: flag.map(str::to_string),
        expected_warnings: warnings,
    }
}

/// Whether some 3:4 crop satisfying the composition rule's ranges (face
/// 180–300 px wide, crown 50–110 px and eyes 200–300 px below the top, head
/// centred to within the rule's tolerance, in a 480x640 output) lies inside
/// the photo. The tolerance counts: a subject a few pixels too near a side
/// for an exactly centred box is still fixable by the rule, and the
/// pipeline rightly fixes it.
fn crop_fits(p: &Person, inner: &BoxI, centre_tolerance: f64) -> bool {
    let face = 2.0 * p.fa;
    // Head centre at output column 240 - off, off in steps of 2 px.
    let steps = (centre_tolerance / 2.0).floor() as i32;
    for fw_step in 0..=12 {
        let out_face = 180.0 + 10.0 * f64::from(fw_step);
        let s = face / out_face;
        let fits_across = (-steps..=steps).any(|k| {
            let off = 2.0 * f64::from(k);
            let left = p.cx - (240.0 - off) * s;
            left >= inner.left as f64 && left + 480.0 * s <= inner.right as f64
        });
        if !fits_across {
            continue;
        }
        for crown_off in (50..=110).step_by(5) {
            let top = p.crown - f64::from(crown_off) * s;
            let bottom = top + 640.0 * s;
            let eye = (p.eye_y - top) / s;
            if top >= inner.top as f64
                && bottom <= inner.bottom as f64
                && (200.0..=300.0).contains(&eye)
            {
                return true;
            }
        }
    }
    false
}

/// A cheap colour distance on roughly ΔE scale (weighted RGB), enough to
/// label specs; the pipeline's CIEDE2000 is what gets tested against it.
fn delta_e_approx(a: [u8; 3], b: [u8; 3]) -> f64 {
    let d = [0, 1, 2].map(|i| f64::from(a[i]) - f64::from(b[i]));
    (0.3 * d[0] * d[0] + 0.59 * d[1] * d[1] + 0.11 * d[2] * d[2]).sqrt() * 0.6
}

// ---------------------------------------------------------------------------
// Placed subjects

/// A subject placed in canvas pixels, for unit tests that need a head at an
/// exact row, two people side by side, or a pose [`PortraitSpec`] does not
/// describe. Painted by the portrait renderer, like every portrait here;
/// see [`Sitting`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sitter {
    /// Centre column of the head.
    pub cx: f64,
    /// Top row of the hair.
    pub crown: f64,
    /// Cheek to cheek; the head (crown to chin) is `1 / 0.76` of it.
    pub face_width: f64,
    /// Row of the shoulder points; `None` for where the renderer puts
    /// them, 0.42 head heights below the chin.
    pub shoulder_row: Option<f64>,
    /// How many pixels lower the viewer's right shoulder point is than the
    /// left one.
    pub tilt: f64,
}

impl Sitter {
    pub fn new(cx: f64, crown: f64, face_width: f64) -> Self {
        Sitter {
            cx,
            crown,
            face_width,
            shoulder_row: None,
            tilt: 0.0,
        }
    }

    fn person(&self) -> Person {
        let hh = self.face_width / (2.0 * FACE_HALF_WIDTH);
        let mut p = Person::new(self.cx, self.crown, hh);
        if let Some(y) = self.shoulder_row {
            p = p.with_shoulders_at(y);
        }
        p.tilt = self.tilt;
        p
    }

    /// The face ellipse: centre column and row, half width, half height.
    pub fn face_ellipse(&self) -> [f64; 4] {
        let p = self.person();
        [p.cx, p.fcy, p.fa, p.fb]
    }
}

/// Sitters on a plain canvas: [`PortraitSpec`]'s backdrop, colours, light,
/// noise and border, with the subjects placed by hand.
#[derive(Clone, Debug)]
pub struct Sitting {
    /// Everything but the placement: `head_height`, `center_x`, `headroom`
    /// and `second_person` are not used.
    pub spec: PortraitSpec,
    pub sitters: Vec<Sitter>,
}

impl Sitting {
    /// A `width` x `height` canvas of even `backdrop` (no gradient) with
    /// noise of about 3 levels' deviation in each channel, seed 7, and the
    /// default colours.
    pub fn new(width: u32, height: u32, backdrop: [u8; 3]) -> Self {
        Sitting {
            spec: PortraitSpec {
                seed: 7,
                width,
                height,
                backdrop,
                backdrop_gradient: 0.0,
                noise: 7.0,
                ..PortraitSpec::default()
            },
            sitters: Vec::new(),
        }
    }

    pub fn with(mut self, s: Sitter) -> Self {
        self.sitters.push(s);
        self
    }

    /// The picture, and the truth about each sitter in turn.
    pub fn render(&self) -> Result<(RgbImage, Vec<Truth>), SynthError> {
        check_spec(&self.spec)?;
        let mut people = Vec::with_capacity(self.sitters.len());
        for s in &self.sitters {
            let numbers = [s.cx, s.crown, s.face_width, s.tilt];
            if numbers.iter().any(|v| !v.is_finite())
                || s.shoulder_row.is_some_and(|v| !v.is_finite())
                || s.face_width <= 0.0
            {
                return Err(SynthError::Spec(format!("invalid sitter {s:?}")));
            }
            people.push(s.person());
        }
        let (img, backdrop_rgb) = paint(&self.spec, &people)?;
        let two = people.len() > 1;
        let truths = people
            .iter()
            .map(|p| make_truth(&self.spec, p, two, backdrop_rgb))
            .collect();
        Ok((img, truths))
    }
}

// ---------------------------------------------------------------------------
// Orientation

/// Turns the upright picture into the pixels a camera stores with EXIF
/// orientation `o`, so that applying `o` when displaying gives it back.
pub fn to_stored(upright: &RgbImage, o: u16) -> Result<RgbImage, SynthError> {
    if !(1..=8).contains(&o) {
        return Err(SynthError::File(format!(
            "EXIF orientation {o} outside 1..=8"
        )));
    }
    let (w, h) = (upright.width(), upright.height());
    let (sw, sh) = if o >= 5 { (h, w) } else { (w, h) };
    let mut data = vec![0u8; w as usize * h as usize * 3];
    let src = upright.as_bytes();
    for dy in 0..h {
        for dx in 0..w {
            // Where display pixel (dx, dy) lives in the stored image.
            let (sx, sy) = match o {
                1 => (dx, dy),
                2 => (w - 1 - dx, dy),
                3 => (w - 1 - dx, h - 1 - dy),
                4 => (dx, h - 1 - dy),
                5 => (dy, dx),
                6 => (dy, w - 1 - dx),
                7 => (h - 1 - dy, w - 1 - dx),
                _ => (h - 1 - dy, dx),
            };
            let si = (sy as usize * sw as usize + sx as usize) * 3;
            let di = (dy as usize * w as usize + dx as usize) * 3;
            data[si..si + 3].copy_from_slice(&src[di..di + 3]);
        }
    }
    RgbImage::new(sw, sh, data).map_err(|e| SynthError::File(e.to_string()))
}

// ---------------------------------------------------------------------------
// EXIF

/// Camera metadata for the EXIF block, phone-style.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExifSpec {
    pub orientation: u16,
    pub make: Option<String>,
    pub model: Option<String>,
    /// Latitude and longitude in degrees (north/east positive).
    pub gps: Option<(f64, f64)>,
    /// Motorola (big-endian) byte order, as Apple phones write; Intel
    /// (little-endian) otherwise.
    pub big_endian: bool,
    /// Stored (not upright) pixel size, for PixelXDimension/PixelYDimension.
    pub pixel_size: (u32, u32),
}

struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    data: Vec<u8>,
}

struct Tiff {
    be: bool,
}

impl Tiff {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn short(&self, tag: u16, v: u16) -> Entry {
        Entry {
            tag,
            kind: 3,
            count: 1,
            data: self.u16(v).to_vec(),
        }
    }
    fn long(&self, tag: u16, v: u32) -> Entry {
        Entry {
            tag,
            kind: 4,
            count: 1,
            data: self.u32(v).to_vec(),
        }
    }
    fn ascii(&self, tag: u16, s: &str) -> Entry {
        let mut data: Vec<u8> = s.bytes().filter(|b| b.is_ascii() && *b != 0).collect();
        data.push(0);
        Entry {
            tag,
            kind: 2,
            count: data.len() as u32,
            data,
        }
    }
    fn rationals(&self, tag: u16, vs: &[(u32, u32)]) -> Entry {
        let mut data = Vec::new();
        for (n, d) in vs {
            data.extend_from_slice(&self.u32(*n));
            data.extend_from_slice(&self.u32(*d));
        }
        Entry {
            tag,
            kind: 5,
            count: vs.len() as u32,
            data,
        }
    }

    fn ifd_size(entries: &[Entry]) -> usize {
        let extra: usize = entries
            .iter()
            .filter(|e| e.data.len() > 4)
            .map(|e| e.data.len() + e.data.len() % 2)
            .sum();
        2 + 12 * entries.len() + 4 + extra
    }

    /// Appends an IFD at `out.len()` (which must equal its planned offset),
    /// with out-of-line values right after it.
    fn write_ifd(&self, out: &mut Vec<u8>, entries: &mut [Entry]) {
        entries.sort_by_key(|e| e.tag);
        let start = out.len();
        let mut data_off = start + 2 + 12 * entries.len() + 4;
        let mut tail = Vec::new();
        out.extend_from_slice(&self.u16(entries.len() as u16));
        for e in entries.iter() {
            out.extend_from_slice(&self.u16(e.tag));
            out.extend_from_slice(&self.u16(e.kind));
            out.extend_from_slice(&self.u32(e.count));
            if e.data.len() <= 4 {
                let mut v = e.data.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&self.u32(data_off as u32));
                tail.extend_from_slice(&e.data);
                if e.data.len() % 2 == 1 {
                    tail.push(0);
                }
                data_off += e.data.len() + e.data.len() % 2;
            }
        }
        out.extend_from_slice(&self.u32(0)); // no next IFD (no thumbnail)
        out.extend_from_slice(&tail);
    }
}

/// Degrees as the three EXIF rationals degrees, minutes, seconds (1/100 s).
fn dms(v: f64) -> [(u32, u32); 3] {
    let v = v.abs().min(180.0);
    let deg = v.floor();
    let min_f = (v - deg) * 60.0;
    let min = min_f.floor();
    let sec = ((min_f - min) * 60.0 * 100.0 + 0.5).floor();
    [(deg as u32, 1), (min as u32, 1), (sec as u32, 100)]
}

/// Builds a TIFF-structured EXIF block (what follows `Exif\0\0` in APP1).
pub fn exif_tiff(spec: &ExifSpec) -> Vec<u8> {
    let t = Tiff {
        be: spec.big_endian,
    };
    let mut ifd0 = vec![
        t.short(0x0112, spec.orientation),
        t.rationals(0x011A, &[(72, 1)]),
        t.rationals(0x011B, &[(72, 1)]),
        t.short(0x0128, 2),
        t.ascii(0x0132, "2025:05:20 10:30:00"),
        t.long(0x8769, 0),
    ];
    if let Some(m) = &spec.make {
        ifd0.push(t.ascii(0x010F, m));
    }
    if let Some(m) = &spec.model {
        ifd0.push(t.ascii(0x0110, m));
    }
    let mut exif = vec![
        t.ascii(0x9003, "2025:05:20 10:30:00"),
        t.long(0xA002, spec.pixel_size.0),
        t.long(0xA003, spec.pixel_size.1),
    ];
    let mut gps = spec.gps.map(|(lat, lon)| {
        vec![
            Entry {
                tag: 0x0000,
                kind: 1,
                count: 4,
                data: vec![2, 2, 0, 0],
            },
            t.ascii(0x0001, if lat >= 0.0 { "N" } else { "S" }),
            t.rationals(0x0002, &dms(lat)),
            t.ascii(0x0003, if lon >= 0.0 { "E" } else { "W" }),
            t.rationals(0x0004, &dms(lon)),
        ]
    });
    if gps.is_some() {
        ifd0.push(t.long(0x8825, 0));
    }
    // Sizes do not depend on pointer values, so offsets can be fixed first.
    let ifd0_off = 8;
    let exif_off = ifd0_off + Tiff::ifd_size(&ifd0);
    let gps_off = exif_off + Tiff::ifd_size(&exif);
    for e in ifd0.iter_mut() {
        match e.tag {
            0x8769 => e.data = t.u32(exif_off as u32).to_vec(),
            0x8825 => e.data = t.u32(gps_off as u32).to_vec(),
            _ => {}
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(if spec.big_endian { b"MM" } else { b"II" });
    out.extend_from_slice(&t.u16(42));
    out.extend_from_slice(&t.u32(ifd0_off as u32));
    t.write_ifd(&mut out, &mut ifd0);
    t.write_ifd(&mut out, &mut exif);
    if let Some(g) = gps.as_mut() {
        t.write_ifd(&mut out, g);
    }
    out
}

// ---------------------------------------------------------------------------
// File writers

/// The container and encoding a photo is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Baseline (SOF0) JPEG, 4:2:0.
    JpegBaseline,
    /// Baseline JPEG with restart markers every few MCU rows.
    JpegRestart,
    JpegProgressive,
    /// One-component (grayscale) JPEG.
    JpegGray,
    /// Four components stored inverted with an Adobe APP14 marker,
    /// transform 0 (plain CMYK).
    JpegCmyk,
    /// Adobe APP14 transform 2 (YCCK), as Photoshop saves CMYK.
    JpegYcck,
    PngRgb8,
    PngRgb16,
    PngPalette,
    /// 8-bit RGBA, fully opaque (exports keep an alpha channel they don't use).
    PngRgba,
    /// A baseline JPEG cut off inside its Huffman tables: no decoder can
    /// read it.
    CorruptJpeg,
}

impl Format {
    pub fn is_png(self) -> bool {
        matches!(
            self,
            Format::PngRgb8 | Format::PngRgb16 | Format::PngPalette | Format::PngRgba
        )
    }

    /// The honest file extension.
    pub fn extension(self) -> &'static str {
        if self.is_png() { "png" } else { "jpg" }
    }
}

/// How one photo is written to a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileSpec {
    pub format: Format,
    /// JPEG quality 1..=100 (ignored for PNG).
    pub quality: u8,
    /// EXIF block to embed (JPEG only). Its orientation decides how the
    /// pixels are stored; `None` writes a plain JFIF file.
    pub exif: Option<ExifSpec>,
}

impl FileSpec {
    pub fn jpeg(quality: u8) -> Self {
        FileSpec {
            format: Format::JpegBaseline,
            quality,
            exif: None,
        }
    }

    pub fn with_format(format: Format, quality: u8) -> Self {
        FileSpec {
            format,
            quality,
            exif: None,
        }
    }

    /// A phone-style file: EXIF with make, model, GPS and `orientation`.
    pub fn phone(quality: u8, orientation: u16) -> Self {
        FileSpec {
            format: Format::JpegBaseline,
            quality,
            exif: Some(ExifSpec {
                orientation,
                make: Some("Apple".into()),
                model: Some("iPhone 14 Pro".into()),
                gps: Some((31.0265, 121.4343)),
                big_endian: true,
                pixel_size: (0, 0),
            }),
        }
    }

    pub fn orientation(&self) -> u16 {
        self.exif.as_ref().map_or(1, |e| e.orientation)
    }
}

/// Encodes `upright` as `file` says (rotating the stored pixels for an
/// EXIF orientation).
pub fn encode(upright: &RgbImage, file: &FileSpec) -> Result<Vec<u8>, SynthError> {
    let orientation = file.orientation();
    if file.format.is_png() && orientation != 1 {
        return Err(SynthError::File(
            "EXIF orientation is only written to JPEG".into(),
        ));
    }
    let stored;
    let img = if orientation == 1 {
        upright
    } else {
        stored = to_stored(upright, orientation)?;
        &stored
    };
    match file.format {
        Format::PngRgb8 | Format::PngRgb16 | Format::PngPalette | Format::PngRgba => {
            encode_png(img, file.format)
        }
        Format::CorruptJpeg => {
            let full = encode_jpeg(img, &FileSpec::jpeg(file.quality))?;
            Ok(truncate_in_dht(full))
        }
        _ => encode_jpeg(img, file),
    }
}

fn encode_jpeg(img: &RgbImage, file: &FileSpec) -> Result<Vec<u8>, SynthError> {
    let (w, h) = (img.width(), img.height());
    let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(SynthError::File(format!("{w}x{h} too large for JPEG"))),
    };
    let q = file.quality.clamp(1, 100);
    let mut out = Vec::with_capacity(w as usize * h as usize / 4);
    let mut enc = Encoder::new(&mut out, q);
    let four = matches!(file.format, Format::JpegCmyk | Format::JpegYcck);
    // Photoshop stores CMYK without subsampling, and zune-jpeg 0.5
    // mis-decodes subsampled four-component scans (alternate rows come out
    // wrong), so those keep every component at full resolution.
    enc.set_sampling_factor(if four {
        SamplingFactor::F_1_1
    } else {
        SamplingFactor::F_2_2
    });
    if let Some(exif) = &file.exif {
        let mut exif = exif.clone();
        exif.pixel_size = (w, h);
        let mut seg = b"Exif\0\0".to_vec();
        seg.extend_from_slice(&exif_tiff(&exif));
        enc.add_app_segment(1, seg)?;
    }
    let (pixels, colour): (Cow<[u8]>, ColorType) = match file.format {
        Format::JpegProgressive => {
            enc.set_progressive(true);
            (Cow::Borrowed(img.as_bytes()), ColorType::Rgb)
        }
        Format::JpegRestart => {
            enc.set_restart_interval(8);
            (Cow::Borrowed(img.as_bytes()), ColorType::Rgb)
        }
        Format::JpegGray => (Cow::Owned(gray(img)), ColorType::Luma),
        Format::JpegCmyk => (Cow::Owned(cmyk(img)), ColorType::Cmyk),
        Format::JpegYcck => (Cow::Owned(cmyk(img)), ColorType::CmykAsYcck),
        _ => (Cow::Borrowed(img.as_bytes()), ColorType::Rgb),
    };
    enc.encode(&pixels, w16, h16, colour)?;
    if four {
        patch_adobe_version(&mut out);
    }
    // Phones and Photoshop CMYK files carry no JFIF header.
    if file.exif.is_some() || four {
        out = strip_jfif(out);
    }
    Ok(out)
}

/// BT.601 luma in integers, as cameras' monochrome modes store it.
pub fn gray(img: &RgbImage) -> Vec<u8> {
    img.as_bytes()
        .chunks_exact(3)
        .map(|p| {
            ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128) >> 8) as u8
        })
        .collect()
}

/// Naive (profile-free) RGB to CMYK with full black generation, exactly
/// invertible by the Adobe-convention decoders.
fn cmyk(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::with_capacity(img.as_bytes().len() / 3 * 4);
    for p in img.as_bytes().chunks_exact(3) {
        let max = u32::from(p[0].max(p[1]).max(p[2]));
        if max == 0 {
            out.extend_from_slice(&[0, 0, 0, 255]);
            continue;
        }
        let c = |v: u8| (((max - u32::from(v)) * 255 + max / 2) / max) as u8;
        out.extend_from_slice(&[c(p[0]), c(p[1]), c(p[2]), (255 - max) as u8]);
    }
    out
}

/// Sets the APP14 version to 100, the value Photoshop writes (the encoder
/// writes 0, which some strict readers distrust).
fn patch_adobe_version(jpeg: &mut [u8]) {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if marker == 0xEE && len >= 14 && i + 11 <= jpeg.len() && &jpeg[i + 4..i + 9] == b"Adobe" {
            jpeg[i + 9] = 0;
            jpeg[i + 10] = 100;
            return;
        }
        if marker == 0xDA {
            return;
        }
        i += 2 + len;
    }
}

/// Removes a leading JFIF APP0 segment.
fn strip_jfif(jpeg: Vec<u8>) -> Vec<u8> {
    if jpeg.len() > 6 && jpeg[2] == 0xFF && jpeg[3] == 0xE0 {
        let len = usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
        if 4 + len <= jpeg.len() {
            let mut out = jpeg[..2].to_vec();
            out.extend_from_slice(&jpeg[4 + len..]);
            return out;
        }
    }
    jpeg
}

/// Cuts a JPEG in the middle of its first Huffman table segment, leaving
/// SOI, quantisation tables and frame header intact: every decoder gets far
/// enough to recognise a JPEG and then must fail.
fn truncate_in_dht(mut jpeg: Vec<u8>) -> Vec<u8> {
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] == 0xC4 {
            jpeg.truncate(i + 4 + len / 3);
            return jpeg;
        }
        i += 2 + len;
    }
    jpeg.truncate(jpeg.len().min(200));
    jpeg
}

fn encode_png(img: &RgbImage, format: Format) -> Result<Vec<u8>, SynthError> {
    let (w, h) = (img.width(), img.height());
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        let data: Vec<u8> = match format {
            Format::PngRgb16 => {
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Sixteen);
                // v * 257 maps 0..255 onto the full 16-bit range exactly.
                img.as_bytes().iter().flat_map(|&v| [v, v]).collect()
            }
            Format::PngRgba => {
                enc.set_color(png::ColorType::Rgba);
                enc.set_depth(png::BitDepth::Eight);
                img.as_bytes()
                    .chunks_exact(3)
                    .flat_map(|p| [p[0], p[1], p[2], 255])
                    .collect()
            }
            Format::PngPalette => {
                let (palette, idx) = palettise(img);
                enc.set_color(png::ColorType::Indexed);
                enc.set_depth(png::BitDepth::Eight);
                enc.set_palette(palette);
                idx
            }
            _ => {
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                img.as_bytes().to_vec()
            }
        };
        let mut writer = enc.write_header()?;
        writer.write_image_data(&data)?;
        writer.finish()?;
    }
    Ok(out)
}

/// A fixed 6x7x6 colour cube with ordered dithering: crude, but a real
/// indexed PNG whose average colours stay true.
fn palettise(img: &RgbImage) -> (Vec<u8>, Vec<u8>) {
    const LEVELS: [u32; 3] = [6, 7, 6];
    const BAYER: [u32; 16] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5];
    let mut palette = Vec::with_capacity(252 * 3);
    for r in 0..LEVELS[0] {
        for g in 0..LEVELS[1] {
            for b in 0..LEVELS[2] {
                for (v, n) in [(r, LEVELS[0]), (g, LEVELS[1]), (b, LEVELS[2])] {
                    palette.push((v * 255 / (n - 1)) as u8);
                }
            }
        }
    }
    let w = img.width() as usize;
    let idx = img
        .as_bytes()
        .chunks_exact(3)
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = (i % w, i / w);
            let t = BAYER[(y % 4) * 4 + x % 4] * 2 + 1; // 1..31 of 32
            // floor(v * (n-1) / 255 + t / 32): thresholds spread over (0, 1)
            // so the average over a 4x4 tile keeps the true colour.
            let q =
                |v: u8, n: u32| ((u32::from(v) * (n - 1) * 32 + t * 255) / (255 * 32)).min(n - 1);
            let (r, g, b) = (q(p[0], LEVELS[0]), q(p[1], LEVELS[1]), q(p[2], LEVELS[2]));
            (r * LEVELS[1] * LEVELS[2] + g * LEVELS[2] + b) as u8
        })
        .collect();
    (palette, idx)
}

/// Renders `spec` and writes it as `file`, adjusting the truth for what the
/// file itself changes (a grayscale file has no blue backdrop; a corrupt one
/// has no picture at all).
pub fn make_photo(spec: &PortraitSpec, file: &FileSpec) -> Result<(Vec<u8>, Truth), SynthError> {
    let (img, mut truth) = render(spec)?;
    let bytes = encode(&img, file)?;
    match file.format {
        Format::JpegGray => {
            let g = gray(&RgbImage::filled(1, 1, truth.backdrop_rgb))[0];
            truth.backdrop_rgb = [g, g, g];
            if truth.expected_flag.is_none() {
                truth.expected_flag = Some("backdrop_not_blue".into());
            }
        }
        Format::CorruptJpeg => {
            truth.fixable = false;
            truth.expected_flag = Some("corrupt".into());
        }
        _ => {}
    }
    Ok((bytes, truth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;
    use zune_jpeg::JpegDecoder;

    fn small() -> PortraitSpec {
        PortraitSpec {
            seed: 7,
            width: 360,
            height: 480,
            ..PortraitSpec::default()
        }
    }

    fn decode_jpeg(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
        let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = JpegDecoder::new_with_options(Cursor::new(bytes), opts);
        let px = d.decode().map_err(|e| format!("{e:?}"))?;
        let info = d.info().ok_or("no info")?;
        Ok((u32::from(info.width), u32::from(info.height), px))
    }

    fn decode_png(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
        let mut dec = png::Decoder::new(Cursor::new(bytes));
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut r = dec.read_info().map_err(|e| e.to_string())?;
        let mut buf = vec![0; r.output_buffer_size().ok_or("too big")?];
        let info = r.next_frame(&mut buf).map_err(|e| e.to_string())?;
        buf.truncate(info.buffer_size());
        let ch = info.color_type.samples();
        let rgb = buf
            .chunks_exact(ch)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok((info.width, info.height, rgb))
    }

    /// Mean colour of the 8x8 block at (x, y) in an interleaved RGB buffer.
    fn block_mean(rgb: &[u8], w: u32, x: u32, y: u32) -> [f64; 3] {
        let mut acc = [0.0; 3];
        for yy in y..y + 8 {
            for xx in x..x + 8 {
                let i = ((yy * w + xx) * 3) as usize;
                for c in 0..3 {
                    acc[c] += f64::from(rgb[i + c]) / 64.0;
                }
            }
        }
        acc
    }

    fn close(a: [f64; 3], b: [u8; 3], tol: f64) -> bool {
        (0..3).all(|i| (a[i] - f64::from(b[i])).abs() <= tol)
    }

    #[test]
    fn same_seed_same_bytes_different_seed_different() {
        let spec = small();
        let a = make_photo(&spec, &FileSpec::phone(90, 6)).map(|r| r.0);
        let b = make_photo(&spec, &FileSpec::phone(90, 6)).map(|r| r.0);
        assert!(a.is_ok());
        assert_eq!(a.as_ref().ok(), b.as_ref().ok());
        let other = PortraitSpec { seed: 8, ..small() };
        let c = make_photo(&other, &FileSpec::phone(90, 6)).map(|r| r.0);
        assert_ne!(a.ok(), c.ok());
    }

    #[test]
    fn pixels_agree_with_truth() {
        let (img, t) = render(&PortraitSpec::default()).expect("renders");
        let cx = t.center_x as u32;
        let crown = t.crown_row as u32;
        let bd = t.backdrop_rgb;
        let near = |p: [u8; 3], c: [u8; 3], tol: i32| {
            (0..3).all(|i| (i32::from(p[i]) - i32::from(c[i])).abs() <= tol)
        };
        assert!(
            near(img.pixel(cx, crown - 2), bd, 14),
            "{:?}",
            img.pixel(cx, crown - 2)
        );
        let hair = img.pixel(cx, crown + 5);
        assert!(
            hair.iter().all(|&v| v < 90),
            "crown+5 is not hair: {hair:?}"
        );
        // The widest row of the face: skin just inside, backdrop just outside.
        let fcy = (t.chin_row as f64 - 0.46 * (t.chin_row - t.crown_row) as f64) as u32;
        let half = t.face_width / 2;
        let inside = img.pixel(cx - half + 4, fcy);
        let outside = img.pixel(cx - half - 4, fcy);
        assert!(inside[0] > inside[2] + 30, "not skin: {inside:?}");
        assert!(near(outside, bd, 14), "not backdrop: {outside:?}");
        // Both pupils sit on the eye line.
        let eye_dx = (0.40 * f64::from(t.face_width) / 2.0) as u32;
        for x in [cx - eye_dx, cx + eye_dx] {
            let p = img.pixel(x, t.eye_row as u32);
            assert!(p.iter().all(|&v| v < 90), "no pupil at {x}: {p:?}");
        }
        // Shoulders reach the bottom edge under the subject.
        let bottom = img.pixel(cx + t.face_width, img.height() - 1);
        assert!(!near(bottom, bd, 40));
        assert!(t.fixable && t.expected_flag.is_none());
        assert!(t.head_box.top == t.crown_row && t.head_box.bottom == t.chin_row);
        assert!(t.eye_row > t.crown_row && t.eye_row < t.chin_row && t.chin_row < t.shoulder_row);
    }

    #[test]
    fn borders_are_where_truth_says() {
        let spec = PortraitSpec {
            border: BorderSpec {
                top: 20,
                bottom: 30,
                left: 0,
                right: 15,
                colour: [255, 255, 255],
                inner_line: 2,
                inner_line_colour: [30, 30, 30],
            },
            ..small()
        };
        let (img, t) = render(&spec).expect("renders");
        assert_eq!(
            t.border,
            Sides {
                top: 20,
                bottom: 30,
                left: 0,
                right: 15
            }
        );
        let (w, h) = (img.width(), img.height());
        for x in 0..w {
            assert_eq!(img.pixel(x, 0), [255, 255, 255]);
            assert_eq!(img.pixel(x, h - 1), [255, 255, 255]);
        }
        // The line hugs the photo, inside the frame.
        assert_eq!(img.pixel(100, 19), [30, 30, 30]);
        assert_eq!(img.pixel(100, 17), [255, 255, 255]);
        assert_eq!(img.pixel(w - 15, 100), [30, 30, 30]);
        assert_eq!(img.pixel(w - 1, 100), [255, 255, 255]);
        // No frame on the left: the photo starts at column 0.
        let left = img.pixel(0, 40);
        assert!(left[2] > 200 && left[0] < 150, "{left:?}");
        let inner = img.pixel(3, 20);
        assert!(inner[0] < 150, "{inner:?}");
        assert!(t.crown_row > 20 && t.center_x < i64::from(w) / 2);
    }

    #[test]
    fn a_subject_near_a_side_fits_off_centre_within_the_tolerance() {
        let inner = BoxI {
            left: 0,
            top: 0,
            right: 1000,
            bottom: 1400,
        };
        // A 304 px face 235 px from the left: an exactly centred box would
        // start left of the photo; one with the head 10 px off centre fits.
        let near = Person::new(235.0, 150.0, 400.0);
        assert!(!crop_fits(&near, &inner, 0.0));
        assert!(crop_fits(&near, &inner, 24.0));
        // 200 px from the left it needs more than 40 px: too close.
        let nearer = Person::new(200.0, 150.0, 400.0);
        assert!(!crop_fits(&nearer, &inner, 24.0));
        let centred = Person::new(500.0, 150.0, 400.0);
        assert!(crop_fits(&centred, &inner, 0.0));
    }

    #[test]
    fn sitters_are_painted_where_they_are_placed() {
        let p = Sitter::new(150.0, 60.0, 114.0);
        let mut sc = Sitting::new(300, 400, REFERENCE_BACKDROP).with(p);
        sc.spec.noise = 0.0;
        let (img, t) = sc.render().expect("renders");
        let t = &t[0];
        assert_eq!((t.crown_row, t.center_x, t.face_width), (60, 150, 114));
        assert_eq!(t.chin_row, 60 + 150);
        assert_eq!(img.pixel(150, 58), REFERENCE_BACKDROP);
        assert!(img.pixel(150, 62).iter().all(|&v| v < 90));
        let [cx, cy, a, b] = p.face_ellipse();
        assert_eq!((cx, cy + b), (150.0, 210.0));
        assert!((a - 57.0).abs() < 1e-9 && b > a);
        // Nobody: the backdrop alone, and no truth.
        let mut empty = Sitting::new(64, 48, [1, 2, 3]);
        empty.spec.noise = 0.0;
        let (img, none) = empty.render().expect("renders");
        assert!(none.is_empty() && img == RgbImage::filled(64, 48, [1, 2, 3]));
        // Two sitters are two people.
        let two = Sitting::new(600, 400, REFERENCE_BACKDROP)
            .with(Sitter::new(150.0, 60.0, 100.0))
            .with(Sitter::new(450.0, 60.0, 100.0));
        let (_, t) = two.render().expect("renders");
        assert_eq!(t.len(), 2);
        assert!(
            t.iter()
                .all(|t| t.expected_flag.as_deref() == Some("two_people"))
        );
        assert_eq!(t[1].center_x, 450);
        let bad = Sitting::new(300, 400, REFERENCE_BACKDROP).with(Sitter::new(f64::NAN, 1.0, 9.0));
        assert!(bad.render().is_err());
    }

    /// First row of clothing (dark) in column `x`.
    fn shoulder_top(img: &RgbImage, x: u32) -> u32 {
        (0..img.height())
            .find(|&y| img.pixel(x, y).iter().all(|&v| v < 60))
            .expect("clothes in the column")
    }

    #[test]
    fn sitters_shoulders_can_be_moved_and_tilted() {
        // A head 100 px tall: shoulder points 82 px either side of 200.
        let level = Sitter::new(200.0, 40.0, 76.0);
        let (l, r) = (118, 282);
        let render = |p: Sitter| {
            let mut sc = Sitting::new(400, 500, REFERENCE_BACKDROP).with(p);
            sc.spec.noise = 0.0;
            sc.render().expect("renders")
        };
        let (img, level_truth) = render(level);
        let (yl, yr) = (shoulder_top(&img, l), shoulder_top(&img, r));
        assert_eq!(yl, yr);
        let row = level_truth[0].shoulder_row;
        assert!(yl.abs_diff(row as u32) <= 1, "{yl} vs {row}");
        let (img, t) = render(Sitter {
            tilt: 40.0,
            ..level
        });
        let (tl, tr) = (shoulder_top(&img, l), shoulder_top(&img, r));
        assert!(
            tl.abs_diff(yl - 20) <= 1 && tr.abs_diff(yl + 20) <= 1,
            "{yl}: {tl} {tr}"
        );
        assert_eq!(t[0].shoulder_row, row, "the mean level");
        let (img, t) = render(Sitter {
            shoulder_row: Some(330.0),
            ..level
        });
        assert_eq!(t[0].shoulder_row, 330);
        assert!(shoulder_top(&img, l).abs_diff(330) <= 1);
    }

    #[test]
    fn unfixable_cases_say_so() {
        let cut = PortraitSpec {
            headroom: -0.05,
            ..small()
        };
        let t = render(&cut).expect("renders").1;
        assert_eq!(t.expected_flag.as_deref(), Some("subject_cut_off"));
        assert!(!t.fixable && t.crown_row < 0);
        let two = PortraitSpec {
            second_person: true,
            ..small()
        };
        assert_eq!(
            render(&two).expect("renders").1.expected_flag.as_deref(),
            Some("two_people")
        );
        let red = PortraitSpec {
            backdrop: [200, 40, 45],
            ..small()
        };
        let t = render(&red).expect("renders").1;
        assert_eq!(t.expected_flag.as_deref(), Some("backdrop_not_blue"));
        assert!(t.fixable);
        let tiny = PortraitSpec {
            head_height: 0.12,
            ..small()
        };
        assert_eq!(
            render(&tiny).expect("renders").1.expected_flag.as_deref(),
            Some("too_small")
        );
        let blue = PortraitSpec {
            clothing: [110, 192, 250],
            ..small()
        };
        let w = render(&blue).expect("renders").1.expected_warnings;
        assert_eq!(w, vec!["clothing_like_backdrop".to_string()]);
    }

    #[test]
    fn random_specs_are_ordinary_and_fixable() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..40 {
            let mut s = random_spec(
                &mut rng,
                RandomOptions {
                    min_mp: 0.35,
                    max_mp: 0.6,
                    landscape: 0.2,
                },
            );
            s.noise = 0.0;
            let t = render(&s).expect("renders").1;
            assert!(t.fixable, "{s:?}\n{t:?}");
            assert_eq!(t.expected_flag, None, "{s:?}");
            assert!(t.expected_warnings.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn bad_specs_are_errors_not_panics() {
        for s in [
            PortraitSpec {
                width: 0,
                ..small()
            },
            PortraitSpec {
                head_height: f64::NAN,
                ..small()
            },
            PortraitSpec {
                border: BorderSpec {
                    left: 200,
                    right: 200,
                    ..BorderSpec::default()
                },
                ..small()
            },
        ] {
            assert!(render(&s).is_err());
        }
        assert!(to_stored(&RgbImage::filled(2, 2, [0; 3]), 9).is_err());
        let png_rotated = FileSpec {
            exif: FileSpec::phone(90, 6).exif,
            ..FileSpec::with_format(Format::PngRgb8, 90)
        };
        assert!(make_photo(&small(), &png_rotated).is_err());
    }

    fn rot_cw(img: &RgbImage) -> RgbImage {
        let (w, h) = (img.width(), img.height());
        let mut out = RgbImage::filled(h, w, [0; 3]);
        for y in 0..h {
            for x in 0..w {
                out.put_pixel(h - 1 - y, x, img.pixel(x, y));
            }
        }
        out
    }

    fn flip_h(img: &RgbImage) -> RgbImage {
        let (w, h) = (img.width(), img.height());
        let mut out = RgbImage::filled(w, h, [0; 3]);
        for y in 0..h {
            for x in 0..w {
                out.put_pixel(w - 1 - x, y, img.pixel(x, y));
            }
        }
        out
    }

    /// What a viewer shows for stored pixels with orientation `o`, built from
    /// the EXIF wording ("mirror horizontal and rotate 270 CW", ...) rather
    /// than from the writer's table.
    fn display(stored: &RgbImage, o: u16) -> RgbImage {
        let r = |img: &RgbImage, n: usize| (0..n).fold(img.clone(), |a, _| rot_cw(&a));
        match o {
            1 => stored.clone(),
            2 => flip_h(stored),
            3 => r(stored, 2),
            4 => flip_h(&r(stored, 2)),
            5 => r(&flip_h(stored), 3),
            6 => r(stored, 1),
            7 => r(&flip_h(stored), 1),
            _ => r(stored, 3),
        }
    }

    #[test]
    fn stored_pixels_display_upright_for_every_orientation() {
        let mut img = RgbImage::filled(5, 3, [0; 3]);
        for y in 0..3 {
            for x in 0..5 {
                img.put_pixel(x, y, [x as u8, y as u8, 7]);
            }
        }
        for o in 1..=8 {
            let stored = to_stored(&img, o).expect("valid orientation");
            assert_eq!(display(&stored, o), img, "orientation {o}");
        }
        // Orientation 6 is the phone held upright: stored sideways.
        assert_eq!(
            to_stored(&img, 6).map(|s| (s.width(), s.height())).ok(),
            Some((3, 5))
        );
    }

    /// A minimal TIFF reader, independent of the writer, for the tags the
    /// writer promises.
    struct Reader<'a> {
        b: &'a [u8],
        be: bool,
    }

    impl Reader<'_> {
        fn u16(&self, o: usize) -> u16 {
            let v = [self.b[o], self.b[o + 1]];
            if self.be {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        }
        fn u32(&self, o: usize) -> u32 {
            let v = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
            if self.be {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        }
        /// (type, count, offset of the value bytes) for `tag` in the IFD at `ifd`.
        fn find(&self, ifd: usize, tag: u16) -> Option<(u16, u32, usize)> {
            let n = usize::from(self.u16(ifd));
            (0..n)
                .map(|i| ifd + 2 + 12 * i)
                .find(|&e| self.u16(e) == tag)
                .map(|e| {
                    let (kind, count) = (self.u16(e + 2), self.u32(e + 4));
                    let size = match kind {
                        1 | 2 | 7 => 1,
                        3 => 2,
                        4 | 9 => 4,
                        _ => 8,
                    } * count as usize;
                    let at = if size <= 4 {
                        e + 8
                    } else {
                        self.u32(e + 8) as usize
                    };
                    (kind, count, at)
                })
        }
        fn ascii(&self, ifd: usize, tag: u16) -> Option<String> {
            let (_, count, at) = self.find(ifd, tag)?;
            let s = &self.b[at..at + count as usize];
            assert_eq!(s.last(), Some(&0), "ASCII must be NUL-terminated");
            Some(String::from_utf8_lossy(&s[..s.len() - 1]).into_owned())
        }
    }

    #[test]
    fn exif_round_trips_through_a_reader_and_zune_jpeg() {
        for be in [false, true] {
            for o in [1u16, 3, 6, 8] {
                let mut file = FileSpec::phone(85, o);
                if let Some(e) = file.exif.as_mut() {
                    e.big_endian = be;
                }
                let bytes = encode(&render(&small()).expect("renders").0, &file).expect("encodes");
                let mut d = JpegDecoder::new(Cursor::new(&bytes));
                d.decode_headers().expect("headers");
                let tiff = d.exif().expect("exif present").clone();
                let mut spec = file.exif.clone().expect("exif");
                spec.pixel_size = if o >= 5 { (480, 360) } else { (360, 480) };
                assert_eq!(tiff, exif_tiff(&spec), "zune returns our TIFF bytes");

                assert_eq!(&tiff[..2], if be { b"MM" } else { b"II" });
                let r = Reader { b: &tiff, be };
                assert_eq!(r.u16(2), 42);
                let ifd0 = r.u32(4) as usize;
                let (kind, count, at) = r.find(ifd0, 0x0112).expect("orientation tag");
                assert_eq!((kind, count, r.u16(at)), (3, 1, o));
                assert_eq!(r.ascii(ifd0, 0x010F).as_deref(), Some("Apple"));
                assert_eq!(r.ascii(ifd0, 0x0110).as_deref(), Some("iPhone 14 Pro"));
                let exif_ifd = r
                    .find(ifd0, 0x8769)
                    .map(|(_, _, at)| r.u32(at) as usize)
                    .expect("exif ifd");
                let (_, _, at) = r.find(exif_ifd, 0xA002).expect("width");
                assert_eq!(r.u32(at), spec.pixel_size.0);
                let gps = r
                    .find(ifd0, 0x8825)
                    .map(|(_, _, at)| r.u32(at) as usize)
                    .expect("gps ifd");
                assert_eq!(r.ascii(gps, 0x0001).as_deref(), Some("N"));
                let (kind, count, at) = r.find(gps, 0x0002).expect("latitude");
                assert_eq!((kind, count), (5, 3));
                assert_eq!((r.u32(at), r.u32(at + 4)), (31, 1));
                assert_eq!((r.u32(at + 8), r.u32(at + 12)), (1, 1));
                // Phones write no JFIF header.
                assert_eq!(&bytes[2..4], &[0xFF, 0xE1]);
                // Applying the orientation to the decoded pixels gives the
                // upright picture (crown above chin).
                let (w, h, _) = decode_jpeg(&bytes).expect("decodes");
                assert_eq!((w, h), spec.pixel_size);
            }
        }
    }

    fn has_marker(bytes: &[u8], m: u8) -> bool {
        bytes.windows(2).any(|w| w == [0xFF, m])
    }

    #[test]
    fn every_format_decodes_to_the_portrait() {
        let spec = small();
        let (_, t) = render(&spec).expect("renders");
        for format in [
            Format::JpegBaseline,
            Format::JpegRestart,
            Format::JpegProgressive,
            Format::JpegGray,
            Format::JpegCmyk,
            Format::JpegYcck,
            Format::PngRgb8,
            Format::PngRgb16,
            Format::PngPalette,
            Format::PngRgba,
        ] {
            let (bytes, truth) =
                make_photo(&spec, &FileSpec::with_format(format, 92)).expect("makes");
            let (w, h, rgb) = if format.is_png() {
                decode_png(&bytes)
            } else {
                decode_jpeg(&bytes)
            }
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!((w, h), (spec.width, spec.height), "{format:?}");
            // Backdrop in the top-left corner, hair at the crown.
            let tol = if format == Format::PngPalette {
                14.0
            } else {
                6.0
            };
            let corner = block_mean(&rgb, w, 8, 8);
            assert!(
                close(corner, truth.backdrop_rgb, tol),
                "{format:?}: {corner:?} vs {:?}",
                truth.backdrop_rgb
            );
            let hair = block_mean(&rgb, w, t.center_x as u32 - 4, t.crown_row as u32 + 4);
            assert!(hair.iter().all(|&v| v < 80.0), "{format:?}: {hair:?}");
            match format {
                Format::JpegProgressive => {
                    assert!(has_marker(&bytes, 0xC2) && !has_marker(&bytes, 0xC0))
                }
                Format::JpegRestart => {
                    assert!(has_marker(&bytes, 0xDD) && has_marker(&bytes, 0xD0))
                }
                Format::JpegBaseline => assert!(has_marker(&bytes, 0xC0)),
                Format::JpegCmyk | Format::JpegYcck => {
                    let i = bytes
                        .windows(7)
                        .position(|w| w == b"Adobe\0d")
                        .expect("Adobe APP14, version 100");
                    assert_eq!(&bytes[i - 4..i - 2], &[0xFF, 0xEE]);
                    let transform = bytes[i + 11];
                    assert_eq!(transform, if format == Format::JpegCmyk { 0 } else { 2 });
                    let mut d = JpegDecoder::new(Cursor::new(&bytes));
                    d.decode_headers().expect("headers");
                    let want = if format == Format::JpegCmyk {
                        ColorSpace::CMYK
                    } else {
                        ColorSpace::YCCK
                    };
                    assert_eq!(d.input_colorspace(), Some(want));
                }
                Format::JpegGray => {
                    let g = truth.backdrop_rgb;
                    assert!(g[0] == g[1] && g[1] == g[2]);
                    assert_eq!(truth.expected_flag.as_deref(), Some("backdrop_not_blue"));
                }
                _ => {}
            }
            if !format.is_png() {
                assert_eq!(&bytes[bytes.len() - 2..], &[0xFF, 0xD9]);
            }
        }
    }

    #[test]
    fn corrupt_file_is_a_jpeg_no_decoder_can_read() {
        let (bytes, t) =
            make_photo(&small(), &FileSpec::with_format(Format::CorruptJpeg, 90)).expect("makes");
        assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
        assert!(decode_jpeg(&bytes).is_err());
        assert!(!t.fixable);
        assert_eq!(t.expected_flag.as_deref(), Some("corrupt"));
    }
}
