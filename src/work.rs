//! The small working copy the analysis stages look at: a box-filtered
//! downscale. Box averaging is exact integer arithmetic per block, so the
//! result is the same on every machine, and it suppresses sensor noise and
//! JPEG ringing, which is what the silhouette analysis wants.

use crate::color::LabTable;
use crate::image::RgbImage;

/// The working copy the backdrop and subject stages share, every pixel also
/// in CIELAB, where both compare colours. Building the copy (a pass over the
/// whole decoded photo) and converting it were most of each stage's cost,
/// and each stage did both on its own.
pub struct WorkingCopy {
    pub(crate) work: Work,
    pub(crate) lab: Vec<[f64; 3]>,
    source_width: u32,
    source_height: u32,
}

impl WorkingCopy {
    /// Longer side of the copy unless set otherwise: about 200 px tall
    /// places a head to within a percent of the frame, and the backdrop
    /// estimate is an average, as good from a small copy as from the photo.
    pub const DEFAULT_SIZE: u32 = 240;

    /// The copy of `img` whose longer side is at most `max_side` (at least
    /// 32: the stages need a few pixels to tell anything apart).
    pub fn new(img: &RgbImage, max_side: u32) -> WorkingCopy {
        let work = Work::new(img, max_side.max(32));
        let lab = LabTable::new().lab_all(&work.px);
        WorkingCopy {
            work,
            lab,
            source_width: img.width(),
            source_height: img.height(),
        }
    }

    /// [`WorkingCopy::new`] at the default size.
    pub fn of(img: &RgbImage) -> WorkingCopy {
        WorkingCopy::new(img, Self::DEFAULT_SIZE)
    }

    /// Size of the image the copy was made from.
    pub fn source_size(&self) -> (u32, u32) {
        (self.source_width, self.source_height)
    }
}

/// A downscaled copy: pixel (x, y) averages the `factor` x `factor` block of
/// the original starting at (x * factor, y * factor), clipped at the edges.
pub(crate) struct Work {
    pub width: usize,
    pub height: usize,
    pub factor: u32,
    pub px: Vec<[f32; 3]>,
}

impl Work {
    /// Downscales so the longer of the two sides is at most `max_side`.
    pub(crate) fn new(img: &RgbImage, max_side: u32) -> Work {
        let (w, h) = (img.width(), img.height());
        let long = w.max(h);
        let factor = long.div_ceil(max_side.max(1)).max(1);
        let ww = w.div_ceil(factor) as usize;
        let wh = h.div_ceil(factor) as usize;
        // Rows of a block are summed column by column first (a plain
        // element-wise add over the whole row, which the compiler
        // vectorises), then each block's columns once: the expensive part
        // touches every source byte exactly once with no per-block branching.
        // Sixteen-bit sums hold up to 257 rows of 255 and take half the
        // vector lanes of 32-bit ones; only working copies of images more
        // than 61,000 pixels long need the wider sums.
        let mut px = Vec::with_capacity(ww * wh);
        if factor <= u32::from(u16::MAX) / 255 {
            block_means_dispatch::<u16>(img, factor, &mut px);
        } else {
            block_means_dispatch::<u32>(img, factor, &mut px);
        }
        Work {
            width: ww,
            height: wh,
            factor,
            px,
        }
    }

    pub(crate) fn at(&self, x: usize, y: usize) -> [f32; 3] {
        self.px[y * self.width + x]
    }
}

/// The integer a column of a block is summed in (`u16` or `u32`).
trait ColumnSum: Copy + Default + From<u8> + std::ops::AddAssign {
    /// The integer a whole block is summed in: twice as wide, so it holds
    /// `factor` columns. The narrowest that does keeps the conversion to a
    /// float one instruction where `u64` takes a dozen.
    type Block: Copy + Default + From<Self> + std::ops::AddAssign;
    /// The exact value of a block sum (all are far below 2^53).
    fn value(sum: Self::Block) -> f64;
}

impl ColumnSum for u16 {
    type Block = u32;
    fn value(sum: u32) -> f64 {
        f64::from(sum)
    }
}

impl ColumnSum for u32 {
    type Block = u64;
    fn value(sum: u64) -> f64 {
        sum as f64
    }
}

/// [`block_means`], as an AVX2 build of the same code where the CPU has
/// AVX2 (runtime check): the row sums are integer adds, so twice the vector
/// lanes give the very same sums.
fn block_means_dispatch<Sum: ColumnSum>(img: &RgbImage, factor: u32, px: &mut Vec<[f32; 3]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { block_means_avx2::<Sum>(img, factor, px) };
    }
    block_means::<Sum>(img, factor, px)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_means_avx2<Sum: ColumnSum>(img: &RgbImage, factor: u32, px: &mut Vec<[f32; 3]>) {
    block_means::<Sum>(img, factor, px)
}

