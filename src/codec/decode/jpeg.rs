//! The JPEG decoder: libjpeg-turbo (mozjpeg-sys), driven through its C
//! interface ([`Libjpeg`]) so that our own parts can be plugged in: `huffman`
//! (our Huffman decoder, with libjpeg's own as the fallback) and `idct` (AVX2
//! scaled inverse DCTs, bit-exact with libjpeg's C code). Also the strict
//! decode the verify stage checks written files with
//! ([`decode_jpeg_strictly`]), and the walk over the header's segments that
//! finds the frame size, the EXIF block and whether the file is whole.

use super::exif::{exif_is_adobe_rgb, exif_orientation};
use super::profile::{Managed, Stored, Tag, ToSrgb, join_icc_chunks};
use super::{DecodeError, DecodeLimits, DecodeScale, Decoded, ImageFormat, Reduce, check_limits};
use crate::image::RgbImage;

pub(crate) mod huffman;
mod idct;

// libjpeg-turbo (as built by mozjpeg-sys from source) rather than zune-jpeg:
// it decodes at any M/8 scale in the DCT domain, its entropy decoder is the
// fastest we measured (benches/README.md), and it decodes non-interleaved
// 4:2:0 scans and subsampled CMYK correctly, which zune-jpeg 0.5.15 silently
// gets wrong. It uses the integer IDCT; its SIMD code (built when nasm is
// installed) and our AVX2 scaled IDCTs (`idct`) are bit-exact with its C
// code, so the pixels are the same on every machine.
pub(super) fn decode_jpeg(
    bytes: &[u8],
    limits: &DecodeLimits,
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    // Checked before the decoder sees the file: it allocates per-component
    // planes from the frame header.
    let Some(frame) = jpeg_frame(bytes) else {
        return Err(DecodeError::Jpeg(
            "no frame header before the first scan".into(),
        ));
    };
    let (width, height) = (u32::from(frame.width), u32::from(frame.height));
    check_limits(u64::from(width), u64::from(height), limits)?;
    // libjpeg-turbo as built here reads 8-bit sequential and progressive
    // JPEGs, Huffman or arithmetic coded; anything else is named, since
    // the file is not corrupt, only of a kind we do not read.
    if let Some(why) = frame.unsupported() {
        return Err(DecodeError::UnsupportedJpeg(why));
    }
    // The decoder conceals missing scan data as grey; a photo cut off half
    // way must fail instead of becoming half a portrait.
    if !has_eoi_after_scan(bytes) {
        return Err(DecodeError::Truncated);
    }
    let mut exif = None;
    let mut app2: Vec<&[u8]> = Vec::new();
    find_in_header(bytes, |marker, _, body| {
        match marker {
            0xE1 if exif.is_none() => exif = body.strip_prefix(b"Exif\0\0"),
            0xE2 => app2.push(body),
            _ => {}
        }
        None::<()>
    });
    let orientation = exif.and_then(exif_orientation).unwrap_or_default();
    let managed = colour_tag(&app2, exif).map(|tag| {
        let stored = match frame.components {
            1 => Stored::Grey,
            4 => Stored::Cmyk,
            _ => Stored::Rgb,
        };
        Managed::new(tag, stored)
    });
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let scale = reduce.scale_for(upright_w, upright_h);
    let transform = managed.as_ref().and_then(|m| m.transform.as_ref());
    let ink = transform.filter(|t| t.is_cmyk());
    let (colour, rgb, w, h) = libjpeg_rgb_with(bytes, scale, true, true, ink)?;
    let mut image = RgbImage::new(w, h, rgb).map_err(|e| DecodeError::Jpeg(e.to_string()))?;
    let mut colour_warning = managed.as_ref().and_then(|m| m.warning.clone());
    if let Some(t) = transform.filter(|t| !t.is_cmyk())
        && let Err(why) = t.apply_to(&mut image)
    {
        colour_warning = Some(why);
    }
    Ok(Decoded {
        image,
        format: ImageFormat::Jpeg,
        orientation,
        colour: colour.to_owned(),
        progressive: frame.progressive,
        full_width: width,
        full_height: height,
        scale,
        colour_profile: managed.map(|m| m.label),
        colour_warning,
    })
}

