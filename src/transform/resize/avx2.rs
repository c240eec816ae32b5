//! The two passes in AVX2: the same i32 sums of the same i16 weights times
//! u8 samples as the portable kernels, the same rounding (add half, shift
//! right arithmetically) and the same clamp (by saturating packs), so the
//! bytes are the same.
//!
//! Both passes run in one kernel, [`taps32`], which filters 32 bytes
//! across rows: the vertical pass along the source's rows, the horizontal
//! one along the rows of a transposed band of the vertical pass's output,
//! where one source column's samples of 32 output rows lie together. The
//! transposes cost far less than multiply-adds on interleaved RGB would:
//! there each `vpmaddwd` wastes a quarter of its lanes, needs a shuffle of
//! its own and gives one pixel's three sums.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{BAND, Taps, VerticalSource, transpose_portable, vertical_portable};

/// The filtered and clamped 32 bytes at `first`, `first + step`, ...,
/// `len` rows of 32 bytes `step` apart weighted by `weights`: two rows'
/// bytes interleaved into (row k, row k + 1) pairs of i16, so that one
/// `vpmaddwd` applies two taps to eight bytes.
///
/// # Safety
/// AVX2; 32 bytes readable at `first + k * step` for `k < len`; the
/// weights padded with a zero to an even count.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn taps32(
    first: *const u8,
    step: usize,
    len: usize,
    weights: *const i16,
    shift: u32,
) -> __m256i {
    let zero = _mm256_setzero_si256();
    let mut acc = [_mm256_set1_epi32(1 << (shift - 1)); 4];
    let mut k = 0;
    while k < len {
        // SAFETY: by the caller's promise; an odd last tap pairs with the
        // zero weight past it and reads its own row again.
        unsafe {
            let pair = weights.add(k).cast::<i32>().read_unaligned();
            let w = _mm256_set1_epi32(pair);
            let a_ptr = first.add(k * step);
            let b_ptr = if k + 1 < len { a_ptr.add(step) } else { a_ptr };
            let a = _mm256_loadu_si256(a_ptr.cast());
            let b = _mm256_loadu_si256(b_ptr.cast());
            let lo = _mm256_unpacklo_epi8(a, b);
            let hi = _mm256_unpackhi_epi8(a, b);
            let madd = |v, acc| _mm256_add_epi32(acc, _mm256_madd_epi16(v, w));
            acc[0] = madd(_mm256_unpacklo_epi8(lo, zero), acc[0]);
            acc[1] = madd(_mm256_unpackhi_epi8(lo, zero), acc[1]);
            acc[2] = madd(_mm256_unpacklo_epi8(hi, zero), acc[2]);
            acc[3] = madd(_mm256_unpackhi_epi8(hi, zero), acc[3]);
        }
        k += 2;
    }
    // The unpacks split each 128-bit lane's bytes 0-7 and 8-15 into four;
    // the packs join them back in the same order.
    let shift = _mm_cvtsi32_si128(shift as i32);
    let [a0, a1, a2, a3] = acc.map(|v| _mm256_sra_epi32(v, shift));
    _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3))
}

/// One output row of the vertical pass, 32 bytes at a time.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn vertical(
    src: &VerticalSource,
    made: Range<usize>,
    out: &mut [u8],
    acc: &mut Vec<i32>,
) {
    let width = made.len();
    let last_row = src.start + src.len.saturating_sub(1);
    let fits = width >= 32
        && made.end <= src.row_bytes
        && (src.len == 0 || (last_row + 1) * src.row_bytes <= src.bytes.len())
        && src.len.next_multiple_of(2) <= src.weights.len()
        && out.len() >= width;
    if !fits {
        return vertical_portable(src, made, out, acc);
    }
    let first = src.start * src.row_bytes + made.start;
    let end_row = src.start + src.len;
    let ahead = src.ahead.min(rows_in(src).saturating_sub(end_row));
    let mut j = 0;
    while j < width {
        // The last block of a row not a multiple of 32 wide overlaps the
        // one before: those bytes are computed twice, the same both times.
        let o = j.min(width - 32);
        // SAFETY: the rows read are in the image and `o + 32 <= width`
        // with `made.end <= row_bytes` (checked above), so every load is
        // inside its row; the store is inside `out`.
        unsafe {
            for r in end_row..end_row + ahead {
                let p = src.bytes.as_ptr().add(r * src.row_bytes + made.start + o);
                _mm_prefetch::<_MM_HINT_T0>(p.cast());
            }
            let bytes = taps32(
                src.bytes.as_ptr().add(first + o),
                src.row_bytes,
                src.len,
                src.weights.as_ptr(),
                src.shift,
            );
            _mm256_storeu_si256(out.as_mut_ptr().add(o).cast(), bytes);
        }
        j += 32;
    }
}

/// Whole rows in the image `src` reads.
fn rows_in(src: &VerticalSource) -> usize {
    src.bytes.len().checked_div(src.row_bytes).unwrap_or(0)
}

