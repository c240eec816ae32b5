//! Our own baseline JPEG writer (ITU T.81, sequential Huffman, 8-bit,
//! JFIF), built so that the quality search pays for the expensive part of
//! an encode once per photo instead of once per probe.
//!
//! An encode is colour conversion and a DCT (the same at every quality),
//! then quantisation and Huffman coding (which depend on it). [`Transformed`]
//! holds the DCT of a picture in one chroma layout; [`Transformed::encode`]
//! does the rest for one quality. A probe therefore costs a quantisation and
//! an entropy pass, about a third of a whole encode.
//!
//! Everything is plain integer or IEEE `f32` arithmetic in a fixed order
//! (Rust never fuses or reorders float operations on its own), so the bytes
//! are the same on every machine, whatever SIMD it has.
//!
//! Layout: SOI, JFIF APP0 (density in dots per inch), two quantisation
//! tables, SOF0, four Huffman tables optimised for this picture at this
//! quality (limited to 16-bit codes), one interleaved scan of Y, Cb, Cr (one
//! block each per MCU at 4:4:4; four Y blocks and one each of Cb and Cr at
//! 4:2:0), EOI. One interleaved scan is the layout every decoder has met:
//! libjpeg writes it by default.

use super::{Chroma, STD_CHROMA_QT, STD_LUMA_QT, ZIGZAG, dct_basis, scaled_table};
use crate::image::RgbImage;

/// The DCT coefficients of a picture, in scan order, unquantised.
pub(super) struct Transformed {
    width: u16,
    height: u16,
    chroma: Chroma,
    mcus_x: usize,
    /// Every block of the scan in the order it is coded (MCU by MCU; inside
    /// an MCU, component by component), its coefficients in zig-zag order
    /// (see [`fdct`]).
    blocks: Vec<[f32; 64]>,
}

/// Index of the component a block belongs to, for each block of an MCU.
fn mcu_components(chroma: Chroma) -> &'static [usize] {
    match chroma {
        Chroma::Full444 => &[0, 1, 2],
        Chroma::Sub420 => &[0, 0, 0, 0, 1, 2],
    }
}

/// A full-resolution plane of one component, padded to whole MCUs by
/// repeating the last column and row (what libjpeg does, and what keeps the
/// padding from adding detail to code).
struct Plane {
    width: usize,
    samples: Vec<f32>,
}

impl Plane {
    #[inline(always)]
    fn block(&self, x0: usize, y0: usize) -> [[f32; 8]; 8] {
        let mut b = [[0f32; 8]; 8];
        for (dy, row) in b.iter_mut().enumerate() {
            let start = (y0 + dy) * self.width + x0;
            row.copy_from_slice(&self.samples[start..start + 8]);
        }
        b
    }

    /// The plane halved both ways by averaging 2x2 squares (4:2:0 chroma).
    #[inline(always)]
    fn halved(&self) -> Plane {
        let width = self.width / 2;
        let height = self.samples.len() / self.width / 2;
        let mut samples = Vec::with_capacity(width * height);
        for y in 0..height {
            let top = &self.samples[2 * y * self.width..][..self.width];
            let bottom = &self.samples[(2 * y + 1) * self.width..][..self.width];
            for x in 0..width {
                let sum = (top[2 * x] + top[2 * x + 1]) + (bottom[2 * x] + bottom[2 * x + 1]);
                samples.push(sum * 0.25);
            }
        }
        Plane { width, samples }
    }
}

