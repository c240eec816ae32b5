//! The sampling and the tests over a line's samples in AVX2 (checked at
//! run time), with the same results as the scalar code they stand in for,
//! which handles what they leave over.

use std::arch::x86_64::*;

use super::{Along, Planes, WINDOW_USIZE};

pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
}

/// `sample` with eight windows at a time: its steps on two windows per
/// register, as AVX2's shuffles, multiply-adds and byte shifts work on
/// each 16-byte half alone. Halves hold windows `j` and `j + 4`, so the
/// packed means come out as windows 0..4, then 4..8, per channel.
///
/// Loads are unchecked, so only a line whose every window can be read
/// whole (all but the image's last row and column) is taken here; the
/// others, and the last few windows of a line, go to
/// `Along::sample_scalar`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sample_avx2(along: &Along, starts: &[u32], out: [&mut [u8]; 3]) -> u32 {
    debug_assert_eq!(along.win, WINDOW_USIZE);
    let Along {
        bytes,
        origin,
        step,
        ..
    } = *along;
    let rows = step == 3;
    // Bytes the loads of a window read past its first: a row's 16, or
    // four at each of a column's four pixels.
    let reach = if rows {
        Some(16)
    } else {
        step.checked_mul(3).and_then(|s| s.checked_add(4))
    };
    // The furthest window decides: windows start further on with their
    // start. (A fold, unlike `max`, is vectorised.)
    let last = starts.iter().fold(0, |m, &s| m.max(s));
    let whole = !starts.is_empty() && {
        (last as usize)
            .checked_mul(step)
            .and_then(|at| at.checked_add(origin)?.checked_add(reach?))
            .is_some_and(|end| end <= bytes.len())
    };
    let done = if whole { starts.len() / 8 * 8 } else { 0 };
    let [r, g, b] = out;
    let (r, r_rest) = r.split_at_mut(done);
    let (g, g_rest) = g.split_at_mut(done);
    let (b, b_rest) = b.split_at_mut(done);
    let (starts, rest) = starts.split_at(done);
    // SAFETY: AVX2 is enabled for this function; every window at
    // `starts` is whole, checked just above.
    let ripple = unsafe {
        if rows {
            whole_eights::<true>(along, starts, [r, g, b])
        } else {
            whole_eights::<false>(along, starts, [r, g, b])
        }
    };
    ripple + along.sample_scalar(rest, [r_rest, g_rest, b_rest])
}