/// What a JPEG's header says about its colours: an ICC profile (APP2,
/// possibly in pieces), else EXIF's Adobe RGB marker. None for the usual
/// photo that says nothing (or says sRGB in EXIF).
fn colour_tag(app2: &[&[u8]], exif: Option<&[u8]>) -> Option<Tag<'static>> {
    match join_icc_chunks(app2) {
        Some(Ok(icc)) => return Some(Tag::Icc(icc.into())),
        Some(Err(why)) => return Some(Tag::Broken(why)),
        None => {}
    }
    exif.is_some_and(exif_is_adobe_rgb)
        .then_some(Tag::ExifAdobeRgb)
}

/// Decodes to RGB at `scale`: (stored colour, pixels, width, height); with
/// our AVX2 inverse DCTs or not, and with our Huffman
/// decoder (`huffman`) or not (to compare). A file our Huffman
/// decoder gives up on is decoded again without it, so what libjpeg conceals
/// or refuses comes out as libjpeg's own. CMYK goes through `ink` (the
/// file's profile) when given.
fn libjpeg_rgb_with(
    bytes: &[u8],
    scale: DecodeScale,
    fast_idct: bool,
    fast_huffman: bool,
    ink: Option<&ToSrgb>,
) -> Result<(&'static str, Vec<u8>, u32, u32), DecodeError> {
    match libjpeg_decode(
        bytes,
        scale,
        Warnings::Ignored,
        fast_idct,
        fast_huffman,
        ink,
    ) {
        Err(Unwound::Fallback) => libjpeg_rgb_with(bytes, scale, fast_idct, false, ink),
        Err(Unwound::Failed(e)) => Err(e),
        Ok(v) => Ok(v),
    }
}

/// Decodes a JPEG with libjpeg-turbo's own code alone (its Huffman decoder
/// and inverse DCTs, none of ours) and refuses what it would only conceal:
/// any warning, such as corrupt entropy data, a premature end of a scan or
/// stray bytes before a marker, fails the decode with libjpeg's message.
/// This is how a file we wrote is checked: by the reference decoder, by
/// code independent of our encoder and of our decode stage.
pub(crate) fn decode_jpeg_strictly(
    bytes: &[u8],
    scale: DecodeScale,
) -> Result<RgbImage, DecodeError> {
    let decoded = libjpeg_decode(bytes, scale, Warnings::Fatal, false, false, None);
    let (_, rgb, w, h) = decoded.map_err(|e| match e {
        Unwound::Failed(e) => e,
        // Our Huffman decoder is not installed, so it cannot ask for this.
        Unwound::Fallback => DecodeError::Jpeg("the decoder asked to start over".into()),
    })?;
    RgbImage::new(w, h, rgb).map_err(|e| DecodeError::Jpeg(e.to_string()))
}

/// How a libjpeg decode ended early.
enum Unwound {
    /// Our Huffman decoder met something only libjpeg's handles.
    Fallback,
    Failed(DecodeError),
}

