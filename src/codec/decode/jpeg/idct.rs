//! AVX2 versions of libjpeg's scaled inverse DCTs, bit-exact with its C code.
//!
//! Why this exists: gradphoto decodes JPEGs at M/8 scales, and for 4:2:0
//! photos libjpeg scales the chroma IDCT up instead of upsampling (luma 3x3,
//! chroma 6x6 at 3/8; 5x5 and 10x10 at 5/8). libjpeg-turbo has SIMD IDCTs
//! only for 8x8, 4x4 and 2x2 outputs; the other sizes run the scalar C of
//! jidctint.c, which took about 13% of all CPU on the 500-photo cohort (6x6
//! alone 7%). Here: 3x3, 5x5, 6x6, 7x7 and 10x10 (12x12 and 14x14, about
//! 0.25% each, stay in C).
//!
//! Exactness: every output byte must be the one the C function writes, on
//! every machine. The C code computes in 64-bit `long`; these compute in
//! 32-bit lanes. The second pass needs no care: it is adds, multiplies and
//! left shifts, exact modulo 2^32, then one right shift by 18 and a 10-bit
//! mask, so its output depends on bits 18..27 only. The first pass shifts
//! right mid-way and C truncates its results to int, so each kernel checks
//! per block that the largest |dequantized coefficient| is within a bound
//! that keeps every first-pass intermediate in 32 bits (`BOUND6` and the
//! others, derived beside them) and otherwise hands the block to the C
//! function. Within the bound every operation is the one the C code does,
//! on the same values. The final range limit is computed rather than
//! looked up: libjpeg's table (jdmaster.c, `prepare_range_limit_table`)
//! maps the masked 10-bit index to clamp(index as signed 10-bit + 128, 0,
//! 255).
//!
//! They are installed through the selector hook mozjpeg's libjpeg-turbo
//! offers (`jpeg_set_idct_method_selector`, called by jddctmgr.c's
//! `start_pass` for each component with the method it chose), only where it
//! chose exactly the C function we reproduce, with the integer (ISLOW)
//! multiplier table, on a CPU with AVX2, and only after a self-test against
//! the C functions on this very library has passed (which also catches a
//! build whose multiplier table is not 16-bit: libjpeg uses `short` only
//! when built with its SIMD code, `int` otherwise).

use std::os::raw::{c_int, c_uint};

use mozjpeg_sys::{jpeg_component_info, jpeg_decompress_struct};

type Cinfo = jpeg_decompress_struct;

/// jpeglib.h's `inverse_DCT_method_ptr`.
type InverseDct = unsafe extern "C" fn(
    cinfo: *mut Cinfo,
    compptr: *mut jpeg_component_info,
    coef_block: *mut i16,
    output_buf: *mut *mut u8,
    output_col: c_uint,
);

/// jpeglib.h's `jpeg_idct_method_selector` (mozjpeg's extension).
type Selector = unsafe extern "C" fn(
    cinfo: *mut Cinfo,
    compptr: *mut jpeg_component_info,
    set_idct_method: *mut Option<InverseDct>,
    set_idct_category: *mut c_int,
);

unsafe extern "C" {
    // jidctint.c; global symbols of the linked libjpeg.
    fn jpeg_idct_3x3(
        cinfo: *mut Cinfo,
        compptr: *mut jpeg_component_info,
        coef_block: *mut i16,
        output_buf: *mut *mut u8,
        output_col: c_uint,
    );
    fn jpeg_idct_5x5(
        cinfo: *mut Cinfo,
        compptr: *mut jpeg_component_info,
        coef_block: *mut i16,
        output_buf: *mut *mut u8,
        output_col: c_uint,
    );
    fn jpeg_idct_10x10(
        cinfo: *mut Cinfo,
        compptr: *mut jpeg_component_info,
        coef_block: *mut i16,
        output_buf: *mut *mut u8,
        output_col: c_uint,
    );
    fn jpeg_idct_7x7(
        cinfo: *mut Cinfo,
        compptr: *mut jpeg_component_info,
        coef_block: *mut i16,
        output_buf: *mut *mut u8,
        output_col: c_uint,
    );
    fn jpeg_idct_6x6(
        cinfo: *mut Cinfo,
        compptr: *mut jpeg_component_info,
        coef_block: *mut i16,
        output_buf: *mut *mut u8,
        output_col: c_uint,
    );
    // jddctmgr.c. Declared here with the real types: mozjpeg-sys declares
    // it taking a compress struct.
    fn jpeg_set_idct_method_selector(cinfo: *mut Cinfo, selector: Option<Selector>);
}

// The layouts below are those of jpeglib.h with JPEG_LIB_VERSION 62 (what
// mozjpeg-sys builds without its jpeg70/80 features).
const _: () = assert!(mozjpeg_sys::JPEG_LIB_VERSION == 62);

/// `compptr->dct_table` is the last field, right after `quant_table`, and
/// mozjpeg-sys keeps it private.
const DCT_TABLE_OFFSET: usize =
    std::mem::offset_of!(jpeg_component_info, quant_table) + std::mem::size_of::<*mut u8>();
const _: () = assert!(
    std::mem::size_of::<jpeg_component_info>() == DCT_TABLE_OFFSET + std::mem::size_of::<*mut u8>()
);

/// jdct.h's JDCT_ISLOW: the category whose multiplier table is the plain
/// quantization values, which every scaled IDCT uses.
#[cfg(target_arch = "x86_64")]
const JDCT_ISLOW: c_int = 0;

