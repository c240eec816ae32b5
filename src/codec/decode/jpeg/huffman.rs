//! Our own Huffman decoder for single-scan baseline JPEG, plugged into
//! libjpeg-turbo in place of its `decode_mcu` (jdhuff.c).
//!
//! libjpeg decodes a single-scan file MCU by MCU during
//! `jpeg_read_scanlines`, calling `cinfo->entropy->decode_mcu` for each
//! one. [`install`] points `cinfo->entropy` at a decoder of ours, which
//! writes exactly the coefficients libjpeg's would, faster: one table
//! lookup yields a coefficient's run, its sign-extended value and the bits
//! taken by code and magnitude together, and the bit buffer is refilled a
//! word at a time where the next 8 bytes hold no 0xFF.
//!
//! It only ever handles well-formed data. Whatever libjpeg would meet with a
//! warning and made-up coefficients (a marker inside an interval, a code not
//! in the table, data running out, a restart marker out of order) makes ours
//! unwind with [`Fallback`] instead, and the caller decodes the file again
//! with plain libjpeg, so every file gives libjpeg's bytes.

use mozjpeg_sys::{
    J_COLOR_SPACE, JHUFF_TBL, boolean, c_int, c_uint, c_void, jpeg_common_struct,
    jpeg_component_info, jpeg_decompress_struct, jpeg_error_mgr,
};
use std::mem::{offset_of, size_of};

/// Unwind payload of a decode our decoder gave up on: the file must be
/// decoded again with plain libjpeg. The reason is for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback(pub &'static str);

// ---------------------------------------------------------------------------
// libjpeg's structures. mozjpeg-sys keeps the fields we need private, so we
// read them through mirrors of its `#[repr(C)]` layouts (JPEG_LIB_VERSION 62,
// the ABI it is built with here). The assertions tie each mirror to the
// public fields around the private ones, so a layout change fails the build.

#[repr(C)]
#[allow(non_snake_case, dead_code)]
struct Decompress {
    common: jpeg_common_struct,
    src: *mut mozjpeg_sys::jpeg_source_mgr,
    image_width: c_uint,
    image_height: c_uint,
    num_components: c_int,
    jpeg_color_space: c_int,
    out_color_space: c_int,
    scale_num: c_uint,
    scale_denom: c_uint,
    output_gamma: f64,
    buffered_image: boolean,
    raw_data_out: boolean,
    dct_method: c_int,
    do_fancy_upsampling: boolean,
    do_block_smoothing: boolean,
    quantize_colors: boolean,
    dither_mode: c_int,
    two_pass_quantize: boolean,
    desired_number_of_colors: c_int,
    enable_1pass_quant: boolean,
    enable_external_quant: boolean,
    enable_2pass_quant: boolean,
    output_width: c_uint,
    output_height: c_uint,
    out_color_components: c_int,
    output_components: c_int,
    rec_outbuf_height: c_int,
    actual_number_of_colors: c_int,
    colormap: *mut c_void,
    output_scanline: c_uint,
    input_scan_number: c_int,
    input_iMCU_row: c_uint,
    output_scan_number: c_int,
    output_iMCU_row: c_uint,
    coef_bits: *mut c_void,
    quant_tbl_ptrs: [*mut c_void; 4],
    dc_huff_tbl_ptrs: [*mut JHUFF_TBL; 4],
    ac_huff_tbl_ptrs: [*mut JHUFF_TBL; 4],
    data_precision: c_int,
    comp_info: *mut jpeg_component_info,
    progressive_mode: boolean,
    arith_code: boolean,
    arith_dc_L: [u8; 16],
    arith_dc_U: [u8; 16],
    arith_ac_K: [u8; 16],
    restart_interval: c_uint,
    saw_JFIF_marker: boolean,
    JFIF_major_version: u8,
    JFIF_minor_version: u8,
    density_unit: u8,
    X_density: u16,
    Y_density: u16,
    saw_Adobe_marker: boolean,
    Adobe_transform: u8,
    CCIR601_sampling: boolean,
    marker_list: *mut c_void,
    max_h_samp_factor: c_int,
    max_v_samp_factor: c_int,
    min_DCT_scaled_size: c_int,
    total_iMCU_rows: c_uint,
    sample_range_limit: *mut u8,
    comps_in_scan: c_int,
    cur_comp_info: [*mut jpeg_component_info; 4],
    MCUs_per_row: c_uint,
    MCU_rows_in_scan: c_uint,
    blocks_in_MCU: c_int,
    MCU_membership: [c_int; 10],
    Ss: c_int,
    Se: c_int,
    Ah: c_int,
    Al: c_int,
    unread_marker: c_int,
    master: *mut c_void,
    main: *mut c_void,
    coef: *mut c_void,
    post: *mut c_void,
    inputctl: *mut InputController,
    marker: *mut c_void,
    entropy: *mut EntropyPublic,
    idct: *mut c_void,
    upsample: *mut c_void,
    cconvert: *mut c_void,
    cquantize: *mut c_void,
}

