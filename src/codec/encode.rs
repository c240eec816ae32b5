//! Encoding the finished 480x640 picture into the JPEG the registry accepts
//! (SPEC §1): baseline, JFIF at the configured density, no other metadata,
//! and the best-looking encoding whose size falls inside the byte window.
//!
//! # Which encoding is "best-looking"
//!
//! The preference order is fixed and depends only on the pixels and the
//! settings:
//!
//! 1. the highest quality `q` in `min_quality..=max_quality` at which the
//!    4:4:4 (full-resolution chroma) encoding fits the window;
//! 2. only when no 4:4:4 quality fits, the highest quality at which the 4:2:0
//!    encoding fits.
//!
//! Full chroma wins over a few quality steps because portraits carry their
//! detail in hair and clothing edges, where 4:2:0 smears colour; a quality
//! step at q >= 60 costs less visibly than halving the chroma resolution.
//!
//! Both are SOF0 baseline, 8-bit, Huffman tables optimised for the picture,
//! three components in one interleaved scan, JFIF APP0 and nothing else.
//! They are written by our own [`baseline`] writer rather than the
//! jpeg-encoder crate: the search probes several qualities of one picture,
//! and the writer computes the picture's DCT once for all of them (jpeg-encoder
//! redoes it per call), and it is bit-identical on every machine (the
//! crate's AVX2 path gives other bytes than its scalar path).
//!
//! "Highest quality that fits" is confirmed, not inferred: the answer `q` has
//! been encoded and is at most `max_bytes`, and `q + 1` has been encoded and
//! is over it (unless `q` is `max_quality`); then `q` must also reach
//! `min_bytes`. File size is only roughly monotonic in quality, so the
//! search never trusts a bracket end it has not encoded. Where sizes are
//! monotonic above `q` this is exactly the highest fitting quality (the
//! tests compare it with encoding every quality); a size that rises over
//! the maximum at `q + 1` and falls back under it further up is not looked
//! for, since only encoding every higher quality could rule it out. The
//! answer depends only on the pixels and the settings: the probes are a
//! deterministic function of them.
//!
//! # Why a size model
//!
//! Every encode of a 480x640 photo costs milliseconds and a batch holds
//! thousands of photos, so the search starts from a prediction: the
//! Huffman-coded size at each quality, estimated from an eighth of the DCT
//! blocks the writer computes anyway, and rescaled after every real encode so that
//! the next guess learns the estimator's bias on this very image. Typically
//! the first probe is the answer or its successor and the second confirms
//! it: about two encodes per photo (`examples/encode_stats` measures it).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::image::RgbImage;

mod baseline;
use baseline::{Probe, Transformed};

/// Chroma subsampling of a written JPEG.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Chroma {
    /// Full-resolution chroma.
    #[serde(rename = "4:4:4")]
    Full444,
    /// Chroma halved in both directions.
    #[serde(rename = "4:2:0")]
    Sub420,
}

impl fmt::Display for Chroma {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Chroma::Full444 => "4:4:4",
            Chroma::Sub420 => "4:2:0",
        })
    }
}

/// The byte window and quality range the search works in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncodeSettings {
    pub min_bytes: usize,
    pub max_bytes: usize,
    pub min_quality: u8,
    pub max_quality: u8,
    /// Reach `min_bytes` with COM segments when even the best encoding is
    /// smaller; off by default because the school must know it happened.
    pub pad_to_min: bool,
    pub density_dpi: u16,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        EncodeSettings {
            min_bytes: 30_720,
            max_bytes: 100_000,
            min_quality: 60,
            max_quality: 100,
            pad_to_min: false,
            density_dpi: 300,
        }
    }
}

impl EncodeSettings {
    pub fn validate(&self) -> Result<(), EncodeError> {
        let bad = |why: String| Err(EncodeError::InvalidSettings(why));
        if self.min_quality == 0 || self.max_quality > 100 {
            return bad(format!(
                "quality range {}..={} must lie within 1..=100",
                self.min_quality, self.max_quality
            ));
        }
        if self.min_quality > self.max_quality {
            return bad(format!(
                "min_quality {} is above max_quality {}",
                self.min_quality, self.max_quality
            ));
        }
        if self.min_bytes > self.max_bytes {
            return bad(format!(
                "min_bytes {} is above max_bytes {}",
                self.min_bytes, self.max_bytes
            ));
        }
        if self.max_bytes == 0 {
            return bad("max_bytes is 0".to_owned());
        }
        if self.density_dpi == 0 {
            return bad("density_dpi is 0".to_owned());
        }
        Ok(())
    }
}

/// The chosen encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    #[serde(skip)]
    pub bytes: Vec<u8>,
    pub quality: u8,
    pub chroma: Chroma,
    /// Real encodes performed to find this one, the confirmations included.
    pub attempts: u32,
    /// Bytes of COM segments added to reach `min_bytes`; 0 when unpadded.
    pub padding_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid encode settings: {0}")]
    InvalidSettings(String),
    #[error("image is {width}x{height}; a JPEG side is at most 65535 pixels")]
    ImageTooLarge { width: u32, height: u32 },
    #[error(
        "even the best encoding is only {best_bytes} bytes, below the minimum of {min_bytes} \
         (the picture has too little detail; size padding would reach the minimum)"
    )]
    TooSmall { best_bytes: usize, min_bytes: usize },
    #[error(
        "even the smallest allowed encoding (lowest quality, 4:2:0) is {smallest_bytes} bytes, \
         above the maximum of {max_bytes}"
    )]
    TooLarge {
        smallest_bytes: usize,
        max_bytes: usize,
    },
    #[error(
        "padding {best_bytes} bytes up to the minimum of {min_bytes} would exceed the maximum of \
         {max_bytes}"
    )]
    PaddingDoesNotFit {
        best_bytes: usize,
        min_bytes: usize,
        max_bytes: usize,
    },
    #[error("image has zero width or height")]
    EmptyImage,
}