impl Transformed {
    pub(super) fn new(img: &RgbImage, chroma: Chroma) -> Transformed {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been found to support AVX2.
            return unsafe { Self::new_avx2(img, chroma) };
        }
        Self::compute::<false>(img, chroma)
    }

    /// [`Transformed::new`] compiled for AVX2, with the DCT written in AVX2
    /// intrinsics. The colour conversion and the DCT are eight-lane f32
    /// arithmetic; the same multiplications and additions in the same order
    /// (AVX2 brings no fused multiply-add), so every coefficient, and so
    /// every file, is bit-identical on any CPU.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn new_avx2(img: &RgbImage, chroma: Chroma) -> Transformed {
        Self::compute::<true>(img, chroma)
    }

    /// The transform, one row of MCUs at a time: whole-picture planes would
    /// be 3.7 MB of floats (for 480x640) written once and read back, where
    /// a strip of them stays in the cache. `AVX2` picks the intrinsics DCT
    /// and must only be set where the CPU has AVX2.
    // Inlined into both builds of `new`, with everything it calls.
    #[inline(always)]
    fn compute<const AVX2: bool>(img: &RgbImage, chroma: Chroma) -> Transformed {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mcu = match chroma {
            Chroma::Full444 => 8,
            Chroma::Sub420 => 16,
        };
        let (pw, ph) = (w.div_ceil(mcu) * mcu, h.div_ceil(mcu) * mcu);
        let (mcus_x, mcus_y) = (pw / mcu, ph / mcu);
        // JFIF's YCbCr, level-shifted so that the DCT sees -128..127.
        let mut strip: [Plane; 3] = std::array::from_fn(|_| Plane {
            width: pw,
            samples: vec![0f32; pw * mcu],
        });
        let basis = dct_basis();
        let layout = mcu_components(chroma);
        let mut blocks = Vec::with_capacity(mcus_x * mcus_y * layout.len());
        for my in 0..mcus_y {
            for dy in 0..mcu {
                let y = my * mcu + dy;
                let row = img.row(y.min(h - 1) as u32);
                let [luma, cb, cr] = &mut strip;
                let span = dy * pw..(dy + 1) * pw;
                let (luma, cb, cr) = (
                    &mut luma.samples[span.clone()],
                    &mut cb.samples[span.clone()],
                    &mut cr.samples[span],
                );
                for (x, p) in row.chunks_exact(3).enumerate() {
                    let (r, g, b) = (f32::from(p[0]), f32::from(p[1]), f32::from(p[2]));
                    luma[x] = 0.299 * r + 0.587 * g + 0.114 * b - 128.0;
                    cb[x] = -0.168_736 * r - 0.331_264 * g + 0.5 * b;
                    cr[x] = 0.5 * r - 0.418_688 * g - 0.081_312 * b;
                }
                for plane_row in [luma, cb, cr] {
                    let last = plane_row[w - 1];
                    plane_row[w..].fill(last);
                }
            }
            let halved;
            let planes: [&Plane; 3] = if chroma == Chroma::Sub420 {
                halved = [strip[1].halved(), strip[2].halved()];
                [&strip[0], &halved[0], &halved[1]]
            } else {
                [&strip[0], &strip[1], &strip[2]]
            };
            for mx in 0..mcus_x {
                let mut luma_blocks = 0;
                for &c in layout {
                    // Luma blocks of a 4:2:0 MCU go left to right, top to
                    // bottom; chroma has one block per MCU.
                    let (x0, y0) = if c == 0 {
                        let (dx, dy) = (luma_blocks % (mcu / 8), luma_blocks / (mcu / 8));
                        luma_blocks += 1;
                        (mx * mcu + dx * 8, dy * 8)
                    } else {
                        (mx * 8, 0)
                    };
                    blocks.push(block_dct::<AVX2>(planes[c], x0, y0, &basis));
                }
            }
        }
        Transformed {
            width: img.width() as u16,
            height: img.height() as u16,
            chroma,
            mcus_x,
            blocks,
        }
    }

    /// Luma blocks, and blocks of each chroma component, in a row of MCUs.
    pub(super) fn blocks_per_row(&self) -> (usize, usize) {
        let luma = mcu_components(self.chroma).iter().filter(|&&c| c == 0);
        (self.mcus_x * luma.count(), self.mcus_x)
    }

    pub(super) fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// The blocks row of MCUs by row of MCUs, each with its component;
    /// coefficients in zig-zag order.
    pub(super) fn mcu_rows(
        &self,
    ) -> impl ExactSizeIterator<Item = impl Iterator<Item = (usize, &[f32; 64])>> {
        let layout = mcu_components(self.chroma);
        let per_row = self.mcus_x * layout.len();
        self.blocks
            .chunks(per_row.max(1))
            .map(move |row| layout.iter().copied().cycle().zip(row))
    }

    /// The JPEG file at `quality`.
    pub(super) fn encode(&self, quality: u8, density_dpi: u16) -> Vec<u8> {
        self.code(quality, density_dpi, true).write()
    }

    /// The JPEG file at `quality`, or only a lower bound on its size when
    /// that bound is already over `max_bytes`. The bound is exact but for
    /// byte stuffing: the symbol counts fix the Huffman codes and so every
    /// coded bit, and only writing them shows which bytes come out as 0xFF.
    /// A probe that is over the window therefore skips the bit writing.
    ///
    /// When the caller expects the probe to be over (`likely_over`), the
    /// symbols are only counted, not kept for writing; should it fit after
    /// all, it is coded again with them. Either way the result is the same.
    pub(super) fn encode_within(
        &self,
        quality: u8,
        density_dpi: u16,
        max_bytes: usize,
        likely_over: bool,
    ) -> Probe {
        if likely_over {
            let counted = self.code(quality, density_dpi, false);
            if counted.at_least > max_bytes {
                return Probe::Over {
                    at_least: counted.at_least,
                };
            }
        }
        let coded = self.code(quality, density_dpi, true);
        if coded.at_least > max_bytes {
            Probe::Over {
                at_least: coded.at_least,
            }
        } else {
            Probe::Written(coded.write())
        }
    }

    /// Quantises and Huffman-codes at `quality`, up to writing the bits;
    /// without `keep`, only the size is found (the result cannot be
    /// written).
    fn code(&self, quality: u8, density_dpi: u16, keep: bool) -> Coded {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been found to support AVX2.
            return unsafe {
                if keep {
                    self.code_avx2::<true>(quality, density_dpi)
                } else {
                    self.code_avx2::<false>(quality, density_dpi)
                }
            };
        }
        if keep {
            self.quantise_and_count::<false, true>(quality, density_dpi)
        } else {
            self.quantise_and_count::<false, false>(quality, density_dpi)
        }
    }

    /// [`Transformed::code`] compiled for AVX2, with the quantisation in
    /// intrinsics; bit-identical for the same reasons as
    /// [`Transformed::new_avx2`]: the same multiplications and roundings
    /// eight lanes at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn code_avx2<const KEEP: bool>(&self, quality: u8, density_dpi: u16) -> Coded {
        self.quantise_and_count::<true, KEEP>(quality, density_dpi)
    }

    /// `AVX2` picks the intrinsics quantisation and must only be set where
    /// the CPU has AVX2; `KEEP` keeps the symbols for writing.
    #[inline(always)]
    fn quantise_and_count<const AVX2: bool, const KEEP: bool>(
        &self,
        quality: u8,
        density_dpi: u16,
    ) -> Coded {
        let tables = [
            scaled_table(&STD_LUMA_QT, quality),
            scaled_table(&STD_CHROMA_QT, quality),
        ];
        // In the blocks' zig-zag order.
        let reciprocals = tables.map(|t| std::array::from_fn(|k| 1.0 / f32::from(t[ZIGZAG[k]])));
        let layout = mcu_components(self.chroma);
        // First pass: every symbol in coding order, and how often each
        // table codes each symbol (to optimise the tables).
        // Room for the most symbols a block can have, so that the walk
        // writes into a slice: pushed one by one, the vector's pointer and
        // length lived on the stack through the whole loop.
        let room = if KEEP { MAX_BLOCK_SYMBOLS } else { 0 };
        let mut symbols: Vec<Symbol> = Vec::with_capacity(self.blocks.len() * room);
        let mut written = 0;
        // By [`Symbol::book_index`]: one flat array, so that counting a
        // symbol is one increment at an index it already carries.
        let mut counts = [0u32; 1024];
        let mut prev_dc = [0i16; 3];
        let out = symbols.spare_capacity_mut();
        for (block, &c) in self.blocks.iter().zip(layout.iter().cycle()) {
            let class = usize::from(c > 0);
            let (q, nonzero) = quantise_block::<AVX2>(block, &reciprocals[class]);
            walk_block(&q, nonzero, class, &mut prev_dc[c], |symbol| {
                counts[symbol.book_index()] += 1;
                if KEEP {
                    out[written].write(symbol);
                    written += 1;
                }
            });
        }
        // SAFETY: the walk wrote the first `written` symbols just above.
        unsafe { symbols.set_len(written) };
        // Each symbol is followed by as many magnitude bits as its low
        // four bits say, so the counts give their total.
        let extra_bits_total: u64 = counts
            .iter()
            .enumerate()
            .map(|(s, &n)| u64::from(n) * (s as u64 & 15))
            .sum();
        let counts: [[u32; 257]; 4] = std::array::from_fn(|table| {
            std::array::from_fn(|s| if s < 256 { counts[table * 256 + s] } else { 0 })
        });
        let codes = counts.map(|c| HuffmanTable::optimal(&c));

        let mut out = Vec::with_capacity(symbols.len() * 2 + 1024);
        self.write_headers(&mut out, &tables, &codes, density_dpi);
        let code_bits: u64 = codes
            .iter()
            .zip(&counts)
            .map(|(table, count)| {
                (0..256)
                    .map(|s| u64::from(count[s]) * u64::from(table.codes[s].1))
                    .sum::<u64>()
            })
            .sum();
        let payload = (code_bits + extra_bits_total).div_ceil(8) as usize;
        // Headers, the entropy-coded bytes before stuffing, EOI.
        Coded {
            at_least: out.len() + payload + 2,
            headers: out,
            symbols,
            codes,
        }
    }

    fn write_headers(
        &self,
        out: &mut Vec<u8>,
        tables: &[[u16; 64]; 2],
        codes: &[HuffmanTable; 4],
        density_dpi: u16,
    ) {
        out.extend_from_slice(&[0xFF, 0xD8]);
        // JFIF 1.01, density unit 1 (dots per inch), no thumbnail.
        let mut app0 = b"JFIF\0\x01\x01\x01".to_vec();
        app0.extend_from_slice(&density_dpi.to_be_bytes());
        app0.extend_from_slice(&density_dpi.to_be_bytes());
        app0.extend_from_slice(&[0, 0]);
        segment(out, 0xE0, &app0);
        let mut dqt = Vec::with_capacity(130);
        for (id, table) in tables.iter().enumerate() {
            dqt.push(id as u8);
            // Baseline tables are 8-bit; `scaled_table` clamps to 1..=255.
            dqt.extend(ZIGZAG.iter().map(|&n| table[n] as u8));
        }
        segment(out, 0xDB, &dqt);
        let luma_sampling = match self.chroma {
            Chroma::Full444 => 0x11,
            Chroma::Sub420 => 0x22,
        };
        let mut sof = vec![8];
        sof.extend_from_slice(&self.height.to_be_bytes());
        sof.extend_from_slice(&self.width.to_be_bytes());
        sof.extend_from_slice(&[3, 1, luma_sampling, 0, 2, 0x11, 1, 3, 0x11, 1]);
        segment(out, 0xC0, &sof);
        let mut dht = Vec::new();
        // Class 0 is DC, 1 is AC; id 0 luma, 1 chroma.
        for (i, table) in codes.iter().enumerate() {
            dht.push(((i / 2) << 4 | (i % 2)) as u8);
            dht.extend_from_slice(&table.counts);
            dht.extend_from_slice(&table.symbols);
        }
        segment(out, 0xC4, &dht);
        segment(out, 0xDA, &[3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    }
}

fn segment(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(body);
}

/// The DCT of the block of `plane` at (`x0`, `y0`): [`fdct`], or with
/// `AVX2` its intrinsics build, which gives the same bits.
#[inline(always)]
fn block_dct<const AVX2: bool>(
    plane: &Plane,
    x0: usize,
    y0: usize,
    basis: &[[f32; 8]; 8],
) -> [f32; 64] {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: only `new_avx2` asks for AVX2, and it runs only on a CPU
        // found to have it.
        return unsafe { avx2::fdct(&plane.samples, plane.width, x0, y0, basis) };
    }
    fdct(&plane.block(x0, y0), basis)
}