#[repr(C)]
#[allow(non_snake_case, dead_code)]
struct Component {
    component_id: c_int,
    component_index: c_int,
    h_samp_factor: c_int,
    v_samp_factor: c_int,
    quant_tbl_no: c_int,
    dc_tbl_no: c_int,
    ac_tbl_no: c_int,
    width_in_blocks: c_uint,
    height_in_blocks: c_uint,
    DCT_scaled_size: c_int,
    downsampled_width: c_uint,
    downsampled_height: c_uint,
    component_needed: boolean,
    MCU_width: c_int,
    MCU_height: c_int,
    MCU_blocks: c_int,
    MCU_sample_width: c_int,
    last_col_width: c_int,
    last_row_height: c_int,
    quant_table: *mut c_void,
    dct_table: *mut c_void,
}

/// `struct jpeg_input_controller` (jpegint.h).
#[repr(C)]
struct InputController {
    consume_input: *mut c_void,
    reset_input_controller: *mut c_void,
    start_input_pass: *mut c_void,
    finish_input_pass: *mut c_void,
    has_multiple_scans: boolean,
    eoi_reached: boolean,
}

type Block = [i16; 64];

/// `struct jpeg_entropy_decoder` (jpegint.h): what libjpeg calls.
#[repr(C)]
struct EntropyPublic {
    start_pass: Option<unsafe extern "C-unwind" fn(*mut Decompress)>,
    decode_mcu: Option<unsafe extern "C-unwind" fn(*mut Decompress, *mut *mut Block) -> boolean>,
    insufficient_data: boolean,
}

type Sys = jpeg_decompress_struct;
const _: () = {
    assert!(size_of::<Decompress>() == size_of::<Sys>());
    assert!(offset_of!(Decompress, src) == offset_of!(Sys, src));
    assert!(offset_of!(Decompress, coef_bits) == offset_of!(Sys, coef_bits));
    assert!(offset_of!(Decompress, quant_tbl_ptrs) == offset_of!(Sys, quant_tbl_ptrs));
    assert!(offset_of!(Decompress, comp_info) == offset_of!(Sys, comp_info));
    assert!(offset_of!(Decompress, density_unit) == offset_of!(Sys, density_unit));
    assert!(offset_of!(Decompress, X_density) == offset_of!(Sys, X_density));
    assert!(offset_of!(Decompress, marker_list) == offset_of!(Sys, marker_list));
    assert!(offset_of!(Decompress, max_v_samp_factor) == offset_of!(Sys, max_v_samp_factor));
    assert!(size_of::<Component>() == size_of::<jpeg_component_info>());
    assert!(
        offset_of!(Component, height_in_blocks)
            == offset_of!(jpeg_component_info, height_in_blocks)
    );
    assert!(offset_of!(Component, quant_table) == offset_of!(jpeg_component_info, quant_table));
};

// ---------------------------------------------------------------------------
// Tables.

/// Bits looked up at once. 10 bits take most AC coefficients of real photos
/// (code and magnitude together) in one lookup while four tables of 4 KB stay
/// in L1.
const LOOKUP: u32 = 10;

/// Zig-zag index to natural index, then 64 more entries of 63: libjpeg's
/// `jpeg_natural_order` has 16 such entries, so that a run past the end of a
/// block lands on coefficient 63, as libjpeg's does. We go to 128 because an
/// end-of-block advances `k` by 64 (see [`Table::fast`]).
static NATURAL: [u8; 128] = {
    let zigzag: [u8; 64] = [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
        20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
    ];
    let mut t = [63u8; 128];
    let mut i = 0;
    while i < 64 {
        t[i] = zigzag[i];
        i += 1;
    }
    t
};

/// One Huffman table, derived for decoding.
struct Table {
    /// Indexed by the next [`LOOKUP`] bits. A "full" entry (bits 0-5 non-zero)
    /// is a whole coefficient: bits 0-5 the bits it takes (code + magnitude),
    /// bits 8-14 how far it moves `k` before the store (the zero run; 15 for
    /// ZRL, whose store writes a zero; 64 for end-of-block, which ends the
    /// block however far `k` was), bits 16-31 the value (i16). A "partial"
    /// entry (bits 0-5 zero, bits 8-12 non-zero) is a code of at most
    /// LOOKUP bits whose magnitude does not fit: bits 8-12 its length, 16-23
    /// its symbol. 0: the code is longer than LOOKUP bits (or no code).
    fast: [u32; 1 << LOOKUP],
    /// Largest code of each length, -1 for none (T.81 F.16).
    maxcode: [i32; 17],
    /// Index into `values` of a code of each length, less the code.
    valoffset: [i32; 17],
    values: [u8; 256],
    dc: bool,
}

/// T.81 F.12: a magnitude's `s` raw bits to its signed value.
fn extend(bits: u32, s: u32) -> i32 {
    if bits < (1 << (s - 1)) {
        bits as i32 - (1 << s) + 1
    } else {
        bits as i32
    }
}

/// Packs a whole coefficient as a full entry.
fn full(len: u32, advance: u32, value: i32) -> u32 {
    len | (advance << 8) | ((value as u32) << 16)
}