/// The multiplier table libjpeg built for this component (`ISLOW_MULT_TYPE`,
/// `short` in a SIMD build: checked by the self-test).
///
/// # Safety
/// `compptr` points at a live component whose table has been built.
#[cfg(target_arch = "x86_64")]
unsafe fn dct_table(compptr: *const jpeg_component_info) -> *const i16 {
    // SAFETY: DCT_TABLE_OFFSET is the offset of the `void *dct_table` field
    // (checked against the struct's size above).
    unsafe {
        compptr
            .cast::<u8>()
            .add(DCT_TABLE_OFFSET)
            .cast::<*const i16>()
            .read()
    }
}

/// Makes libjpeg use our AVX2 IDCTs where they apply. Call after the header
/// has been read, before `jpeg_start_decompress`.
pub(super) fn install(cinfo: &mut Cinfo) {
    if !avx2() {
        return;
    }
    // SAFETY: cinfo is a created decompressor (its master struct, where the
    // selector is kept, is allocated by jpeg_create_decompress).
    unsafe { jpeg_set_idct_method_selector(cinfo, Some(select)) };
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The C functions we reproduce, each with ours.
#[cfg(target_arch = "x86_64")]
fn replacements() -> [(InverseDct, InverseDct); 5] {
    [
        (jpeg_idct_3x3 as InverseDct, avx2::idct_3x3 as InverseDct),
        (jpeg_idct_5x5 as InverseDct, avx2::idct_5x5 as InverseDct),
        (jpeg_idct_7x7 as InverseDct, avx2::idct_7x7 as InverseDct),
        (
            jpeg_idct_10x10 as InverseDct,
            avx2::idct_10x10 as InverseDct,
        ),
        (jpeg_idct_6x6 as InverseDct, avx2::idct_6x6 as InverseDct),
    ]
}

unsafe extern "C" fn select(
    cinfo: *mut Cinfo,
    _compptr: *mut jpeg_component_info,
    method: *mut Option<InverseDct>,
    category: *mut c_int,
) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: libjpeg passes valid pointers to its own locals.
        let (chosen, category) = unsafe { (*method, *category) };
        let Some(chosen) = chosen else { return };
        if category != JDCT_ISLOW {
            return;
        }
        for (c, ours) in replacements() {
            // Addresses compared: the same symbol of the same library.
            if c as usize == chosen as usize && self_test(cinfo) {
                // SAFETY: as above.
                unsafe { *method = Some(ours) };
                #[cfg(test)]
                tests::count_install(cinfo);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (cinfo, method, category);
}

/// How this libjpeg build stores its ISLOW multiplier tables (jmorecfg.h's
/// `MULTIPLIER`): `short` when built with its SIMD code (nasm present),
/// `int` otherwise. Our kernels read 16-bit tables.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Multiplier {
    Short,
    Int,
}

/// A multiplier table laid out for the C functions of a build.
#[cfg(target_arch = "x86_64")]
enum CTable {
    Short([i16; 64]),
    Int([i32; 64]),
}

#[cfg(target_arch = "x86_64")]
impl CTable {
    fn new(table: &[i16; 64], layout: Multiplier) -> Self {
        match layout {
            Multiplier::Short => CTable::Short(*table),
            // Sign-extended: the same values a `short` table holds.
            Multiplier::Int => CTable::Int(table.map(i32::from)),
        }
    }

    fn as_ptr(&self) -> *const u8 {
        match self {
            CTable::Short(t) => t.as_ptr().cast(),
            CTable::Int(t) => t.as_ptr().cast(),
        }
    }
}

/// Blocks that differ in every position, so a table read with the wrong
/// element size or a wrong constant shows; with their table.
#[cfg(target_arch = "x86_64")]
fn probe_blocks() -> ([i16; 64], Vec<[i16; 64]>) {
    let table: [i16; 64] = std::array::from_fn(|i| (i as i16 * 37) % 97 + 1);
    let mut seed = 0x2545_f491_u32;
    let blocks = (0..8)
        .map(|b| {
            std::array::from_fn(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let v = ((seed >> 16) % 121) as i16 - 60;
                if b == 0 {
                    0
                } else if i % (b + 1) == 0 {
                    v
                } else {
                    v / 8
                }
            })
        })
        .collect();
    (table, blocks)
}

/// The layout in which this library's C functions agree with our kernels
/// on the probe blocks; `None` when they agree in neither (a kernel that
/// does not reproduce this library, which must then not be used).
///
/// # Safety
/// `cinfo` is a decompressor whose range-limit table is set up.
#[cfg(target_arch = "x86_64")]
unsafe fn library_multiplier(cinfo: *mut Cinfo) -> Option<Multiplier> {
    let (table, blocks) = probe_blocks();
    [Multiplier::Short, Multiplier::Int]
        .into_iter()
        .find(|&layout| {
            let c_table = CTable::new(&table, layout);
            replacements().iter().all(|&(c, ours)| {
                blocks.iter().all(|block| {
                    // SAFETY: cinfo as promised; the tables and blocks
                    // outlive the calls.
                    unsafe {
                        run(c, cinfo, c_table.as_ptr(), block)
                            == run(ours, cinfo, table.as_ptr().cast(), block)
                    }
                })
            })
        })
}

/// Whether our kernels can stand in for this library's C functions: they
/// write what the C functions write, reading the table the way the
/// library stores it. Run once per process, on the first decompressor that
/// could use them (the C functions need its range-limit table).
#[cfg(target_arch = "x86_64")]
fn self_test(cinfo: *mut Cinfo) -> bool {
    static PASSED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: `select` is called on a started decompressor.
    *PASSED.get_or_init(|| unsafe { library_multiplier(cinfo) } == Some(Multiplier::Short))
}