/// Separable 2-D DCT with the JPEG normalisation (DC = 8 x the mean), in
/// zig-zag order. Each pass transforms all eight columns at once, which
/// leaves the result transposed (`[u][v]`: horizontal frequency u, vertical
/// v); the pass that would undo that is folded into the zig-zag read, done
/// here once per block rather than by every quality probe.
#[inline(always)]
fn fdct(rows: &[[f32; 8]; 8], basis: &[[f32; 8]; 8]) -> [f32; 64] {
    let vertical = dct_columns(rows, basis);
    let turned: [[f32; 8]; 8] = std::array::from_fn(|x| std::array::from_fn(|v| vertical[v][x]));
    let both = dct_columns(&turned, basis);
    zigzag(both.as_flattened())
}

/// The transposed DCT output in zig-zag order. Scalar moves in both builds:
/// an AVX2 gather of a block just stored waits for the stores and, on Zen
/// 3, took a third of the transform.
#[inline(always)]
fn zigzag(transposed: &[f32]) -> [f32; 64] {
    std::array::from_fn(|k| transposed[TRANSPOSED_ZIGZAG[k]])
}

/// The 1-D DCT down each of the eight columns of `rows`, using the even/odd
/// symmetry of the cosines to halve the multiplications. Each step works on
/// a whole row of eight lanes, in a fixed order.
#[inline(always)]
fn dct_columns(rows: &[[f32; 8]; 8], basis: &[[f32; 8]; 8]) -> [[f32; 8]; 8] {
    let mut sums = [[0f32; 8]; 4];
    let mut diffs = [[0f32; 8]; 4];
    for j in 0..4 {
        sums[j] = lanes_add(&rows[j], &rows[7 - j]);
        diffs[j] = lanes_sub(&rows[j], &rows[7 - j]);
    }
    let mut out = [[0f32; 8]; 8];
    for (k, out_row) in out.iter_mut().enumerate() {
        // Even frequencies see only the sums, odd ones only the differences.
        let half = [&sums, &diffs][k % 2];
        let c = &basis[k];
        let mut acc = lanes_scale(&half[0], c[0]);
        acc = lanes_add(&acc, &lanes_scale(&half[1], c[1]));
        acc = lanes_add(&acc, &lanes_scale(&half[2], c[2]));
        *out_row = lanes_add(&acc, &lanes_scale(&half[3], c[3]));
    }
    out
}

#[inline(always)]
fn lanes_add(a: &[f32; 8], b: &[f32; 8]) -> [f32; 8] {
    std::array::from_fn(|i| a[i] + b[i])
}

#[inline(always)]
fn lanes_sub(a: &[f32; 8], b: &[f32; 8]) -> [f32; 8] {
    std::array::from_fn(|i| a[i] - b[i])
}

#[inline(always)]
fn lanes_scale(a: &[f32; 8], c: f32) -> [f32; 8] {
    std::array::from_fn(|i| a[i] * c)
}