/// Encodes `img` as the best-looking JPEG that fits the settings' window
/// (see the module docs for the exact preference order).
pub fn encode_to_window(img: &RgbImage, settings: &EncodeSettings) -> Result<Encoded, EncodeError> {
    settings.validate()?;
    check_size(img)?;
    let mut search = Search {
        img,
        transformed: BTreeMap::new(),
        settings,
        model: SizeModel::new(),
        cache: BTreeMap::new(),
        over: BTreeMap::new(),
        attempts: 0,
    };

    let full = search.highest_under_max(Chroma::Full444)?;
    let mut best_under_max = full;
    if let Some((q, len)) = full
        && len >= settings.min_bytes
    {
        return Ok(search.finish(Chroma::Full444, q, 0));
    }
    let sub = search.highest_under_max(Chroma::Sub420)?;
    if let Some((q, len)) = sub {
        if len >= settings.min_bytes {
            return Ok(search.finish(Chroma::Sub420, q, 0));
        }
        // Both are under the minimum: the larger is the better-looking one
        // to pad, and it is the 4:4:4 one whenever 4:4:4 fits under max.
        if best_under_max.is_none() {
            best_under_max = sub;
        }
    }
    let Some((q, len)) = best_under_max else {
        let smallest = search.encode(Chroma::Sub420, settings.min_quality).len();
        return Err(EncodeError::TooLarge {
            smallest_bytes: smallest,
            max_bytes: settings.max_bytes,
        });
    };
    if !settings.pad_to_min {
        return Err(EncodeError::TooSmall {
            best_bytes: len,
            min_bytes: settings.min_bytes,
        });
    }
    let chroma = if full.is_some() {
        Chroma::Full444
    } else {
        Chroma::Sub420
    };
    let deficit = settings.min_bytes - len;
    // A COM segment is at least 4 bytes, so a deficit of 1-3 overshoots the
    // minimum by the rest; the window check below still holds the maximum.
    let padding = deficit.max(4);
    if len + padding > settings.max_bytes {
        return Err(EncodeError::PaddingDoesNotFit {
            best_bytes: len,
            min_bytes: settings.min_bytes,
            max_bytes: settings.max_bytes,
        });
    }
    Ok(search.finish(chroma, q, padding))
}

/// Encodes once, exactly as the search does, without searching: for tests,
/// benches and callers that already know the quality.
pub fn encode_once(
    img: &RgbImage,
    quality: u8,
    chroma: Chroma,
    density_dpi: u16,
) -> Result<Vec<u8>, EncodeError> {
    check_size(img)?;
    Ok(Transformed::new(img, chroma).encode(quality.clamp(1, 100), density_dpi))
}

fn check_size(img: &RgbImage) -> Result<(), EncodeError> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(EncodeError::EmptyImage);
    }
    if w > u32::from(u16::MAX) || h > u32::from(u16::MAX) {
        return Err(EncodeError::ImageTooLarge {
            width: w,
            height: h,
        });
    }
    Ok(())
}

struct Search<'a> {
    img: &'a RgbImage,
    /// The DCT of the picture per chroma layout, computed on first use and
    /// shared by every quality probed in that layout.
    transformed: BTreeMap<Chroma, Transformed>,
    settings: &'a EncodeSettings,
    model: SizeModel,
    cache: BTreeMap<(Chroma, u8), Vec<u8>>,
    /// Probes found over the maximum without being written, with the
    /// lower bound on their size.
    over: BTreeMap<(Chroma, u8), usize>,
    attempts: u32,
}

impl Search<'_> {
    /// The file at `q`, written (nothing is over an unbounded maximum).
    fn encode(&mut self, chroma: Chroma, q: u8) -> &[u8] {
        self.probe(chroma, q, usize::MAX, false);
        &self.cache[&(chroma, q)]
    }

    fn transform(&mut self, chroma: Chroma) -> &Transformed {
        let img = self.img;
        let model = &mut self.model;
        self.transformed.entry(chroma).or_insert_with(|| {
            let t = Transformed::new(img, chroma);
            model.learn(&t);
            t
        })
    }

    /// The size at `q`: exact when it is written, which every probe under
    /// `max` is; a lower bound over `max` is all the search needs there,
    /// and it costs no bit writing. `likely_over` only saves work when it
    /// is right (see [`Transformed::encode_within`]).
    fn probe(&mut self, chroma: Chroma, q: u8, max: usize, likely_over: bool) -> usize {
        let key = (chroma, q);
        if let Some(bytes) = self.cache.get(&key) {
            return bytes.len();
        }
        if let Some(&at_least) = self.over.get(&key).filter(|&&n| n > max) {
            return at_least;
        }
        let dpi = self.settings.density_dpi;
        let probe = self
            .transform(chroma)
            .encode_within(q, dpi, max, likely_over);
        self.attempts += 1;
        match probe {
            Probe::Written(bytes) => {
                let len = bytes.len();
                self.model.observe(chroma, q, len);
                self.cache.insert(key, bytes);
                len
            }
            Probe::Over { at_least } => {
                self.model.observe(chroma, q, at_least);
                self.over.insert(key, at_least);
                at_least
            }
        }
    }

    /// The highest quality whose encoding is at most `max_bytes` and whose
    /// successor is over it (both encoded), with its size; `None` when even
    /// `min_quality` is over.
    fn highest_under_max(&mut self, chroma: Chroma) -> Result<Option<(u8, usize)>, EncodeError> {
        let (lo, hi) = (self.settings.min_quality, self.settings.max_quality);
        let max = self.settings.max_bytes;
        // Invariant: `fit` was encoded and is <= max; `over` was encoded
        // and is > max; fit < over. Unknown ends are the range limits.
        let mut fit: Option<(u8, usize)> = None;
        let mut over: Option<u8> = None;
        let mut probes = 0u32;
        self.transform(chroma);
        loop {
            let low = fit.map_or(lo, |(q, _)| q + 1);
            let high = over.map_or(hi, |q| q - 1);
            if low > high {
                return Ok(fit);
            }
            // The model leads while it lands next to the answer; when it
            // has not closed the bracket in three probes, bisection bounds
            // the worst case.
            let probe = if probes < 3 {
                self.model.predict(chroma, max, low, high)
            } else {
                low + (high - low).div_ceil(2)
            };
            // Just above a quality that fits, the probe is there to
            // confirm that it is over, which it nearly always is.
            let likely_over = fit.is_some_and(|(q, _)| probe == q + 1);
            let len = self.probe(chroma, probe, max, likely_over);
            if len <= max {
                fit = Some((probe, len));
            } else {
                over = Some(probe);
            }
            probes += 1;
        }
    }

    fn finish(mut self, chroma: Chroma, q: u8, padding: usize) -> Encoded {
        // The search left its answer in the cache, so this costs no encode.
        self.encode(chroma, q);
        let bytes = self.cache.remove(&(chroma, q)).unwrap_or_default();
        let bytes = if padding > 0 {
            insert_com_padding(&bytes, padding)
        } else {
            bytes
        };
        Encoded {
            bytes,
            quality: q,
            chroma,
            attempts: self.attempts,
            padding_bytes: padding,
        }
    }
}

