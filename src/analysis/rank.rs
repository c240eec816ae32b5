//! Order statistics of many `f64`s (medians, percentiles), exactly as
//! `select_nth_unstable_by(rank, f64::total_cmp)` would find them, but
//! faster: on integer keys of the same order, by their leading bits.

/// `v`'s place in the order of [`f64::total_cmp`], as an unsigned integer:
/// ranks are selected among integers, where a comparison is one
/// instruction and the leading bits can be counted.
pub(crate) fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    // Negative values (sign set) run backwards: all their bits flipped.
    // Others go above them all: their sign bit set.
    bits ^ (((bits as i64 >> 63) as u64) | 1 << 63)
}

/// The value whose [`order_key`] is `k`.
pub(crate) fn from_order_key(k: u64) -> f64 {
    f64::from_bits(k ^ ((((!k) as i64 >> 63) as u64) | 1 << 63))
}

/// The key `keys.select_nth_unstable(rank)` puts at `rank` (`rank` below
/// the count), leaving `keys` in some other order. The subject stage's
/// medians and the portrait checks' ranks, over tens of thousands of values
/// per photo, were a large share of both by quickselect: counting keys by
/// their leading bits (from the least key on) picks out the few in the
/// wanted bucket in two passes, and each round narrows the range by `BITS`
/// bits.
pub(crate) fn nth_smallest(keys: &mut Vec<u64>, mut rank: usize) -> u64 {
    const BITS: u32 = 11;
    loop {
        if keys.len() <= 1 << BITS {
            return *keys.select_nth_unstable(rank).1;
        }
        let (lo, hi) = key_range(keys);
        if lo == hi {
            return lo;
        }
        let shift = (u64::BITS - (hi - lo).leading_zeros()).saturating_sub(BITS);
        // `hi - lo` has at most `shift + BITS` bits, so every bucket is
        // below `1 << BITS` already: the mask changes none, and spares the
        // count a bounds check per key.
        let bucket = |k: u64| ((k - lo) >> shift) as usize & ((1 << BITS) - 1);
        let mut counts = [0u32; 1 << BITS];
        for &k in keys.iter() {
            counts[bucket(k)] += 1;
        }
        let mut wanted = 0;
        while rank >= counts[wanted] as usize {
            rank -= counts[wanted] as usize;
            wanted += 1;
        }
        keys.retain(|&k| bucket(k) == wanted);
    }
}

/// The least and the greatest of `keys` (`u64::MAX` and 0 for none),
/// taken four side by side: no branch per key, and four independent chains
/// of comparisons. One by one, with a branch per key, this was a third of
/// the selection's cost.
fn key_range(keys: &[u64]) -> (u64, u64) {
    let (mut lo, mut hi) = ([u64::MAX; 4], [0; 4]);
    let quads = keys.chunks_exact(4);
    let rest = quads.remainder();
    for quad in quads {
        for i in 0..4 {
            lo[i] = lo[i].min(quad[i]);
            hi[i] = hi[i].max(quad[i]);
        }
    }
    for &k in rest {
        lo[0] = lo[0].min(k);
        hi[0] = hi[0].max(k);
    }
    (
        lo.into_iter().fold(u64::MAX, u64::min),
        hi.into_iter().fold(0, u64::max),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_range_is_the_least_and_greatest() {
        let mut rng = crate::testkit::synth::SplitMix64::new(3);
        let keys: Vec<u64> = (0..1_003).map(|_| rng.next_u64()).collect();
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1_003] {
            let part = &keys[..n];
            let want = (
                part.iter().copied().min().unwrap_or(u64::MAX),
                part.iter().copied().max().unwrap_or(0),
            );
            assert_eq!(key_range(part), want, "{n} keys");
        }
    }

    #[test]
    fn radix_selection_picks_what_quickselect_picks() {
        let mut rng = crate::testkit::synth::SplitMix64::new(7);
        let mut next = || rng.next_u64();
        // Spread over many octaves, bunched with ties, and the odd negative
        // value, zero of either sign, infinity and NaN.
        let mut values: Vec<f64> = (0..20_000)
            .map(|i| match next() % 8 {
                0 => (next() % 50) as f64,
                1 => f64::from_bits(next() >> 2),
                _ => (next() % 1_000_000) as f64 / 997.0 + f64::from(i % 3),
            })
            .collect();
        values.extend([-1.5, -0.0, 0.0, f64::INFINITY, f64::NAN, -f64::NAN, 1e-300]);
        for n in [1, 2, 3, 100, 2_049, 5_000, values.len()] {
            let part = &values[..n];
            for rank in [0, n / 10, n / 2, n * 9 / 10, n - 1] {
                let mut want = part.to_vec();
                let want = *want.select_nth_unstable_by(rank, f64::total_cmp).1;
                let mut keys: Vec<u64> = part.iter().map(|&v| order_key(v)).collect();
                let got = from_order_key(nth_smallest(&mut keys, rank));
                assert_eq!(got.to_bits(), want.to_bits(), "{n} values, rank {rank}");
            }
        }
        // All alike: the range is empty at once.
        let mut keys = vec![order_key(2.5); 5_000];
        assert_eq!(from_order_key(nth_smallest(&mut keys, 4_321)), 2.5);
    }
}