/// [`fdct`] in AVX2 intrinsics. The compiler turns the portable version's
/// transpose between the passes into scalar moves and inserts; here it is
/// eight-lane shuffles. The arithmetic is [`dct_columns`]'s, operation for
/// operation.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::fdct`] of the 8x8 block at (`x0`, `y0`) of a plane of
    /// `width` samples a row.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn fdct(
        samples: &[f32],
        width: usize,
        x0: usize,
        y0: usize,
        basis: &[[f32; 8]; 8],
    ) -> [f32; 64] {
        let mut rows = [_mm256_setzero_ps(); 8];
        // The block's span of the plane, bounds-checked once rather than
        // row by row (the row checks were a quarter of the work).
        let start = y0 * width + x0;
        let span = &samples[start..start + 7 * width + 8];
        for (dy, row) in rows.iter_mut().enumerate() {
            // SAFETY: row dy is the eight floats from dy * width, and
            // dy * width + 8 <= 7 * width + 8 = span.len().
            *row = unsafe { _mm256_loadu_ps(span.as_ptr().add(dy * width)) };
        }
        let both = columns(&transpose(&columns(&rows, basis)), basis);
        let mut transposed = [0f32; 64];
        for (chunk, v) in transposed.chunks_exact_mut(8).zip(both) {
            // SAFETY: `chunk` has room for the eight floats written.
            unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), v) };
        }
        super::zigzag(&transposed)
    }

    /// [`super::quantise`] and [`super::nonzero_mask`] of one block. The
    /// rounding is one `cvtps2dq` of the signed product clamped to +-1023:
    /// it rounds to nearest, ties to even (the default mode, which Rust
    /// code never changes), as the portable version's 2^23 addition does,
    /// and that rounding is symmetric, so rounding the signed value equals
    /// signing the rounded magnitude (a product of either sign has the
    /// magnitude |c| * r exactly). The mask is two byte-packs and two
    /// `movemask`s.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn quantise(coefs: &[f32; 64], reciprocals: &[f32; 64]) -> ([i16; 64], u64) {
        let mut q = [0i16; 64];
        let mut zero_words = [_mm256_setzero_si256(); 2];
        // SAFETY: every load reads eight floats of a 64-float array at
        // `16 * i + 8 * h` (i < 4, h < 2), every store writes sixteen i16s
        // into `q` at `16 * i`.
        unsafe {
            let (high, low) = (_mm256_set1_ps(1023.0), _mm256_set1_ps(-1023.0));
            let zero = _mm256_setzero_si256();
            let mut words = [zero; 4];
            for (i, word) in words.iter_mut().enumerate() {
                let mut lanes = [zero; 2];
                for (h, lane) in lanes.iter_mut().enumerate() {
                    let at = 16 * i + 8 * h;
                    let c = _mm256_loadu_ps(coefs[at..at + 8].as_ptr());
                    let r = _mm256_loadu_ps(reciprocals[at..at + 8].as_ptr());
                    let scaled = _mm256_mul_ps(c, r);
                    *lane = _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(scaled, high), low));
                }
                // Packing works within 128-bit halves; the permutation puts
                // the four 64-bit pieces back in order.
                *word = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi32(lanes[0], lanes[1]));
                _mm256_storeu_si256(q[16 * i..16 * i + 16].as_mut_ptr().cast(), *word);
            }
            for (j, zeros) in zero_words.iter_mut().enumerate() {
                let low = _mm256_cmpeq_epi16(words[2 * j], zero);
                let high = _mm256_cmpeq_epi16(words[2 * j + 1], zero);
                *zeros = _mm256_permute4x64_epi64::<0xD8>(_mm256_packs_epi16(low, high));
            }
        }
        let (low, high) = (
            _mm256_movemask_epi8(zero_words[0]) as u32,
            _mm256_movemask_epi8(zero_words[1]) as u32,
        );
        (q, !(u64::from(low) | (u64::from(high) << 32)))
    }

    /// [`super::dct_columns`], lane for lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn columns(rows: &[__m256; 8], basis: &[[f32; 8]; 8]) -> [__m256; 8] {
        let mut sums = [_mm256_setzero_ps(); 4];
        let mut diffs = [_mm256_setzero_ps(); 4];
        for j in 0..4 {
            sums[j] = _mm256_add_ps(rows[j], rows[7 - j]);
            diffs[j] = _mm256_sub_ps(rows[j], rows[7 - j]);
        }
        let mut out = [_mm256_setzero_ps(); 8];
        for (k, out_row) in out.iter_mut().enumerate() {
            let half = [&sums, &diffs][k % 2];
            let c = &basis[k];
            let term = |j: usize| _mm256_mul_ps(half[j], _mm256_set1_ps(c[j]));
            let mut acc = term(0);
            acc = _mm256_add_ps(acc, term(1));
            acc = _mm256_add_ps(acc, term(2));
            *out_row = _mm256_add_ps(acc, term(3));
        }
        out
    }

    /// Rows become columns: lane x of row y goes to lane y of row x.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose(r: &[__m256; 8]) -> [__m256; 8] {
        // Pairs of rows interleaved, then pairs of pairs: each 128-bit
        // half then holds four rows of one column.
        let t: [__m256; 8] = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let u: [__m256; 8] = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        [
            _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
            _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
            _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
            _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
            _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
        ]
    }
}

/// Where natural-order coefficient `n` (row-major, `v * 8 + u`) sits in a
/// transposed block.
const fn transposed_index(n: usize) -> usize {
    (n % 8) * 8 + n / 8
}

/// `TRANSPOSED_ZIGZAG[k]`: where the k-th coefficient in zig-zag order sits
/// in a transposed block.
const TRANSPOSED_ZIGZAG: [usize; 64] = {
    let mut t = [0; 64];
    let mut k = 0;
    while k < 64 {
        t[k] = transposed_index(ZIGZAG[k]);
        k += 1;
    }
    t
};

/// [`quantise`] and [`nonzero_mask`] of one block, or with `AVX2` their
/// intrinsics build, which gives the same values.
#[inline(always)]
fn quantise_block<const AVX2: bool>(
    coefs: &[f32; 64],
    reciprocals: &[f32; 64],
) -> ([i16; 64], u64) {
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: only `code_avx2` asks for AVX2, and it runs only on a CPU
        // found to have it.
        return unsafe { avx2::quantise(coefs, reciprocals) };
    }
    let q = quantise(coefs, reciprocals);
    (q, nonzero_mask(&q))
}

