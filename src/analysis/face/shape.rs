//! dlib's shape predictor (Kazemi and Sullivan's ensemble of regression
//! trees), read from dlib's own serialisation and evaluated the way dlib's
//! `shape_predictor::operator()` does, so that given the same face box it
//! puts the points where dlib does (tests compare with the Python `dlib`
//! package's points on real faces).
//!
//! The model: a mean shape in the face box's unit square, then cascades of
//! trees. Each cascade reads the grey level at a few hundred pixels placed
//! relative to the current shape's points, and each tree, walking down by
//! comparing two of those grey levels against a threshold, adds its leaf's
//! offset to the shape.

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ShapeModelError {
    #[error("shape model ends early, at byte {0}")]
    Truncated(usize),
    #[error("shape model is malformed at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
}

/// One tree: a complete binary tree of splits stored breadth first, then
/// its leaves (offsets to the whole shape, `2 * points` values each).
struct Tree {
    splits: Vec<Split>,
    leaves: Vec<Vec<f32>>,
}

struct Split {
    idx1: usize,
    idx2: usize,
    thresh: f32,
}

/// One cascade: its trees and the pixels they read, each an anchor point of
/// the shape and an offset from it in the mean shape's frame.
struct Cascade {
    trees: Vec<Tree>,
    anchors: Vec<usize>,
    deltas: Vec<[f32; 2]>,
}

pub struct ShapePredictor {
    /// Mean shape, x and y interleaved, in the face box's unit square.
    initial: Vec<f32>,
    cascades: Vec<Cascade>,
}

/// A face box as dlib has it: inclusive pixel edges.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DlibRect {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

/// Grey levels the predictor samples: dlib's `get_pixel_intensity` of an RGB
/// pixel, the integer mean of its channels.
pub trait Intensity {
    fn size(&self) -> (usize, usize);
    fn intensity(&self, x: usize, y: usize) -> f32;
}

impl Intensity for crate::image::RgbImage {
    fn size(&self) -> (usize, usize) {
        (self.width() as usize, self.height() as usize)
    }
    fn intensity(&self, x: usize, y: usize) -> f32 {
        let [r, g, b] = self.pixel(x as u32, y as u32);
        ((u32::from(r) + u32::from(g) + u32::from(b)) / 3) as f32
    }
}

/// dlib's serialisation: integers as a length byte (bit 7 the sign, the low
/// nibble the number of bytes) and that many little-endian bytes; floats as
/// an integer mantissa and an integer exponent of two.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<i64, ShapeModelError> {
        let head = *self
            .bytes
            .get(self.at)
            .ok_or(ShapeModelError::Truncated(self.at))?;
        let n = usize::from(head & 0x0f);
        if n > 8 {
            return Err(self.malformed("integer longer than 8 bytes"));
        }
        let body = self
            .bytes
            .get(self.at + 1..self.at + 1 + n)
            .ok_or(ShapeModelError::Truncated(self.at))?;
        self.at += 1 + n;
        let v = body
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b));
        let v = i64::try_from(v).map_err(|_| self.malformed("integer out of range"))?;
        Ok(if head & 0x80 != 0 { -v } else { v })
    }

    fn count(&mut self, max: usize) -> Result<usize, ShapeModelError> {
        let v = self.int()?;
        usize::try_from(v)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| self.malformed("count out of range"))
    }

    fn float(&mut self) -> Result<f32, ShapeModelError> {
        let mantissa = self.int()?;
        let exponent = self.int()?;
        let exponent = i32::try_from(exponent)
            .ok()
            .filter(|e| (-1100..=1100).contains(e))
            .ok_or_else(|| self.malformed("float exponent out of range"))?;
        Ok((mantissa as f64 * pow2(exponent)) as f32)
    }

    /// A column vector (`matrix<float,0,1>`): dlib writes its rows and
    /// columns negated (the newer format).
    fn column(&mut self) -> Result<Vec<f32>, ShapeModelError> {
        let (rows, cols) = (self.int()?, self.int()?);
        if rows > 0 || cols != -1 {
            return Err(self.malformed("expected a column vector"));
        }
        let n = usize::try_from(-rows).map_err(|_| self.malformed("matrix size"))?;
        if n > 1 << 16 {
            return Err(self.malformed("matrix too large"));
        }
        // A plain loop into a vector of the known length: collecting
        // `Result`s cannot use the length and regrows the vector, which
        // was a fifth of reading the model.
        let mut column = Vec::with_capacity(n);
        for _ in 0..n {
            column.push(self.float()?);
        }
        Ok(column)
    }

    fn malformed(&self, what: &'static str) -> ShapeModelError {
        ShapeModelError::Malformed { at: self.at, what }
    }
}