impl Table {
    /// None if the table is not a valid canonical code (libjpeg refuses
    /// such tables before we are installed, so this does not happen).
    fn new(t: &JHUFF_TBL, dc: bool) -> Option<Box<Table>> {
        let mut table = Box::new(Table {
            fast: [0; 1 << LOOKUP],
            maxcode: [-1; 17],
            valoffset: [0; 17],
            values: t.huffval,
            dc,
        });
        let mut code: u32 = 0;
        let mut p: usize = 0;
        for len in 1..=16u32 {
            let count = usize::from(t.bits[len as usize]);
            if p + count > 256 {
                return None;
            }
            if count > 0 {
                table.valoffset[len as usize] = p as i32 - code as i32;
                for &symbol in &t.huffval[p..p + count] {
                    if len <= LOOKUP {
                        table.fill(len, code, symbol);
                    }
                    code += 1;
                }
                p += count;
                table.maxcode[len as usize] = code as i32 - 1;
            }
            // No code may be all ones (T.81 C.2; jdhuff.c checks the same).
            if code >= (1 << len) {
                return None;
            }
            code <<= 1;
        }
        Some(table)
    }

    /// Fills the lookup entries of every bit sequence starting with `code`.
    fn fill(&mut self, len: u32, code: u32, symbol: u8) {
        let (run, size) = self.split(symbol);
        let spare = LOOKUP - len;
        let first = code << spare;
        for index in first..first + (1 << spare) {
            self.fast[index as usize] = if size == 0 {
                full(len, self.zero_advance(run), 0)
            } else if len + size <= LOOKUP {
                let raw = (index >> (spare - size)) & ((1 << size) - 1);
                full(len + size, run, extend(raw, size))
            } else {
                (len << 8) | (u32::from(symbol) << 16)
            };
        }
    }

    /// A symbol's zero run and magnitude size. DC symbols are sizes alone.
    fn split(&self, symbol: u8) -> (u32, u32) {
        if self.dc {
            (0, u32::from(symbol))
        } else {
            (u32::from(symbol >> 4), u32::from(symbol & 15))
        }
    }

    /// How far a size-0 symbol moves `k`: ZRL (run 15) skips 15 and stores a
    /// zero at the 16th, any other run ends the block (libjpeg: "if (r != 15)
    /// break"). A DC difference of size 0 is a zero.
    fn zero_advance(&self, run: u32) -> u32 {
        match (self.dc, run) {
            (true, _) => 0,
            (false, 15) => 15,
            (false, _) => 64,
        }
    }

    /// The entry for a code that the lookup could not finish, decoded from
    /// the top of `buf` (which holds at least 31 valid bits), in the full
    /// entry format. None: no code of up to 16 bits matches.
    #[cold]
    #[inline(never)]
    fn slow(&self, entry: u32, buf: u64) -> Option<u32> {
        let (len, symbol) = if entry != 0 {
            ((entry >> 8) & 31, (entry >> 16) as u8)
        } else {
            let mut found = None;
            for len in LOOKUP + 1..=16 {
                let code = (buf >> (64 - len)) as i32;
                if code <= self.maxcode[len as usize] {
                    let at = usize::try_from(code + self.valoffset[len as usize]).ok()?;
                    found = Some((len, *self.values.get(at)?));
                    break;
                }
            }
            found?
        };
        let (run, size) = self.split(symbol);
        if size == 0 {
            return Some(full(len, self.zero_advance(run), 0));
        }
        let raw = ((buf << len) >> (64 - size)) as u32;
        Some(full(len + size, run, extend(raw, size)))
    }
}

// ---------------------------------------------------------------------------
// The bit reader.