/// Rounds each magnitude to the nearest integer (ties to even) and keeps it
/// within 1023, what baseline Huffman coding carries for AC (a DC of -1024
/// needs a black block at quality 100; it becomes -1023).
#[inline(always)]
fn quantise(coefs: &[f32; 64], reciprocals: &[f32; 64]) -> [i16; 64] {
    // Adding 2^23 leaves the rounded value in the low mantissa bits: IEEE
    // rounding in plain vector arithmetic, where a float-to-int cast would
    // cost a saturation check per coefficient.
    const SHIFT: f32 = 8_388_608.0;
    let mut q = [0i16; 64];
    for i in 0..64 {
        let c = coefs[i];
        let rounded = (c.abs() * reciprocals[i]).min(1023.0) + SHIFT;
        let m = (rounded.to_bits() - SHIFT.to_bits()) as i16;
        q[i] = if c < 0.0 { -m } else { m };
    }
    q
}

/// Bits needed for |v| (JPEG's "category" or SSSS), for |v| < 2^30. The
/// set low bit keeps the argument of `leading_zeros` non-zero, so there is
/// no branch for v = 0.
#[inline(always)]
const fn category(v: i32) -> u8 {
    (31 - ((v.unsigned_abs() << 1) | 1).leading_zeros()) as u8
}

/// The low `category` bits that follow a symbol: v itself when positive,
/// v - 1 (its one's complement) when negative; without a branch on the
/// sign, which is a coin toss for AC coefficients.
#[inline(always)]
const fn extra_bits(v: i32, category: u8) -> u16 {
    let bits = v.wrapping_add(v >> 31);
    ((bits as u32) & ((1u32 << category) - 1)) as u16
}

/// One Huffman symbol to write, packed into four bytes: the table that
/// codes it (bits 24-25, in [`Coded::codes`] order), the symbol (bits
/// 16-23) and the magnitude bits that follow it (bits 0-15). How many
/// magnitude bits follow is the symbol's low four bits: its size category
/// for DC and AC symbols alike, 0 for ZRL and EOB.
#[derive(Clone, Copy)]
struct Symbol(u32);

impl Symbol {
    #[inline(always)]
    fn new(table: usize, symbol: u8, extra: u16) -> Symbol {
        Symbol(((table as u32) << 24) | (u32::from(symbol) << 16) | u32::from(extra))
    }

    /// Table * 256 + symbol: where its code sits in a [`CodeBook`].
    #[inline(always)]
    fn book_index(self) -> usize {
        ((self.0 >> 16) & 0x3FF) as usize
    }

    #[inline(always)]
    fn extra(self) -> u32 {
        self.0 & 0xFFFF
    }
}

/// The codes of all four tables, indexed by [`Symbol::book_index`], each
/// already shifted left by as many magnitude bits as its symbol carries,
/// with the total bit count in the high half: writing a symbol is then one
/// load and one `or`.
type CodeBook = [u64; 1024];
/// A picture coded at one quality, its bits not yet written.
struct Coded {
    headers: Vec<u8>,
    symbols: Vec<Symbol>,
    codes: [HuffmanTable; 4],
    at_least: usize,
}

impl Coded {
    fn write(self) -> Vec<u8> {
        let mut book: CodeBook = [0; 1024];
        for (i, (entry, &(code, len))) in book
            .iter_mut()
            .zip(self.codes.iter().flat_map(|t| &t.codes))
            .enumerate()
        {
            // A symbol's low four bits are its count of magnitude bits.
            let extra_len = i as u32 & 15;
            *entry = (u64::from(u32::from(len) + extra_len) << 32) | u64::from(code << extra_len);
        }
        let mut out = self.headers;
        let mut bits = BitWriter::default();
        for &s in &self.symbols {
            let entry = book[s.book_index()];
            bits.put(&mut out, entry as u32 | s.extra(), (entry >> 32) as u32);
        }
        bits.finish(&mut out);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }
}

/// What one quality probe found.
pub(super) enum Probe {
    Written(Vec<u8>),
    /// Over the maximum without writing: at least this many bytes.
    Over {
        at_least: usize,
    },
}

/// The most symbols one block codes: DC, EOB, and one per AC coefficient
/// at most, since each AC symbol, ZRL included, stands for at least one of
/// the 63 AC coefficients.
const MAX_BLOCK_SYMBOLS: usize = 65;

/// Calls `emit` for each Huffman symbol of a quantised block of `class`
/// (0 luma, 1 chroma) whose non-zero coefficients are `nonzero`
/// ([`nonzero_mask`] of `zz`), in coding order: the DC difference, then
/// run/size AC symbols with ZRL for runs of 16 zeros and EOB after the last
/// non-zero.
#[inline(always)]
fn walk_block(
    zz: &[i16; 64],
    nonzero: u64,
    class: usize,
    prev_dc: &mut i16,
    mut emit: impl FnMut(Symbol),
) {
    let diff = i32::from(zz[0]) - i32::from(*prev_dc);
    *prev_dc = zz[0];
    let s = category(diff);
    emit(Symbol::new(class, s, extra_bits(diff, s)));
    let ac_table = 2 + class;
    let table_bits = (ac_table as u32) << 24;
    // Bit k set for each non-zero AC coefficient: runs of zeros are then
    // the gaps between set bits.
    let mut nonzero = nonzero & !1;
    let mut next = 1u32;
    while nonzero != 0 {
        let k = nonzero.trailing_zeros();
        nonzero &= nonzero - 1;
        let mut run = k - next;
        while run >= 16 {
            emit(Symbol::new(ac_table, 0xF0, 0));
            run -= 16;
        }
        // Quantised values lie in -1023..=1023, whose low eleven bits are
        // all different; the mask also tells the compiler that the index
        // is in bounds.
        let word = COEF_WORDS[usize::from(zz[k as usize] as u16) & 2047];
        emit(Symbol(word | (run << 20) | table_bits));
        next = k + 1;
    }
    if next < 64 {
        emit(Symbol::new(ac_table, 0x00, 0));
    }
}

/// A value's size category in bits 16-19 and the magnitude bits that
/// follow its symbol in bits 0-15: the part of an AC coefficient's
/// [`Symbol`] that depends on its value alone.
const fn coef_word(v: i32) -> u32 {
    let s = category(v);
    ((s as u32) << 16) | extra_bits(v, s) as u32
}