/// 2 to the power `e`, exactly: built from its bits where it is a normal
/// f64 (every exponent dlib writes for a model's floats), which is what
/// `powi` gives, without its loop (a tenth of reading the model).
fn pow2(e: i32) -> f64 {
    if (-1022..=1023).contains(&e) {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        2f64.powi(e)
    }
}

/// Upper bounds on counts read from the file, so a damaged file cannot make
/// the reader allocate without limit.
const MAX_ITEMS: usize = 1 << 20;

impl ShapePredictor {
    /// Reads dlib's `serialize(shape_predictor)`: version 1, the mean shape,
    /// the cascades' trees, then each cascade's anchors and deltas.
    pub fn from_dlib(bytes: &[u8]) -> Result<ShapePredictor, ShapeModelError> {
        let mut r = Reader { bytes, at: 0 };
        if r.int()? != 1 {
            return Err(r.malformed("not a version 1 shape predictor"));
        }
        let initial = r.column()?;
        let points = initial.len() / 2;
        if points == 0 || initial.len() % 2 != 0 {
            return Err(r.malformed("mean shape has no points"));
        }
        let n_cascades = r.count(MAX_ITEMS)?;
        let mut forests = Vec::with_capacity(n_cascades);
        for _ in 0..n_cascades {
            let n_trees = r.count(MAX_ITEMS)?;
            let mut trees = Vec::with_capacity(n_trees);
            for _ in 0..n_trees {
                let n_splits = r.count(MAX_ITEMS)?;
                let splits = (0..n_splits)
                    .map(|_| {
                        Ok(Split {
                            idx1: r.count(MAX_ITEMS)?,
                            idx2: r.count(MAX_ITEMS)?,
                            thresh: r.float()?,
                        })
                    })
                    .collect::<Result<Vec<_>, ShapeModelError>>()?;
                let n_leaves = r.count(MAX_ITEMS)?;
                if n_leaves != n_splits + 1 {
                    return Err(r.malformed("a tree's leaves do not match its splits"));
                }
                let leaves = (0..n_leaves)
                    .map(|_| {
                        let leaf = r.column()?;
                        if leaf.len() == initial.len() {
                            Ok(leaf)
                        } else {
                            Err(r.malformed("a leaf's size differs from the shape's"))
                        }
                    })
                    .collect::<Result<Vec<_>, ShapeModelError>>()?;
                trees.push(Tree { splits, leaves });
            }
            forests.push(trees);
        }
        if r.count(MAX_ITEMS)? != n_cascades {
            return Err(r.malformed("anchor lists do not match the cascades"));
        }
        let mut anchors = Vec::with_capacity(n_cascades);
        for _ in 0..n_cascades {
            let n = r.count(MAX_ITEMS)?;
            let list = (0..n)
                .map(|_| {
                    let a = r.count(MAX_ITEMS)?;
                    if a < points {
                        Ok(a)
                    } else {
                        Err(r.malformed("anchor beyond the shape's points"))
                    }
                })
                .collect::<Result<Vec<_>, ShapeModelError>>()?;
            anchors.push(list);
        }
        if r.count(MAX_ITEMS)? != n_cascades {
            return Err(r.malformed("delta lists do not match the cascades"));
        }
        let mut cascades = Vec::with_capacity(n_cascades);
        for (trees, anchors) in forests.into_iter().zip(anchors) {
            let n = r.count(MAX_ITEMS)?;
            if n != anchors.len() {
                return Err(r.malformed("deltas do not match the anchors"));
            }
            let deltas = (0..n)
                .map(|_| Ok([r.float()?, r.float()?]))
                .collect::<Result<Vec<_>, ShapeModelError>>()?;
            let features = anchors.len();
            let bad_split = trees
                .iter()
                .flat_map(|t| &t.splits)
                .any(|s| s.idx1 >= features || s.idx2 >= features);
            if bad_split {
                return Err(r.malformed("a split reads a pixel the cascade does not sample"));
            }
            cascades.push(Cascade {
                trees,
                anchors,
                deltas,
            });
        }
        if r.at != bytes.len() {
            return Err(r.malformed("bytes after the model"));
        }
        Ok(ShapePredictor { initial, cascades })
    }

    pub fn points(&self) -> usize {
        self.initial.len() / 2
    }