/// Largest COM segment on the wire: marker, length, 65533 payload bytes.
const MAX_COM_SEGMENT: usize = 2 + 65535;
const PADDING_NOTE: &[u8] = b"gradphoto size padding";

/// Inserts `total` bytes of COM segments after SOI and APP0 (where readers
/// expect comments, and before any table so no decoder state is touched).
/// `total` must be at least 4, the size of an empty COM segment.
fn insert_com_padding(jpeg: &[u8], total: usize) -> Vec<u8> {
    let at = after_app0(jpeg);
    let mut out = Vec::with_capacity(jpeg.len() + total);
    out.extend_from_slice(&jpeg[..at]);
    let n = total.div_ceil(MAX_COM_SEGMENT).max(1);
    for i in 0..n {
        // Spread evenly so no segment falls below the 4-byte minimum.
        let seg = total / n + usize::from(i < total % n);
        let payload = seg - 4;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((payload + 2) as u16).to_be_bytes());
        let note = &PADDING_NOTE[..PADDING_NOTE.len().min(payload)];
        out.extend_from_slice(note);
        out.resize(out.len() + payload - note.len(), 0);
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Offset just past SOI and, when it follows directly, the APP0 segment.
fn after_app0(jpeg: &[u8]) -> usize {
    if jpeg.get(2..4) == Some(&[0xFF, 0xE0])
        && let Some(len) = jpeg.get(4..6)
    {
        let end = 4 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        if end <= jpeg.len() {
            return end;
        }
    }
    2.min(jpeg.len())
}

/// IJG/Annex K luminance table in natural (row-major) order.
pub(crate) const STD_LUMA_QT: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// IJG/Annex K chrominance table in natural order.
pub(crate) const STD_CHROMA_QT: [u16; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// The libjpeg quality scaling every mainstream encoder uses.
pub(crate) fn scaled_table(base: &[u16; 64], quality: u8) -> [u16; 64] {
    let q = u32::from(quality.clamp(1, 100));
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let mut out = [0u16; 64];
    for (o, &b) in out.iter_mut().zip(base) {
        *o = ((u32::from(b) * scale + 50) / 100).clamp(1, 255) as u16;
    }
    out
}

/// Zig-zag order: `ZIGZAG[k]` is the natural index of the k-th coefficient.
pub(crate) const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Predicts the encoded size at any quality from the DCT coefficients the
/// writer computed (see [`Transformed`]), by counting the Huffman symbols
/// the encoder would emit on a sample of the blocks and charging each its
/// optimal code length plus its magnitude bits.
struct SizeModel {
    /// The sampled blocks of each chroma layout seen so far.
    samples: BTreeMap<Chroma, Sample>,
    /// Raw estimates, memoised by (chroma, quality).
    raw: BTreeMap<(Chroma, u8), f64>,
    /// Latest real/estimated size ratio per chroma mode: the estimator's
    /// bias on this image, learned from each real encode.
    ratio: BTreeMap<Chroma, f64>,
}

/// Every SAMPLE-th row of MCUs of one layout, whole rows so that DC
/// differences are the encoder's own (all rows when the image is small).
struct Sample {
    luma: Vec<Coefs>,
    /// Cb blocks then Cr blocks: DC is coded as a difference from the
    /// previous block of the same component.
    chroma: Vec<Coefs>,
    /// Total blocks / sampled blocks.
    luma_scale: f64,
    chroma_scale: f64,
}

/// A sixteenth of the rows (five of a 480x640 picture's 80) predicts the
/// whole within a few percent, and the ratio learned from real encodes
/// absorbs the rest. An eighth cost twice the counting for the same probes:
/// on 567 photos (the 80-photo slice and c41) every photo was encoded at
/// the same qualities, 1.97 times on average; a 32nd took 1.98.
const SAMPLE: usize = 16;
/// Real/estimated size before any real encode. Sampled rows, headers and
/// byte stuffing leave the estimate 0-4% low on portrait-like and noisy
/// pictures alike (measured with `examples/encode_stats`).
const PRIOR_RATIO: f64 = 1.015;
/// Headers (APP0, DQT, SOF, DHT, SOS) of an optimised-table file.
const HEADER_BYTES: f64 = 620.0;

impl SizeModel {
    fn new() -> Self {
        SizeModel {
            samples: BTreeMap::new(),
            raw: BTreeMap::new(),
            ratio: BTreeMap::new(),
        }
    }

    /// Takes the sample of `t`'s layout, once per layout.
    fn learn(&mut self, t: &Transformed) {
        let chroma = t.chroma();
        if self.samples.contains_key(&chroma) {
            return;
        }
        let rows = t.mcu_rows();
        let step = if rows.len() >= 32 { SAMPLE } else { 1 };
        // Sized for the sample up front: grown push by push, the vectors
        // of 260-byte blocks were copied over and over.
        let sampled_rows = rows.len().div_ceil(step);
        let (luma_row, chroma_row) = t.blocks_per_row();
        let (mut luma, mut cb, mut cr) = (
            Vec::with_capacity(luma_row * sampled_rows),
            // Cr is appended to Cb below.
            Vec::with_capacity(2 * chroma_row * sampled_rows),
            Vec::with_capacity(chroma_row * sampled_rows),
        );
        let (mut luma_total, mut chroma_total) = (0usize, 0usize);
        for (i, row) in rows.enumerate() {
            for (component, block) in row {
                let sampled = i % step == 0;
                match component {
                    0 => {
                        luma_total += 1;
                        if sampled {
                            luma.push(Coefs::new(block));
                        }
                    }
                    c => {
                        chroma_total += 1;
                        if sampled {
                            let list = if c == 1 { &mut cb } else { &mut cr };
                            list.push(Coefs::new(block));
                        }
                    }
                }
            }
        }
        cb.append(&mut cr);
        let scale = |total: usize, sampled: usize| total as f64 / sampled.max(1) as f64;
        let sample = Sample {
            luma_scale: scale(luma_total, luma.len()),
            chroma_scale: scale(chroma_total, cb.len()),
            luma,
            chroma: cb,
        };
        self.samples.insert(chroma, sample);
    }

    fn raw_estimate(&mut self, chroma: Chroma, q: u8) -> f64 {
        if let Some(&v) = self.raw.get(&(chroma, q)) {
            return v;
        }
        let Some(sample) = self.samples.get(&chroma) else {
            return 0.0;
        };
        let lt = scaled_table(&STD_LUMA_QT, q);
        let ct = scaled_table(&STD_CHROMA_QT, q);
        let bits = entropy_bits(&sample.luma, &lt) * sample.luma_scale
            + entropy_bits(&sample.chroma, &ct) * sample.chroma_scale;
        // Byte stuffing adds a zero after each 0xFF: about 1 byte in 256.
        let v = bits / 8.0 * (1.0 + 1.0 / 256.0) + HEADER_BYTES;
        self.raw.insert((chroma, q), v);
        v
    }

    fn observe(&mut self, chroma: Chroma, q: u8, actual: usize) {
        let est = self.raw_estimate(chroma, q);
        self.ratio.insert(chroma, actual as f64 / est);
    }

    /// The probe most likely to close the bracket at once, in `low..=high`.
    ///
    /// Both the answer `q*` and `q* + 1` close it with one more encode (the
    /// other neighbour), so the best probe is the quality nearest the
    /// estimated crossing point `x` (where the calibrated estimate meets
    /// `max`): `round(x)` is `q*` or `q* + 1` whenever `x` is off by less
    /// than half a step either way, where `floor(x)` would waste the whole
    /// downward error.
    fn predict(&mut self, chroma: Chroma, max: usize, low: u8, high: u8) -> u8 {
        // Before any real encode of this mode, borrow the other mode's bias:
        // the estimator errs the same way on both for one image.
        let ratio = self
            .ratio
            .get(&chroma)
            .or_else(|| self.ratio.values().next())
            .copied()
            .unwrap_or(PRIOR_RATIO);
        let max = max as f64;
        let est = |m: &mut Self, q: u8| m.raw_estimate(chroma, q) * ratio;
        if est(self, low) > max {
            return low;
        }
        if est(self, high) <= max {
            return high;
        }
        // Estimates rise monotonically with quality (coarser tables only
        // zero more coefficients), so a bracket search is exact on them.
        // Size grows about exponentially with quality over most of the
        // range, so interpolating log sizes lands within a step or two;
        // a halving step whenever that stalls bounds the worst case.
        let (mut a, mut b) = (low, high);
        let mut halve = false;
        while b - a > 1 {
            let (ea, eb) = (rough_log2(est(self, a)), rough_log2(est(self, b)));
            let mid = if halve {
                a + (b - a) / 2
            } else {
                let t = (rough_log2(max) - ea) / (eb - ea).max(1e-9);
                let q = f64::from(a) + t.clamp(0.0, 1.0) * f64::from(b - a);
                (q.round() as u8).clamp(a + 1, b - 1)
            };
            let width = b - a;
            if est(self, mid) <= max {
                a = mid;
            } else {
                b = mid;
            }
            halve = (b - a) * 2 > width;
        }
        let (below, above) = (est(self, a), est(self, b));
        let frac = (max - below) / (above - below).max(1.0);
        if frac >= 0.5 { a + 1 } else { a }
    }
}

/// log2 of a positive value, good to 0.09: the exponent plus the mantissa
/// taken as linear. Plain IEEE operations, so the search it guides probes
/// the same qualities on every machine, which libm's `ln` does not promise.
fn rough_log2(x: f64) -> f64 {
    let bits = x.max(1.0).to_bits();
    let exponent = ((bits >> 52) & 0x7FF) as f64 - 1023.0;
    let mantissa = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    exponent + mantissa - 1.0
}

/// cos(k*pi/16) for k = 0..=8, as literals: libm's `cos` may differ in the
/// last bit between platforms, and the model steers which qualities are
/// encoded, so it must compute the same on every machine.
const COS_PI_16: [f32; 9] = [
    1.0,
    0.980_785_3,
    0.923_879_5,
    0.831_469_6,
    0.707_106_77,
    0.555_570_2,
    0.382_683_43,
    0.195_090_32,
    0.0,
];

fn dct_basis() -> [[f32; 8]; 8] {
    let cos = |m: usize| {
        // Fold m*pi/16 into 0..=pi/2 by the symmetries of cosine.
        let m = m % 32;
        let m = if m > 16 { 32 - m } else { m };
        if m > 8 {
            -COS_PI_16[16 - m]
        } else {
            COS_PI_16[m]
        }
    };
    let mut c = [[0f32; 8]; 8];
    for (u, row) in c.iter_mut().enumerate() {
        let cu = if u == 0 {
            std::f32::consts::FRAC_1_SQRT_2
        } else {
            1.0
        };
        for (x, v) in row.iter_mut().enumerate() {
            *v = cu / 2.0 * cos((2 * x + 1) * u);
        }
    }
    c
}

/// One block's DCT coefficients in zig-zag order.
struct Coefs {
    zz: [f32; 64],
    /// One past the last coefficient of magnitude 0.5 or more: beyond it
    /// every coefficient quantises to zero whatever the table (entries are
    /// at least 1), so the bit count can stop there.
    end: usize,
}

impl Coefs {
    fn new(zz: &[f32; 64]) -> Coefs {
        let end = zz.iter().rposition(|v| v.abs() >= 0.5).map_or(1, |k| k + 1);
        Coefs {
            zz: *zz,
            end: end.max(1),
        }
    }
}

fn magnitude_bits(v: i32) -> u32 {
    32 - v.unsigned_abs().leading_zeros()
}

/// Rounds half away from zero like the encoder; `f32::round` is a libm
/// call and dominated the estimate's cost.
#[inline]
fn quantise(coef: f32, recip: f32) -> i32 {
    let m = (coef.abs() * recip + 0.5) as i32;
    if coef < 0.0 { -m } else { m }
}

/// Ideal coded bits of `blocks` quantised by `table` (natural order).
fn entropy_bits(blocks: &[Coefs], table: &[u16; 64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { entropy_bits_avx2(blocks, table) };
    }
    count_entropy_bits::<false>(blocks, table)
}

/// [`entropy_bits`] compiled for AVX2, with the quantisation of a block's
/// 64 coefficients in intrinsics. Integer results, the same on either
/// build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn entropy_bits_avx2(blocks: &[Coefs], table: &[u16; 64]) -> f64 {
    count_entropy_bits::<true>(blocks, table)
}

/// `AVX2` picks the intrinsics quantisation and must only be set where
/// the CPU has AVX2.
#[inline(always)]
fn count_entropy_bits<const AVX2: bool>(blocks: &[Coefs], table: &[u16; 64]) -> f64 {
    let mut recip = [0f32; 64];
    for (k, &n) in ZIGZAG.iter().enumerate() {
        recip[k] = 1.0 / f32::from(table[n]);
    }
    let mut dc = [0u32; 17];
    let mut ac = [0u32; 256];
    let mut extra = 0u64;
    let mut prev_dc = 0i32;
    for Coefs { zz: b, end } in blocks {
        let (d, magnitudes, nonzero) = quantise_for_model::<AVX2>(b, &recip);
        let s = magnitude_bits(d - prev_dc);
        prev_dc = d;
        dc[s as usize] += 1;
        extra += u64::from(s);
        // Past `end` a coefficient is under 0.5, which rounding can still
        // carry to 1 here: those are the zeros the estimate always counted.
        let mut nonzero = nonzero & !1 & (u64::MAX >> (64 - *end));
        let mut next = 1u32;
        while nonzero != 0 {
            let k = nonzero.trailing_zeros();
            nonzero &= nonzero - 1;
            let mut run = (k - next) as usize;
            while run >= 16 {
                ac[0xF0] += 1;
                run -= 16;
            }
            let s = magnitude_bits(magnitudes[k as usize]);
            ac[(run << 4) | s as usize] += 1;
            extra += u64::from(s);
            next = k + 1;
        }
        // An end-of-block unless the last coefficient is non-zero.
        if next < 64 {
            ac[0] += 1;
        }
    }
    ideal_bits(&dc) + ideal_bits(&ac) + extra as f64
}

/// [`quantise`] of a block's 64 coefficients as the model reads them: the
/// DC value, every magnitude, and bit k set where coefficient k is not
/// zero. With `AVX2`, the intrinsics build, which gives the same values.
#[inline(always)]
fn quantise_for_model<const AVX2: bool>(b: &[f32; 64], recip: &[f32; 64]) -> (i32, [i32; 64], u64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: only `entropy_bits_avx2` asks for AVX2, and it runs only
        // on a CPU found to have it.
        return unsafe { model_avx2::quantise(b, recip) };
    }
    let q: [i32; 64] = std::array::from_fn(|k| quantise(b[k], recip[k]));
    let mut nonzero = 0u64;
    for (k, &v) in q.iter().enumerate() {
        nonzero |= u64::from(v != 0) << k;
    }
    (q[0], q.map(i32::abs), nonzero)
}