/// Whether any byte of `w` is 0xFF (a zero byte of `!w`).
#[inline(always)]
fn has_ff(w: u64) -> bool {
    let x = !w;
    (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0
}

/// Where the scan's bytes stand. `buf` holds `bits` unread bits at its top
/// (below them, up to 7 bits of the next byte may linger, see `refill!` in `decode`).
#[derive(Clone, Copy)]
struct Bits {
    buf: u64,
    bits: u32,
    /// Next byte to load, as an index into the scan data.
    pos: usize,
    /// Zero bits appended after the data ran out (a marker, or the end of the
    /// buffer); they sit at the bottom of the valid bits, so reading into
    /// them shows as `bits < phantom`.
    phantom: u32,
}

/// A marker met while loading bits: its code and the index after it.
#[derive(Clone, Copy)]
struct Marker {
    code: u8,
    after: usize,
}

/// The next 8 bytes as a big-endian word, if there are 8.
#[inline(always)]
fn word_at(data: &[u8], pos: usize) -> Option<u64> {
    let mut w = [0u8; 8];
    w.copy_from_slice(data.get(pos..pos + 8)?);
    Some(u64::from_be_bytes(w))
}

impl Bits {
    /// Loads bits byte by byte until at least 56 are valid (counting phantom
    /// zeros): the path for words holding an 0xFF (see `decode`'s refill).
    #[cold]
    #[inline(never)]
    fn refill_bytes(&mut self, data: &[u8], marker: &mut Option<Marker>) {
        // The lingering part-byte of a word load may not be what comes next
        // here (a marker's 0xFF is not data).
        self.buf &= !(u64::MAX >> self.bits);
        while self.bits <= 56 {
            let shift = 56 - self.bits;
            self.bits += 8;
            if marker.is_some() {
                self.phantom += 8;
                continue;
            }
            let Some(&byte) = data.get(self.pos) else {
                self.phantom += 8;
                continue;
            };
            if byte != 0xFF {
                self.buf |= u64::from(byte) << shift;
                self.pos += 1;
                continue;
            }
            // As jdhuff.c's jpeg_fill_bit_buffer: any number of 0xFF, then
            // 0x00 is one 0xFF data byte, anything else a marker.
            let mut at = self.pos + 1;
            while data.get(at) == Some(&0xFF) {
                at += 1;
            }
            match data.get(at) {
                Some(0) => {
                    self.buf |= 0xFF << shift;
                    self.pos = at + 1;
                }
                Some(&code) => {
                    *marker = Some(Marker {
                        code,
                        after: at + 1,
                    });
                    self.phantom += 8;
                }
                None => {
                    self.pos = data.len();
                    self.phantom += 8;
                }
            }
        }
    }
}

/// jdmarker.c's next_marker, from `pos`: skips anything up to a 0xFF, then
/// fill 0xFFs; 0x00 after them is stuffing and the search goes on.
fn next_marker(data: &[u8], mut pos: usize) -> Option<Marker> {
    loop {
        while *data.get(pos)? != 0xFF {
            pos += 1;
        }
        while *data.get(pos)? == 0xFF {
            pos += 1;
        }
        let code = *data.get(pos)?;
        pos += 1;
        if code != 0 {
            return Some(Marker { code, after: pos });
        }
    }
}

// ---------------------------------------------------------------------------
// The decoder libjpeg calls.

/// Our entropy decoder, and the handle that keeps it installed: dropping it
/// gives libjpeg its own decoder back.
#[repr(C)]
pub struct Installed {
    /// Must come first: libjpeg sees `cinfo->entropy` as this.
    public: EntropyPublic,
    cinfo: *mut Decompress,
    original: *mut EntropyPublic,
    /// The scan data and everything after it, as the source buffer held it.
    data: *const u8,
    len: usize,
    bits: Bits,
    marker: Option<Marker>,
    dc_pred: [i32; 4],
    restart_interval: u32,
    restarts_to_go: u32,
    next_restart: u8,
    mcus_left: u64,
    blocks: usize,
    /// Per block of the MCU: component in the scan, DC and AC table index.
    component: [usize; 10],
    dc_table: [usize; 10],
    ac_table: [usize; 10],
    dc_needed: [bool; 10],
    ac_needed: [bool; 10],
    tables: Vec<Box<Table>>,
    /// Where coefficients nobody reads are written.
    scratch: Block,
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: `install`'s contract: cinfo outlives this handle.
        unsafe {
            if (*self.cinfo).entropy == (self as *mut Installed).cast() {
                (*self.cinfo).entropy = self.original;
            }
        }
    }
}

#[cold]
fn give_up(reason: &'static str) -> ! {
    // resume_unwind, not panic: no panic hook, nothing printed; libjpeg is
    // built with -fexceptions (mozjpeg-sys `unwinding`), as for its errors.
    std::panic::resume_unwind(Box::new(Fallback(reason)))
}

unsafe extern "C-unwind" fn start_pass(_cinfo: *mut Decompress) {
    // A second scan in a file we took for single-scan.
    give_up("another scan")
}

unsafe extern "C-unwind" fn decode_mcu(cinfo: *mut Decompress, mcu: *mut *mut Block) -> boolean {
    // SAFETY: libjpeg passes the cinfo whose entropy we installed; `install`'s
    // contract keeps the data alive; MCU_data holds blocks_in_MCU blocks.
    unsafe {
        let this = &mut *(*cinfo).entropy.cast::<Installed>();
        let data = std::slice::from_raw_parts(this.data, this.len);
        this.decode(data, mcu);
        if this.mcus_left == 0 {
            this.finish(data);
        }
    }
    1
}