/// Decodes at `scale` to RGB (ink-based files through CMYK), with our
/// inverse DCTs and Huffman decoder where asked: (stored colour, pixels,
/// width, height). Ink goes through `ink`, the file's CMYK profile, if any.
fn libjpeg_decode(
    bytes: &[u8],
    scale: DecodeScale,
    warnings: Warnings,
    fast_idct: bool,
    fast_huffman: bool,
    ink: Option<&ToSrgb>,
) -> Result<(&'static str, Vec<u8>, u32, u32), Unwound> {
    use mozjpeg_sys::J_COLOR_SPACE as Cs;
    let with_profile = ink.is_some();
    // libjpeg reports fatal errors by unwinding out of the C code with the
    // message as payload (see `Libjpeg::error_exit`).
    let run = || -> Result<_, DecodeError> {
        let mut d = Libjpeg::new(bytes, warnings)?;
        let cinfo = d.cinfo_mut();
        // libjpeg takes any M/8 with M up to 16; ours is 1..=8.
        cinfo.scale_num = scale.numerator();
        cinfo.scale_denom = 8;
        let colour = match cinfo.jpeg_color_space {
            Cs::JCS_GRAYSCALE => "grayscale",
            Cs::JCS_RGB => "rgb",
            Cs::JCS_CMYK => "cmyk",
            Cs::JCS_YCCK => "ycck",
            _ => "ycbcr",
        };
        let ink = matches!(colour, "cmyk" | "ycck");
        let channels = if ink { 4 } else { 3 };
        cinfo.out_color_space = if ink { Cs::JCS_CMYK } else { Cs::JCS_RGB };
        let (w, h, samples) = d.decompress(channels, fast_idct, fast_huffman)?;
        // With a profile, the ink is converted once libjpeg is done (below).
        let rgb = if ink && !with_profile {
            // Adobe writes CMYK inverted (255 = no ink), as libjpeg hands it
            // over; each channel is then the share of light let through.
            samples
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = u32::from(p[3]);
                    [0, 1, 2].map(|c| ((u32::from(p[c]) * k + 127) / 255) as u8)
                })
                .collect()
        } else {
            samples
        };
        Ok((colour, rgb, w, h))
    };
    let decoded = match std::panic::catch_unwind(run) {
        Ok(result) => result.map_err(Unwound::Failed),
        Err(payload) if payload.is::<huffman::Fallback>() => Err(Unwound::Fallback),
        Err(payload) => Err(Unwound::Failed(DecodeError::Jpeg(
            payload
                .downcast_ref::<String>()
                .map(|m| m.trim_start_matches("libjpeg fatal error: ").to_owned())
                .unwrap_or_else(|| "the decoder failed on this file".to_owned()),
        ))),
    };
    match (decoded, ink) {
        (Ok((colour @ ("cmyk" | "ycck"), cmyk, w, h)), Some(profile)) => profile
            .cmyk_to_rgb(&cmyk)
            .map(|rgb| (colour, rgb, w, h))
            .map_err(|e| Unwound::Failed(DecodeError::Jpeg(e))),
        (other, _) => other,
    }
}

/// What libjpeg's warnings (recoverable damage it conceals) do to a decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Warnings {
    /// A photo someone brings with a slightly damaged scan is still worth
    /// processing: the concealed part is usually a few blocks.
    Ignored,
    /// A file being checked must decode cleanly.
    Fatal,
}

/// One libjpeg decompressor reading a JPEG held in memory, driven through
/// mozjpeg-sys directly rather than the `mozjpeg` crate: the crate keeps the
/// `jpeg_decompress_struct` private, and installing our own scaled inverse
/// DCTs ([`idct`]) needs it before `jpeg_start_decompress`. The source and
/// error managers behave as the crate's did (same fake end-of-image at the end
/// of the data, same messages), so errors and pixels are unchanged.
struct Libjpeg<'a> {
    // Boxed so that the addresses libjpeg keeps (cinfo.err, cinfo.src) stay
    // put whatever happens to this struct.
    cinfo: Box<mozjpeg_sys::jpeg_decompress_struct>,
    _err: Box<mozjpeg_sys::jpeg_error_mgr>,
    _src: Box<mozjpeg_sys::jpeg_source_mgr>,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

/// What libjpeg reads after the data runs out: libjpeg treats a missing end
/// as a warning and finishes the image from what it has (the pipeline has
/// already refused files without an end-of-image marker, `has_eoi_after_scan`).
static FAKE_EOI: [u8; 4] = [0xFF, 0xD9, 0xFF, 0xD9];