/// The horizontal pass of a band: `t` holds the band's vertical output
/// transposed (source byte column `i` at `t[i * BAND..][..BAND]`); output
/// byte column `x * 3 + c` goes to `out_t[(x * 3 + c) * BAND..][..BAND]`.
/// False (nothing written) if the taps reach past `t`.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn horizontal_band(t: &[u8], cols: &Taps, out_t: &mut [u8]) -> bool {
    let n = cols.starts.len();
    let last = cols
        .starts
        .iter()
        .zip(&cols.lens)
        .map(|(&s, &l)| (s + l) as usize)
        .max();
    let fits = BAND == 32
        && last.is_some_and(|end| end * 3 * BAND <= t.len())
        && cols.weights.len() >= n * cols.stride
        && out_t.len() >= n * 3 * BAND;
    if !fits {
        return false;
    }
    for (x, (&start, &len)) in cols.starts.iter().zip(&cols.lens).enumerate() {
        for c in 0..3 {
            // SAFETY: columns `start..start + len` of every channel lie
            // below `last`, checked against `t.len()`; the weights have
            // `stride` (a multiple of 4) per pixel, padded with zeros; the
            // store is inside `out_t`, checked above.
            unsafe {
                let bytes = taps32(
                    t.as_ptr().add((start as usize * 3 + c) * BAND),
                    3 * BAND,
                    len as usize,
                    cols.weights.as_ptr().add(x * cols.stride),
                    cols.shift,
                );
                _mm256_storeu_si256(out_t.as_mut_ptr().add((x * 3 + c) * BAND).cast(), bytes);
            }
        }
    }
    true
}

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`,
/// `c < cols`: blocks of 16 rows by 32 columns as two 16x16 byte
/// transposes side by side in the 128-bit lanes, the edges by the portable
/// code.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn transpose(
    src: &[u8],
    src_stride: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u8],
    dst_stride: usize,
) {
    let fits = rows > 0
        && cols > 0
        && cols <= src_stride
        && rows <= dst_stride
        && (rows - 1) * src_stride + cols <= src.len()
        && (cols - 1) * dst_stride + rows <= dst.len();
    if !fits {
        return transpose_portable(src, src_stride, rows, cols, dst, dst_stride);
    }
    let (rows16, cols32) = (rows / 16 * 16, cols / 32 * 32);
    for r0 in (0..rows16).step_by(16) {
        for c0 in (0..cols32).step_by(32) {
            let mut v = [_mm256_setzero_si256(); 16];
            for (i, v) in v.iter_mut().enumerate() {
                // SAFETY: row `r0 + i < rows`, columns `c0..c0 + 32` within
                // `cols`: inside `src` (checked above).
                *v = unsafe {
                    _mm256_loadu_si256(src.as_ptr().add((r0 + i) * src_stride + c0).cast())
                };
            }
            // Bytes, then pairs, fours and eights of rows interleaved: the
            // 16 rows of a lane become its 16 columns, column 2i from
            // the low halves of vectors i and i + 8 and 2i + 1 from their
            // high halves.
            let mut t = [_mm256_setzero_si256(); 16];
            for i in 0..8 {
                t[2 * i] = _mm256_unpacklo_epi8(v[2 * i], v[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_epi8(v[2 * i], v[2 * i + 1]);
            }
            for q in 0..4 {
                let b = 4 * q;
                v[b] = _mm256_unpacklo_epi16(t[b], t[b + 2]);
                v[b + 1] = _mm256_unpackhi_epi16(t[b], t[b + 2]);
                v[b + 2] = _mm256_unpacklo_epi16(t[b + 1], t[b + 3]);
                v[b + 3] = _mm256_unpackhi_epi16(t[b + 1], t[b + 3]);
            }
            for h in 0..2 {
                let b = 8 * h;
                for i in 0..4 {
                    t[b + 2 * i] = _mm256_unpacklo_epi32(v[b + i], v[b + 4 + i]);
                    t[b + 2 * i + 1] = _mm256_unpackhi_epi32(v[b + i], v[b + 4 + i]);
                }
            }
            for i in 0..8 {
                let lo = _mm256_unpacklo_epi64(t[i], t[8 + i]);
                let hi = _mm256_unpackhi_epi64(t[i], t[8 + i]);
                for (col, w) in [(2 * i, lo), (2 * i + 1, hi)] {
                    // SAFETY: columns `c0 + col` and `c0 + 16 + col` are
                    // below `cols`, rows `r0..r0 + 16` below `rows`: inside
                    // `dst` (checked above).
                    unsafe {
                        let d = dst.as_mut_ptr().add((c0 + col) * dst_stride + r0);
                        _mm_storeu_si128(d.cast(), _mm256_castsi256_si128(w));
                        let d = dst.as_mut_ptr().add((c0 + 16 + col) * dst_stride + r0);
                        _mm_storeu_si128(d.cast(), _mm256_extracti128_si256::<1>(w));
                    }
                }
            }
        }
    }
    // The edges: the columns past the whole blocks in their rows, then
    // every column of the rows past them.
    if cols32 < cols {
        let dst = &mut dst[cols32 * dst_stride..];
        transpose_portable(
            &src[cols32..],
            src_stride,
            rows16,
            cols - cols32,
            dst,
            dst_stride,
        );
    }
    if rows16 < rows {
        let src = &src[rows16 * src_stride..];
        transpose_portable(
            src,
            src_stride,
            rows - rows16,
            cols,
            &mut dst[rows16..],
            dst_stride,
        );
    }
}