/// `sample_avx2` over eights of windows that are all whole; `ROWS`:
/// the line is a row (`step` is 3).
///
/// # Safety
/// The CPU must have AVX2, `starts.len()` must be a multiple of eight,
/// and each window must be whole: `origin + start * step` plus 16 bytes
/// (a row) or `3 * step + 4` (a column) within `along.bytes`.
#[target_feature(enable = "avx2")]
unsafe fn whole_eights<const ROWS: bool>(
    along: &Along,
    starts: &[u32],
    out: [&mut [u8]; 3],
) -> u32 {
    let Along {
        bytes,
        origin,
        step,
        next,
        ..
    } = *along;
    let step = if ROWS { 3 } else { step };
    let [r, g, b] = out;
    let twice = |v: [i8; 16]| -> [i8; 32] { std::array::from_fn(|k| v[k % 16]) };
    let planar = twice(if ROWS {
        [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1]
    } else {
        [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, -1, -1, -1, -1]
    });
    let inner = twice([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
    let by_channel = twice([0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15]);
    // SAFETY: AVX2 is enabled for this function; the loads read local
    // arrays of 32 bytes.
    let (planar, inner, by_channel, ones, two, first_word, halves_apart) = unsafe {
        (
            _mm256_loadu_si256(planar.as_ptr().cast()),
            _mm256_loadu_si256(inner.as_ptr().cast()),
            _mm256_loadu_si256(by_channel.as_ptr().cast()),
            _mm256_set1_epi8(1),
            _mm256_set1_epi16(2),
            _mm256_set1_epi64x(0xffff),
            // Each channel's four means of the low half, then those of
            // the high half.
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
        )
    };
    let ptr = bytes.as_ptr();
    let ahead = ptr.wrapping_offset(next);
    // SAFETY: the window at `at` is whole (this function's contract):
    // a row's 16 bytes from it, or four bytes at each of its pixels.
    let half = |at: usize| unsafe {
        if ROWS {
            _mm_loadu_si128(ptr.add(at).cast())
        } else {
            let pixel = |j: usize| ptr.add(at + j * step).cast::<i32>().read_unaligned();
            _mm_set_epi32(pixel(3), pixel(2), pixel(1), pixel(0))
        }
    };
    let mut ripple = _mm256_setzero_si256();
    let windows = starts.chunks_exact(8).zip(
        r.chunks_exact_mut(8)
            .zip(g.chunks_exact_mut(8))
            .zip(b.chunks_exact_mut(8)),
    );
    for (starts, ((r, g), b)) in windows {
        let base: [usize; 8] = std::array::from_fn(|j| origin + starts[j] as usize * step);
        // A column's next line is three bytes over, in the cache lines
        // being read now.
        if ROWS {
            for &at in &base {
                // A prefetch is only a hint: it reads nothing and never
                // faults, whatever the address.
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(at).cast());
            }
        }
        let (means, rips) = {
            let x: [__m256i; 4] =
                std::array::from_fn(|j| _mm256_set_m128i(half(base[j + 4]), half(base[j])));
            let p = x.map(|x| _mm256_shuffle_epi8(x, planar));
            let sums = p.map(|p| _mm256_maddubs_epi16(p, ones));
            let rips = p.map(|p| {
                let q = _mm256_srli_si256(p, 1);
                let d = _mm256_or_si256(_mm256_subs_epu8(p, q), _mm256_subs_epu8(q, p));
                _mm256_maddubs_epi16(d, inner)
            });
            // [r g b 0] sums of windows 0, 1 | 4, 5, then 2, 3 | 6, 7;
            // the same for the ripple.
            let sums = [
                _mm256_hadd_epi16(sums[0], sums[1]),
                _mm256_hadd_epi16(sums[2], sums[3]),
            ];
            let rips = [
                _mm256_hadd_epi16(rips[0], rips[1]),
                _mm256_hadd_epi16(rips[2], rips[3]),
            ];
            let mean = sums.map(|s| _mm256_srli_epi16(_mm256_add_epi16(s, two), 2));
            let means = _mm256_shuffle_epi8(_mm256_packus_epi16(mean[0], mean[1]), by_channel);
            let means = _mm256_permutevar8x32_epi32(means, halves_apart);
            // Largest channel of each window's ripple, in the first
            // word of its quarter.
            let rips = rips.map(|d| {
                let m = _mm256_max_epi16(d, _mm256_srli_epi64(d, 16));
                _mm256_and_si256(_mm256_max_epi16(m, _mm256_srli_epi64(d, 32)), first_word)
            });
            (means, _mm256_add_epi32(rips[0], rips[1]))
        };
        let mut lanes = [0u8; 32];
        // SAFETY: AVX store of 32 bytes to a local array of 32.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), means) };
        r.copy_from_slice(&lanes[0..8]);
        g.copy_from_slice(&lanes[8..16]);
        b.copy_from_slice(&lanes[16..24]);
        ripple = _mm256_add_epi32(ripple, rips);
    }
    let mut sums = [0u32; 8];
    // SAFETY: AVX store of 32 bytes to a local array of 32.
    unsafe { _mm256_storeu_si256(sums.as_mut_ptr().cast(), ripple) };
    sums.iter().sum()
}

/// Byte counters are emptied after this many additions, before they
/// can wrap.
const COUNTER_FILLS: usize = 255;

/// Whole 32s of samples in runs short enough for byte counters (at
/// most `COUNTER_FILLS` additions each), every channel in a register;
/// and the samples left over (fewer than 32), for the scalar code.
fn runs_of_32(px: Planes<'_>) -> (impl Iterator<Item = [&[u8]; 3]> + '_, Planes<'_>) {
    let n = px.iter().map(|p| p.len()).min().unwrap_or(0);
    let whole = n / 32 * 32;
    let [r, g, b] = px.map(|p| p[..whole].chunks(32 * COUNTER_FILLS));
    let runs = r.zip(g).zip(b).map(|((r, g), b)| [r, g, b]);
    (runs, px.map(|p| &p[whole..n]))
}

/// The 32s of samples of a run, every channel.
fn thirty_twos(run: [&[u8]; 3]) -> impl Iterator<Item = [&[u8]; 3]> {
    let [r, g, b] = run.map(|p| p.chunks_exact(32));
    r.zip(g).zip(b).map(|((r, g), b)| [r, g, b])
}

/// Sum of the four 64-bit lanes of `v`.
#[target_feature(enable = "avx2")]
fn lane_sum(v: __m256i) -> u64 {
    let halves = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    (_mm_cvtsi128_si64(halves) + _mm_extract_epi64(halves, 1)) as u64
}

/// Sum of the bytes of `v`.
#[target_feature(enable = "avx2")]
fn byte_sum_avx2(v: __m256i) -> u32 {
    lane_sum(_mm256_sad_epu8(v, _mm256_setzero_si256())) as u32
}

/// `counts_at_most`, 32 samples of each channel at a time.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn counts_at_most_avx2(px: Planes, t: [u8; 3]) -> [u32; 3] {
    let limit = t.map(|t| _mm256_set1_epi8(t as i8));
    let (runs, rest) = runs_of_32(px);
    let mut counts = [0; 3];
    for [r, g, b] in runs {
        let mut counters = [_mm256_setzero_si256(); 3];
        for [r, g, b] in thirty_twos([r, g, b]) {
            let count = |counter: __m256i, x: &[u8], limit: __m256i| {
                // SAFETY: AVX load of 32 bytes from a chunk of 32.
                let x = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
                _mm256_sub_epi8(counter, _mm256_cmpeq_epi8(_mm256_min_epu8(x, limit), x))
            };
            counters = [
                count(counters[0], r, limit[0]),
                count(counters[1], g, limit[1]),
                count(counters[2], b, limit[2]),
            ];
        }
        for c in 0..3 {
            counts[c] += byte_sum_avx2(counters[c]);
        }
    }
    // Most lines have a multiple of 32 samples: no call for nothing.
    if !rest[0].is_empty() {
        let tail = super::counts_at_most_scalar(rest, t);
        for c in 0..3 {
            counts[c] += tail[c];
        }
    }
    counts
}