impl<'a> Libjpeg<'a> {
    /// Creates the decompressor and reads the header.
    fn new(bytes: &'a [u8], warnings: Warnings) -> Result<Libjpeg<'a>, DecodeError> {
        use mozjpeg_sys as ffi;
        // SAFETY: all-zero is the state libjpeg expects these structs in
        // before jpeg_std_error / jpeg_create_decompress fill them.
        let mut err: Box<ffi::jpeg_error_mgr> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: err is a valid, exclusively borrowed error manager.
        unsafe { ffi::jpeg_std_error(&mut err) };
        err.error_exit = Some(Self::error_exit);
        err.emit_message = Some(match warnings {
            Warnings::Ignored => Self::silence,
            Warnings::Fatal => Self::fail_on_warning,
        });
        let mut src = Box::new(ffi::jpeg_source_mgr {
            next_input_byte: bytes.as_ptr(),
            bytes_in_buffer: bytes.len(),
            init_source: Some(Self::init_source),
            fill_input_buffer: Some(Self::fill_input_buffer),
            skip_input_data: Some(Self::skip_input_data),
            resync_to_restart: Some(ffi::jpeg_resync_to_restart),
            term_source: Some(Self::init_source),
        });
        // SAFETY: as above.
        let mut cinfo: Box<ffi::jpeg_decompress_struct> = Box::new(unsafe { std::mem::zeroed() });
        cinfo.common.err = &mut *err;
        // SAFETY: cinfo is zeroed with a valid error manager, as
        // jpeg_create_decompress requires.
        unsafe { ffi::jpeg_create_decompress(&mut *cinfo) };
        cinfo.src = &mut *src;
        let mut d = Libjpeg {
            cinfo,
            _err: err,
            _src: src,
            _bytes: std::marker::PhantomData,
        };
        // require_image = 0: a tables-only file is reported here, not by
        // unwinding.
        // SAFETY: the decompressor was created above and its source is set.
        let header = unsafe { ffi::jpeg_read_header(d.cinfo_mut(), 0) };
        if header != 1 {
            return Err(DecodeError::Jpeg("no image in the JPEG file".into()));
        }
        Ok(d)
    }

    fn cinfo_mut(&mut self) -> &mut mozjpeg_sys::jpeg_decompress_struct {
        &mut self.cinfo
    }

    /// Starts decompression (the output colour space and scale already set),
    /// with our AVX2 inverse DCTs where they apply if `fast_idct`.
    fn start(&mut self, fast_idct: bool) -> Result<(), DecodeError> {
        if fast_idct {
            idct::install(self.cinfo_mut());
        }
        // SAFETY: the header has been read; the source is in memory, so
        // libjpeg never suspends (0 would mean it did).
        if unsafe { mozjpeg_sys::jpeg_start_decompress(self.cinfo_mut()) } == 0 {
            return Err(DecodeError::Jpeg(
                std::io::Error::from(std::io::ErrorKind::WouldBlock).to_string(),
            ));
        }
        Ok(())
    }

    /// Starts decompression and reads every row: (width, height, samples
    /// with `channels` per pixel, as many as the output colour space has).
    fn decompress(
        &mut self,
        channels: usize,
        fast_idct: bool,
        fast_huffman: bool,
    ) -> Result<(u32, u32, Vec<u8>), DecodeError> {
        use mozjpeg_sys as ffi;
        let eof = || {
            DecodeError::Jpeg(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).to_string())
        };
        self.start(fast_idct)?;
        // Kept until the decompression is finished (declared after `self`'s
        // borrow, dropped before the decompressor).
        let _huffman = if fast_huffman {
            // SAFETY: started, no scanline read; the source holds the whole
            // file (`new`); cinfo and the bytes outlive this handle.
            unsafe { huffman::install(self.cinfo_mut()) }
        } else {
            None
        };
        let (w, h) = (self.cinfo.output_width, self.cinfo.output_height);
        let row_len = w as usize * channels;
        let total = row_len * h as usize;
        let mut samples: Vec<u8> = Vec::new();
        samples
            .try_reserve_exact(total)
            .map_err(|_| DecodeError::Jpeg("out of memory".into()))?;
        // libjpeg writes every byte of every row, so the rows are left
        // uninitialised until it has (clearing them first was a second pass
        // over the largest buffer of the decode).
        for row in samples.spare_capacity_mut()[..total].chunks_exact_mut(row_len.max(1)) {
            if self.cinfo.output_scanline >= self.cinfo.output_height {
                return Err(eof());
            }
            let mut row_ptr = row.as_mut_ptr().cast::<u8>();
            // SAFETY: row_ptr points at one row of row_len writable bytes,
            // which is what libjpeg writes for one scanline of this width
            // and colour space.
            let read = unsafe { ffi::jpeg_read_scanlines(self.cinfo_mut(), &mut row_ptr, 1) };
            if read == 0 {
                return Err(eof());
            }
        }
        // SAFETY: the loop above had libjpeg write all h rows of row_len
        // bytes (any row it could not deliver returned early).
        unsafe { samples.set_len(total) };
        // SAFETY: every scanline has been read.
        if unsafe { ffi::jpeg_finish_decompress(self.cinfo_mut()) } == 0 {
            return Err(DecodeError::Jpeg(
                std::io::Error::from(std::io::ErrorKind::WouldBlock).to_string(),
            ));
        }
        Ok((w, h, samples))
    }

