//! Colour science the checks speak in: sRGB → CIELAB (D65) and CIEDE2000,
//! the distance the registry's tolerance is naturally stated in.

/// Linear-light value of one 8-bit sRGB channel (IEC 61966-2-1).
fn srgb_to_linear(c: u8) -> f64 {
    let v = f64::from(c) / 255.0;
    if v <= 0.040_45 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// CIELAB of an sRGB colour, reference white D65 (the sRGB white point, so no
/// chromatic adaptation is involved).
pub fn srgb_to_lab(rgb: [u8; 3]) -> [f64; 3] {
    linear_to_lab(rgb.map(srgb_to_linear))
}

/// CIE L*a*b* (D65) of linear-light sRGB components.
fn linear_to_lab(rgb: [f64; 3]) -> [f64; 3] {
    lab_of(white_relative_xyz(rgb).map(compand))
}

// The conversion in three steps, each one colour or one channel at a time,
// so that [`LabTable::lab_all`] can run each over many colours in a plain
// loop the compiler vectorises, with exactly the arithmetic one colour gets.

/// CIE XYZ of linear-light sRGB, relative to the D65 white.
#[inline(always)]
fn white_relative_xyz([r, g, b]: [f64; 3]) -> [f64; 3] {
    let x = 0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175_0 * b;
    let z = 0.019_333_9 * r + 0.119_192_0 * g + 0.950_304_1 * b;
    [x / 0.950_47, y, z / 1.088_83]
}

/// The CIELAB companding function of one white-relative XYZ channel.
#[inline(always)]
fn compand(t: f64) -> f64 {
    const E: f64 = 216.0 / 24_389.0;
    const K: f64 = 24_389.0 / 27.0;
    if t > E {
        cube_root(t)
    } else {
        (K * t + 16.0) / 116.0
    }
}

/// L*, a*, b* from the companded channels.
#[inline(always)]
fn lab_of([fx, fy, fz]: [f64; 3]) -> [f64; 3] {
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// Cube root of a positive, finite value. The analysis converts every pixel
/// of its working images, and the library `cbrt` was the largest single cost
/// of the analysis; this one is a few multiplications and two divisions, in
/// plain IEEE arithmetic, so it is the same on every machine.
#[inline(always)]
fn cube_root(t: f64) -> f64 {
    // Dividing the exponent by three through the bit pattern gives a guess
    // within a few per cent; each Halley step then triples the correct digits
    // (3% -> 1e-5 -> 1e-15).
    let mut y = f64::from_bits(third_of_bits(t.to_bits()) + 0x2A9F_7893_782D_A1CE);
    for _ in 0..2 {
        let y3 = y * y * y;
        y *= (y3 + 2.0 * t) / (2.0 * y3 + t);
    }
    y
}

/// `bits / 3` for the bit pattern of a non-negative double, in operations a
/// vector unit has (AVX2 has no 64-bit division, nor the high half of a
/// 64-bit product a division by a constant becomes). With `e` the exponent
/// field and `m` the mantissa, `bits = e (2^52 - 1) + (e + m)`, and 3
/// divides `2^52 - 1`; `e + m` is below 2^53, so it and its third are
/// doubles, and the third's floor is exact: the quotient is below 2^51,
/// where doubles are a quarter apart or closer, so a remainder of 1/3 or
/// 2/3 rounds to within 1/8 of itself, never to a whole number.
#[inline(always)]
fn third_of_bits(bits: u64) -> u64 {
    const MANTISSA: u64 = (1 << 52) - 1;
    let (e, m) = (bits >> 52, bits & MANTISSA);
    let q = ((small_to_f64(e) + small_to_f64(m)) / 3.0).floor();
    e * (MANTISSA / 3) + whole_to_u64(q)
}

/// 2^52, whose ulp is 1: an integer below it OR-ed into its mantissa, or a
/// whole number below it added to it, gives 2^52 plus that number exactly,
/// so the two functions below convert between integers and floats exactly
/// in operations with vector forms (AVX2 has no 64-bit conversions).
const TWO_52: f64 = 4_503_599_627_370_496.0;

/// `i as f64` for `i` below 2^52.
#[inline(always)]
fn small_to_f64(i: u64) -> f64 {
    f64::from_bits(TWO_52.to_bits() | i) - TWO_52
}

/// `x as u64` for a whole `x` in 0..2^52.
#[inline(always)]
fn whole_to_u64(x: f64) -> u64 {
    (x + TWO_52).to_bits() - TWO_52.to_bits()
}

/// Fast lookup for the per-pixel conversions of the analysis stages.
pub(crate) struct LabTable {
    lin: [f64; 256],
}

impl LabTable {
    /// Colours converted per step of [`LabTable::lab_all`]: its buffers
    /// stay in the first-level cache.
    const BATCH: usize = 64;

    pub(crate) fn new() -> Self {
        let mut lin = [0.0; 256];
        for (i, v) in lin.iter_mut().enumerate() {
            *v = srgb_to_linear(i as u8);
        }
        LabTable { lin }
    }

    /// Linear light of a fractional (box-averaged) sRGB channel value,
    /// interpolated in the table.
    #[inline(always)]
    fn linear(&self, v: f32) -> f64 {
        let v = f64::from(v.clamp(0.0, 255.0));
        // The same index as a cast to an integer, without the cast's checks
        // for out-of-range values, which kept the loop from vectorising. The
        // `min` keeps even a NaN in the table.
        let whole = v.floor();
        let i = whole_to_u64(whole).min(255) as usize;
        let j = (i + 1).min(255);
        let t = v - whole;
        self.lin[i] * (1.0 - t) + self.lin[j] * t
    }

    /// Same as [`srgb_to_lab`] for fractional (box-averaged) sRGB values.
    pub(crate) fn lab_f(&self, rgb: [f32; 3]) -> [f64; 3] {
        linear_to_lab(rgb.map(|v| self.linear(v)))
    }

    /// [`LabTable::lab_f`] of every colour of `px`, as an AVX2 build of the
    /// same code where the CPU has AVX2 (runtime check): the same operations
    /// on each value, four values at a time, so the very same results.
    pub(crate) fn lab_all(&self, px: &[[f32; 3]]) -> Vec<[f64; 3]> {
        let mut out = Vec::with_capacity(px.len());
        self.lab_extend(px, &mut out);
        out
    }

    /// [`LabTable::lab_all`] appended to `out`: the portrait checks convert
    /// a thousand short stretches a photo into one store.
    pub(crate) fn lab_extend(&self, px: &[[f32; 3]], out: &mut Vec<[f64; 3]>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been found to support AVX2.
            return unsafe { self.lab_extend_avx2(px, out) };
        }
        self.lab_extend_portable(px, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn lab_extend_avx2(&self, px: &[[f32; 3]], out: &mut Vec<[f64; 3]>) {
        self.lab_extend_portable(px, out)
    }

    /// Step by step over a batch of colours, channel by channel, each step
    /// a plain loop over values.
    #[inline(always)]
    fn lab_extend_portable(&self, px: &[[f32; 3]], out: &mut Vec<[f64; 3]>) {
        out.reserve(px.len());
        for batch in px.chunks(Self::BATCH) {
            let n = batch.len();
            let mut lin = [0.0f64; 3 * Self::BATCH];
            for (l, &v) in lin.iter_mut().zip(batch.as_flattened()) {
                *l = self.linear(v);
            }
            let mut t = [[0.0f64; Self::BATCH]; 3];
            for (k, l) in lin[..3 * n].chunks_exact(3).enumerate() {
                let xyz = white_relative_xyz([l[0], l[1], l[2]]);
                for c in 0..3 {
                    t[c][k] = xyz[c];
                }
            }
            for channel in &mut t {
                for v in &mut channel[..n] {
                    *v = compand(*v);
                }
            }
            out.extend((0..n).map(|k| lab_of([t[0][k], t[1][k], t[2][k]])));
        }
    }
}

/// The square of the Euclidean (CIE76) distance: cheap enough for every
/// pixel of a working image, used where only "near or far" matters.
/// Compared with [`squared_bound`] of a distance, it tells exactly what the
/// distance (its `sqrt`) would, and ranks exactly as the distances do,
/// without a square root per pixel (the analysis's passes over the working
/// copy waited on them).
#[inline(always)]
pub(crate) fn delta_e76_squared(a: [f64; 3], b: [f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// The largest `s` whose square root, as `f64::sqrt` rounds it, is at most
/// `t`: for every `s >= 0` (and NaN), `s.sqrt() > t` exactly when
/// `s > squared_bound(t)`, and `s.sqrt() <= t` exactly when
/// `s <= squared_bound(t)`, because correctly rounded square roots never
/// decrease as `s` grows. `t * t` is within an ulp or two of it.
pub(crate) fn squared_bound(t: f64) -> f64 {
    if t.is_nan() || t == f64::INFINITY {
        return t;
    }
    if t < 0.0 {
        // No root is negative: every `s >= 0` is beyond.
        return -1.0;
    }
    let mut s = t * t;
    while s.sqrt() > t {
        s = next_toward_zero(s);
    }
    while next_away_from_zero(s).sqrt() <= t {
        s = next_away_from_zero(s);
    }
    s
}

/// The next double above a positive finite `s` (the least one for zero).
fn next_away_from_zero(s: f64) -> f64 {
    f64::from_bits(s.to_bits() + 1)
}

/// The next double below a positive `s`.
fn next_toward_zero(s: f64) -> f64 {
    f64::from_bits(s.to_bits() - 1)
}

/// CIEDE2000 colour difference with kL = kC = kH = 1, following Sharma, Wu
/// and Dalal (2005), including their notes on hue angles at the 0/360 seam.
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let c1 = a1.hypot(b1);
    let c2 = a2.hypot(b2);
    let c_bar = (c1 + c2) / 2.0;
    let c7 = c_bar.powi(7);
    let g = 0.5 * (1.0 - (c7 / (c7 + 25f64.powi(7))).sqrt());
    let a1p = (1.0 + g) * a1;
    let a2p = (1.0 + g) * a2;
    let c1p = a1p.hypot(b1);
    let c2p = a2p.hypot(b2);
    let hue = |b: f64, a: f64| {
        if a == 0.0 && b == 0.0 {
            0.0
        } else {
            let h = b.atan2(a).to_degrees();
            if h < 0.0 { h + 360.0 } else { h }
        }
    };
    let h1p = hue(b1, a1p);
    let h2p = hue(b2, a2p);

    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh_angle = if c1p * c2p == 0.0 {
        0.0
    } else {
        let d = h2p - h1p;
        if d.abs() <= 180.0 {
            d
        } else if d > 180.0 {
            d - 360.0
        } else {
            d + 360.0
        }
    };
    let dh = 2.0 * (c1p * c2p).sqrt() * (dh_angle.to_radians() / 2.0).sin();

    let l_bar = (l1 + l2) / 2.0;
    let cp_bar = (c1p + c2p) / 2.0;
    let hp_bar = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    // The four cosines of multiples of the mean hue, from one sine and
    // cosine by the multiple-angle identities: the backdrop stage scores
    // thousands of pixels with this, and libm's trigonometry was most of it.
    let (s1, c1) = hp_bar.to_radians().sin_cos();
    let (s2, c2) = (2.0 * s1 * c1, 2.0 * c1 * c1 - 1.0);
    let (s3, c3) = (s1 * (3.0 - 4.0 * s1 * s1), c1 * (4.0 * c1 * c1 - 3.0));
    let (s4, c4) = (2.0 * s2 * c2, 2.0 * c2 * c2 - 1.0);
    // cos(x - d) = cos x cos d + sin x sin d, for the formula's offsets of
    // 30, -6 and 63 degrees.
    const COS_SIN_30: (f64, f64) = (0.8660254037844387, 0.5);
    const COS_SIN_MINUS_6: (f64, f64) = (0.9945218953682733, -0.10452846326765347);
    const COS_SIN_63: (f64, f64) = (0.4539904997395468, 0.8910065241883678);
    let shifted = |c: f64, s: f64, (cd, sd): (f64, f64)| c * cd + s * sd;
    let t = 1.0 - 0.17 * shifted(c1, s1, COS_SIN_30)
        + 0.24 * c2
        + 0.32 * shifted(c3, s3, COS_SIN_MINUS_6)
        - 0.20 * shifted(c4, s4, COS_SIN_63);
    let d_theta = 30.0 * (-((hp_bar - 275.0) / 25.0).powi(2)).exp();
    let cp7 = cp_bar.powi(7);
    let rc = 2.0 * (cp7 / (cp7 + 25f64.powi(7))).sqrt();
    let lb50 = (l_bar - 50.0).powi(2);
    let sl = 1.0 + 0.015 * lb50 / (20.0 + lb50).sqrt();
    let sc = 1.0 + 0.045 * cp_bar;
    let sh = 1.0 + 0.015 * cp_bar * t;
    let rt = -(2.0 * d_theta).to_radians().sin() * rc;
    let (ql, qc, qh) = (dl / sl, dc / sc, dh / sh);
    (ql * ql + qc * qc + qh * qh + rt * qc * qh).max(0.0).sqrt()
}

/// A plain name for a colour, for reasons a secretary reads ("red", "grey").
pub(crate) fn colour_name(lab: [f64; 3]) -> &'static str {
    let [l, a, b] = lab;
    let chroma = a.hypot(b);
    if chroma < 12.0 {
        return if l > 85.0 {
            "white"
        } else if l < 20.0 {
            "black"
        } else {
            "grey"
        };
    }
    let h = {
        let h = b.atan2(a).to_degrees();
        if h < 0.0 { h + 360.0 } else { h }
    };
    match h {
        h if h < 20.0 => "pink",
        h if h < 50.0 => "red",
        h if h < 75.0 => "orange",
        h if h < 105.0 => "yellow",
        h if h < 165.0 => "green",
        h if h < 215.0 => "cyan",
        h if h < 300.0 => "blue",
        h if h < 345.0 => "purple",
        _ => "pink",
    }
}

/// Hue angle in degrees, 0..360.
pub(crate) fn hue_deg(lab: [f64; 3]) -> f64 {
    let h = lab[2].atan2(lab[1]).to_degrees();
    if h < 0.0 { h + 360.0 } else { h }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sharma, Wu, Dalal (2005), Table 1: the published CIEDE2000 test data.
    const SHARMA: [([f64; 3], [f64; 3], f64); 34] = [
        ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
        ([50.0, 3.1571, -77.2803], [50.0, 0.0, -82.7485], 2.8615),
        ([50.0, 2.8361, -74.0200], [50.0, 0.0, -82.7485], 3.4412),
        ([50.0, -1.3802, -84.2814], [50.0, 0.0, -82.7485], 1.0000),
        ([50.0, -1.1848, -84.8006], [50.0, 0.0, -82.7485], 1.0000),
        ([50.0, -0.9009, -85.5211], [50.0, 0.0, -82.7485], 1.0000),
        ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
        ([50.0, -1.0, 2.0], [50.0, 0.0, 0.0], 2.3669),
        ([50.0, 2.4900, -0.0010], [50.0, -2.4900, 0.0009], 7.1792),
        ([50.0, 2.4900, -0.0010], [50.0, -2.4900, 0.0010], 7.1792),
        ([50.0, 2.4900, -0.0010], [50.0, -2.4900, 0.0011], 7.2195),
        ([50.0, 2.4900, -0.0010], [50.0, -2.4900, 0.0012], 7.2195),
        ([50.0, -0.0010, 2.4900], [50.0, 0.0009, -2.4900], 4.8045),
        ([50.0, -0.0010, 2.4900], [50.0, 0.0010, -2.4900], 4.8045),
        ([50.0, -0.0010, 2.4900], [50.0, 0.0011, -2.4900], 4.7461),
        ([50.0, 2.5, 0.0], [50.0, 0.0, -2.5], 4.3065),
        ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
        ([50.0, 2.5, 0.0], [61.0, -5.0, 29.0], 22.8977),
        ([50.0, 2.5, 0.0], [56.0, -27.0, -3.0], 31.9030),
        ([50.0, 2.5, 0.0], [58.0, 24.0, 15.0], 19.4535),
        ([50.0, 2.5, 0.0], [50.0, 3.1736, 0.5854], 1.0000),
        ([50.0, 2.5, 0.0], [50.0, 3.2972, 0.0], 1.0000),
        ([50.0, 2.5, 0.0], [50.0, 1.8634, 0.5757], 1.0000),
        ([50.0, 2.5, 0.0], [50.0, 3.2592, 0.3350], 1.0000),
        (
            [60.2574, -34.0099, 36.2677],
            [60.4626, -34.1751, 39.4387],
            1.2644,
        ),
        (
            [63.0109, -31.0961, -5.8663],
            [62.8187, -29.7946, -4.0864],
            1.2630,
        ),
        (
            [61.2901, 3.7196, -5.3901],
            [61.4292, 2.2480, -4.9620],
            1.8731,
        ),
        (
            [35.0831, -44.1164, 3.7933],
            [35.0232, -40.0716, 1.5901],
            1.8645,
        ),
        (
            [22.7233, 20.0904, -46.6940],
            [23.0331, 14.9730, -42.5619],
            2.0373,
        ),
        (
            [36.4612, 47.8580, 18.3852],
            [36.2715, 50.5065, 21.2231],
            1.4146,
        ),
        (
            [90.8027, -2.0831, 1.4410],
            [91.1528, -1.6435, 0.0447],
            1.4441,
        ),
        (
            [90.9257, -0.5406, -0.9208],
            [88.6381, -0.8985, -0.7239],
            1.5381,
        ),
        (
            [6.7747, -0.2908, -2.4247],
            [5.8714, -0.0985, -2.2286],
            0.6377,
        ),
        (
            [2.0776, 0.0795, -1.1350],
            [0.9033, -0.0636, -0.5514],
            0.9082,
        ),
    ];

    #[test]
    fn ciede2000_matches_sharma_table() {
        for (i, (a, b, want)) in SHARMA.iter().enumerate() {
            let got = ciede2000(*a, *b);
            assert!(
                (got - want).abs() < 1e-4,
                "pair {}: got {got}, want {want}",
                i + 1
            );
            let sym = ciede2000(*b, *a);
            assert!((sym - want).abs() < 1e-4, "pair {} reversed: {sym}", i + 1);
        }
    }

    #[test]
    fn squared_bounds_decide_as_the_roots_do() {
        let mut rng = crate::testkit::synth::SplitMix64::new(0x2545_F491_4F6C_DD1D);
        let mut next = || rng.next_u64();
        let mut ts = vec![0.0, 4.0, 13.5, 14.0, 16.0, 18.0, 1e-300, 3.0, 0.1, 1e150];
        ts.extend((0..2000).map(|_| (next() % 1_000_000) as f64 / 997.0));
        for t in ts {
            let b = squared_bound(t);
            assert!(
                b.sqrt() <= t && next_away_from_zero(b).sqrt() > t,
                "{t}: {b}"
            );
            // Squares around the bound, an ulp or a few apart, and farther.
            let mut squares = vec![0.0, b, t * t, next_away_from_zero(b)];
            let (lo, hi) = (b.to_bits().saturating_sub(40), b.to_bits() + 40);
            squares.extend((lo..hi).map(f64::from_bits));
            squares.extend((0..50).map(|_| (next() % 100_000) as f64 / 7.0));
            for s in squares {
                assert_eq!(s.sqrt() > t, s > b, "t {t}, s {s}");
                assert_eq!(s.sqrt() <= t, s <= b, "t {t}, s {s}");
            }
        }
        assert!(squared_bound(-1.0) < 0.0);
        assert!(squared_bound(f64::NAN).is_nan());
        assert_eq!(squared_bound(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn cube_root_matches_the_library_over_the_lab_range() {
        let mut worst = 0.0f64;
        let mut t = 216.0 / 24_389.0;
        while t < 1.2 {
            worst = worst.max((cube_root(t) - t.cbrt()).abs() / t.cbrt());
            t *= 1.001;
        }
        assert!(worst < 1e-13, "relative error {worst}");
    }

    #[test]
    fn third_of_bits_is_the_exact_quotient() {
        // Every exponent, with mantissas at both ends, around thirds and
        // pseudo-random in between.
        let mut rng = crate::testkit::synth::SplitMix64::new(0x9E37_79B9_7F4A_7C15);
        for e in 0..2048u64 {
            let mut mantissas = vec![0, 1, 2, 3, (1 << 52) - 1, (1 << 52) - 2, (1 << 52) - 3];
            for _ in 0..64 {
                mantissas.push(rng.next_u64() >> 12);
            }
            for m in mantissas {
                let bits = e << 52 | m;
                assert_eq!(third_of_bits(bits), bits / 3, "{bits:#x}");
            }
        }
    }

    /// Fractional colours across the whole range and a little beyond it.
    fn sample_colours() -> Vec<[f32; 3]> {
        (0..2_003)
            .map(|i| {
                let v = |k: u32| ((i * k) % 2_700) as f32 / 10.0 - 5.0;
                [v(7), v(13), v(31)]
            })
            .collect()
    }

    #[test]
    fn converting_many_gives_what_converting_one_gives() {
        let t = LabTable::new();
        let px = sample_colours();
        let one: Vec<[f64; 3]> = px.iter().map(|p| t.lab_f(*p)).collect();
        // The build the working copy uses (AVX2 where the CPU has it) and
        // the portable one, four at a time with a remainder of three.
        assert_eq!(t.lab_all(&px), one);
        let mut portable = Vec::new();
        t.lab_extend_portable(&px, &mut portable);
        assert_eq!(portable, one);
        // Appended after what is there, in pieces of every length.
        let mut pieces = vec![[1.0, 2.0, 3.0]];
        let mut rest = &px[..];
        for len in (0..).map(|k| k % 70) {
            let (piece, after) = rest.split_at(len.min(rest.len()));
            t.lab_extend(piece, &mut pieces);
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
        assert_eq!(pieces[0], [1.0, 2.0, 3.0]);
        assert_eq!(pieces[1..], one);
    }

    #[test]
    fn lane_conversion_matches_the_formula() {
        // The table interpolates between the exact conversions of whole
        // values, so it meets `srgb_to_lab` on them.
        let t = LabTable::new();
        for v in [0u8, 1, 10, 11, 12, 128, 254, 255] {
            let want = srgb_to_lab([v, 255 - v, v / 2]);
            let got = t.lab_f([f32::from(v), f32::from(255 - v), f32::from(v / 2)]);
            assert_eq!(got, want, "{v}");
        }
    }

    #[test]
    fn lab_of_known_colours() {
        let white = srgb_to_lab([255, 255, 255]);
        assert!((white[0] - 100.0).abs() < 0.01 && white[1].abs() < 0.01 && white[2].abs() < 0.01);
        assert_eq!(srgb_to_lab([0, 0, 0]), [0.0, 0.0, 0.0]);
        // Pure sRGB red, widely tabulated as L 53.24, a 80.09, b 67.20.
        let red = srgb_to_lab([255, 0, 0]);
        assert!((red[0] - 53.24).abs() < 0.05, "{red:?}");
        assert!((red[1] - 80.09).abs() < 0.1, "{red:?}");
        assert!((red[2] - 67.20).abs() < 0.1, "{red:?}");
    }

    #[test]
    fn table_agrees_with_exact_conversion() {
        let t = LabTable::new();
        for rgb in [[100u8, 197, 255], [0, 0, 0], [255, 255, 255], [13, 200, 77]] {
            let a = srgb_to_lab(rgb);
            let b = t.lab_f([f32::from(rgb[0]), f32::from(rgb[1]), f32::from(rgb[2])]);
            assert!(delta_e76_squared(a, b).sqrt() < 1e-6);
        }
    }

    #[test]
    fn names() {
        assert_eq!(colour_name(srgb_to_lab([100, 197, 255])), "blue");
        assert_eq!(colour_name(srgb_to_lab([200, 30, 30])), "red");
        assert_eq!(colour_name(srgb_to_lab([250, 250, 250])), "white");
        assert_eq!(colour_name(srgb_to_lab([128, 128, 128])), "grey");
    }
}