/// `near_and_deviation`, 32 samples at a time.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn near_and_deviation_avx2(px: Planes, colour: [u8; 3], tol: u8) -> (u32, u32) {
    let (runs, rest) = runs_of_32(px);
    let (mut near, mut dev) = if rest[0].is_empty() {
        (0, 0)
    } else {
        super::near_and_deviation_scalar(rest, colour, tol)
    };
    let colour = colour.map(|c| _mm256_set1_epi8(c as i8));
    let tol = _mm256_set1_epi8(tol as i8);
    for [r, g, b] in runs {
        let (mut counter, mut sums) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for [r, g, b] in thirty_twos([r, g, b]) {
            let diff = |x: &[u8], y: __m256i| {
                // SAFETY: AVX load of 32 bytes from a chunk of 32.
                let x = unsafe { _mm256_loadu_si256(x.as_ptr().cast()) };
                _mm256_or_si256(_mm256_subs_epu8(x, y), _mm256_subs_epu8(y, x))
            };
            let d = _mm256_max_epu8(
                _mm256_max_epu8(diff(r, colour[0]), diff(g, colour[1])),
                diff(b, colour[2]),
            );
            let near = _mm256_cmpeq_epi8(_mm256_min_epu8(d, tol), d);
            counter = _mm256_sub_epi8(counter, near);
            sums = _mm256_add_epi64(sums, _mm256_sad_epu8(d, _mm256_setzero_si256()));
        }
        near += byte_sum_avx2(counter);
        dev += lane_sum(sums) as u32;
    }
    (near, dev)
}