impl Installed {
    /// # Safety
    /// `mcu` is null or points at `self.blocks` block pointers, each null or
    /// a writable block.
    #[inline(always)]
    unsafe fn decode(&mut self, data: &[u8], mcu: *mut *mut Block) {
        if self.mcus_left == 0 {
            give_up("MCU after the end of the scan");
        }
        if self.restart_interval != 0 {
            if self.restarts_to_go == 0 {
                self.restart(data);
            }
            self.restarts_to_go -= 1;
        }
        self.mcus_left -= 1;
        // The reader in plain locals: a reader whose address is taken (or
        // that a call returns through memory) lives on the stack, and every
        // refill then put the bit buffer through a store and a load on the
        // decode's critical path (perf: 10% of this function).
        let Bits {
            mut buf,
            bits: mut n,
            mut pos,
            mut phantom,
        } = self.bits;
        let mut marker = self.marker;
        // Loads whole bytes until at least 56 bits are valid. Without 0xFF in
        // the next 8 bytes there is no stuffing and no marker: they are data
        // as they stand. Part of the next byte may land below `n`: the same
        // bits the next load puts there.
        macro_rules! refill {
            () => {
                match word_at(data, pos) {
                    Some(w) if !has_ff(w) => {
                        buf |= w >> n;
                        pos += ((63 - n) >> 3) as usize;
                        n |= 56;
                    }
                    _ => {
                        let mut slow = Bits {
                            buf,
                            bits: n,
                            pos,
                            phantom,
                        };
                        slow.refill_bytes(data, &mut marker);
                        Bits {
                            buf,
                            bits: n,
                            pos,
                            phantom,
                        } = slow;
                    }
                }
            };
        }
        for b in 0..self.blocks {
            // SAFETY: the caller's contract.
            let target = unsafe {
                let p = if mcu.is_null() {
                    std::ptr::null_mut()
                } else {
                    *mcu.add(b)
                };
                if p.is_null() { None } else { Some(&mut *p) }
            };
            let has_block = target.is_some();
            let block: &mut Block = match target {
                Some(block) => block,
                None => &mut self.scratch,
            };

            let dc = &self.tables[self.dc_table[b]];
            if n < 32 {
                refill!();
            }
            let mut e = dc.fast[(buf >> (64 - LOOKUP)) as usize];
            if e & 63 == 0 {
                e = match dc.slow(e, buf) {
                    Some(e) => e,
                    None => give_up("DC code not in the table"),
                };
            }
            // x86 shifts by the count's low 6 bits, which are the entry's
            // length: no masking on the decode's critical path.
            buf = buf.wrapping_shl(e);
            n -= e & 63;
            if self.dc_needed[b] {
                let c = self.component[b];
                // libjpeg adds in int and stores the low 16 bits.
                let v = self.dc_pred[c].wrapping_add((e as i32) >> 16);
                self.dc_pred[c] = v;
                block[0] = v as i16;
            }

            let ac = &self.tables[self.ac_table[b]];
            let block: &mut Block = if self.ac_needed[b] && has_block {
                block
            } else {
                &mut self.scratch
            };
            let mut k = 1usize;
            while k < 64 {
                if n < LOOKUP {
                    refill!();
                }
                let mut e = ac.fast[(buf >> (64 - LOOKUP)) as usize];
                if e & 63 == 0 {
                    if n < 32 {
                        refill!();
                    }
                    e = match ac.slow(e, buf) {
                        Some(e) => e,
                        None => give_up("AC code not in the table"),
                    };
                }
                buf = buf.wrapping_shl(e);
                n -= e & 63;
                k += ((e >> 8) & 127) as usize;
                block[usize::from(NATURAL[k & 127] & 63)] = ((e as i32) >> 16) as i16;
                k += 1;
            }
        }
        if n < phantom {
            give_up("scan data ran out inside an MCU");
        }
        self.bits = Bits {
            buf,
            bits: n,
            pos,
            phantom,
        };
        self.marker = marker;
    }

    /// jdhuff.c's process_restart, for well-formed data: the rest of the
    /// interval's last byte is padding, the marker must be the next RSTn.
    #[cold]
    fn restart(&mut self, data: &[u8]) {
        let Some(m) = self.marker.or_else(|| next_marker(data, self.bits.pos)) else {
            give_up("no restart marker");
        };
        if m.code != 0xD0 + self.next_restart {
            give_up("restart marker missing or out of order");
        }
        self.next_restart = (self.next_restart + 1) & 7;
        self.bits = Bits {
            buf: 0,
            bits: 0,
            pos: m.after,
            phantom: 0,
        };
        self.marker = None;
        self.dc_pred = [0; 4];
        self.restarts_to_go = self.restart_interval;
    }

    /// After the last MCU, leaves the source where libjpeg's own decoder
    /// leaves it when it has read up to the marker that ends the scan: the
    /// marker in `unread_marker`, the input just after it.
    #[cold]
    fn finish(&mut self, data: &[u8]) {
        let Some(m) = self.marker.or_else(|| next_marker(data, self.bits.pos)) else {
            give_up("no marker after the scan");
        };
        // SAFETY: install's contract: cinfo and its source are alive.
        unsafe {
            let src = &mut *(*self.cinfo).src;
            src.next_input_byte = self.data.add(m.after);
            src.bytes_in_buffer = self.len - m.after;
            (*self.cinfo).unread_marker = c_int::from(m.code);
        }
    }
}