#[cfg(target_arch = "x86_64")]
mod model_avx2 {
    use std::arch::x86_64::*;

    /// [`super::quantise_for_model`] eight lanes at a time: the same
    /// multiplication, addition and truncation as [`super::quantise`]
    /// (`cvttps` truncates toward zero as `as i32` does for the
    /// non-negative values below 2^31 met here). The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn quantise(b: &[f32; 64], recip: &[f32; 64]) -> (i32, [i32; 64], u64) {
        let mut magnitudes = [0i32; 64];
        let mut halves = [0u32; 2];
        // SAFETY: the caller promises AVX2; every load reads eight floats
        // of a 64-float array at `8 * i` for i < 8, and every store writes
        // eight i32s into `magnitudes` at the same offsets.
        unsafe {
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
            let half = _mm256_set1_ps(0.5);
            let zero = _mm256_setzero_si256();
            let mut lanes = [zero; 8];
            for (i, lane) in lanes.iter_mut().enumerate() {
                let at = 8 * i;
                let c = _mm256_and_ps(_mm256_loadu_ps(b[at..at + 8].as_ptr()), abs);
                let r = _mm256_loadu_ps(recip[at..at + 8].as_ptr());
                *lane = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(c, r), half));
                _mm256_storeu_si256(magnitudes[at..at + 8].as_mut_ptr().cast(), *lane);
            }
            // Packing saturates, so zero and non-zero stay apart; packs
            // work within 128-bit halves, and the dword permutation puts
            // the pieces back in order.
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for (j, bits) in halves.iter_mut().enumerate() {
                let m = &lanes[4 * j..4 * j + 4];
                let low = _mm256_cmpeq_epi16(_mm256_packs_epi32(m[0], m[1]), zero);
                let high = _mm256_cmpeq_epi16(_mm256_packs_epi32(m[2], m[3]), zero);
                let zeros = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(low, high), order);
                *bits = !(_mm256_movemask_epi8(zeros) as u32);
            }
        }
        let dc = if b[0] < 0.0 {
            -magnitudes[0]
        } else {
            magnitudes[0]
        };
        let nonzero = u64::from(halves[0]) | (u64::from(halves[1]) << 32);
        (dc, magnitudes, nonzero)
    }
}