/// Appends to `px` the mean colour of each `factor` x `factor` block of
/// `img`, row of blocks by row of blocks, summing columns in `Sum`, which
/// must hold `factor` times 255.
#[inline(always)]
fn block_means<Sum: ColumnSum>(img: &RgbImage, factor: u32, px: &mut Vec<[f32; 3]>) {
    let (w, h) = (img.width(), img.height());
    let mut column_sums = vec![Sum::default(); w as usize * 3];
    let block_cols = w.div_ceil(factor) as usize;
    let mut block_sums = Vec::with_capacity(block_cols);
    for y0 in (0..h).step_by(factor as usize) {
        let y1 = (y0 + factor).min(h);
        // The block row's first image row starts the sums: no clearing pass.
        for (sum, &v) in column_sums.iter_mut().zip(img.row(y0)) {
            *sum = Sum::from(v);
        }
        for y in y0 + 1..y1 {
            for (sum, &v) in column_sums.iter_mut().zip(img.row(y)) {
                *sum += Sum::from(v);
            }
        }
        block_sums.clear();
        block_sums.extend(column_sums.chunks(factor as usize * 3).map(|block| {
            let mut s = [Sum::Block::default(); 3];
            for p in block.chunks_exact(3) {
                for c in 0..3 {
                    s[c] += p[c].into();
                }
            }
            s
        }));
        // Every block of the row but the last (which the right edge may
        // clip) has the same pixel count: the divisions run in one plain
        // loop the compiler vectorises, four at a time where one by one
        // they were a good part of the copy's cost.
        let rows = (y1 - y0) as usize;
        let start = px.len();
        px.resize(start + block_cols, [0.0; 3]);
        let full = block_cols.saturating_sub(1);
        let (means, last) = px[start..].as_flattened_mut().split_at_mut(3 * full);
        let (sums, last_sums) = block_sums.as_flattened().split_at(3 * full);
        let last_width = w as usize - full * factor as usize;
        for (sums, means, width) in [
            (sums, means, factor as usize),
            (last_sums, last, last_width),
        ] {
            let n = (width * rows) as f64;
            for (mean, &sum) in means.iter_mut().zip(sums) {
                *mean = (Sum::value(sum) / n) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose pixel (x, y) is `colour(x, y)`.
    fn patterned(w: u32, h: u32, colour: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        let mut img = RgbImage::filled(w, h, [0, 0, 0]);
        for y in 0..h {
            for x in 0..w {
                img.put_pixel(x, y, colour(x, y));
            }
        }
        img
    }

    #[test]
    fn averages_blocks() {
        let mut img = RgbImage::filled(5, 3, [10, 20, 30]);
        img.put_pixel(0, 0, [30, 20, 30]);
        let w = Work::new(&img, 3);
        assert_eq!(w.factor, 2);
        assert_eq!((w.width, w.height), (3, 2));
        assert_eq!(w.at(0, 0), [15.0, 20.0, 30.0]);
        assert_eq!(w.at(2, 1), [10.0, 20.0, 30.0]);
    }

    #[test]
    fn means_are_the_exact_quotients_for_every_block_size() {
        // Factors 2, 3 and 4, with partial blocks along two edges.
        let img = patterned(23, 17, |x, y| {
            let v = (x * 37 + y * 101 + x * y) as u8;
            [v, v.wrapping_mul(7), 255 - v]
        });
        for max_side in [12, 8, 6] {
            let w = Work::new(&img, max_side);
            let f = w.factor;
            for (i, got) in w.px.iter().enumerate() {
                let (bx, by) = ((i % w.width) as u32 * f, (i / w.width) as u32 * f);
                let (mut sum, mut n) = ([0u64; 3], 0u64);
                for y in by..(by + f).min(17) {
                    for x in bx..(bx + f).min(23) {
                        let p = img.pixel(x, y);
                        (0..3).for_each(|c| sum[c] += u64::from(p[c]));
                        n += 1;
                    }
                }
                let want = sum.map(|s| (s as f64 / n as f64) as f32);
                assert_eq!(*got, want, "factor {f}, block {i}");
            }
        }
    }

    #[test]
    fn blocks_too_tall_for_sixteen_bit_sums() {
        // 300 rows of 255 overflow a 16-bit column sum.
        let w = Work::new(&RgbImage::filled(300, 300, [255, 128, 1]), 1);
        assert_eq!(w.factor, 300);
        assert_eq!(w.at(0, 0), [255.0, 128.0, 1.0]);
    }

    #[test]
    fn both_sum_widths_agree() {
        let img = patterned(97, 61, |x, y| {
            let v = (x * 31 + y * 17) as u8;
            [v, v.wrapping_mul(3), 255 - v]
        });
        let (mut narrow, mut wide) = (Vec::new(), Vec::new());
        block_means::<u16>(&img, 7, &mut narrow);
        block_means::<u32>(&img, 7, &mut wide);
        assert_eq!(narrow, wide);
        assert_eq!(narrow.len(), 14 * 9);
        // The build Work::new runs (AVX2 where the CPU has it) agrees too.
        let mut dispatched = Vec::new();
        block_means_dispatch::<u16>(&img, 7, &mut dispatched);
        assert_eq!(narrow, dispatched);
    }

    #[test]
    fn tiny_images() {
        let w = Work::new(&RgbImage::filled(1, 1, [1, 2, 3]), 200);
        assert_eq!((w.width, w.height, w.factor), (1, 1, 1));
        let w = Work::new(&RgbImage::filled(10_000, 10, [1, 2, 3]), 200);
        assert_eq!((w.width, w.height), (200, 1));
    }
}