/// Replaces libjpeg's Huffman decoder with ours for the scan about to be
/// decoded, if the file is one we handle: a single-scan, sequential,
/// Huffman-coded, 8-bit file. Call it after `jpeg_start_decompress` and
/// before the first `jpeg_read_scanlines`. None: not such a file, libjpeg
/// decodes it as always.
///
/// Any `jpeg_read_scanlines` may then unwind with a [`Fallback`] payload:
/// decode the file again without us.
///
/// # Safety
/// `cinfo` is a live decompressor of mozjpeg-sys's ABI, started, with no
/// scanline read yet, reading from a source that holds all the file's
/// remaining bytes in its buffer; cinfo and that buffer outlive the handle.
pub unsafe fn install(cinfo: *mut jpeg_decompress_struct) -> Option<Box<Installed>> {
    let cinfo = cinfo.cast::<Decompress>();
    // SAFETY: the caller's contract; the layout is checked above.
    unsafe {
        let c = &mut *cinfo;
        if c.progressive_mode != 0
            || c.arith_code != 0
            || c.data_precision != 8
            || c.buffered_image != 0
            || c.inputctl.is_null()
            || (*c.inputctl).has_multiple_scans != 0
            || c.entropy.is_null()
            || c.src.is_null()
            || c.output_scanline != 0
            || c.unread_marker != 0
            || !(1..=4).contains(&c.comps_in_scan)
            || !(1..=10).contains(&c.blocks_in_MCU)
        {
            return None;
        }
        let src = &*c.src;
        if src.next_input_byte.is_null() {
            return None;
        }
        let mut tables: Vec<Box<Table>> = Vec::new();
        let mut dc_of = [usize::MAX; 4];
        let mut ac_of = [usize::MAX; 4];
        let scan = c.comps_in_scan as usize;
        for &comp in &c.cur_comp_info[..scan] {
            let comp = &*comp.cast::<Component>();
            for (dc, slot) in [(true, &mut dc_of), (false, &mut ac_of)] {
                let no = usize::try_from(if dc { comp.dc_tbl_no } else { comp.ac_tbl_no }).ok()?;
                let ptrs = if dc {
                    &c.dc_huff_tbl_ptrs
                } else {
                    &c.ac_huff_tbl_ptrs
                };
                let t = (*ptrs.get(no)?).as_ref()?;
                if slot[no] == usize::MAX {
                    slot[no] = tables.len();
                    tables.push(Table::new(t, dc)?);
                }
            }
        }
        let blocks = c.blocks_in_MCU as usize;
        let mut this = Box::new(Installed {
            public: EntropyPublic {
                start_pass: Some(start_pass),
                decode_mcu: Some(decode_mcu),
                insufficient_data: 0,
            },
            cinfo,
            original: c.entropy,
            data: src.next_input_byte,
            len: src.bytes_in_buffer,
            bits: Bits {
                buf: 0,
                bits: 0,
                pos: 0,
                phantom: 0,
            },
            marker: None,
            dc_pred: [0; 4],
            restart_interval: c.restart_interval,
            restarts_to_go: c.restart_interval,
            next_restart: 0,
            mcus_left: u64::from(c.MCUs_per_row) * u64::from(c.MCU_rows_in_scan),
            blocks,
            component: [0; 10],
            dc_table: [0; 10],
            ac_table: [0; 10],
            dc_needed: [false; 10],
            ac_needed: [false; 10],
            tables,
            scratch: [0; 64],
        });
        for b in 0..blocks {
            let ci = usize::try_from(c.MCU_membership[b])
                .ok()
                .filter(|&ci| ci < scan)?;
            let comp = &*c.cur_comp_info[ci].cast::<Component>();
            this.component[b] = ci;
            this.dc_table[b] = dc_of[comp.dc_tbl_no as usize];
            this.ac_table[b] = ac_of[comp.ac_tbl_no as usize];
            // As jdhuff.c's start_pass: a 1/8 scale reads only DC.
            this.dc_needed[b] = comp.component_needed != 0;
            this.ac_needed[b] = comp.component_needed != 0 && comp.DCT_scaled_size > 1;
        }
        if this.mcus_left == 0 {
            return None;
        }
        c.entropy = (&mut *this as *mut Installed).cast();
        Some(this)
    }
}

// ---------------------------------------------------------------------------
// A minimal libjpeg driver: decodes a JPEG held in memory at M/8 scale, to
// RGB, or to CMYK for CMYK/YCCK files (as jpeg.rs does), with or without
// our decoder.

/// What [`decode_samples`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    pub jpeg_color_space: J_COLOR_SPACE,
    pub width: usize,
    pub height: usize,
    /// 3 (RGB) or 4 (CMYK) bytes a pixel, rows top to bottom.
    pub data: Vec<u8>,
}

/// Why [`decode_samples`] gave no samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// `fast` was asked but the file is not single-scan baseline.
    #[error("not a single-scan baseline file")]
    NotEligible,
    /// Our decoder gave up on the scan.
    #[error("fast decode abandoned: {0}")]
    Fallback(&'static str),
    #[error("libjpeg: {0}")]
    Libjpeg(String),
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with its own error manager set.
    let message = unsafe {
        let mut buffer = [0u8; 80];
        match cinfo.err.as_ref().and_then(|e| e.format_message) {
            Some(format) => {
                // mozjpeg-sys declares the buffer immutable; libjpeg writes it.
                let format: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8) =
                    std::mem::transmute(format);
                format(cinfo, buffer.as_mut_ptr());
                let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
                String::from_utf8_lossy(&buffer[..end]).into_owned()
            }
            None => "libjpeg error".to_owned(),
        }
    };
    std::panic::resume_unwind(Box::new(message))
}

unsafe extern "C-unwind" fn silence(_cinfo: &mut jpeg_common_struct, _level: c_int) {}

