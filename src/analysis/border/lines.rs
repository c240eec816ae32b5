//! A line of the image parallel to one side, sampled in windows along its
//! length, and the statistics the frame search takes of it (median colour,
//! how many samples lie near a colour, deviation). AVX2 kernels ([`avx2`]),
//! chosen at run time, give the same results as the scalar code here, which
//! also takes what they leave over.

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;

/// Pixels averaged along a line into one sample: an ordered dither (palette
/// PNGs) repeats within four pixels, so its lines come out as even as the
/// colour it stands for, and sensor noise is damped the same way.
pub(super) const WINDOW: u32 = 4;
pub(super) const WINDOW_USIZE: usize = WINDOW as usize;

/// Channel sums of the `win` pixels of `window` (`step` bytes apart), and
/// the sums of differences between neighbours (the window's ripple).
#[inline(always)]
pub(super) fn window_sums(window: &[u8], step: usize, win: usize) -> ([u32; 3], [u32; 3]) {
    let pixel = |j: usize| &window[j * step..j * step + 3];
    let mut prev = pixel(0);
    let mut acc = [0u32; 3];
    let mut rip = [0u32; 3];
    for c in 0..3 {
        acc[c] = u32::from(prev[c]);
    }
    for j in 1..win {
        let px = pixel(j);
        for c in 0..3 {
            acc[c] += u32::from(px[c]);
            rip[c] += u32::from(px[c].abs_diff(prev[c]));
        }
        prev = px;
    }
    (acc, rip)
}

/// One line's samples, channel by channel (red, green, blue), so the tests
/// over a line's samples vectorise.
pub(super) type Planes<'a> = [&'a [u8]; 3];

/// Where a line lies in the image's bytes: the offset of its first pixel,
/// the step between pixels along it, and the window length.
pub(super) struct Along<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) origin: usize,
    pub(super) step: usize,
    pub(super) win: usize,
    /// From this line to the next one inward, in bytes: where the search
    /// most likely reads next.
    pub(super) next: isize,
}

impl Along<'_> {
    /// Writes the mean of the window at each of `starts` into `out` (all
    /// reds, then greens, then blues); returns the sum over windows of their
    /// ripple (largest channel).
    pub(super) fn sample(&self, starts: &[u32], out: &mut [u8]) -> u32 {
        let n = starts.len();
        let (r, gb) = out.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        #[cfg(target_arch = "x86_64")]
        if self.win == WINDOW_USIZE && avx2::has_avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2::sample_avx2(self, starts, [r, g, b]) };
        }
        self.sample_scalar(starts, [r, g, b])
    }

    /// `sample`, one window at a time; `out` holds one sample per window
    /// in each channel.
    pub(super) fn sample_scalar(&self, starts: &[u32], out: [&mut [u8]; 3]) -> u32 {
        let Along {
            bytes,
            origin,
            step,
            win,
            ..
        } = *self;
        let half = (win / 2) as u32;
        // Division by `win` as a multiplication, exact for every sum a
        // window can reach (sum * win < 2^32): no hardware divide per
        // channel and sample.
        let reciprocal = (1u64 << 32).div_ceil(win as u64);
        let mean = |sum: u32| ((u64::from(sum + half) * reciprocal) >> 32).min(255) as u8;
        let span = (win - 1) * step + 3;
        let mut ripple = 0u32;
        let [r, g, b] = out;
        for (k, &start) in starts.iter().enumerate() {
            let (mut acc, mut rip) = ([0u32; 3], [0u32; 3]);
            let base = origin + start as usize * step;
            // `reset` spaces the windows inside the line, so a window is
            // always whole; one that were not would count as black.
            if let Some(window) = bytes.get(base..base + span) {
                // The usual window size as a constant, so that copy of the
                // loop is unrolled.
                (acc, rip) = match win {
                    WINDOW_USIZE => window_sums(window, step, WINDOW_USIZE),
                    _ => window_sums(window, step, win),
                };
            }
            ripple += rip.into_iter().max().unwrap_or(0);
            (r[k], g[k], b[k]) = (mean(acc[0]), mean(acc[1]), mean(acc[2]));
        }
        ripple
    }
}

