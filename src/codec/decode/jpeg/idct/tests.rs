use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::codec::decode::DecodeScale;
use crate::codec::decode::jpeg::{Libjpeg, Warnings, libjpeg_rgb_with};
use crate::testkit::synth::SplitMix64;

const BASELINE_420: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/01-baseline.jpg"
));
const PROGRESSIVE_420: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/06-progressive.jpg"
));
const GRAYSCALE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/07-grayscale.jpg"
));
const CMYK: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/08-cmyk-adobe.jpg"
));

/// Called by `select` when it installs one of ours: counts into the
/// `AtomicUsize` a test put in `client_data`.
pub(super) fn count_install(cinfo: *mut Cinfo) {
    // SAFETY: cinfo is the live decompressor `select` was given;
    // client_data is null or a test's counter, which outlives it.
    unsafe {
        let counter = (*cinfo).common.client_data.cast::<AtomicUsize>();
        if let Some(counter) = counter.as_ref() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A started decompressor: the C IDCTs read its range-limit table.
fn started() -> Libjpeg<'static> {
    let mut d = Libjpeg::new(BASELINE_420, Warnings::Ignored).expect("fixture header");
    d.cinfo_mut().scale_num = 3;
    d.cinfo_mut().scale_denom = 8;
    d.start(false).expect("start");
    d
}

/// Uniform in -m..=m.
fn signed(rng: &mut SplitMix64, m: i32) -> i16 {
    rng.int(-i64::from(m), i64::from(m)) as i16
}

fn random_table(rng: &mut SplitMix64) -> [i16; 64] {
    let kind = rng.below(7);
    // With kind 7 blocks, puts dequantized values just either side of the
    // 32-bit bounds, where a bound too loose would show.
    let flat = 1 + rng.below(6) as i16;
    std::array::from_fn(|i| match kind {
        6 => flat,
        0 => (1 + rng.below(255)) as i16,
        1 => (1 + rng.below(16)) as i16,
        2 => (1 + rng.below(32767)) as i16,
        // 16-bit quantization values above 32767 are negative as `short`.
        3 => rng.next_u64() as i16,
        4 => 1,
        // Coarser at high frequencies, as real tables are.
        _ => (1 + (i / 8 + i % 8) as u64 * u64::from(1 + rng.below(12))) as i16,
    })
}

fn random_block(rng: &mut SplitMix64) -> [i16; 64] {
    let kind = rng.below(9);
    let mut block = [0i16; 64];
    match kind {
        0 => {}
        1 => block[0] = signed(rng, 2047),
        2 => block = std::array::from_fn(|_| signed(rng, 2047)),
        3 => block = std::array::from_fn(|_| signed(rng, 64)),
        4 => {
            for _ in 0..1 + rng.below(6) {
                block[rng.below(64) as usize] = signed(rng, 2047);
            }
        }
        5 => block = std::array::from_fn(|_| rng.next_u64() as i16),
        6 => {
            block = std::array::from_fn(|_| match rng.below(3) {
                0 => i16::MAX,
                1 => i16::MIN,
                _ => -i16::MAX,
            })
        }
        // Around the sizes where the 32-bit bounds bite, with one sign
        // (the worst case for the sums) or random signs.
        7 => {
            let m = 1000 + rng.below(31_000) as i16;
            let sign = if rng.below(2) == 0 { 1 } else { -1 };
            block = std::array::from_fn(|_| sign * (m - rng.below(50) as i16));
        }
        // Real-photo-like: magnitudes falling off with frequency.
        _ => {
            block = std::array::from_fn(|i| {
                let m = 1024 / (1 + (i / 8 + i % 8) as i32 * 2);
                signed(rng, m)
            })
        }
    }
    block
}

type Kernel = unsafe fn(*const i16, *const i16, *mut *mut u8, usize) -> bool;

/// The C functions' table layout in this build (`short` with its SIMD
/// code, `int` without): the tests give the C functions their own layout,
/// so they check our kernels in either build.
fn layout(cinfo: *mut Cinfo) -> Multiplier {
    // SAFETY: cinfo is started.
    unsafe { library_multiplier(cinfo) }
        .expect("the C IDCTs agree with ours in one of the two table layouts")
}

/// Our IDCT and the C one agree byte for byte (and leave the same bytes
/// alone) on many random blocks and tables, and both of our paths (the
/// 32-bit kernel and the hand-over to C) are exercised.
fn matches_c(c: InverseDct, ours: InverseDct, kernel: Kernel, seed: u64) {
    if !avx2() {
        eprintln!("no AVX2 on this CPU: nothing to compare");
        return;
    }
    let mut d = started();
    let cinfo: *mut Cinfo = d.cinfo_mut();
    let layout = layout(cinfo);
    let mut rng = SplitMix64::new(seed);
    let (mut fast, mut handed_over) = (0, 0);
    let n = 60_000;
    for i in 0..n {
        let table = random_table(&mut rng);
        let block = random_block(&mut rng);
        let c_table = CTable::new(&table, layout);
        // SAFETY: cinfo is started; the tables hold 64 multipliers each.
        let want = unsafe { run(c, cinfo, c_table.as_ptr(), &block) };
        let mut took_fast_path = false;
        let scratch = output_area(|rows| {
            // SAFETY: AVX2 is present; 16 rows of 16 bytes.
            took_fast_path = unsafe { kernel(block.as_ptr(), table.as_ptr(), rows, 0) };
        });
        let got = if took_fast_path {
            fast += 1;
            scratch
        } else {
            handed_over += 1;
            if layout == Multiplier::Int {
                // The hand-over gives C our 16-bit table, which an `int`
                // build misreads: such a build never installs ours.
                continue;
            }
            // SAFETY: as above.
            unsafe { run(ours, cinfo, table.as_ptr().cast(), &block) }
        };
        assert!(
            want == got,
            "block {i} differs\ntable {table:?}\nblock {block:?}\nC    {want:?}\nours {got:?}"
        );
    }
    assert!(fast > n / 4, "only {fast} of {n} blocks took the AVX2 path");
    assert!(
        handed_over > n / 100,
        "only {handed_over} of {n} blocks were handed to C"
    );
}

#[test]
fn idct_6x6_matches_c() {
    matches_c(
        jpeg_idct_6x6,
        avx2::idct_6x6,
        avx2::kernel_6x6,
        0x6666_1234_abcd_0001,
    );
}

#[test]
fn idct_10x10_matches_c() {
    matches_c(
        jpeg_idct_10x10,
        avx2::idct_10x10,
        avx2::kernel_10x10,
        0x1010_1234_abcd_0001,
    );
}

#[test]
fn idct_7x7_matches_c() {
    matches_c(
        jpeg_idct_7x7,
        avx2::idct_7x7,
        avx2::kernel_7x7,
        0x7777_1234_abcd_0001,
    );
}

#[test]
fn idct_5x5_matches_c() {
    matches_c(
        jpeg_idct_5x5,
        avx2::idct_5x5,
        avx2::kernel_5x5,
        0x5555_1234_abcd_0001,
    );
}

#[test]
fn idct_3x3_matches_c() {
    matches_c(
        jpeg_idct_3x3,
        avx2::idct_3x3,
        avx2::kernel_3x3,
        0x3333_1234_abcd_0001,
    );
}

/// Whole decodes at every scale, with and without our IDCTs, give the same
/// pixels, and ours were really used where libjpeg would run the C ones.
#[test]
fn decodes_are_identical_with_and_without_our_idcts() {
    for (name, bytes) in [
        ("baseline 4:2:0", BASELINE_420),
        ("progressive 4:2:0", PROGRESSIVE_420),
        ("grayscale", GRAYSCALE),
        ("cmyk", CMYK),
    ] {
        for eighths in 1..=8 {
            let scale = DecodeScale::eighths(eighths);
            let plain = libjpeg_rgb_with(bytes, scale, false, false, None).expect("decodes");
            let fast = libjpeg_rgb_with(bytes, scale, true, false, None).expect("decodes");
            assert!(plain == fast, "{name} at {eighths}/8 differs");
        }
    }
    if !avx2() {
        return;
    }
    // At 3/8 a 4:2:0 photo runs the 3x3 (luma) and 6x6 (chroma) IDCTs, at
    // 5/8 the 5x5 and 10x10; at 7/8 the 7x7 (luma; chroma 14x14 stays C).
    // Installed only where the library's tables are 16-bit, as ours read them.
    let installed = layout(started().cinfo_mut()) == Multiplier::Short;
    for (eighths, ours) in [(3, 3), (5, 3), (7, 1)] {
        let ours = if installed { ours } else { 0 };
        let installs = AtomicUsize::new(0);
        let mut d = Libjpeg::new(BASELINE_420, Warnings::Ignored).expect("header");
        d.cinfo_mut().scale_num = eighths;
        d.cinfo_mut().scale_denom = 8;
        d.cinfo_mut().common.client_data = (&raw const installs).cast_mut().cast();
        d.start(true).expect("start");
        assert_eq!(installs.load(Ordering::Relaxed), ours, "at {eighths}/8");
    }
}