/// libjpeg's decompressor, destroyed on drop (also when a libjpeg error
/// unwinds through the caller).
struct Session {
    cinfo: Box<jpeg_decompress_struct>,
    _err: Box<jpeg_error_mgr>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: created by jpeg_create_decompress in `decode_samples`.
        unsafe { mozjpeg_sys::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Decodes `bytes` at `scale_num`/8 with libjpeg, with our Huffman decoder
/// when `fast` (then a file we do not handle is [`DriverError::NotEligible`]
/// and one we give up on [`DriverError::Fallback`]).
pub fn decode_samples(bytes: &[u8], scale_num: u32, fast: bool) -> Result<Samples, DriverError> {
    let run = || -> Result<Samples, DriverError> {
        // SAFETY: the usual libjpeg sequence on structures we own; the
        // source is `bytes`, alive for the whole call; the installed decoder
        // is dropped before the session.
        unsafe {
            let mut err: Box<jpeg_error_mgr> = Box::new(std::mem::zeroed());
            mozjpeg_sys::jpeg_std_error(&mut err);
            err.error_exit = Some(error_exit);
            err.emit_message = Some(silence);
            let mut session = Session {
                cinfo: Box::new(std::mem::zeroed()),
                _err: err,
            };
            session.cinfo.common.err = &mut *session._err;
            mozjpeg_sys::jpeg_create_decompress(&mut *session.cinfo);
            let cinfo = &mut *session.cinfo;
            let len = mozjpeg_sys::c_ulong::try_from(bytes.len())
                .map_err(|_| DriverError::Libjpeg("file too large".into()))?;
            mozjpeg_sys::jpeg_mem_src(cinfo, bytes.as_ptr(), len);
            mozjpeg_sys::jpeg_read_header(cinfo, 1);
            let ink = matches!(
                cinfo.jpeg_color_space,
                J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
            );
            cinfo.out_color_space = if ink {
                J_COLOR_SPACE::JCS_CMYK
            } else {
                J_COLOR_SPACE::JCS_RGB
            };
            cinfo.scale_num = scale_num;
            cinfo.scale_denom = 8;
            if fast && !looks_single_scan(cinfo) {
                return Err(DriverError::NotEligible);
            }
            mozjpeg_sys::jpeg_start_decompress(cinfo);
            let installed = if fast {
                match install(cinfo) {
                    Some(i) => Some(i),
                    None => return Err(DriverError::NotEligible),
                }
            } else {
                None
            };
            let (width, height) = (cinfo.output_width as usize, cinfo.output_height as usize);
            let row = width * if ink { 4 } else { 3 };
            let mut data = vec![0u8; row * height];
            while (cinfo.output_scanline as usize) < height {
                let at = cinfo.output_scanline as usize * row;
                let mut rows = [data[at..].as_mut_ptr()];
                if mozjpeg_sys::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), 1) != 1 {
                    return Err(DriverError::Libjpeg("no scanline".into()));
                }
            }
            mozjpeg_sys::jpeg_finish_decompress(cinfo);
            drop(installed);
            Ok(Samples {
                jpeg_color_space: cinfo.jpeg_color_space,
                width,
                height,
                data,
            })
        }
    };
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(payload) => Err(match payload.downcast::<Fallback>() {
            Ok(f) => DriverError::Fallback(f.0),
            Err(payload) => DriverError::Libjpeg(
                payload
                    .downcast::<String>()
                    .map(|s| *s)
                    .unwrap_or_else(|_| "libjpeg failed".into()),
            ),
        }),
    }
}