/// Runs one IDCT on `block` with the multiplier table at `table` (laid out
/// as `f` reads it), into an [`output_area`].
///
/// # Safety
/// `cinfo` is a decompressor whose range-limit table is set up; `table`
/// points at 64 multipliers of the width `f` reads.
#[cfg(target_arch = "x86_64")]
unsafe fn run(
    f: InverseDct,
    cinfo: *mut Cinfo,
    table: *const u8,
    block: &[i16; 64],
) -> [[u8; 16]; 16] {
    // SAFETY: all-zero is a valid jpeg_component_info; the IDCTs read only
    // its dct_table, set below.
    let mut comp: jpeg_component_info = unsafe { std::mem::zeroed() };
    // SAFETY: writes the dct_table field (see DCT_TABLE_OFFSET).
    unsafe {
        (&raw mut comp)
            .cast::<u8>()
            .add(DCT_TABLE_OFFSET)
            .cast::<*const u8>()
            .write(table)
    };
    let mut coefs = *block;
    output_area(|rows| {
        // SAFETY: rows point at 16 rows of 16 bytes, enough for any size.
        unsafe { f(cinfo, &mut comp, coefs.as_mut_ptr(), rows, 0) };
    })
}

/// The 16x16 output area (the largest scaled size) after `write` has been
/// given its 16 row pointers; bytes it left alone stay 0xA5.
#[cfg(target_arch = "x86_64")]
fn output_area(write: impl FnOnce(*mut *mut u8)) -> [[u8; 16]; 16] {
    let mut out = [[0xA5u8; 16]; 16];
    let mut rows: [*mut u8; 16] = std::array::from_fn(|_| std::ptr::null_mut());
    for (row, ptr) in out.iter_mut().zip(rows.iter_mut()) {
        *ptr = row.as_mut_ptr();
    }
    write(rows.as_mut_ptr());
    out
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::os::raw::c_uint;

    use super::{Cinfo, dct_table, jpeg_component_info};

    const CONST_BITS: i32 = 13;
    const PASS1_BITS: i32 = 2;

    /// jidctint.c's FIX(x): x in 13-bit fixed point, rounded.
    const fn fix(x: f64) -> i32 {
        (x * (1 << CONST_BITS) as f64 + 0.5) as i32
    }

    const FIX_0_366025404: i32 = fix(0.366025404);
    const FIX_1_870828693: i32 = fix(1.870828693);
    const FIX_0_613604268: i32 = fix(0.613604268);
    const FIX_1_378756276: i32 = fix(1.378756276);
    const FIX_0_170262339: i32 = fix(0.170262339);
    const FIX_0_935414347: i32 = fix(0.935414347);
    // jidctint.c's literal, to its 9 digits (which round to the same value).
    #[allow(clippy::approx_constant)]
    const FIX_1_414213562: i32 = fix(1.414213562);
    const FIX_2_470602249: i32 = fix(2.470602249);
    const FIX_0_077722536: i32 = fix(0.077722536);
    const FIX_1_274162392: i32 = fix(1.274162392);
    const FIX_1_841218003: i32 = fix(1.841218003);
    const FIX_0_314692123: i32 = fix(0.314692123);
    const FIX_0_881747734: i32 = fix(0.881747734);
    const FIX_0_642039522: i32 = fix(0.642039522);
    const FIX_1_260073511: i32 = fix(1.260073511);
    const FIX_0_587785252: i32 = fix(0.587785252);
    const FIX_0_221231742: i32 = fix(0.221231742);
    const FIX_1_396802247: i32 = fix(1.396802247);
    const FIX_0_951056516: i32 = fix(0.951056516);
    const FIX_0_309016994: i32 = fix(0.309016994);
    const FIX_0_437016024: i32 = fix(0.437016024);
    const FIX_1_144122806: i32 = fix(1.144122806);
    const FIX_2_176250899: i32 = fix(2.176250899);
    const FIX_0_513743148: i32 = fix(0.513743148);
    const FIX_0_831253876: i32 = fix(0.831253876);
    const FIX_0_353553391: i32 = fix(0.353553391);
    const FIX_0_790569415: i32 = fix(0.790569415);
    // jidctint.c's literal, to its 9 digits (which round to the same value).
    #[allow(clippy::approx_constant)]
    const FIX_0_707106781: i32 = fix(0.707106781);
    const FIX_1_224744871: i32 = fix(1.224744871);

    // Only pass 1 needs a bound. Pass 2 is adds, subtracts, multiplies
    // and left shifts, exact modulo 2^32 in i32 lanes as in C's 64 bits,
    // then one right shift by 18 and a mask to 10 bits: the index depends
    // on bits 18..27 of the sum only, the same modulo 2^32. Pass 1 shifts
    // right in the middle (and C truncates its results to int), so there
    // every intermediate must be exact.
    //
    // 6x6: each pass-1 intermediate is a signed sum of the column's inputs
    // times at most 2^13 (d0), FIX(0.707106781) (d4), FIX(1.224744871)
    // (d2) and 2*FIX(0.366025404) + 2*2^13 (d1, d3, d5, through z1 + z3
    // and the shifted sums), plus the rounding 2^10: 8192 + 5793 + 10033 +
    // 5996 + 16384 = 46398 per unit of the largest |input| D. Every partial
    // sum is bounded by the same sum of magnitudes, so all fit when
    // 46398 * D + 1024 < 2^31.
    const BOUND6: i32 = ((i32::MAX as i64 - 1024) / 46398) as i32;
    // 3x3: 2^13 + FIX(0.707106781) + FIX(1.224744871) = 24018 (the
    // tmp0 - 2 * tmp12 branch is 19778).
    const BOUND3: i32 = ((i32::MAX as i64 - 1024) / 24018) as i32;
    // 5x5: the largest sum is tmp11 + tmp1: 2^13 (d0) + 2 * FIX(0.353553391)
    // + 2 * FIX(0.790569415) (d2, d4 through their sum and difference) +
    // 2 * FIX(0.831253876) + FIX(2.176250899) (d1, d3) = 8192 + 5792 +
    // 12952 + 13620 + 17828 = 58384. Conservative: it bounds z1 and z2
    // apart, where their sum has smaller weights (the tightest bound is
    // about 1.5 times larger).
    const BOUND5: i32 = ((i32::MAX as i64 - 1024) / 58384) as i32;
    // 10x10, the same way (sums of the magnitudes of every term, inputs
    // through a sum or difference counted twice): the even halves tmp20 /
    // tmp24 and tmp21 / tmp23, and the odd halves tmp10, tmp11, tmp13,
    // tmp14 they are added to.
    const EVEN10_0: i32 = 8192 + FIX_1_144122806 + 2 * FIX_0_831253876 + FIX_0_513743148;
    const EVEN10_1: i32 = 8192 + FIX_0_437016024 + 2 * FIX_0_831253876 + FIX_2_176250899;
    const ODD10_Z4: i32 = 8192 + 2 * FIX_0_309016994;
    const ODD10_Z4B: i32 = ODD10_Z4 + 2 * 4096;
    const ODD10_0: i32 = FIX_1_396802247 + 2 * FIX_0_951056516 + ODD10_Z4;
    const ODD10_4: i32 = FIX_0_221231742 + 2 * FIX_0_951056516 + ODD10_Z4;
    const ODD10_1: i32 = FIX_1_260073511 + 2 * FIX_0_587785252 + ODD10_Z4B;
    const ODD10_3: i32 = FIX_0_642039522 + 2 * FIX_0_587785252 + ODD10_Z4B;
    const fn max(a: i32, b: i32) -> i32 {
        if a > b { a } else { b }
    }
    const WEIGHT10: i32 = max(
        max(EVEN10_0 + ODD10_0, EVEN10_0 + ODD10_4),
        max(EVEN10_1 + ODD10_1, EVEN10_1 + ODD10_3),
    );
    const BOUND10: i32 = ((i32::MAX as i64 - 1024) / WEIGHT10 as i64) as i32;
    // 7x7, the same way. Even part: tmp13 is 2^13 * d0, tmp0 adds
    // FIX(1.274162392) * (d2 + d6); tmp10, tmp11, tmp12 and the final tmp13
    // add their own terms to those. Odd part: tmp0 and tmp1 start from
    // FIX(0.935414347) * (d1 + d3) and FIX(0.170262339) * (d1 - d3).
    const EVEN7_TMP0: i32 = 8192 + 2 * FIX_1_274162392;
    const EVEN7_0: i32 = 2 * FIX_0_881747734 + EVEN7_TMP0 + FIX_0_077722536;
    const EVEN7_1: i32 = 2 * FIX_0_881747734 + 2 * FIX_0_314692123 + 8192 + FIX_1_841218003;
    const EVEN7_2: i32 = 2 * FIX_0_314692123 + EVEN7_TMP0 + FIX_2_470602249;
    const EVEN7_3: i32 = 8192 + 3 * FIX_1_414213562;
    const ODD7_START: i32 = 2 * FIX_0_935414347 + 2 * FIX_0_170262339;
    const ODD7_0: i32 = ODD7_START + 2 * FIX_0_613604268;
    const ODD7_1: i32 = ODD7_START + 2 * FIX_1_378756276;
    const ODD7_2: i32 = 2 * FIX_1_378756276 + 2 * FIX_0_613604268 + FIX_1_870828693;
    const WEIGHT7: i32 = max(
        max(EVEN7_0 + ODD7_0, EVEN7_1 + ODD7_1),
        max(EVEN7_2 + ODD7_2, EVEN7_3),
    );
    const BOUND7: i32 = ((i32::MAX as i64 - 1024) / WEIGHT7 as i64) as i32;

    /// Makes libjpeg's inverse-DCT method `$name` for an N x N output: our
    /// AVX2 kernel where the block stays inside its exactness bound, else
    /// libjpeg's own C function, so every block gets libjpeg's bytes.
    macro_rules! idct_method {
        ($name:ident, $kernel:ident, $c_method:ident, $rows:literal) => {
            /// # Safety
            /// libjpeg's contract for an inverse-DCT method; the CPU has
            /// AVX2 (the selector installs it only then).
            pub(super) unsafe extern "C" fn $name(
                cinfo: *mut Cinfo,
                compptr: *mut jpeg_component_info,
                coef_block: *mut i16,
                output_buf: *mut *mut u8,
                output_col: c_uint,
            ) {
                // SAFETY: libjpeg's arguments: a 64-coefficient block, the
                // component's built table, $rows output rows of $rows bytes
                // from output_col; AVX2 is present.
                unsafe {
                    let table = dct_table(compptr);
                    if !$kernel(coef_block, table, output_buf, output_col as usize) {
                        super::$c_method(cinfo, compptr, coef_block, output_buf, output_col);
                    }
                }
            }
        };
    }
    idct_method!(idct_10x10, kernel_10x10, jpeg_idct_10x10, 10);
    idct_method!(idct_7x7, kernel_7x7, jpeg_idct_7x7, 7);
    idct_method!(idct_6x6, kernel_6x6, jpeg_idct_6x6, 6);
    idct_method!(idct_5x5, kernel_5x5, jpeg_idct_5x5, 5);
    idct_method!(idct_3x3, kernel_3x3, jpeg_idct_3x3, 3);

    /// Whether any |lane| of `v` exceeds `bound`. |v| is exact here: the
    /// values tested are products of two i16, at most 2^30 in magnitude.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn over256(v: __m256i, bound: i32) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_abs_epi32(v), _mm256_set1_epi32(bound))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn over128(v: __m128i, bound: i32) -> __m128i {
        _mm_cmpgt_epi32(_mm_abs_epi32(v), _mm_set1_epi32(bound))
    }

    /// The output byte: the range-limit table indexed by bits 0..10 of
    /// x >> 18 is clamp(those bits as signed 10-bit + 128, 0, 255). Returned
    /// as i32 in [-384, 639]; the clamp is the saturating packs in `store`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn descale256(x: __m256i) -> __m256i {
        let index = _mm256_srai_epi32::<{ CONST_BITS + PASS1_BITS + 3 }>(x);
        let signed = _mm256_srai_epi32::<22>(_mm256_slli_epi32::<22>(index));
        _mm256_add_epi32(signed, _mm256_set1_epi32(128))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn descale128(x: __m128i) -> __m128i {
        let index = _mm_srai_epi32::<{ CONST_BITS + PASS1_BITS + 3 }>(x);
        let signed = _mm_srai_epi32::<22>(_mm_slli_epi32::<22>(index));
        _mm_add_epi32(signed, _mm_set1_epi32(128))
    }

    /// Transposes 8 rows of 8 i32.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    /// Transposes 4 rows of 4 i32.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose4(r: [__m128i; 4]) -> [__m128i; 4] {
        let t0 = _mm_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm_unpackhi_epi32(r[2], r[3]);
        [
            _mm_unpacklo_epi64(t0, t2),
            _mm_unpackhi_epi64(t0, t2),
            _mm_unpacklo_epi64(t1, t3),
            _mm_unpackhi_epi64(t1, t3),
        ]
    }

    /// Writes the first `n` (at most 8) lanes of `v`, each in 0..=255 after
    /// saturation, as bytes at `dst`.
    ///
    /// # Safety
    /// `dst` is valid for `n` bytes of writes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(dst: *mut u8, v: __m256i, n: usize) {
        let words = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let bytes = _mm_packus_epi16(words, words);
        let lanes = (_mm_cvtsi128_si64(bytes) as u64).to_le_bytes();
        // SAFETY: the caller's contract; n <= 8.
        unsafe { std::ptr::copy_nonoverlapping(lanes.as_ptr(), dst, n) };
    }

    /// Row `r` of the coefficients times row `r` of the table, as 8 i32.
    ///
    /// # Safety
    /// Both point at 64 i16.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dequantize8(coef: *const i16, table: *const i16, r: usize) -> __m256i {
        // SAFETY: row r < 8 of 64-element arrays.
        unsafe {
            let c = _mm_loadu_si128(coef.add(8 * r).cast());
            let q = _mm_loadu_si128(table.add(8 * r).cast());
            _mm256_mullo_epi32(_mm256_cvtepi16_epi32(c), _mm256_cvtepi16_epi32(q))
        }
    }

    /// As [`dequantize8`], the first 4 of the row.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dequantize4(coef: *const i16, table: *const i16, r: usize) -> __m128i {
        // SAFETY: row r < 8 of 64-element arrays.
        unsafe {
            let c = _mm_loadl_epi64(coef.add(8 * r).cast());
            let q = _mm_loadl_epi64(table.add(8 * r).cast());
            _mm_mullo_epi32(_mm_cvtepi16_epi32(c), _mm_cvtepi16_epi32(q))
        }
    }

    /// Rows 0..N of the dequantized block with columns N.. zeroed (an N-point
    /// IDCT reads no others), or `None` when a value is beyond `bound`,
    /// where the kernel's first pass could leave 32 bits: libjpeg's C
    /// function takes such a block.
    ///
    /// # Safety
    /// Both point at 64 i16.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dequantized_within<const N: usize>(
        coef: *const i16,
        table: *const i16,
        bound: i32,
    ) -> Option<[__m256i; N]> {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(N as i32), lanes);
        // SAFETY: the caller's contract.
        let d: [__m256i; N] =
            std::array::from_fn(|r| _mm256_and_si256(unsafe { dequantize8(coef, table, r) }, keep));
        let mut over = _mm256_setzero_si256();
        for v in d {
            over = _mm256_or_si256(over, over256(v, bound));
        }
        (_mm256_testz_si256(over, over) != 0).then_some(d)
    }

    /// jidctint.c's jpeg_idct_6x6, 8 columns (then 8 rows) at a time, lanes
    /// 6 and 7 zero. False, with nothing written, when the block is outside
    /// the 32-bit bound.
    ///
    /// # Safety
    /// As [`idct_6x6`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn kernel_6x6(
        coef: *const i16,
        table: *const i16,
        out: *mut *mut u8,
        col: usize,
    ) -> bool {
        let add = _mm256_add_epi32;
        let sub = _mm256_sub_epi32;
        let mul = |v: __m256i, c: i32| _mm256_mullo_epi32(v, _mm256_set1_epi32(c));
        // SAFETY: the caller's contract.
        let Some(d) = (unsafe { dequantized_within::<6>(coef, table, BOUND6) }) else {
            return false;
        };

        // Pass 1: columns in lanes.
        let mut tmp0 = add(
            _mm256_slli_epi32::<CONST_BITS>(d[0]),
            _mm256_set1_epi32(1 << (CONST_BITS - PASS1_BITS - 1)),
        );
        let mut tmp10 = mul(d[4], FIX_0_707106781);
        let mut tmp1 = add(tmp0, tmp10);
        let tmp11 = _mm256_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(sub(sub(tmp0, tmp10), tmp10));
        tmp0 = mul(d[2], FIX_1_224744871);
        tmp10 = add(tmp1, tmp0);
        let tmp12 = sub(tmp1, tmp0);
        let (z1, z2, z3) = (d[1], d[3], d[5]);
        tmp1 = mul(add(z1, z3), FIX_0_366025404);
        tmp0 = add(tmp1, _mm256_slli_epi32::<CONST_BITS>(add(z1, z2)));
        let tmp2 = add(tmp1, _mm256_slli_epi32::<CONST_BITS>(sub(z3, z2)));
        tmp1 = _mm256_slli_epi32::<PASS1_BITS>(sub(sub(z1, z2), z3));
        let shift = |v: __m256i| _mm256_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(v);
        let w = [
            shift(add(tmp10, tmp0)),
            add(tmp11, tmp1),
            shift(add(tmp12, tmp2)),
            shift(sub(tmp12, tmp2)),
            sub(tmp11, tmp1),
            shift(sub(tmp10, tmp0)),
        ];
        // Pass 2: workspace rows in lanes.
        let zero = _mm256_setzero_si256();
        let t = transpose8([w[0], w[1], w[2], w[3], w[4], w[5], zero, zero]);
        let mut tmp0 =
            _mm256_slli_epi32::<CONST_BITS>(add(t[0], _mm256_set1_epi32(1 << (PASS1_BITS + 2))));
        let mut tmp10 = mul(t[4], FIX_0_707106781);
        let mut tmp1 = add(tmp0, tmp10);
        let tmp11 = sub(sub(tmp0, tmp10), tmp10);
        tmp0 = mul(t[2], FIX_1_224744871);
        tmp10 = add(tmp1, tmp0);
        let tmp12 = sub(tmp1, tmp0);
        let (z1, z2, z3) = (t[1], t[3], t[5]);
        tmp1 = mul(add(z1, z3), FIX_0_366025404);
        tmp0 = add(tmp1, _mm256_slli_epi32::<CONST_BITS>(add(z1, z2)));
        let tmp2 = add(tmp1, _mm256_slli_epi32::<CONST_BITS>(sub(z3, z2)));
        tmp1 = _mm256_slli_epi32::<CONST_BITS>(sub(sub(z1, z2), z3));
        let o = transpose8([
            descale256(add(tmp10, tmp0)),
            descale256(add(tmp11, tmp1)),
            descale256(add(tmp12, tmp2)),
            descale256(sub(tmp12, tmp2)),
            descale256(sub(tmp11, tmp1)),
            descale256(sub(tmp10, tmp0)),
            zero,
            zero,
        ]);
        for (r, row) in o.iter().take(6).enumerate() {
            // SAFETY: libjpeg gives 6 rows with 6 bytes from col.
            unsafe { store((*out.add(r)).add(col), *row, 6) };
        }
        true
    }

    /// jidctint.c's jpeg_idct_10x10: pass 1 on the 8 columns, pass 2 on
    /// rows 0 to 7, then rows 8 and 9 (lanes 2 to 7 zero).
    ///
    /// # Safety
    /// As [`idct_10x10`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn kernel_10x10(
        coef: *const i16,
        table: *const i16,
        out: *mut *mut u8,
        col: usize,
    ) -> bool {
        let add = _mm256_add_epi32;
        let sub = _mm256_sub_epi32;
        let mul = |v: __m256i, c: i32| _mm256_mullo_epi32(v, _mm256_set1_epi32(c));
        // SAFETY: the caller's contract.
        let Some(d) = (unsafe { dequantized_within::<8>(coef, table, BOUND10) }) else {
            return false;
        };

        // One 1-D pass. Pass 1 shifts tmp22 and all but two outputs right
        // by 11 and scales tmp12 by 2^2; pass 2 shifts nothing yet and
        // scales tmp12 by 2^13 (C writes it as ((z1 - tmp13) << 13) - z3
        // with z3 already shifted: the same value modulo 2^32).
        let pass = |i: [__m256i; 8], round: __m256i, first: bool| {
            let shift = |v: __m256i| {
                if first {
                    _mm256_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(v)
                } else {
                    v
                }
            };
            let z3 = add(_mm256_slli_epi32::<CONST_BITS>(i[0]), round);
            let z1 = mul(i[4], FIX_1_144122806);
            let z2 = mul(i[4], FIX_0_437016024);
            let tmp10 = add(z3, z1);
            let tmp11 = sub(z3, z2);
            let tmp22 = shift(sub(z3, _mm256_slli_epi32::<1>(sub(z1, z2))));
            let z1 = mul(add(i[2], i[6]), FIX_0_831253876);
            let tmp12 = add(z1, mul(i[2], FIX_0_513743148));
            let tmp13 = sub(z1, mul(i[6], FIX_2_176250899));
            let tmp20 = add(tmp10, tmp12);
            let tmp24 = sub(tmp10, tmp12);
            let tmp21 = add(tmp11, tmp13);
            let tmp23 = sub(tmp11, tmp13);

            let z1 = i[1];
            let tmp11 = add(i[3], i[7]);
            let tmp13 = sub(i[3], i[7]);
            let tmp12 = mul(tmp13, FIX_0_309016994);
            let z5 = _mm256_slli_epi32::<CONST_BITS>(i[5]);
            let z2 = mul(tmp11, FIX_0_951056516);
            let z4 = add(z5, tmp12);
            let tmp10 = add(add(mul(z1, FIX_1_396802247), z2), z4);
            let tmp14 = add(sub(mul(z1, FIX_0_221231742), z2), z4);
            let z2 = mul(tmp11, FIX_0_587785252);
            let z4 = sub(
                sub(z5, tmp12),
                _mm256_slli_epi32::<{ CONST_BITS - 1 }>(tmp13),
            );
            let odd12 = sub(sub(z1, tmp13), i[5]);
            let tmp12 = if first {
                _mm256_slli_epi32::<PASS1_BITS>(odd12)
            } else {
                _mm256_slli_epi32::<CONST_BITS>(odd12)
            };
            let tmp11 = sub(sub(mul(z1, FIX_1_260073511), z2), z4);
            let tmp13 = add(sub(mul(z1, FIX_0_642039522), z2), z4);
            [
                shift(add(tmp20, tmp10)),
                shift(add(tmp21, tmp11)),
                add(tmp22, tmp12),
                shift(add(tmp23, tmp13)),
                shift(add(tmp24, tmp14)),
                shift(sub(tmp24, tmp14)),
                shift(sub(tmp23, tmp13)),
                sub(tmp22, tmp12),
                shift(sub(tmp21, tmp11)),
                shift(sub(tmp20, tmp10)),
            ]
        };
        let w = pass(
            d,
            _mm256_set1_epi32(1 << (CONST_BITS - PASS1_BITS - 1)),
            true,
        );

        // Pass 2: workspace rows in lanes, in two batches. The rounding
        // (w0 + 16) << 13 is w0 << 13 plus 16 << 13 modulo 2^32.
        let zero = _mm256_setzero_si256();
        let round = _mm256_set1_epi32(1 << (PASS1_BITS + 2 + CONST_BITS));
        let top = transpose8([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let bottom = transpose8([w[8], w[9], zero, zero, zero, zero, zero, zero]);
        for (first_row, rows, t) in [(0, 8, top), (8, 2, bottom)] {
            let o = pass(t, round, false).map(|v| descale256(v));
            let left = transpose8([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]);
            let right = transpose8([o[8], o[9], zero, zero, zero, zero, zero, zero]);
            for r in 0..rows {
                // SAFETY: libjpeg gives 10 rows with 10 bytes from col.
                unsafe {
                    let dst = (*out.add(first_row + r)).add(col);
                    store(dst, left[r], 8);
                    store(dst.add(8), right[r], 2);
                }
            }
        }
        true
    }

    /// jidctint.c's jpeg_idct_7x7, 8 lanes (lane 7 zero).
    ///
    /// # Safety
    /// As [`idct_7x7`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn kernel_7x7(
        coef: *const i16,
        table: *const i16,
        out: *mut *mut u8,
        col: usize,
    ) -> bool {
        let add = _mm256_add_epi32;
        let sub = _mm256_sub_epi32;
        let mul = |v: __m256i, c: i32| _mm256_mullo_epi32(v, _mm256_set1_epi32(c));
        // SAFETY: the caller's contract.
        let Some(d) = (unsafe { dequantized_within::<7>(coef, table, BOUND7) }) else {
            return false;
        };

        // One 1-D pass; `round` is the rounding already in d0's place.
        let pass = |i: [__m256i; 7], round: __m256i| {
            let mut tmp13 = add(_mm256_slli_epi32::<CONST_BITS>(i[0]), round);
            let (z1, z2, z3) = (i[2], i[4], i[6]);
            let mut tmp10 = mul(sub(z2, z3), FIX_0_881747734);
            let mut tmp12 = mul(sub(z1, z2), FIX_0_314692123);
            let tmp11 = sub(add(add(tmp10, tmp12), tmp13), mul(z2, FIX_1_841218003));
            let sum = add(z1, z3);
            let z2 = sub(z2, sum);
            let tmp0 = add(mul(sum, FIX_1_274162392), tmp13);
            tmp10 = add(tmp10, sub(tmp0, mul(z3, FIX_0_077722536)));
            tmp12 = add(tmp12, sub(tmp0, mul(z1, FIX_2_470602249)));
            tmp13 = add(tmp13, mul(z2, FIX_1_414213562));

            let (z1, z2, z3) = (i[1], i[3], i[5]);
            let mut tmp1 = mul(add(z1, z2), FIX_0_935414347);
            let mut tmp2 = mul(sub(z1, z2), FIX_0_170262339);
            let mut tmp0 = sub(tmp1, tmp2);
            tmp1 = add(tmp1, tmp2);
            tmp2 = mul(add(z2, z3), -FIX_1_378756276);
            tmp1 = add(tmp1, tmp2);
            let z2 = mul(add(z1, z3), FIX_0_613604268);
            tmp0 = add(tmp0, z2);
            tmp2 = add(tmp2, add(z2, mul(z3, FIX_1_870828693)));
            [
                add(tmp10, tmp0),
                add(tmp11, tmp1),
                add(tmp12, tmp2),
                tmp13,
                sub(tmp12, tmp2),
                sub(tmp11, tmp1),
                sub(tmp10, tmp0),
            ]
        };
        let shift = |v: __m256i| _mm256_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(v);
        let w = pass(d, _mm256_set1_epi32(1 << (CONST_BITS - PASS1_BITS - 1))).map(shift);

        // Pass 2: workspace rows in lanes. The rounding (w0 + 16) << 13 is
        // w0 << 13 plus 16 << 13, the same modulo 2^32.
        let zero = _mm256_setzero_si256();
        let t = transpose8([w[0], w[1], w[2], w[3], w[4], w[5], w[6], zero]);
        let o = pass(
            [t[0], t[1], t[2], t[3], t[4], t[5], t[6]],
            _mm256_set1_epi32(1 << (PASS1_BITS + 2 + CONST_BITS)),
        )
        .map(|v| descale256(v));
        let rows = transpose8([o[0], o[1], o[2], o[3], o[4], o[5], o[6], zero]);
        for (r, row) in rows.iter().take(7).enumerate() {
            // SAFETY: libjpeg gives 7 rows with 7 bytes from col.
            unsafe { store((*out.add(r)).add(col), *row, 7) };
        }
        true
    }

    /// jidctint.c's jpeg_idct_5x5, 8 lanes (5 to 7 zero).
    ///
    /// # Safety
    /// As [`idct_5x5`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn kernel_5x5(
        coef: *const i16,
        table: *const i16,
        out: *mut *mut u8,
        col: usize,
    ) -> bool {
        let add = _mm256_add_epi32;
        let sub = _mm256_sub_epi32;
        let mul = |v: __m256i, c: i32| _mm256_mullo_epi32(v, _mm256_set1_epi32(c));
        // SAFETY: the caller's contract.
        let Some(d) = (unsafe { dequantized_within::<5>(coef, table, BOUND5) }) else {
            return false;
        };

        // One 1-D pass; `round` is the rounding already in d0's place.
        let pass = |i: [__m256i; 5], round: __m256i| {
            let mut tmp12 = add(_mm256_slli_epi32::<CONST_BITS>(i[0]), round);
            let z1 = mul(add(i[2], i[4]), FIX_0_790569415);
            let z2 = mul(sub(i[2], i[4]), FIX_0_353553391);
            let z3 = add(tmp12, z2);
            let tmp10 = add(z3, z1);
            let tmp11 = sub(z3, z1);
            tmp12 = sub(tmp12, _mm256_slli_epi32::<2>(z2));
            let z1 = mul(add(i[1], i[3]), FIX_0_831253876);
            let tmp0 = add(z1, mul(i[1], FIX_0_513743148));
            let tmp1 = sub(z1, mul(i[3], FIX_2_176250899));
            [
                add(tmp10, tmp0),
                add(tmp11, tmp1),
                tmp12,
                sub(tmp11, tmp1),
                sub(tmp10, tmp0),
            ]
        };
        let shift = |v: __m256i| _mm256_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(v);
        let w = pass(d, _mm256_set1_epi32(1 << (CONST_BITS - PASS1_BITS - 1))).map(shift);

        // Pass 2: workspace rows in lanes. The rounding (w0 + 16) << 13 is
        // w0 << 13 plus 16 << 13, the same modulo 2^32.
        let zero = _mm256_setzero_si256();
        let t = transpose8([w[0], w[1], w[2], w[3], w[4], zero, zero, zero]);
        let o = pass(
            [t[0], t[1], t[2], t[3], t[4]],
            _mm256_set1_epi32(1 << (PASS1_BITS + 2 + CONST_BITS)),
        )
        .map(|v| descale256(v));
        let rows = transpose8([o[0], o[1], o[2], o[3], o[4], zero, zero, zero]);
        for (r, row) in rows.iter().take(5).enumerate() {
            // SAFETY: libjpeg gives 5 rows with 5 bytes from col.
            unsafe { store((*out.add(r)).add(col), *row, 5) };
        }
        true
    }

    /// jidctint.c's jpeg_idct_3x3, 4 lanes (lane 3 zero).
    ///
    /// # Safety
    /// As [`idct_3x3`].
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn kernel_3x3(
        coef: *const i16,
        table: *const i16,
        out: *mut *mut u8,
        col: usize,
    ) -> bool {
        let add = _mm_add_epi32;
        let sub = _mm_sub_epi32;
        let mul = |v: __m128i, c: i32| _mm_mullo_epi32(v, _mm_set1_epi32(c));
        let keep3 = _mm_setr_epi32(-1, -1, -1, 0);
        // SAFETY: the caller's contract.
        let d: [__m128i; 3] =
            std::array::from_fn(|r| _mm_and_si128(unsafe { dequantize4(coef, table, r) }, keep3));
        let over = _mm_or_si128(
            _mm_or_si128(over128(d[0], BOUND3), over128(d[1], BOUND3)),
            over128(d[2], BOUND3),
        );
        if _mm_testz_si128(over, over) == 0 {
            return false;
        }

        // Pass 1: columns in lanes.
        let tmp0 = add(
            _mm_slli_epi32::<CONST_BITS>(d[0]),
            _mm_set1_epi32(1 << (CONST_BITS - PASS1_BITS - 1)),
        );
        let tmp12 = mul(d[2], FIX_0_707106781);
        let tmp10 = add(tmp0, tmp12);
        let tmp2 = sub(sub(tmp0, tmp12), tmp12);
        let odd = mul(d[1], FIX_1_224744871);
        let shift = |v: __m128i| _mm_srai_epi32::<{ CONST_BITS - PASS1_BITS }>(v);
        let w = [shift(add(tmp10, odd)), shift(tmp2), shift(sub(tmp10, odd))];
        // Pass 2: workspace rows in lanes.
        let t = transpose4([w[0], w[1], w[2], _mm_setzero_si128()]);
        let tmp0 = _mm_slli_epi32::<CONST_BITS>(add(t[0], _mm_set1_epi32(1 << (PASS1_BITS + 2))));
        let tmp12 = mul(t[2], FIX_0_707106781);
        let tmp10 = add(tmp0, tmp12);
        let tmp2 = sub(sub(tmp0, tmp12), tmp12);
        let odd = mul(t[1], FIX_1_224744871);
        // Output columns in vectors, rows in lanes: packed to bytes (the
        // saturation is the clamp) and reordered row by row with one
        // shuffle instead of a transpose.
        let words01 = _mm_packs_epi32(descale128(add(tmp10, odd)), descale128(tmp2));
        let words2 = _mm_packs_epi32(descale128(sub(tmp10, odd)), _mm_setzero_si128());
        let columns = _mm_packus_epi16(words01, words2);
        let by_row = _mm_shuffle_epi8(
            columns,
            _mm_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, -1, -1, -1, -1, -1, -1, -1),
        );
        let mut bytes = [0u8; 16];
        // SAFETY: 16 bytes into a 16-byte array.
        unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), by_row) };
        for (r, row) in bytes.chunks_exact(3).take(3).enumerate() {
            // SAFETY: libjpeg gives 3 rows with 3 bytes from col.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), (*out.add(r)).add(col), 3) };
        }
        true
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