/// [`coef_word`] of every value from -1024 to 1023, at the value's low
/// eleven bits (two's complement): one load per coefficient coded instead
/// of a dozen instructions.
static COEF_WORDS: [u32; 2048] = {
    let mut t = [0; 2048];
    let mut i = 0;
    while i < 2048 {
        let v = if i < 1024 { i as i32 } else { i as i32 - 2048 };
        t[i] = coef_word(v);
        i += 1;
    }
    t
};

/// Bit k set where `zz[k]` is not zero. Built eight coefficients at a time:
/// a 0/1 byte per coefficient (a vector compare), and a multiplication
/// that gathers the low bits of eight such bytes into one byte.
#[inline(always)]
fn nonzero_mask(zz: &[i16; 64]) -> u64 {
    let flags: [u8; 64] = std::array::from_fn(|k| u8::from(zz[k] != 0));
    let mut mask = 0u64;
    for (j, chunk) in flags.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        // Byte i (value 0 or 1) lands on bit 56 + i of the product.
        let gathered = (u64::from_le_bytes(bytes).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= gathered << (8 * j);
    }
    mask
}

/// A Huffman table as written in DHT (code counts per length 1..=16, then
/// the symbols in code order) and the codes it defines.
struct HuffmanTable {
    counts: [u8; 16],
    symbols: Vec<u8>,
    /// (code, length) per symbol; length 0 for symbols never coded.
    codes: [(u32, u8); 256],
}

impl HuffmanTable {
    /// The optimal code for these symbol counts among codes of at most 16
    /// bits with no all-ones code word (T.81 Annex K.2 describes this
    /// construction; a reserved one-count symbol takes the all-ones word).
    fn optimal(counts: &[u32; 257]) -> HuffmanTable {
        let mut freq: Vec<u64> = counts.iter().map(|&c| u64::from(c)).collect();
        freq[256] = 1;
        let lengths = code_lengths(&freq);
        // Count codes per length, lengths up to 32 before limiting.
        let mut per_length = [0u32; 33];
        for &l in &lengths {
            if l > 0 {
                per_length[usize::from(l)] += 1;
            }
        }
        limit_to_16_bits(&mut per_length);
        // Drop the reserved symbol's code: it is one of the longest.
        if let Some(longest) = (1..=16).rev().find(|&l| per_length[l] > 0) {
            per_length[longest] -= 1;
        }
        // Symbols in order of original length, then value; the limited
        // length counts are dealt out in that order.
        let mut order: Vec<usize> = (0..256).filter(|&s| lengths[s] > 0).collect();
        order.sort_by_key(|&s| (lengths[s], s));
        let mut table = HuffmanTable {
            counts: [0; 16],
            symbols: order.iter().map(|&s| s as u8).collect(),
            codes: [(0, 0); 256],
        };
        let mut code = 0u32;
        let mut next = order.iter();
        for (len, &count) in per_length.iter().enumerate().take(17).skip(1) {
            table.counts[len - 1] = count as u8;
            for _ in 0..count {
                if let Some(&s) = next.next() {
                    table.codes[s] = (code, len as u8);
                }
                code += 1;
            }
            code <<= 1;
        }
        table
    }
}

/// Huffman code lengths (unbounded) for `freq`: repeatedly merges the two
/// least frequent live nodes; every symbol under a merge gets one bit
/// longer. Ties take the higher symbol first, so the result is a fixed
/// function of the counts.
fn code_lengths(freq: &[u64]) -> Vec<u8> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = freq.len();
    let mut lengths = vec![0u8; n];
    // Symbols merged into each live node, as a linked list through `next`.
    let mut next: Vec<Option<usize>> = vec![None; n];
    // A max-heap of (Reverse(weight), index) pops the lightest node, and of
    // equally light ones the highest index; a node keeps the index of the
    // lighter of the two it was merged from.
    let mut live: BinaryHeap<(Reverse<u64>, usize)> = freq
        .iter()
        .enumerate()
        .filter(|(_, f)| **f > 0)
        .map(|(i, &f)| (Reverse(f), i))
        .collect();
    while live.len() >= 2 {
        let (Some((Reverse(wa), a)), Some((Reverse(wb), b))) = (live.pop(), live.pop()) else {
            break;
        };
        live.push((Reverse(wa + wb), a));
        let mut tail = a;
        loop {
            lengths[tail] += 1;
            match next[tail] {
                Some(t) => tail = t,
                None => break,
            }
        }
        next[tail] = Some(b);
        let mut node = Some(b);
        while let Some(i) = node {
            lengths[i] += 1;
            node = next[i];
        }
    }
    lengths
}

/// Moves codes longer than 16 bits up the tree, keeping the code complete:
/// two codes of the longest length become one a bit shorter plus a sibling
/// for a code taken from a shorter length.
fn limit_to_16_bits(per_length: &mut [u32; 33]) {
    for len in (17..=32).rev() {
        while per_length[len] > 0 {
            let mut shorter = len - 2;
            while per_length[shorter] == 0 {
                shorter -= 1;
            }
            per_length[len] -= 2;
            per_length[len - 1] += 1;
            per_length[shorter + 1] += 2;
            per_length[shorter] -= 1;
        }
    }
}

/// Packs bits most significant first, inserting a zero byte after every
/// 0xFF of entropy-coded data, and pads the last byte with ones (T.81
/// F.1.2.3 and F.1.2.1.2).
///
/// The bytes go to a vector the caller owns, not one inside the writer: a
/// writer that held it had its address handed to every `Vec` call, and the
/// compiler then kept the bit accumulator in memory through the whole loop.
#[derive(Default)]
struct BitWriter {
    acc: u64,
    len: u32,
}

impl BitWriter {
    /// Appends `bits`, which must be below 2^`count`, as `count` bits (at
    /// most 32 per call). Callers pass codes and magnitudes already cut to
    /// their length, so there is nothing to mask.
    #[inline(always)]
    fn put(&mut self, out: &mut Vec<u8>, bits: u32, count: u32) {
        debug_assert!(count <= 32 && u64::from(bits) >> count == 0);
        self.acc = (self.acc << count) | u64::from(bits);
        self.len += count;
        if self.len >= 32 {
            self.len -= 32;
            let word = (self.acc >> self.len) as u32;
            if has_ff_byte(word) {
                word.to_be_bytes()
                    .into_iter()
                    .for_each(|b| push_byte(out, b));
            } else {
                out.extend_from_slice(&word.to_be_bytes());
            }
        }
    }