/// Before `jpeg_start_decompress` (which, for a multi-scan file, decodes
/// every scan): whether the file is sequential, Huffman-coded, 8-bit and its
/// first scan holds every component, i.e. libjpeg will see one scan.
fn looks_single_scan(cinfo: &mut jpeg_decompress_struct) -> bool {
    let c = (cinfo as *mut jpeg_decompress_struct).cast::<Decompress>();
    // SAFETY: the layout is checked above; read_header has filled these.
    unsafe {
        (*c).progressive_mode == 0
            && (*c).arith_code == 0
            && (*c).data_precision == 8
            && (*c).comps_in_scan == (*c).num_components
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode::{Chroma, encode_once};
    use crate::image::RgbImage;
    use crate::testkit::synth::SplitMix64;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    /// A portrait with noise growing from left to right, so that the right
    /// side has large coefficients, long codes and magnitudes beyond the
    /// one-lookup entries.
    fn textured(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut img = crate::testkit::synth::portrait(w, h, 0.5, seed);
        let mut rng = SplitMix64::new(seed);
        let wf = f64::from(w);
        for (i, px) in img.as_bytes_mut().chunks_exact_mut(3).enumerate() {
            let x = (i % w as usize) as f64;
            let amp = 90.0 * x / wf;
            for c in px {
                *c = (f64::from(*c) + amp * rng.gauss()).clamp(0.0, 255.0) as u8;
            }
        }
        img
    }

    fn with_encoder(
        img: &RgbImage,
        quality: u8,
        sampling: SamplingFactor,
        restart: u16,
        gray: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, quality);
        enc.set_sampling_factor(sampling);
        if restart > 0 {
            enc.set_restart_interval(restart);
        }
        let (w, h) = (img.width() as u16, img.height() as u16);
        let result = if gray {
            let luma: Vec<u8> = img.as_bytes().chunks_exact(3).map(|p| p[1]).collect();
            enc.encode(&luma, w, h, ColorType::Luma)
        } else {
            enc.encode(img.as_bytes(), w, h, ColorType::Rgb)
        };
        assert!(result.is_ok());
        out
    }

    /// Well-formed files of every layout we meet: our own encoder's 4:4:4 and
    /// 4:2:0, and jpeg-encoder's with restart intervals of 1, 5 and 7 MCUs,
    /// subsampled 2x1 and 1x2, greyscale; sizes that leave partial MCUs.
    fn clean_files() -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for (w, h, seed) in [(96, 128, 1), (101, 77, 2)] {
            let img = textured(w, h, seed);
            for (q, chroma) in [
                (90, Chroma::Full444),
                (100, Chroma::Sub420),
                (40, Chroma::Sub420),
            ] {
                let bytes = encode_once(&img, q, chroma, 300).expect("encode");
                files.push((format!("ours {w}x{h} q{q} {chroma}"), bytes));
            }
            for (restart, sampling, gray) in [
                (1, SamplingFactor::F_2_2, false),
                (5, SamplingFactor::F_2_1, false),
                (7, SamplingFactor::F_1_2, false),
                (3, SamplingFactor::F_1_1, true),
                (0, SamplingFactor::F_1_1, true),
            ] {
                let bytes = with_encoder(&img, 97, sampling, restart, gray);
                files.push((
                    format!("jpeg-encoder {w}x{h} rst{restart} grey={gray}"),
                    bytes,
                ));
            }
        }
        files
    }

    /// Offset of the first entropy-coded byte.
    fn scan_start(bytes: &[u8]) -> usize {
        let sos = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .expect("SOS");
        sos + 2 + usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]))
    }

    /// Offsets of the restart markers' codes.
    fn restart_markers(bytes: &[u8]) -> Vec<usize> {
        let start = scan_start(bytes);
        (start..bytes.len() - 1)
            .filter(|&i| bytes[i] == 0xFF && (0xD0..=0xD7).contains(&bytes[i + 1]))
            .map(|i| i + 1)
            .collect()
    }

    /// A byte-aligned cut point about `share` of the way through the scan,
    /// not inside an 0xFF 0x00 pair.
    fn cut_point(bytes: &[u8], share: f64) -> usize {
        let start = scan_start(bytes);
        let mut at = start + ((bytes.len() - 2 - start) as f64 * share) as usize;
        while bytes[at - 1] == 0xFF || bytes[at] == 0x00 || bytes[at] == 0xFF {
            at += 1;
        }
        at
    }

    #[test]
    fn same_coefficients_as_libjpeg_at_every_scale() {
        let files = clean_files();
        assert!(files.iter().any(|(_, b)| restart_markers(b).len() > 3));
        for (name, bytes) in &files {
            for scale in 1..=8 {
                let plain = decode_samples(bytes, scale, false).expect("plain decode");
                // Ok, not a fallback: these files are ours to decode.
                let fast = decode_samples(bytes, scale, true);
                assert_eq!(fast.as_ref(), Ok(&plain), "{name} at {scale}/8");
            }
        }
    }

    /// Each damaged file must come out as plain libjpeg's, or (where libjpeg
    /// warns and makes coefficients up) be handed back to it.
    fn fast_or_fallback(bytes: &[u8], must_fall_back: bool, what: &str) {
        for scale in [3, 8] {
            let plain = decode_samples(bytes, scale, false);
            match decode_samples(bytes, scale, true) {
                Err(DriverError::Fallback(_)) => {}
                Ok(fast) => {
                    assert!(!must_fall_back, "{what}: decoded, expected a fallback");
                    assert_eq!(Ok(fast), plain, "{what} at {scale}/8");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn truncated_scan_falls_back() {
        for (name, bytes) in clean_files() {
            let mut cut = bytes[..cut_point(&bytes, 0.6)].to_vec();
            cut.extend_from_slice(&[0xFF, 0xD9]);
            // libjpeg conceals the rest as grey.
            assert!(decode_samples(&cut, 8, false).is_ok(), "{name}");
            fast_or_fallback(&cut, true, &format!("{name} cut"));
        }
    }

    #[test]
    fn marker_inside_the_scan_falls_back() {
        for (name, bytes) in clean_files() {
            let at = cut_point(&bytes, 0.4);
            let mut with = bytes.clone();
            with.splice(at..at, [0xFF, 0xE5, 0x00, 0x02]);
            fast_or_fallback(&with, true, &format!("{name} APP5 inside"));
            let mut with = bytes.clone();
            with.splice(at..at, [0xFF, 0xD3]);
            fast_or_fallback(&with, true, &format!("{name} RST3 inside"));
        }
    }

    #[test]
    fn code_not_in_the_table_falls_back() {
        // Stuffed 0xFF bytes: 256 one bits, where no code can start (no
        // code is all ones).
        for (name, bytes) in clean_files() {
            let at = cut_point(&bytes, 0.3);
            let mut bad = bytes.clone();
            let ones: Vec<u8> = [0xFF, 0x00].repeat(32);
            bad.splice(at..at, ones);
            fast_or_fallback(&bad, true, &format!("{name} ones"));
        }
    }

    #[test]
    fn restart_marker_out_of_order_falls_back() {
        let mut checked = 0;
        for (name, bytes) in clean_files() {
            let markers = restart_markers(&bytes);
            if markers.len() < 3 {
                continue;
            }
            let mut swapped = bytes.clone();
            swapped[markers[1]] = 0xD0 + (swapped[markers[1]] - 0xD0 + 3) % 8;
            fast_or_fallback(&swapped, true, &format!("{name} RST out of order"));
            // An interval with extra data before its marker: libjpeg skips
            // it, and so do we.
            let mut padded = bytes.clone();
            padded.splice(markers[1] - 1..markers[1] - 1, [0x12, 0x34]);
            fast_or_fallback(&padded, false, &format!("{name} extra bytes"));
            checked += 1;
        }
        assert!(checked >= 4);
    }

    #[test]
    fn other_files_are_left_to_libjpeg() {
        let img = textured(64, 64, 5);
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, 90);
        enc.set_progressive(true);
        assert!(enc.encode(img.as_bytes(), 64, 64, ColorType::Rgb).is_ok());
        assert_eq!(decode_samples(&out, 8, true), Err(DriverError::NotEligible));
        assert!(decode_samples(&out, 8, false).is_ok());
    }
}