    /// The shape's points in image pixels, for the face in `rect`.
    pub fn predict(&self, img: &impl Intensity, rect: DlibRect) -> Vec<[f64; 2]> {
        let (w, h) = img.size();
        // The unit square onto the box (dlib's `unnormalizing_tform`).
        let sx = (rect.right - rect.left) as f32;
        let sy = (rect.bottom - rect.top) as f32;
        let (l, t) = (rect.left as f32, rect.top as f32);
        let to_img = |p: [f32; 2]| [l + p[0] * sx, t + p[1] * sy];
        let mut shape = self.initial.clone();
        let mut values = Vec::new();
        for cascade in &self.cascades {
            let m = similarity(&self.initial, &shape);
            values.clear();
            values.extend(cascade.anchors.iter().zip(&cascade.deltas).map(|(&a, d)| {
                let p = [
                    m[0] * d[0] + m[1] * d[1] + shape[2 * a],
                    m[2] * d[0] + m[3] * d[1] + shape[2 * a + 1],
                ];
                let [x, y] = to_img(p);
                // dlib converts to a pixel by rounding half up.
                let (x, y) = ((x + 0.5).floor(), (y + 0.5).floor());
                if x >= 0.0 && y >= 0.0 && (x as usize) < w && (y as usize) < h {
                    img.intensity(x as usize, y as usize)
                } else {
                    0.0
                }
            }));
            for tree in &cascade.trees {
                let mut i = 0;
                while i < tree.splits.len() {
                    let s = &tree.splits[i];
                    i = if values[s.idx1] - values[s.idx2] > s.thresh {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                for (v, d) in shape.iter_mut().zip(&tree.leaves[i - tree.splits.len()]) {
                    *v += d;
                }
            }
        }
        shape
            .chunks_exact(2)
            .map(|p| {
                let [x, y] = to_img([p[0], p[1]]);
                [f64::from(x), f64::from(y)]
            })
            .collect()
    }
}

/// The linear part `[a, -b; b, a]` of the least-squares similarity taking
/// shape `from` onto shape `to` (both x, y interleaved): dlib's
/// `find_similarity_transform`, which for points in a plane reduces to this.
fn similarity(from: &[f32], to: &[f32]) -> [f32; 4] {
    let n = (from.len() / 2) as f32;
    let mean = |s: &[f32], k: usize| s.iter().skip(k).step_by(2).sum::<f32>() / n;
    let (fx, fy, tx, ty) = (mean(from, 0), mean(from, 1), mean(to, 0), mean(to, 1));
    let (mut den, mut a, mut b) = (0f32, 0f32, 0f32);
    for (f, t) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        let (ux, uy, vx, vy) = (f[0] - fx, f[1] - fy, t[0] - tx, t[1] - ty);
        den += ux * ux + uy * uy;
        a += ux * vx + uy * vy;
        b += ux * vy - uy * vx;
    }
    if den <= 0.0 {
        return [1.0, 0.0, 0.0, 1.0];
    }
    let (a, b) = (a / den, b / den);
    [a, -b, b, a]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_match_powi() {
        for e in -1100..=1100 {
            assert_eq!(pow2(e).to_bits(), 2f64.powi(e).to_bits(), "2^{e}");
        }
    }

    #[test]
    fn integers_read_as_dlib_writes_them() {
        let bytes = [0x01, 0x0f, 0x02, 0xf4, 0x01, 0x81, 0x18, 0x00];
        let mut r = Reader {
            bytes: &bytes,
            at: 0,
        };
        assert_eq!(r.int(), Ok(15));
        assert_eq!(r.int(), Ok(500));
        assert_eq!(r.int(), Ok(-24));
        assert_eq!(r.int(), Ok(0));
        assert_eq!(r.int(), Err(ShapeModelError::Truncated(8)));
    }

    #[test]
    fn a_damaged_model_is_an_error_not_a_panic() {
        let good = crate::analysis::face::SHAPE_MODEL;
        for cut in [0, 1, 5, 1000, good.len() / 2, good.len() - 1] {
            assert!(
                ShapePredictor::from_dlib(&good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = good.to_vec();
        longer.push(0);
        assert!(ShapePredictor::from_dlib(&longer).is_err());
    }

    #[test]
    fn the_similarity_of_a_rotated_scaled_shape_is_found() {
        let from = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        // Rotated by 90 degrees and doubled, then moved.
        let to: Vec<f32> = from
            .chunks_exact(2)
            .flat_map(|p| [5.0 - 2.0 * p[1], 3.0 + 2.0 * p[0]])
            .collect();
        let m = similarity(&from, &to);
        for (got, want) in m.iter().zip([0.0, -2.0, 2.0, 0.0]) {
            assert!((got - want).abs() < 1e-5, "{m:?}");
        }
    }
}