    extern "C-unwind" fn error_exit(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
        let mut buffer = [0u8; 80];
        // SAFETY: cinfo.err is the error manager set up in `new`, whose
        // format_message (jpeg_std_error's) writes at most 80 bytes,
        // NUL-terminated, into the buffer it is given; the binding declares
        // the buffer shared, but C writes it.
        let message = unsafe {
            match (*cinfo.err).format_message {
                Some(format) => {
                    let format: unsafe extern "C-unwind" fn(
                        &mut mozjpeg_sys::jpeg_common_struct,
                        &mut [u8; 80],
                    ) = std::mem::transmute(format);
                    format(cinfo, &mut buffer);
                    let text = buffer.split(|&c| c == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(text).into_owned()
                }
                None => format!("code {}", (*cinfo.err).msg_code),
            }
        };
        // resume_unwind, not panic!: no panic hook message on stderr for
        // what is an ordinary bad file.
        std::panic::resume_unwind(Box::new(message));
    }

    extern "C-unwind" fn silence(_cinfo: &mut mozjpeg_sys::jpeg_common_struct, _level: i32) {}

    /// Level -1 is a warning; higher levels are trace messages.
    extern "C-unwind" fn fail_on_warning(cinfo: &mut mozjpeg_sys::jpeg_common_struct, level: i32) {
        if level < 0 {
            // msg_code still holds the warning's code, so the message is
            // the warning's own.
            Self::error_exit(cinfo);
        }
    }

    extern "C-unwind" fn init_source(_cinfo: &mut mozjpeg_sys::jpeg_decompress_struct) {}

    extern "C-unwind" fn fill_input_buffer(
        cinfo: &mut mozjpeg_sys::jpeg_decompress_struct,
    ) -> mozjpeg_sys::boolean {
        // SAFETY: cinfo.src is the source manager set up in `new`.
        let src = unsafe { &mut *cinfo.src };
        src.next_input_byte = FAKE_EOI.as_ptr();
        src.bytes_in_buffer = FAKE_EOI.len();
        1
    }

    extern "C-unwind" fn skip_input_data(
        cinfo: &mut mozjpeg_sys::jpeg_decompress_struct,
        num_bytes: std::os::raw::c_long,
    ) {
        let Ok(wanted) = usize::try_from(num_bytes) else {
            return;
        };
        // SAFETY: cinfo.src is the source manager set up in `new`.
        let src = unsafe { &mut *cinfo.src };
        if wanted <= src.bytes_in_buffer {
            // SAFETY: stays within the buffer of bytes_in_buffer bytes.
            src.next_input_byte = unsafe { src.next_input_byte.add(wanted) };
            src.bytes_in_buffer -= wanted;
            return;
        }
        // A segment longer than the data left: a read error, as the
        // mozjpeg crate's source reported it.
        src.bytes_in_buffer = 0;
        // SAFETY: cinfo.err is the error manager set up in `new`.
        unsafe { (*cinfo.common.err).msg_code = mozjpeg_sys::JERR_FILE_READ };
        Self::error_exit(&mut cinfo.common);
    }
}

impl Drop for Libjpeg<'_> {
    fn drop(&mut self) {
        // SAFETY: created in `new`; releases every libjpeg allocation, also
        // after an error unwound out of a half-done decompression.
        unsafe { mozjpeg_sys::jpeg_destroy_decompress(&mut self.cinfo) };
    }
}