/// Bits of `freq` coded with an optimal Huffman code, as the encoder's
/// optimised tables are: unlike the entropy bound, this charges the
/// rounding of code lengths that dominates on noisy, flat histograms.
fn ideal_bits(freq: &[u32]) -> f64 {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut heap: BinaryHeap<Reverse<u64>> = freq
        .iter()
        .filter(|&&f| f > 0)
        .map(|&f| Reverse(u64::from(f)))
        .collect();
    if heap.len() == 1 {
        // A lone symbol still costs one bit each time.
        return heap.peek().map_or(0.0, |r| r.0 as f64);
    }
    // Every merge adds one bit to each symbol below it, so the total cost
    // is the sum of all merged weights.
    let mut bits = 0u64;
    while let (Some(Reverse(a)), Some(Reverse(b))) = (heap.pop(), heap.pop()) {
        bits += a + b;
        if heap.is_empty() {
            break;
        }
        heap.push(Reverse(a + b));
    }
    bits as f64
}

/// Blocks that put a quantiser's edge cases in every lane, for the tests
/// that hold an AVX2 quantiser to its portable twin: halves, both zeros, a
/// ramp of alternating sign up to 63 x `spike`, and 50 blocks of noise at
/// each of `scales`. With them, reciprocals of which every seventh is 1,
/// where halves are ties.
#[cfg(test)]
pub(crate) fn quantisation_probe(
    seed: u32,
    spike: f32,
    scales: &[f32],
) -> ([f32; 64], Vec<[f32; 64]>) {
    let reciprocals: [f32; 64] = std::array::from_fn(|k| 1.0 / (1 + k % 7 * 13) as f32);
    let mut rng = crate::testkit::synth::SplitMix64::new(u64::from(seed));
    let mut noise = || rng.int(0, 20_000) as f32 / 8.0 - 1250.0;
    let mut blocks: Vec<[f32; 64]> = vec![
        std::array::from_fn(|k| (k as f32 - 31.5) * 0.5),
        std::array::from_fn(|k| if k % 2 == 0 { -0.0 } else { 0.0 }),
        std::array::from_fn(|k| k as f32 * if k % 3 == 0 { -spike } else { spike }),
    ];
    for &scale in scales {
        for _ in 0..50 {
            blocks.push(std::array::from_fn(|_| noise() * scale));
        }
    }
    (reciprocals, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::verify::{OutputRules, verify_jpeg};
    use crate::testkit::synth;

    fn window(min_bytes: usize, max_bytes: usize) -> EncodeSettings {
        EncodeSettings {
            min_bytes,
            max_bytes,
            ..EncodeSettings::default()
        }
    }

    /// The answer the preference rule defines, found by encoding every
    /// quality in both chroma modes.
    fn brute_force(img: &RgbImage, s: &EncodeSettings) -> Option<(Chroma, u8)> {
        for chroma in [Chroma::Full444, Chroma::Sub420] {
            let best = (s.min_quality..=s.max_quality).rev().find(|&q| {
                let len = encode_once(img, q, chroma, s.density_dpi).unwrap().len();
                (s.min_bytes..=s.max_bytes).contains(&len)
            });
            if let Some(q) = best {
                return Some((chroma, q));
            }
        }
        None
    }

    #[test]
    fn search_finds_what_brute_force_finds() {
        let images = [
            synth::portrait(480, 640, 0.0, 1),
            synth::portrait(480, 640, 0.7, 2),
            synth::noise(480, 640, 16.0, 3),
            synth::gradient(480, 640),
        ];
        let windows = [window(30_720, 100_000), window(30_720, 60_000)];
        for (i, img) in images.iter().enumerate() {
            for s in &windows {
                let got = encode_to_window(img, s).unwrap();
                let want = brute_force(img, s);
                assert_eq!(
                    Some((got.chroma, got.quality)),
                    want,
                    "image {i}, window {}..={}",
                    s.min_bytes,
                    s.max_bytes
                );
                assert!((s.min_bytes..=s.max_bytes).contains(&got.bytes.len()));
                assert!(got.attempts >= 1);
                assert_eq!(got.padding_bytes, 0);
            }
        }
    }

    #[test]
    fn answer_is_confirmed_by_its_successor() {
        let img = synth::portrait(480, 640, 0.5, 7);
        let s = EncodeSettings::default();
        let got = encode_to_window(&img, &s).unwrap();
        assert!(got.quality < 100);
        let next = encode_once(&img, got.quality + 1, got.chroma, 300).unwrap();
        assert!(next.len() > s.max_bytes);
        // Both were encoded by the search itself.
        assert!(got.attempts >= 2);
    }

    #[test]
    fn full_chroma_preferred_then_subsampled() {
        let img = synth::noise(480, 640, 24.0, 24);
        let wide = encode_to_window(&img, &EncodeSettings::default()).unwrap();
        assert_eq!(wide.chroma, Chroma::Full444);

        // 4:4:4 at quality 60 is over 40 000 bytes, so only 4:2:0 fits.
        let s = window(20_000, 40_000);
        assert!(encode_once(&img, 60, Chroma::Full444, 300).unwrap().len() > 40_000);
        let narrow = encode_to_window(&img, &s).unwrap();
        assert_eq!(narrow.chroma, Chroma::Sub420);
        assert_eq!(Some((narrow.chroma, narrow.quality)), brute_force(&img, &s));
    }

    #[test]
    fn same_image_same_bytes() {
        let img = synth::portrait(480, 640, 0.4, 11);
        let s = EncodeSettings::default();
        let a = encode_to_window(&img, &s).unwrap();
        let b = encode_to_window(&img, &s).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.bytes, b.bytes);
    }

    #[test]
    fn plain_picture_is_too_small_without_padding() {
        let img = synth::gradient(96, 128);
        let err = encode_to_window(&img, &EncodeSettings::default()).unwrap_err();
        let best = encode_once(&img, 100, Chroma::Full444, 300).unwrap().len();
        match err {
            EncodeError::TooSmall {
                best_bytes,
                min_bytes,
            } => {
                assert_eq!(best_bytes, best);
                assert_eq!(min_bytes, 30_720);
            }
            other => panic!("expected TooSmall, got {other}"),
        }
        assert!(err_message(&img).contains("below the minimum"));
    }

    fn err_message(img: &RgbImage) -> String {
        encode_to_window(img, &EncodeSettings::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn padding_reaches_the_minimum_inside_the_file() {
        let img = synth::gradient(96, 128);
        let s = EncodeSettings {
            pad_to_min: true,
            ..EncodeSettings::default()
        };
        let got = encode_to_window(&img, &s).unwrap();
        let plain = encode_once(&img, 100, Chroma::Full444, 300).unwrap();
        assert_eq!(got.bytes.len(), 30_720);
        assert_eq!(got.padding_bytes, 30_720 - plain.len());
        assert_eq!((got.quality, got.chroma), (100, Chroma::Full444));
        assert!(got.bytes.ends_with(&[0xFF, 0xD9]));
        // The COM segment sits right after APP0 and the rest is untouched.
        assert_eq!(&got.bytes[20..22], &[0xFF, 0xFE]);
        assert_eq!(&got.bytes[got.padding_bytes + 20..], &plain[20..]);

        let rules = OutputRules {
            width: 96,
            height: 128,
            ..OutputRules::default()
        };
        let report = verify_jpeg(&got.bytes, &rules);
        assert!(report.passed(), "{:#?}", report.checks);
        let unpadded = verify_jpeg(&plain, &rules);
        assert_eq!(report.image, unpadded.image);
    }

    #[test]
    fn padding_beyond_one_segment_uses_several() {
        let img = synth::gradient(96, 128);
        let s = EncodeSettings {
            pad_to_min: true,
            min_bytes: 200_000,
            max_bytes: 300_000,
            ..EncodeSettings::default()
        };
        let got = encode_to_window(&img, &s).unwrap();
        assert_eq!(got.bytes.len(), 200_000);
        let coms = got.bytes.windows(2).filter(|w| w == &[0xFF, 0xFE]).count();
        assert!(coms >= 3, "{coms} COM markers");
        let rules = OutputRules {
            width: 96,
            height: 128,
            min_bytes: 200_000,
            max_bytes: 300_000,
            ..OutputRules::default()
        };
        assert!(verify_jpeg(&got.bytes, &rules).passed());
    }

    #[test]
    fn tiny_deficit_still_gets_a_whole_segment() {
        let jpeg = encode_once(&synth::gradient(16, 16), 90, Chroma::Full444, 300).unwrap();
        let padded = insert_com_padding(&jpeg, 4);
        assert_eq!(padded.len(), jpeg.len() + 4);
        assert_eq!(&padded[20..24], &[0xFF, 0xFE, 0x00, 0x02]);
    }

    #[test]
    fn detailed_picture_in_a_tight_window_is_too_large() {
        let img = synth::noise(480, 640, 100.0, 5);
        let s = window(1_000, 20_000);
        let smallest = encode_once(&img, 60, Chroma::Sub420, 300).unwrap().len();
        match encode_to_window(&img, &s).unwrap_err() {
            EncodeError::TooLarge {
                smallest_bytes,
                max_bytes,
            } => {
                assert_eq!(smallest_bytes, smallest);
                assert_eq!(max_bytes, 20_000);
            }
            other => panic!("expected TooLarge, got {other}"),
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        let img = synth::gradient(16, 16);
        let cases = [
            window(10, 5),
            EncodeSettings {
                min_quality: 90,
                max_quality: 80,
                ..EncodeSettings::default()
            },
            EncodeSettings {
                max_quality: 101,
                ..EncodeSettings::default()
            },
            EncodeSettings {
                min_quality: 0,
                ..EncodeSettings::default()
            },
            EncodeSettings {
                density_dpi: 0,
                ..EncodeSettings::default()
            },
        ];
        for s in &cases {
            assert!(matches!(
                encode_to_window(&img, s),
                Err(EncodeError::InvalidSettings(_))
            ));
        }
    }

    #[test]
    fn grey_picture_is_written_with_three_components() {
        let img = RgbImage::filled(480, 640, [128, 128, 128]);
        let jpeg = encode_once(&img, 90, Chroma::Full444, 300).unwrap();
        let report = verify_jpeg(&jpeg, &OutputRules::default());
        assert_eq!(
            report.check("three_components").unwrap().verdict,
            crate::verdict::Verdict::Pass
        );
    }

    #[test]
    fn output_passes_verify_and_reports_its_quality() {
        let img = synth::portrait(480, 640, 0.6, 3);
        let got = encode_to_window(&img, &EncodeSettings::default()).unwrap();
        let report = verify_jpeg(&got.bytes, &OutputRules::default());
        assert!(report.passed(), "{:#?}", report.checks);
        assert_eq!(report.quality, Some(got.quality));
        assert_eq!(report.chroma, Some(got.chroma));
    }

    #[test]
    fn literal_dct_basis_matches_cosine() {
        for (u, row) in dct_basis().iter().enumerate() {
            for (x, &v) in row.iter().enumerate() {
                let cu = if u == 0 { 0.5f64.sqrt() } else { 1.0 };
                let angle = (2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0;
                let want = cu / 2.0 * angle.cos();
                assert!((f64::from(v) - want).abs() < 1e-6, "u{u} x{x}");
            }
        }
    }

    #[test]
    fn decoded_pixels_stay_close_to_the_input() {
        // Guards the colour handling (channel order, YCbCr, subsampling) end
        // to end: a mix-up shows as a large mean error, compression does not.
        let img = synth::portrait(480, 640, 0.2, 8);
        for chroma in [Chroma::Full444, Chroma::Sub420] {
            let jpeg = encode_once(&img, 92, chroma, 300).unwrap();
            let decoded = verify_jpeg(&jpeg, &OutputRules::default()).image.unwrap();
            let total: u64 = img
                .as_bytes()
                .iter()
                .zip(decoded.as_bytes())
                .map(|(&a, &b)| u64::from(a.abs_diff(b)))
                .sum();
            let mean = total as f64 / img.as_bytes().len() as f64;
            assert!(mean < 4.0, "{chroma}: mean abs error {mean}");
        }
    }

    #[test]
    fn chroma_serialises_as_ratio() {
        assert_eq!(
            serde_json::to_string(&Chroma::Full444).unwrap(),
            "\"4:4:4\""
        );
        assert_eq!(serde_json::to_string(&Chroma::Sub420).unwrap(), "\"4:2:0\"");
    }

    #[test]
    fn size_model_tracks_real_sizes() {
        let img = synth::portrait(480, 640, 0.5, 9);
        let mut model = SizeModel::new();
        model.learn(&Transformed::new(&img, Chroma::Full444));
        for q in [60u8, 80, 95] {
            let real = encode_once(&img, q, Chroma::Full444, 300).unwrap().len() as f64;
            let est = model.raw_estimate(Chroma::Full444, q);
            assert!(
                (est / real - 1.0).abs() < 0.15,
                "q{q}: est {est} real {real}"
            );
        }
    }

    #[test]
    fn prediction_brackets_the_estimated_crossing() {
        let img = synth::portrait(480, 640, 0.5, 9);
        let mut model = SizeModel::new();
        model.learn(&Transformed::new(&img, Chroma::Full444));
        for max in [20_000usize, 45_000, 70_000, 100_000, 150_000, 1_000_000] {
            // The highest quality whose calibrated estimate fits, by trying
            // every one.
            let fits = |m: &mut SizeModel, q: u8| {
                m.raw_estimate(Chroma::Full444, q) * PRIOR_RATIO <= max as f64
            };
            let best = (60..=100u8).rev().find(|&q| fits(&mut model, q));
            let got = model.predict(Chroma::Full444, max, 60, 100);
            match best {
                None => assert_eq!(got, 60, "max {max}"),
                Some(100) => assert_eq!(got, 100, "max {max}"),
                Some(q) => assert!(got == q || got == q + 1, "max {max}: {got} vs {q}"),
            }
        }
    }

    /// The size model steers which qualities are probed, so its AVX2
    /// build must count exactly what the portable one counts.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_estimate_matches_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let img = synth::portrait(480, 640, 0.5, 9);
        let t = Transformed::new(&img, Chroma::Full444);
        let blocks: Vec<Coefs> = t
            .mcu_rows()
            .flatten()
            .map(|(_, block)| Coefs::new(block))
            .collect();
        for q in [50u8, 90, 97, 100] {
            let table = scaled_table(&STD_LUMA_QT, q);
            let portable = count_entropy_bits::<false>(&blocks, &table);
            // SAFETY: AVX2 support was checked above.
            let fast = unsafe { entropy_bits_avx2(&blocks, &table) };
            assert_eq!(portable.to_bits(), fast.to_bits(), "q{q}");
        }
    }

    /// The AVX2 quantisation of the model rounds, truncates and signs as
    /// the portable one: at halves, at both zeros and on noise of every
    /// scale.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_model_quantisation_matches_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let (recip, blocks) = quantisation_probe(0x2545_F491, 130.0, &[1.0, 0.01, 0.1, 0.4, 0.7]);
        for (i, b) in blocks.iter().enumerate() {
            let want = quantise_for_model::<false>(b, &recip);
            // SAFETY: AVX2 support was checked above.
            let got = unsafe { model_avx2::quantise(b, &recip) };
            assert_eq!(got, want, "block {i}");
        }
    }

    #[test]
    fn rough_log2_is_monotone_and_close() {
        let mut last = f64::NEG_INFINITY;
        for i in 0..2000 {
            let x = 1.0 + f64::from(i) * 97.3;
            let l = rough_log2(x);
            assert!(l >= last, "{x}");
            assert!((l - x.log2()).abs() < 0.09, "{x}: {l}");
            last = l;
        }
    }
}