    fn finish(mut self, out: &mut Vec<u8>) {
        // Whole bytes first, then the last partial byte padded with ones.
        while self.len >= 8 {
            self.len -= 8;
            push_byte(out, (self.acc >> self.len) as u8);
        }
        if self.len > 0 {
            let pad = 8 - self.len;
            push_byte(out, ((self.acc << pad) as u8) | ((1u8 << pad) - 1));
        }
    }
}

fn push_byte(out: &mut Vec<u8>, byte: u8) {
    out.push(byte);
    if byte == 0xFF {
        out.push(0);
    }
}

/// Whether any byte of `w` is 0xFF (the classic "has a zero byte" test on
/// the complement).
fn has_ff_byte(w: u32) -> bool {
    let v = !w;
    v.wrapping_sub(0x0101_0101) & !v & 0x8080_8080 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_prefix_free_and_never_all_ones() {
        // Fibonacci counts force a 30-deep tree without limiting.
        let mut counts = [0u32; 257];
        let (mut a, mut b) = (1u32, 1u32);
        for c in counts.iter_mut().take(30) {
            *c = a;
            (a, b) = (b, a + b);
        }
        counts[200] = 5;
        let t = HuffmanTable::optimal(&counts);
        let coded: Vec<(u32, u8)> = t.codes.iter().copied().filter(|c| c.1 > 0).collect();
        assert_eq!(coded.len(), 31);
        assert!(coded.iter().all(|&(_, len)| (1..=16).contains(&len)));
        assert_eq!(t.counts.iter().map(|&c| usize::from(c)).sum::<usize>(), 31);
        for (i, &(ca, la)) in coded.iter().enumerate() {
            assert_ne!(ca, (1 << la) - 1, "all-ones code of length {la}");
            for &(cb, lb) in &coded[i + 1..] {
                let (short, long, ls, ll) = if la <= lb {
                    (ca, cb, la, lb)
                } else {
                    (cb, ca, lb, la)
                };
                assert_ne!(long >> (ll - ls), short, "one code is a prefix of another");
            }
        }
        // Kraft: the code is nearly complete (only the all-ones word left).
        let kraft: f64 = coded.iter().map(|&(_, l)| 0.5f64.powi(i32::from(l))).sum();
        assert!(kraft < 1.0 && kraft > 0.99, "kraft sum {kraft}");
    }

    #[test]
    fn frequent_symbols_get_shorter_codes() {
        let mut counts = [0u32; 257];
        counts[1] = 1000;
        counts[2] = 100;
        counts[3] = 10;
        counts[4] = 1;
        let t = HuffmanTable::optimal(&counts);
        let len = |s: usize| t.codes[s].1;
        assert!(len(1) < len(2) && len(2) < len(3) && len(3) <= len(4));
        assert_eq!(len(5), 0);
    }

    #[test]
    fn nonzero_mask_marks_exactly_the_nonzero_coefficients() {
        let mut zz = [0i16; 64];
        for k in [0usize, 1, 7, 8, 9, 30, 55, 62, 63] {
            zz[k] = if k % 2 == 0 { -3 } else { 1023 };
        }
        let want = [0u32, 1, 7, 8, 9, 30, 55, 62, 63]
            .iter()
            .fold(0u64, |m, &k| m | 1 << k);
        assert_eq!(nonzero_mask(&zz), want);
        assert_eq!(nonzero_mask(&[0; 64]), 0);
        assert_eq!(nonzero_mask(&[-1; 64]), u64::MAX);
    }

    #[test]
    fn the_coefficient_table_holds_every_value_at_its_low_bits() {
        for v in -1023i16..=1023 {
            let word = COEF_WORDS[usize::from(v as u16) & 2047];
            let s = category(i32::from(v));
            assert_eq!(word >> 16, u32::from(s), "{v}");
            assert_eq!(word & 0xFFFF, u32::from(extra_bits(i32::from(v), s)), "{v}");
        }
    }

    #[test]
    fn extra_bits_are_ones_complement_for_negatives() {
        assert_eq!((category(0), category(1), category(-1)), (0, 1, 1));
        assert_eq!((category(1023), category(-1024)), (10, 11));
        assert_eq!(extra_bits(5, 3), 0b101);
        assert_eq!(extra_bits(-5, 3), 0b010);
        assert_eq!(extra_bits(-1, 1), 0);
    }

    #[test]
    fn stuffs_a_zero_after_every_ff_and_pads_with_ones() {
        let (mut w, mut out) = (BitWriter::default(), Vec::new());
        w.put(&mut out, 0xFF, 8);
        w.put(&mut out, 0b101, 3);
        w.finish(&mut out);
        assert_eq!(out, vec![0xFF, 0x00, 0b1011_1111]);
    }

    /// Mean squared error between `img` and `jpeg` decoded by jpeg-decoder,
    /// a decoder that shares no code with ours or with verify's.
    fn mse(img: &RgbImage, jpeg: &[u8]) -> f64 {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let px = d.decode().unwrap();
        let info = d.info().unwrap();
        assert_eq!(
            (u32::from(info.width), u32::from(info.height)),
            (img.width(), img.height())
        );
        let sum: f64 = img
            .as_bytes()
            .iter()
            .zip(&px)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        sum / px.len() as f64
    }

    /// Zero bytes stuffed after 0xFF in the entropy-coded segment.
    fn stuffed_bytes(jpeg: &[u8]) -> usize {
        let sos = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS");
        let len = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
        let data = &jpeg[sos + 2 + len..jpeg.len() - 2];
        data.windows(2).filter(|w| *w == [0xFF, 0x00]).count()
    }

    #[test]
    fn the_size_bound_misses_only_the_stuffed_bytes() {
        let img = crate::testkit::synth::portrait(480, 640, 0.6, 11);
        for chroma in [Chroma::Full444, Chroma::Sub420] {
            let t = Transformed::new(&img, chroma);
            for quality in [50u8, 85, 97] {
                let bytes = t.encode(quality, 300);
                for likely_over in [false, true] {
                    let Probe::Over { at_least } = t.encode_within(quality, 300, 0, likely_over)
                    else {
                        panic!("a maximum of 0 must be over");
                    };
                    assert_eq!(bytes.len(), at_least + stuffed_bytes(&bytes), "q{quality}");
                    // At the bound the file is written, and it is the same
                    // file, whether or not it was expected to be over.
                    match t.encode_within(quality, 300, at_least, likely_over) {
                        Probe::Written(written) => assert_eq!(written, bytes),
                        Probe::Over { .. } => panic!("over its own lower bound at q{quality}"),
                    }
                }
            }
        }
    }

    /// The AVX2 builds of the transform and the quantisation must write the
    /// very bytes the portable ones do, or a photo's output would depend on
    /// the CPU it was made on (SPEC §1). Vacuous only on a CPU without AVX2,
    /// where that build is never used.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_build_writes_the_same_bytes() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        for (w, h, seed) in [(480, 640, 3), (37, 29, 5)] {
            let img = crate::testkit::synth::portrait(w, h, 0.4, seed);
            for chroma in [Chroma::Full444, Chroma::Sub420] {
                let portable = Transformed::compute::<false>(&img, chroma);
                // SAFETY: AVX2 support was checked above.
                let fast = unsafe { Transformed::new_avx2(&img, chroma) };
                let bits = |t: &Transformed| -> Vec<u32> {
                    t.blocks.iter().flatten().map(|c| c.to_bits()).collect()
                };
                assert_eq!(bits(&portable), bits(&fast), "{w}x{h} {chroma}");
                for quality in [40u8, 85, 100] {
                    let slow = portable.quantise_and_count::<false, true>(quality, 300);
                    // SAFETY: as above.
                    let quick = unsafe { portable.code_avx2::<true>(quality, 300) };
                    // SAFETY: as above.
                    let counted = unsafe { portable.code_avx2::<false>(quality, 300) };
                    assert_eq!(
                        counted.at_least, slow.at_least,
                        "{w}x{h} {chroma} q{quality}"
                    );
                    assert!(slow.write() == quick.write(), "{w}x{h} {chroma} q{quality}");
                }
            }
        }
    }

    /// The AVX2 quantisation rounds, clamps and signs exactly as the
    /// portable one, at ties, at the 1023 limit and at both zeros.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_quantisation_matches_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        // Noise at every scale, so that every magnitude, both signs and
        // the clamp meet every lane.
        let (reciprocals, blocks) =
            super::super::quantisation_probe(0x9E37_79B9, 700.0, &[1.0, 0.01, 0.1, 0.4, 0.7, 3.0]);
        for (i, block) in blocks.iter().enumerate() {
            let want = quantise(block, &reciprocals);
            // SAFETY: AVX2 support was checked above.
            let got = unsafe { avx2::quantise(block, &reciprocals) };
            assert_eq!(got, (want, nonzero_mask(&want)), "block {i}");
        }
        // Every tie n + 0.5 of either sign, past the clamp.
        for start in (-1100i32..1100).step_by(64) {
            let block: [f32; 64] = std::array::from_fn(|k| (start + k as i32) as f32 + 0.5);
            let want = quantise(&block, &[1.0; 64]);
            // SAFETY: AVX2 support was checked above.
            let got = unsafe { avx2::quantise(&block, &[1.0; 64]) };
            assert_eq!(got, (want, nonzero_mask(&want)), "ties from {start}");
        }
    }

    #[test]
    fn as_faithful_as_a_reference_encoder_at_the_same_quality() {
        // Odd sizes exercise the edge padding of partial blocks and MCUs.
        for (w, h, seed) in [(480, 640, 3), (37, 29, 5), (121, 77, 6)] {
            let img = crate::testkit::synth::portrait(w, h, 0.4, seed);
            for (chroma, sampling) in [
                (Chroma::Full444, jpeg_encoder::SamplingFactor::F_1_1),
                (Chroma::Sub420, jpeg_encoder::SamplingFactor::F_2_2),
            ] {
                for quality in [60u8, 90, 100] {
                    let ours = Transformed::new(&img, chroma).encode(quality, 300);
                    let reference = crate::testkit::testimg::reference_jpeg(&img, quality, |e| {
                        e.set_sampling_factor(sampling);
                        e.set_optimized_huffman_tables(true);
                    });
                    let (mine, theirs) = (mse(&img, &ours), mse(&img, &reference));
                    assert!(
                        mine <= theirs * 1.1 + 0.5,
                        "{w}x{h} {chroma} q{quality}: mse {mine:.2} vs reference {theirs:.2}"
                    );
                    let ratio = ours.len() as f64 / reference.len() as f64;
                    assert!(
                        (0.85..1.15).contains(&ratio),
                        "{w}x{h} {chroma} q{quality}: {} bytes vs reference {}",
                        ours.len(),
                        reference.len()
                    );
                }
            }
        }
    }

    #[test]
    fn dct_of_a_flat_block_is_its_dc_only() {
        let basis = dct_basis();
        let c = fdct(&[[10.0; 8]; 8], &basis);
        assert!((c[0] - 80.0).abs() < 1e-3, "dc {}", c[0]);
        assert!(c[1..].iter().all(|v| v.abs() < 1e-3));
    }

    #[test]
    fn dct_matches_the_definition() {
        // A block with structure both ways, against the textbook double sum.
        let px: [f32; 64] = std::array::from_fn(|i| ((i * 37 + i / 8 * 11) % 61) as f32 - 30.0);
        let rows = std::array::from_fn(|y| std::array::from_fn(|x| px[y * 8 + x]));
        let c = fdct(&rows, &dct_basis());
        let cos = |a: usize, b: usize| {
            ((2 * a + 1) as f64 * b as f64 * std::f64::consts::PI / 16.0).cos()
        };
        let norm = |k: usize| {
            if k == 0 {
                std::f64::consts::FRAC_1_SQRT_2
            } else {
                1.0
            }
        };
        for v in 0..8 {
            for u in 0..8 {
                let mut sum = 0.0;
                for y in 0..8 {
                    for x in 0..8 {
                        sum += f64::from(px[y * 8 + x]) * cos(x, u) * cos(y, v);
                    }
                }
                let want = 0.25 * norm(u) * norm(v) * sum;
                let k = ZIGZAG.iter().position(|&n| n == v * 8 + u).unwrap();
                let got = f64::from(c[k]);
                assert!((got - want).abs() < 1e-3, "({u},{v}): {got} vs {want}");
            }
        }
    }
}
