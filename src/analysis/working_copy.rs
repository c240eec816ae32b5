//! The small working copy the analysis stages look at: a box-filtered
//! downscale. Box averaging is exact integer arithmetic per block, so the
//! result is the same on every machine, and it suppresses sensor noise and
//! JPEG ringing, which is what the silhouette analysis wants.

use crate::analysis::colour::LabTable;
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

/// [`block_means`] where the CPU has AVX2 (runtime check): for blocks of
/// at most [`avx2::MAX_FACTOR`] pixels a side by a hand-written kernel,
/// for larger ones by an AVX2 build of the same code. Sums of integers are
/// exact in any order, so the sums, and the means from them, are the very
/// same.
fn block_means_dispatch<Sum: ColumnSum>(img: &RgbImage, factor: u32, px: &mut Vec<[f32; 3]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        if (1..=avx2::MAX_FACTOR).contains(&factor) && img.width() > 0 {
            // SAFETY: the CPU has just been found to support AVX2, and the
            // factor and width are in the kernel's range.
            return unsafe { avx2::block_means(img, factor, px) };
        }
        // SAFETY: as above.
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
        push_means(
            px,
            block_sums.as_flattened(),
            Sum::value,
            factor,
            w,
            y1 - y0,
        );
    }
}

/// Appends to `px` the means of one row of blocks from their sums (`3` a
/// block, flat), the blocks `rows` high in an image `w` wide.
///
/// Every block of the row but the last (which the right edge may clip) has
/// the same pixel count: the divisions run in one plain loop the compiler
/// vectorises, four at a time where one by one they were a good part of the
/// copy's cost.
#[inline(always)]
fn push_means<B: Copy>(
    px: &mut Vec<[f32; 3]>,
    block_sums: &[B],
    value: impl Fn(B) -> f64,
    factor: u32,
    w: u32,
    rows: u32,
) {
    let block_cols = w.div_ceil(factor) as usize;
    let rows = rows as usize;
    let start = px.len();
    px.resize(start + block_cols, [0.0; 3]);
    let full = block_cols.saturating_sub(1);
    let (means, last) = px[start..].as_flattened_mut().split_at_mut(3 * full);
    let (sums, last_sums) = block_sums[..3 * block_cols].split_at(3 * full);
    let last_width = w as usize - full * factor as usize;
    for (sums, means, width) in [
        (sums, means, factor as usize),
        (last_sums, last, last_width),
    ] {
        let n = (width * rows) as f64;
        for (mean, &sum) in means.iter_mut().zip(sums) {
            *mean = (value(sum) / n) as f32;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::push_means;
    use crate::image::RgbImage;

    /// The widest block whose columns the kernel sums (three channels of
    /// up to 21 pixels are at most four vectors of sixteen) and whose column
    /// sums, at most 21 x 255, fit the signed 16-bit lanes `madd` takes. A
    /// working copy of 240 px takes it for photos up to 5,040 px long.
    pub(super) const MAX_FACTOR: u32 = 21;

    /// Vectors of sixteen column sums a block spans, at most.
    const MAX_VECTORS: usize = 4;

    /// [`super::block_means`] for `u16` column sums, by vectors: each
    /// stretch of 128 bytes of a row of blocks is summed down its rows in
    /// registers and stored once (where the sums were loaded and stored
    /// again for every image row), and each block's columns are summed by
    /// multiplying its vectors with masks of each channel's lanes and
    /// adding (where each column was added one by one).
    ///
    /// # Safety
    /// The CPU must support AVX2; `factor` must be in `1..=MAX_FACTOR` and
    /// the image at least one pixel wide.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn block_means(img: &RgbImage, factor: u32, px: &mut Vec<[f32; 3]>) {
        assert!((1..=MAX_FACTOR).contains(&factor) && img.width() > 0);
        let (w, h) = (img.width(), img.height());
        let f = factor as usize;
        let stride = 3 * w as usize;
        let block_cols = w.div_ceil(factor) as usize;
        let vectors = (3 * f).div_ceil(16);
        // Room for every vector of the last block read from its start: the
        // columns past the row's end stay zero, and add nothing.
        let mut columns = vec![0u16; 3 * f * (block_cols - 1) + 16 * vectors];
        // One more than the sums: each block's are stored as four lanes,
        // the fourth overwritten by the next block's first.
        let mut sums = vec![0u32; 3 * block_cols + 1];
        let masks = channel_masks(f);
        let bytes = img.as_bytes();
        for y0 in (0..h).step_by(f) {
            let y1 = (y0 + factor).min(h);
            let rows = &bytes[y0 as usize * stride..y1 as usize * stride];
            // SAFETY: (all four calls) AVX2 as promised; `rows` is whole rows of
            // `stride` bytes, `columns` is at least a row long (the last
            // block starts within the row and has room for its vectors),
            // and the lengths are as each function asks.
            unsafe {
                column_sums(rows, stride, &mut columns);
                match vectors {
                    1 => block_sums::<1>(&columns, f, &masks, &mut sums),
                    2 => block_sums::<2>(&columns, f, &masks, &mut sums),
                    3 => block_sums::<3>(&columns, f, &masks, &mut sums),
                    _ => block_sums::<4>(&columns, f, &masks, &mut sums),
                }
            }
            push_means(px, &sums, f64::from, factor, w, y1 - y0);
        }
    }

    /// Per vector of a block's sixteen-lane stretches and per channel, a
    /// one in each lane of that channel within the block (`3 * factor`
    /// lanes from the first), zero elsewhere.
    fn channel_masks(factor: usize) -> [[__m256i; 3]; MAX_VECTORS] {
        let lanes: [[[i16; 16]; 3]; MAX_VECTORS] = std::array::from_fn(|v| {
            std::array::from_fn(|c| {
                std::array::from_fn(|i| {
                    let lane = 16 * v + i;
                    i16::from(lane < 3 * factor && lane % 3 == c)
                })
            })
        });
        // SAFETY: an __m256i is sixteen i16 lanes, any bits valid.
        lanes.map(|v| v.map(|m| unsafe { std::mem::transmute::<[i16; 16], __m256i>(m) }))
    }

    /// Sixteen bytes from `p`, widened to sixteen-bit lanes.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `p` be valid for 16 bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn widened(p: *const u8) -> __m256i {
        // SAFETY: as promised.
        _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
    }

    /// `columns[x]` = the sum of byte `x` of each of the rows of `rows`
    /// (whole rows of `stride` bytes, at most 257 of them, so that the sums
    /// fit).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn column_sums(rows: &[u8], stride: usize, columns: &mut [u16]) {
        assert!(stride > 0 && rows.len().is_multiple_of(stride) && columns.len() >= stride);
        let n = rows.len() / stride;
        assert!((1..=257).contains(&n));
        let (src, dst) = (rows.as_ptr(), columns.as_mut_ptr());
        // SAFETY: every load is of 16 bytes at `r * stride + x` with
        // `r < n` and `x + 16 <= stride`, within `rows`; every store of 16
        // sums at `x` with `x + 16 <= stride <= columns.len()`.
        unsafe {
            let mut x = 0;
            while x + 128 <= stride {
                let at = src.add(x);
                let mut acc: [__m256i; 8] = std::array::from_fn(|k| widened(at.add(16 * k)));
                for r in 1..n {
                    let at = at.add(r * stride);
                    for (k, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_add_epi16(*acc, widened(at.add(16 * k)));
                    }
                }
                for (k, acc) in acc.iter().enumerate() {
                    _mm256_storeu_si256(dst.add(x + 16 * k).cast(), *acc);
                }
                x += 128;
            }
            // The rest sixteen at a time, the last sixteen ending at the
            // row's end (overlapping the ones before: the same sums again).
            while x < stride && stride >= 16 {
                let at = src.add(x.min(stride - 16));
                let mut acc = widened(at);
                for r in 1..n {
                    acc = _mm256_add_epi16(acc, widened(at.add(r * stride)));
                }
                _mm256_storeu_si256(dst.add(x.min(stride - 16)).cast(), acc);
                x = x.min(stride - 16) + 16;
            }
        }
        // A row narrower than one vector: one by one.
        if stride < 16 {
            for (x, sum) in columns[..stride].iter_mut().enumerate() {
                *sum = (0..n).map(|r| u16::from(rows[r * stride + x])).sum();
            }
        }
    }

    /// The three channel sums of each block of `factor` pixels of a row's
    /// column sums, into `sums` flat (the block at `k` at `3 * k`), the
    /// block's `V` vectors multiplied by `masks` and added up lane by lane.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn block_sums<const V: usize>(
        columns: &[u16],
        factor: usize,
        masks: &[[__m256i; 3]; MAX_VECTORS],
        sums: &mut [u32],
    ) {
        let blocks = (sums.len() - 1) / 3;
        assert!(V <= MAX_VECTORS && 3 * factor <= 16 * V && blocks > 0);
        assert!(columns.len() >= 3 * factor * (blocks - 1) + 16 * V);
        for k in 0..blocks {
            // SAFETY: the block's vectors end at 3 * factor * k + 16 * V
            // <= columns.len(), and its four sums at 3 * k + 4 <=
            // sums.len().
            unsafe {
                let block = columns.as_ptr().add(3 * factor * k);
                let mut acc = [_mm256_setzero_si256(); 3];
                for (v, masks) in masks[..V].iter().enumerate() {
                    let lanes = _mm256_loadu_si256(block.add(16 * v).cast());
                    for (acc, mask) in acc.iter_mut().zip(masks) {
                        *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(lanes, *mask));
                    }
                }
                // Lanes [r0+r1, r2+r3, g0+g1, g2+g3] and [b0+b1, b2+b3, ..]
                // in each half, then [r, g, b, b] in each half, then added.
                let rg = _mm256_hadd_epi32(acc[0], acc[1]);
                let bb = _mm256_hadd_epi32(acc[2], acc[2]);
                let rgbb = _mm256_hadd_epi32(rg, bb);
                let total = _mm_add_epi32(
                    _mm256_castsi256_si128(rgbb),
                    _mm256_extracti128_si256::<1>(rgbb),
                );
                _mm_storeu_si128(sums.as_mut_ptr().add(3 * k).cast(), total);
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
    fn vector_kernel_sums_as_the_portable_code_does() {
        let mut rng = crate::testkit::synth::SplitMix64::new(11);
        // Rows narrower than one vector of bytes, around the 128-byte
        // stretches, of no factor's multiple; partial last rows of blocks;
        // noise, and saturated white, where the sums are largest.
        let sizes = [(1, 1), (3, 7), (5, 30), (42, 43), (43, 50), (100, 23)];
        let sizes = sizes.into_iter().chain([(171, 64), (301, 45), (64, 65)]);
        for (w, h) in sizes {
            let noise = (0..w * h * 3).map(|_| rng.next_u64() as u8).collect();
            let noise = RgbImage::new(w, h, noise).expect("size");
            for img in [noise, RgbImage::filled(w, h, [255, 255, 255])] {
                for factor in 1..=24 {
                    let mut want = Vec::new();
                    block_means::<u16>(&img, factor, &mut want);
                    let mut got = Vec::new();
                    block_means_dispatch::<u16>(&img, factor, &mut got);
                    assert_eq!(got, want, "{w}x{h}, factor {factor}");
                }
            }
        }
    }

    #[test]
    fn tiny_images() {
        let w = Work::new(&RgbImage::filled(1, 1, [1, 2, 3]), 200);
        assert_eq!((w.width, w.height, w.factor), (1, 1, 1));
        let w = Work::new(&RgbImage::filled(10_000, 10, [1, 2, 3]), 200);
        assert_eq!((w.width, w.height), (200, 1));
    }
}