/// Calls `visit` with each marker, its offset and its segment body, from
/// SOI up to and including the first start-of-scan, until it returns a
/// value. Walking segment by segment means bytes inside a segment (an EXIF
/// thumbnail is a whole JPEG in APP1) are never taken for markers.
fn find_in_header<'a, T>(
    bytes: &'a [u8],
    mut visit: impl FnMut(u8, usize, &'a [u8]) -> Option<T>,
) -> Option<T> {
    let mut at = 2; // past SOI
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        if length < 2 {
            return None;
        }
        let body = bytes.get(at + 4..(at + 2 + length).min(bytes.len()))?;
        if let Some(found) = visit(marker, at, body) {
            return Some(found);
        }
        if marker == 0xDA {
            return None;
        }
        at += 2 + length;
    }
}

/// What the start-of-frame header says.
struct Frame {
    marker: u8,
    precision: u8,
    components: u8,
    width: u16,
    height: u16,
    progressive: bool,
}

impl Frame {
    /// Why libjpeg-turbo (8-bit, as built here) cannot read this frame.
    fn unsupported(&self) -> Option<String> {
        let process = match self.marker {
            0xC3 | 0xCB => Some("lossless JPEG"),
            0xC5..=0xC7 | 0xCD..=0xCF => Some("hierarchical JPEG"),
            _ => None,
        };
        if let Some(process) = process {
            return Some(format!(
                "{process} (SOF{}) is not read; only baseline, extended and progressive JPEGs are",
                self.marker - 0xC0
            ));
        }
        (self.precision != 8).then(|| {
            format!(
                "{}-bit samples are not read; only 8-bit JPEGs are",
                self.precision
            )
        })
    }
}

fn jpeg_frame(bytes: &[u8]) -> Option<Frame> {
    find_in_header(bytes, |marker, _, body| {
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if !is_sof {
            return None;
        }
        Some(Frame {
            marker,
            precision: *body.first()?,
            components: *body.get(5)?,
            height: u16::from_be_bytes([*body.get(1)?, *body.get(2)?]),
            width: u16::from_be_bytes([*body.get(3)?, *body.get(4)?]),
            progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
        })
    })
}

/// Width and height from the first start-of-frame marker.
pub(crate) fn jpeg_frame_size(bytes: &[u8]) -> Option<(u16, u16)> {
    jpeg_frame(bytes).map(|f| (f.width, f.height))
}