/// Largest channel difference.
pub(super) fn distance(a: [u8; 3], b: [u8; 3]) -> u8 {
    (0..3).map(|c| a[c].abs_diff(b[c])).max().unwrap_or(0)
}

pub(super) fn close(a: [u8; 3], b: [u8; 3], tol: u8) -> bool {
    a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= tol)
}

/// Per-channel median: the least value that at least half the samples are
/// at most, found by halving the range of values (exact, and the same work
/// for any line).
pub(super) fn median(px: Planes) -> [u8; 3] {
    median_within(px, [0; 3], [255; 3])
}

/// `median`, for a line whose median is likely `guess` (its outer
/// neighbour's): two counts settle it when it is, instead of eight.
pub(super) fn median_near(px: Planes, guess: [u8; 3]) -> [u8; 3] {
    let half = px[0].len().div_ceil(2) as u32;
    let at = counts_at_most(px, guess);
    let below = counts_at_most(px, guess.map(|g| g.saturating_sub(1)));
    let (mut lo, mut hi) = ([0u8; 3], [255u8; 3]);
    for c in 0..3 {
        let g = guess[c];
        if at[c] < half {
            // All samples are at most 255, so `g` is below it here.
            lo[c] = g.saturating_add(1);
        } else if g > 0 && below[c] >= half {
            hi[c] = g - 1;
        } else {
            (lo[c], hi[c]) = (g, g);
        }
    }
    median_within(px, lo, hi)
}

/// `median`, known to lie in `lo..=hi` per channel.
pub(super) fn median_within(px: Planes, mut lo: [u8; 3], mut hi: [u8; 3]) -> [u8; 3] {
    let half = px[0].len().div_ceil(2) as u32;
    while lo != hi {
        let mid: [u8; 3] = std::array::from_fn(|c| lo[c] + (hi[c] - lo[c]) / 2);
        let counts = counts_at_most(px, mid);
        for c in 0..3 {
            if counts[c] >= half {
                hi[c] = mid[c];
            } else if lo[c] < hi[c] {
                lo[c] = mid[c] + 1;
            }
        }
    }
    lo
}

/// Per channel, the samples at most `t`.
pub(super) fn counts_at_most(px: Planes, t: [u8; 3]) -> [u32; 3] {
    #[cfg(target_arch = "x86_64")]
    if avx2::has_avx2() {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2::counts_at_most_avx2(px, t) };
    }
    counts_at_most_scalar(px, t)
}

pub(super) fn counts_at_most_scalar(px: Planes, t: [u8; 3]) -> [u32; 3] {
    std::array::from_fn(|c| px[c].iter().filter(|&&x| x <= t[c]).count() as u32)
}

/// The samples within `tol` of `colour` (every channel), and the sum over
/// samples of the largest channel difference.
pub(super) fn near_and_deviation(px: Planes, colour: [u8; 3], tol: u8) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    if avx2::has_avx2() {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2::near_and_deviation_avx2(px, colour, tol) };
    }
    near_and_deviation_scalar(px, colour, tol)
}

pub(super) fn near_and_deviation_scalar(px: Planes, colour: [u8; 3], tol: u8) -> (u32, u32) {
    let [r, g, b] = px;
    r.iter()
        .zip(g)
        .zip(b)
        .map(|((&r, &g), &b)| distance([r, g, b], colour))
        .fold((0, 0), |(near, dev), d| {
            (near + u32::from(d <= tol), dev + u32::from(d))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random bytes, some runs of one value (a flat frame), some of a few
    /// values close together (noise), so both kinds of line are covered.
    fn random_bytes(rng: &mut crate::testkit::synth::SplitMix64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let run = 1 + (rng.next_u64() % 40) as usize;
            let base = rng.next_u64() as u8;
            let spread: u64 = [0, 3, 255][(rng.next_u64() % 3) as usize];
            for _ in 0..run.min(len - out.len()) {
                let jitter = (rng.next_u64() % (spread + 1)) as u8;
                out.push(base.wrapping_add(jitter));
            }
        }
        out
    }

    /// `n` samples of each channel, as `Along::sample_scalar` writes them.
    fn planes_mut(out: &mut [u8], n: usize) -> [&mut [u8]; 3] {
        let (r, gb) = out.split_at_mut(n);
        let (g, b) = gb.split_at_mut(n);
        [r, g, b]
    }

    type SampleKernel = fn(&Along, &[u32], [&mut [u8]; 3]) -> u32;

    /// Each SIMD kernel for windows of four pixels this CPU can run, not
    /// only the one `Along::sample` picks.
    fn sample_kernels() -> Vec<(&'static str, SampleKernel)> {
        let mut kernels: Vec<(&'static str, SampleKernel)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if avx2::has_avx2() {
                // SAFETY: the CPU has AVX2, checked just above.
                kernels.push(("avx2", |a, s, o| unsafe { avx2::sample_avx2(a, s, o) }));
            }
        }
        kernels
    }

    #[test]
    fn sampling_is_the_same_with_and_without_simd() {
        let mut rng = crate::testkit::synth::SplitMix64::new(21);
        let sizes = [
            (1, 1),
            (1, 9),
            (9, 1),
            (2, 5),
            (4, 4),
            (5, 7),
            (6, 3),
            (17, 11),
            (64, 33),
            (301, 5),
        ];
        for (w, h) in sizes {
            let bytes = random_bytes(&mut rng, w * h * 3);
            // Rows and columns, the first and the last (whose last window
            // ends with the image's bytes).
            let lines = [
                (0, 3, w),
                ((h - 1) * w * 3, 3, w),
                (0, w * 3, h),
                ((w - 1) * 3, w * 3, h),
            ];
            for (origin, step, len) in lines {
                for win in 1..=WINDOW_USIZE.min(len) {
                    let along = Along {
                        bytes: &bytes,
                        origin,
                        step,
                        win,
                        next: 3,
                    };
                    // Every window position, a few random ones, the last,
                    // and some past the line's end (black where that is
                    // past the image's bytes).
                    let last = (len - win) as u32;
                    let mut starts: Vec<u32> = (0..=last).collect();
                    starts.extend((0..37).map(|_| (rng.next_u64() % u64::from(last + 1)) as u32));
                    starts.extend([last, last + 1, last + 5, last]);
                    // The last few (past the line's end among them) and
                    // the first few; lengths about the kernels' four and
                    // eight windows at a time.
                    let lengths = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33];
                    let tails = lengths.map(|n| starts.len() - n);
                    let slices = std::iter::once(&starts[..])
                        .chain(tails.iter().map(|&t| &starts[t..]))
                        .chain(lengths.iter().map(|&n| &starts[..n]));
                    for starts in slices {
                        let n = starts.len();
                        let mut slow = vec![0u8; 3 * n];
                        let slow_ripple = along.sample_scalar(starts, planes_mut(&mut slow, n));
                        let mut fast = vec![0u8; 3 * n];
                        let ripple = along.sample(starts, &mut fast);
                        let at = format!("{w}x{h} origin {origin} step {step} win {win} n {n}");
                        assert_eq!((&fast, ripple), (&slow, slow_ripple), "{at}");
                        if win != WINDOW_USIZE {
                            continue;
                        }
                        for (name, kernel) in sample_kernels() {
                            let mut fast = vec![0u8; 3 * n];
                            let ripple = kernel(&along, starts, planes_mut(&mut fast, n));
                            assert_eq!((&fast, ripple), (&slow, slow_ripple), "{name} {at}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn median_from_a_guess_is_the_median() {
        let mut rng = crate::testkit::synth::SplitMix64::new(23);
        for n in [0, 1, 2, 3, 16, 17, 256, 300] {
            for spread in [0u8, 1, 3, 255] {
                let base = rng.next_u64() as u8;
                let planes: Vec<Vec<u8>> = (0..3)
                    .map(|_| {
                        (0..n)
                            .map(|_| {
                                let d = (rng.next_u64() % (u64::from(spread) + 1)) as u8;
                                base.saturating_add(d)
                            })
                            .collect()
                    })
                    .collect();
                let px: Planes = [&planes[0], &planes[1], &planes[2]];
                let want = median(px);
                let mut guesses = vec![want, [0; 3], [255; 3]];
                guesses.extend((0..20).map(|_| {
                    std::array::from_fn(|c| {
                        let step = (rng.next_u64() % 5) as u8;
                        if rng.next_u64().is_multiple_of(2) {
                            want[c].saturating_add(step)
                        } else {
                            want[c].saturating_sub(step)
                        }
                    })
                }));
                guesses.extend((0..5).map(|_| std::array::from_fn(|_| rng.next_u64() as u8)));
                for g in guesses {
                    assert_eq!(median_near(px, g), want, "n {n} guess {g:?}");
                }
            }
        }
    }

    #[test]
    fn line_tests_are_the_same_with_and_without_simd() {
        let mut rng = crate::testkit::synth::SplitMix64::new(22);
        // Past 32 * 255 samples the AVX2 byte counters are emptied on the
        // way.
        let lengths = [0, 1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 100, 256, 257];
        let long = [4079, 4080, 4081, 8159, 8160, 8161, 8191, 9000, 17000];
        for n in lengths.into_iter().chain(long) {
            for flat in [false, true] {
                let planes: Vec<Vec<u8>> = (0..3)
                    .map(|_| {
                        let v = random_bytes(&mut rng, n);
                        if flat {
                            vec![v.first().copied().unwrap_or(7); n]
                        } else {
                            v
                        }
                    })
                    .collect();
                let px: Planes = [&planes[0], &planes[1], &planes[2]];
                for _ in 0..20 {
                    let t: [u8; 3] = std::array::from_fn(|_| rng.next_u64() as u8);
                    let colour: [u8; 3] = std::array::from_fn(|_| rng.next_u64() as u8);
                    let tol = [0, 1, 8, 32, 40, 254, 255][(rng.next_u64() % 7) as usize];
                    for t in [t, [0; 3], [255; 3], colour] {
                        let want = counts_at_most_scalar(px, t);
                        assert_eq!(counts_at_most(px, t), want, "n {n}");
                        #[cfg(target_arch = "x86_64")]
                        if avx2::has_avx2() {
                            // SAFETY: the CPU has AVX2, checked just above.
                            let got = unsafe { avx2::counts_at_most_avx2(px, t) };
                            assert_eq!(got, want, "avx2, n {n}");
                        }
                    }
                    let want = near_and_deviation_scalar(px, colour, tol);
                    assert_eq!(near_and_deviation(px, colour, tol), want, "n {n} tol {tol}");
                    #[cfg(target_arch = "x86_64")]
                    if avx2::has_avx2() {
                        // SAFETY: the CPU has AVX2, checked just above.
                        let got = unsafe { avx2::near_and_deviation_avx2(px, colour, tol) };
                        assert_eq!(got, want, "avx2, n {n} tol {tol}");
                    }
                }
                // The lower median, as the counts used to find it.
                let want: [u8; 3] = std::array::from_fn(|c| {
                    let mut sorted = planes[c].clone();
                    sorted.sort_unstable();
                    sorted
                        .get(n.div_ceil(2).saturating_sub(1))
                        .copied()
                        .unwrap_or(0)
                });
                assert_eq!(median(px), want, "n {n}");
            }
        }
    }
}