/// Whether an end-of-image marker follows the first start-of-scan.
fn has_eoi_after_scan(bytes: &[u8]) -> bool {
    // The scan is found by walking segments: a search would stop at an EXIF
    // thumbnail's scan, whose own EOI then vouches for a cut-off main image.
    let first_sos = find_in_header(bytes, |marker, at, _| (marker == 0xDA).then_some(at))
        .or_else(|| bytes.windows(2).position(|w| w == [0xFF, 0xDA]));
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((first_sos, last_eoi), (Some(s), Some(e)) if e > s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode::{decode, decode_reduced};

    #[test]
    fn huge_jpeg_header_is_refused_before_allocating() {
        // SOI, then a baseline SOF0 claiming 65535x65535, 3 components.
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03]);
        for id in 1..=3u8 {
            bytes.extend_from_slice(&[id, 0x11, 0x00]);
        }
        bytes.extend_from_slice(&[0xFF, 0xD9]);
        match decode(&bytes, &DecodeLimits::default(), [0; 3]) {
            Err(DecodeError::TooLarge { pixels, .. }) => assert_eq!(pixels, 65535 * 65535),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn our_huffman_decoder_gives_libjpegs_pixels() {
        // Restart markers every 2 MCUs; then the same file cut off half way
        // through its scan, which ours hands back to libjpeg (it conceals
        // the missing part as grey).
        let (w, h) = (200u32, 168u32);
        let img = crate::testkit::synth::portrait(w, h, 0.5, 9);
        let jpeg = crate::testkit::testimg::reference_jpeg(&img, 92, |e| e.set_restart_interval(2));
        let sos = jpeg.windows(2).position(|p| p == [0xFF, 0xDA]).unwrap();
        let mut cut = jpeg[..sos + (jpeg.len() - sos) / 2].to_vec();
        while cut.last() == Some(&0xFF) {
            cut.pop();
        }
        cut.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(huffman::decode_samples(&jpeg, 8, true).map(|_| ()), Ok(()));
        assert!(matches!(
            huffman::decode_samples(&cut, 8, true),
            Err(huffman::DriverError::Fallback(_))
        ));
        for bytes in [&jpeg, &cut] {
            for m in 1..=8 {
                let s = DecodeScale::eighths(m);
                let ours = libjpeg_rgb_with(bytes, s, true, true, None).unwrap();
                let plain = libjpeg_rgb_with(bytes, s, true, false, None).unwrap();
                assert!(ours == plain, "{m}/8");
            }
        }
    }

    #[test]
    fn reduced_decode_averages_the_full_decode() {
        let (w, h) = (256u32, 320u32);
        let img = crate::testkit::synth::portrait(w, h, 0.5, 3);
        let jpeg = crate::testkit::testimg::reference_jpeg(&img, 95, |_| {});
        let limits = DecodeLimits::default();
        let full = decode(&jpeg, &limits, [0; 3]).unwrap();
        let reduce = Reduce {
            min_width: 0,
            min_height: 0,
            min_scale: DecodeScale::eighths(2),
        };
        let quarter = decode_reduced(&jpeg, &limits, [0; 3], reduce).unwrap();
        assert_eq!(
            (full.scale, quarter.scale),
            (DecodeScale::FULL, DecodeScale::eighths(2))
        );
        assert_eq!((quarter.full_width, quarter.full_height), (w, h));
        let q = &quarter.image;
        assert_eq!((q.width(), q.height()), (w / 4, h / 4));
        // Odd eighths too: libjpeg's size is the stored size times M/8,
        // rounded up, which is what the pipeline maps coordinates by.
        let three = DecodeScale::eighths(3);
        let reduce = Reduce {
            min_scale: three,
            ..reduce
        };
        let odd = decode_reduced(&jpeg, &limits, [0; 3], reduce).unwrap();
        assert_eq!(odd.scale, three);
        assert_eq!(
            (odd.image.width(), odd.image.height()),
            (three.of(w), three.of(h))
        );
        let mut total_error = 0u64;
        for y in 0..q.height() {
            for x in 0..q.width() {
                for c in 0..3 {
                    let block: u32 = (0..16)
                        .map(|i| u32::from(full.image.pixel(x * 4 + i % 4, y * 4 + i / 4)[c]))
                        .sum();
                    total_error += u64::from((block / 16).abs_diff(u32::from(q.pixel(x, y)[c])));
                }
            }
        }
        let mean_error = total_error as f64 / f64::from(q.width() * q.height() * 3);
        assert!(mean_error < 2.0, "mean error {mean_error}");
    }
}
