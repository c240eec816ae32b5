//! Decode stage: bytes in, upright-to-be RGB pixels out.
//!
//! The type is decided by the bytes, never the file name. Dimensions are read
//! from the header and checked against [`DecodeLimits`] before the pixel
//! buffer is allocated, so a hostile header cannot make us allocate gigabytes.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::image::RgbImage;
use crate::transform::orient::Orientation;

pub(crate) mod huffman;
mod idct;

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
        }
    }

    /// Whether a file name's extension agrees with the content.
    pub fn matches_extension(self, ext: &str) -> bool {
        let ext = ext.to_ascii_lowercase();
        match self {
            ImageFormat::Jpeg => matches!(ext.as_str(), "jpg" | "jpeg" | "jpe" | "jfif"),
            ImageFormat::Png => ext == "png",
        }
    }
}

/// The verdict of looking at a file's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    Supported(ImageFormat),
    /// An image format we recognise but do not decode (named for the message).
    Unsupported(&'static str),
    /// Not an image we know of: a document, a sidecar, garbage.
    NotAnImage,
}

/// Identifies the content by its magic bytes.
pub fn sniff(bytes: &[u8]) -> Sniffed {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Supported(ImageFormat::Jpeg);
    }
    if bytes.starts_with(PNG_MAGIC) {
        return Sniffed::Supported(ImageFormat::Png);
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        let brand = &bytes[8..12];
        return Sniffed::Unsupported(match brand {
            b"avif" | b"avis" => "AVIF",
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC/HEIF",
            _ => "ISO media (not a photo format we read)",
        });
    }
    let unsupported = [
        (&b"GIF8"[..], "GIF"),
        (&b"II*\0"[..], "TIFF"),
        (&b"MM\0*"[..], "TIFF"),
        (&b"BM"[..], "BMP"),
        (&b"\0\0\0\x0cjXL "[..], "JPEG XL"),
        (&b"\xff\x0a"[..], "JPEG XL"),
        (&b"%PDF"[..], "PDF"),
    ];
    for (magic, name) in unsupported {
        if bytes.starts_with(magic) {
            return Sniffed::Unsupported(name);
        }
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Sniffed::Unsupported("WebP");
    }
    Sniffed::NotAnImage
}

/// Limits against hostile or absurd inputs, checked from the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted width × height (SPEC §3: 100 megapixels).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
        }
    }
}

/// A decoded photo, still in its stored orientation.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub image: RgbImage,
    pub format: ImageFormat,
    /// The EXIF orientation tag (1 when absent or unreadable).
    pub orientation: Orientation,
    /// How the pixels were stored, for the manifest: e.g. `ycbcr`, `cmyk`, `grayscale`.
    pub colour: String,
    /// Whether the JPEG was progressive, or the PNG interlaced.
    pub progressive: bool,
    /// Stored size of the file (before orientation and reduction).
    pub full_width: u32,
    pub full_height: u32,
    /// The image is the file at this scale.
    pub scale: DecodeScale,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("unsupported image type {0}: only JPEG and PNG are read")]
    Unsupported(&'static str),
    #[error("not an image: the content is neither JPEG nor PNG")]
    NotAnImage,
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooLarge {
        width: u64,
        height: u64,
        pixels: u64,
        limit: u64,
    },
    #[error("image has zero width or height")]
    ZeroSize,
    #[error("truncated JPEG: the data ends before the end-of-image marker")]
    Truncated,
    #[error("corrupt JPEG: {0}")]
    Jpeg(String),
    #[error("corrupt PNG: {0}")]
    Png(String),
}

/// Decodes JPEG or PNG bytes to 8-bit RGB at full size. Alpha is composited
/// onto `matte` (the backdrop reference), because a transparent background
/// in a portrait means "backdrop".
pub fn decode(bytes: &[u8], limits: &DecodeLimits, matte: [u8; 3]) -> Result<Decoded, DecodeError> {
    decode_reduced(bytes, limits, matte, Reduce::NONE)
}

fn check_limits(width: u64, height: u64, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::ZeroSize);
    }
    let pixels = width * height;
    if pixels > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            pixels,
            limit: limits.max_pixels,
        });
    }
    Ok(())
}

/// The scale a JPEG was decoded at: `eighths`/8 of the stored size, 1 to 8.
/// JPEG stores 8x8 blocks of frequencies, and libjpeg's scaled inverse DCTs
/// turn each into an M x M block for any M from 1 to 8: a 24 MP photo for a
/// 480x640 result never needs its full resolution in memory, and the finer
/// steps between 1/8, 1/4, 1/2 and 1 keep the decoded image close to what the
/// output needs instead of up to twice (four times the pixels) as large.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DecodeScale {
    eighths: u32,
}

/// As a fraction of the stored size: "3/8", "8/8".
impl std::fmt::Display for DecodeScale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/8", self.eighths)
    }
}

impl DecodeScale {
    pub const FULL: DecodeScale = DecodeScale { eighths: 8 };

    /// `eighths`/8, clamped to 1..=8.
    pub fn eighths(eighths: u32) -> DecodeScale {
        DecodeScale {
            eighths: eighths.clamp(1, 8),
        }
    }

    /// The numerator over 8.
    pub fn numerator(self) -> u32 {
        self.eighths
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.eighths) / 8.0
    }

    /// The smallest of 1/8, 1/4, 1/2 and 1 that is at least this scale: the
    /// scales a whole number of stored pixels averages down to.
    pub fn power_of_two_above(self) -> DecodeScale {
        DecodeScale {
            eighths: self.eighths.next_power_of_two(),
        }
    }

    /// The decoded length of a stored length (libjpeg rounds up).
    pub fn of(self, stored: u32) -> u32 {
        (u64::from(stored) * u64::from(self.eighths)).div_ceil(8) as u32
    }
}

/// How far a JPEG may be reduced while decoding (see [`DecodeScale`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reduce {
    /// Smallest acceptable decoded size, in the upright (displayed) frame.
    pub min_width: u32,
    pub min_height: u32,
    /// Smallest scale allowed: 8/8 decodes at full size, 1/8 allows all.
    pub min_scale: DecodeScale,
}

impl Reduce {
    /// Decode at full size.
    pub const NONE: Reduce = Reduce {
        min_width: 0,
        min_height: 0,
        min_scale: DecodeScale::FULL,
    };

    /// The smallest scale that keeps an upright `width` x `height` image at
    /// least the minimum size. Depends on the header alone, so the same file
    /// always decodes to the same pixels.
    pub fn scale_for(&self, width: u32, height: u32) -> DecodeScale {
        (self.min_scale.numerator()..=8)
            .map(DecodeScale::eighths)
            .find(|s| s.of(width) >= self.min_width && s.of(height) >= self.min_height)
            .unwrap_or(DecodeScale::FULL)
    }
}

/// Decodes JPEG or PNG bytes like [`decode`], reducing as far as `reduce`
/// allows. A JPEG is reduced in the DCT domain; a PNG, which has no cheap
/// reduced decode, is averaged down row by row by a power of two.
pub fn decode_reduced(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    match sniff(bytes) {
        Sniffed::Supported(ImageFormat::Jpeg) => decode_jpeg(bytes, limits, reduce),
        Sniffed::Supported(ImageFormat::Png) => decode_png(bytes, limits, matte, reduce),
        Sniffed::Unsupported(name) => Err(DecodeError::Unsupported(name)),
        Sniffed::NotAnImage => Err(DecodeError::NotAnImage),
    }
}

// libjpeg-turbo (as built by mozjpeg-sys from source) rather than zune-jpeg:
// it decodes at any M/8 scale in the DCT domain, its entropy decoder is the
// fastest we measured (benches/README.md), and it decodes non-interleaved
// 4:2:0 scans and subsampled CMYK correctly, which zune-jpeg 0.5.15 silently
// gets wrong. It uses the integer IDCT; its SIMD code (built when nasm is
// installed) and our AVX2 scaled IDCTs (`idct`) are bit-exact with its C
// code, so the pixels are the same on every machine.
fn decode_jpeg(
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
    // The decoder conceals missing scan data as grey; a photo cut off half
    // way must fail instead of becoming half a portrait.
    if !has_eoi_after_scan(bytes) {
        return Err(DecodeError::Truncated);
    }
    let orientation = find_in_header(bytes, |marker, _, body| {
        (marker == 0xE1)
            .then(|| body.strip_prefix(b"Exif\0\0"))
            .flatten()
    })
    .and_then(exif_orientation)
    .unwrap_or_default();
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let scale = reduce.scale_for(upright_w, upright_h);
    let (colour, rgb, w, h) = libjpeg_rgb(bytes, scale)?;
    let image = RgbImage::new(w, h, rgb).map_err(|e| DecodeError::Jpeg(e.to_string()))?;
    Ok(Decoded {
        image,
        format: ImageFormat::Jpeg,
        orientation,
        colour: colour.to_owned(),
        progressive: frame.progressive,
        full_width: width,
        full_height: height,
        scale,
    })
}

/// Decodes to RGB at `scale`: (stored colour, pixels, width, height).
fn libjpeg_rgb(
    bytes: &[u8],
    scale: DecodeScale,
) -> Result<(&'static str, Vec<u8>, u32, u32), DecodeError> {
    libjpeg_rgb_with(bytes, scale, true, true)
}

/// [`libjpeg_rgb`], with our AVX2 inverse DCTs or not, and with our Huffman
/// decoder (`crate::codec::decode::huffman`) or not (to compare). A file our Huffman
/// decoder gives up on is decoded again without it, so what libjpeg conceals
/// or refuses comes out as libjpeg's own.
fn libjpeg_rgb_with(
    bytes: &[u8],
    scale: DecodeScale,
    fast_idct: bool,
    fast_huffman: bool,
) -> Result<(&'static str, Vec<u8>, u32, u32), DecodeError> {
    match libjpeg_decode(bytes, scale, Warnings::Ignored, fast_idct, fast_huffman) {
        Err(Unwound::Fallback) => libjpeg_rgb_with(bytes, scale, fast_idct, false),
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
pub fn decode_jpeg_strictly(bytes: &[u8], scale: DecodeScale) -> Result<RgbImage, DecodeError> {
    let decoded = libjpeg_decode(bytes, scale, Warnings::Fatal, false, false);
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
/// width, height).
fn libjpeg_decode(
    bytes: &[u8],
    scale: DecodeScale,
    warnings: Warnings,
    fast_idct: bool,
    fast_huffman: bool,
) -> Result<(&'static str, Vec<u8>, u32, u32), Unwound> {
    use mozjpeg_sys::J_COLOR_SPACE as Cs;
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
        let rgb = if ink {
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
    match std::panic::catch_unwind(run) {
        Ok(result) => result.map_err(Unwound::Failed),
        Err(payload) if payload.is::<crate::codec::decode::huffman::Fallback>() => {
            Err(Unwound::Fallback)
        }
        Err(payload) => Err(Unwound::Failed(DecodeError::Jpeg(
            payload
                .downcast_ref::<String>()
                .map(|m| m.trim_start_matches("libjpeg fatal error: ").to_owned())
                .unwrap_or_else(|| "the decoder failed on this file".to_owned()),
        ))),
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
            unsafe { crate::codec::decode::huffman::install(self.cinfo_mut()) }
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
    width: u16,
    height: u16,
    progressive: bool,
}

fn jpeg_frame(bytes: &[u8]) -> Option<Frame> {
    find_in_header(bytes, |marker, _, body| {
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if !is_sof {
            return None;
        }
        Some(Frame {
            height: u16::from_be_bytes([*body.get(1)?, *body.get(2)?]),
            width: u16::from_be_bytes([*body.get(3)?, *body.get(4)?]),
            progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
        })
    })
}

/// Width and height from the first start-of-frame marker.
pub fn jpeg_frame_size(bytes: &[u8]) -> Option<(u16, u16)> {
    jpeg_frame(bytes).map(|f| (f.width, f.height))
}

/// Width and height from a PNG's IHDR chunk, which the format puts first.
pub fn png_frame_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24).filter(|c| c.starts_with(b"IHDR"))?;
    let size = |at: usize| Some(u32::from_be_bytes(ihdr.get(at..at + 4)?.try_into().ok()?));
    Some((size(4)?, size(8)?))
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

fn decode_png(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let png_err = |e: png::DecodingError| DecodeError::Png(e.to_string());
    // The byte limit bounds every allocation the png crate makes, including
    // huge ancillary chunks, which the pixel check alone would not catch.
    let byte_limit = usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: byte_limit });
    let header = decoder.read_header_info().map_err(png_err)?;
    let (width, height) = (header.width, header.height);
    check_limits(u64::from(width), u64::from(height), limits)?;
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png_err)?;
    let info = reader.info();
    let orientation = info
        .exif_metadata
        .as_deref()
        .and_then(exif_orientation)
        .unwrap_or_default();
    let progressive = info.interlaced;
    let colour = format!("{:?}", info.color_type).to_ascii_lowercase();
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let scale = reduce.scale_for(upright_w, upright_h).power_of_two_above();
    let (samples, _) = reader.output_color_type();
    if samples == png::ColorType::Indexed {
        return Err(DecodeError::Png("palette was not expanded".into()));
    }
    let mut shrink = BoxShrink::new(width, height, 8 / scale.numerator());
    let mut rgb_row = Vec::new();
    let mut take_row = |row: &[u8]| {
        shrink.push(samples_to_rgb(row, samples, matte, &mut rgb_row));
    };
    if progressive {
        // Adam7 rows arrive pass by pass; only the whole frame is in order.
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| DecodeError::Png("image too large for this machine".into()))?;
        let mut frame = vec![0u8; size];
        let info = reader.next_frame(&mut frame).map_err(png_err)?;
        frame
            .chunks_exact(info.line_size)
            .take(height as usize)
            .for_each(take_row);
    } else {
        while let Some(row) = reader.next_row().map_err(png_err)? {
            take_row(row.data());
        }
    }
    let image = shrink
        .finish()
        .map_err(|e| DecodeError::Png(e.to_string()))?;
    Ok(Decoded {
        image,
        format: ImageFormat::Png,
        orientation,
        colour,
        progressive,
        full_width: width,
        full_height: height,
        scale,
    })
}

/// The rounded mean of each run of `K` RGB pixels of `sums`, each already
/// the sum of the band's rows: `count` samples per mean.
fn block_means<const K: usize>(sums: &[u16], count: u32, means: &mut [u8]) {
    // A whole band of whole blocks has a power-of-two count: a shift.
    let shift = count.is_power_of_two().then(|| count.trailing_zeros());
    for (block, mean) in sums.chunks_exact(3 * K).zip(means.chunks_exact_mut(3)) {
        for c in 0..3 {
            let sum: u32 = (0..K).map(|i| u32::from(block[3 * i + c])).sum::<u32>() + count / 2;
            mean[c] = match shift {
                Some(shift) => (sum >> shift) as u8,
                None => (sum / count) as u8,
            };
        }
    }
}

/// One row of 8-bit grey, grey+alpha, RGB or RGBA samples as RGB, alpha
/// composited over `matte`. RGB rows are passed through; the others are
/// converted into `out`.
fn samples_to_rgb<'a>(
    row: &'a [u8],
    colour: png::ColorType,
    matte: [u8; 3],
    out: &'a mut Vec<u8>,
) -> &'a [u8] {
    let over = |value: u8, alpha: u8, bg: u8| -> u8 {
        let a = u32::from(alpha);
        ((u32::from(value) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8
    };
    let (channels, grey) = match colour {
        // Indexed is expanded by the decoder (and refused before reading).
        png::ColorType::Rgb | png::ColorType::Indexed => return row,
        png::ColorType::Rgba => (4, false),
        png::ColorType::Grayscale => (1, true),
        png::ColorType::GrayscaleAlpha => (2, true),
    };
    let pixels = row.len() / channels;
    out.resize(pixels * 3, 0);
    for (rgb, p) in out.chunks_exact_mut(3).zip(row.chunks_exact(channels)) {
        let value = |c: usize| if grey { p[0] } else { p[c] };
        let alpha = if channels % 2 == 0 {
            p[channels - 1]
        } else {
            255
        };
        for c in 0..3 {
            rgb[c] = match alpha {
                255 => value(c),
                0 => matte[c],
                a => over(value(c), a, matte[c]),
            };
        }
    }
    out
}

/// Averages `factor` x `factor` blocks of RGB rows as they arrive (a
/// partial block at the right or bottom edge over the pixels it has), so a
/// large PNG is reduced the way libjpeg reduces a JPEG, to `ceil(len /
/// factor)`, without ever being held at full size.
struct BoxShrink {
    width: usize,
    height: u32,
    factor: usize,
    /// Per input sample, the sum of the band's rows so far (at most 8 x 255).
    band: Vec<u16>,
    rows_in_band: usize,
    out: Vec<u8>,
}

impl BoxShrink {
    fn new(width: u32, height: u32, factor: u32) -> BoxShrink {
        let (width, factor) = (width as usize, factor.max(1) as usize);
        let out_len = width.div_ceil(factor) * (height as usize).div_ceil(factor) * 3;
        BoxShrink {
            width,
            height,
            factor,
            band: if factor > 1 {
                vec![0; width * 3]
            } else {
                Vec::new()
            },
            rows_in_band: 0,
            out: Vec::with_capacity(out_len),
        }
    }

    /// Takes the next row, `width` RGB pixels (a short row is padded with
    /// black, as a truncated row would otherwise shift the image).
    fn push(&mut self, row: &[u8]) {
        let row = &row[..row.len().min(self.width * 3)];
        if self.factor == 1 {
            self.out.extend_from_slice(row);
            self.out
                .resize(self.out.len() + self.width * 3 - row.len(), 0);
            return;
        }
        for (sum, &v) in self.band.iter_mut().zip(row) {
            *sum += u16::from(v);
        }
        self.rows_in_band += 1;
        if self.rows_in_band == self.factor {
            self.flush_band();
        }
    }

    fn flush_band(&mut self) {
        let rows = self.rows_in_band as u32;
        let block_len = self.factor * 3;
        let whole = self.band.len() / block_len * block_len;
        let (body, tail) = self.band.split_at(whole);
        let start = self.out.len();
        self.out.resize(start + whole / self.factor, 0);
        let means = &mut self.out[start..];
        let count = rows * self.factor as u32;
        // The factor as a constant lets each block's sum unroll.
        match self.factor {
            2 => block_means::<2>(body, count, means),
            4 => block_means::<4>(body, count, means),
            _ => block_means::<8>(body, count, means),
        }
        if !tail.is_empty() {
            let count = rows * (tail.len() / 3) as u32;
            let mut sums = [0u32; 3];
            for pixel in tail.chunks_exact(3) {
                for c in 0..3 {
                    sums[c] += u32::from(pixel[c]);
                }
            }
            self.out
                .extend(sums.map(|sum| ((sum + count / 2) / count) as u8));
        }
        self.band.fill(0);
        self.rows_in_band = 0;
    }

    fn finish(mut self) -> Result<RgbImage, crate::image::BufferSizeError> {
        if self.rows_in_band > 0 {
            self.flush_band();
        }
        let factor = self.factor as u32;
        RgbImage::new(
            (self.width as u32).div_ceil(factor),
            self.height.div_ceil(factor),
            self.out,
        )
    }
}

/// Reads the Orientation tag (0x0112) from IFD0 of a TIFF-structured EXIF
/// block. Returns `None` for anything malformed: a bad tag must not fail the
/// photo, it just means "as stored".
pub fn exif_orientation(tiff: &[u8]) -> Option<Orientation> {
    // Some writers keep the APP1 "Exif\0\0" preamble in what they hand over.
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    let big_endian = match tiff.get(..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd0 = u32_at(4)? as usize;
    let entries = u16_at(ifd0)? as usize;
    const ORIENTATION_TAG: u16 = 0x0112;
    const SHORT: u16 = 3;
    (0..entries).find_map(|i| {
        let entry = ifd0 + 2 + i * 12;
        if u16_at(entry)? != ORIENTATION_TAG || u16_at(entry + 2)? != SHORT {
            return None;
        }
        Orientation::from_exif(u16_at(entry + 8)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff_with_orientation(big_endian: bool, value: u16) -> Vec<u8> {
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut t = Vec::new();
        t.extend_from_slice(if big_endian { b"MM\0*" } else { b"II*\0" });
        t.extend_from_slice(&w32(8));
        t.extend_from_slice(&w16(2)); // two entries: a decoy, then orientation
        t.extend_from_slice(&w16(0x010F)); // Make, ASCII
        t.extend_from_slice(&w16(2));
        t.extend_from_slice(&w32(4));
        t.extend_from_slice(b"abc\0");
        t.extend_from_slice(&w16(0x0112));
        t.extend_from_slice(&w16(3));
        t.extend_from_slice(&w32(1));
        t.extend_from_slice(&w16(value));
        t.extend_from_slice(&[0, 0]);
        t.extend_from_slice(&w32(0));
        t
    }

    #[test]
    fn reads_orientation_in_both_byte_orders() {
        for be in [false, true] {
            for v in 1..=8 {
                let o = exif_orientation(&tiff_with_orientation(be, v)).map(|o| o.exif_value());
                assert_eq!(o, Some(v), "big endian {be}, value {v}");
            }
        }
        let mut with_preamble = b"Exif\0\0".to_vec();
        with_preamble.extend(tiff_with_orientation(false, 6));
        assert_eq!(
            exif_orientation(&with_preamble),
            Some(Orientation::Rotate90)
        );
    }

    #[test]
    fn malformed_exif_is_ignored_not_fatal() {
        let good = tiff_with_orientation(false, 6);
        for cut in 0..good.len() {
            // No panic on any truncation; a cut before the value reads nothing.
            let _ = exif_orientation(&good[..cut]);
        }
        assert_eq!(exif_orientation(&tiff_with_orientation(false, 9)), None);
        assert_eq!(exif_orientation(b"garbage!"), None);
    }

    #[test]
    fn sniff_goes_by_content() {
        assert_eq!(
            sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Sniffed::Supported(ImageFormat::Jpeg)
        );
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n...."),
            Sniffed::Supported(ImageFormat::Png)
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic...."),
            Sniffed::Unsupported("HEIC/HEIF")
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Sniffed::Unsupported("WebP"));
        assert_eq!(sniff(b"name,student_no\n"), Sniffed::NotAnImage);
        assert_eq!(sniff(&[]), Sniffed::NotAnImage);
    }

    #[test]
    fn empty_and_garbage_are_clear_errors() {
        let limits = DecodeLimits::default();
        assert!(matches!(
            decode(&[], &limits, [0; 3]),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode(b"hello world", &limits, [0; 3]),
            Err(DecodeError::NotAnImage)
        ));
        let jpeg_head = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        assert!(decode(&jpeg_head, &limits, [0; 3]).is_err());
    }

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
    fn scale_is_the_smallest_that_keeps_the_minimum_size() {
        let r = Reduce {
            min_width: 960,
            min_height: 1280,
            min_scale: DecodeScale::eighths(1),
        };
        let eighths = |w, h| r.scale_for(w, h).numerator();
        assert_eq!(eighths(4000, 6000), 2);
        assert_eq!(eighths(3000, 4000), 3);
        assert_eq!(eighths(1200, 1600), 7);
        assert_eq!(eighths(1000, 1300), 8);
        assert_eq!(eighths(8000, 11000), 1);
        assert_eq!(eighths(500, 600), 8);
        let capped = Reduce {
            min_scale: DecodeScale::eighths(4),
            ..r
        };
        assert_eq!(capped.scale_for(8000, 11000).numerator(), 4);
        assert_eq!(Reduce::NONE.scale_for(8000, 11000), DecodeScale::FULL);
    }

    #[test]
    fn decoded_lengths_round_up() {
        let s = DecodeScale::eighths(3);
        assert_eq!(s.of(4000), 1500);
        assert_eq!(s.of(4001), 1501);
        assert_eq!(DecodeScale::eighths(0), DecodeScale::eighths(1));
        assert_eq!(DecodeScale::eighths(9), DecodeScale::FULL);
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
        assert_eq!(
            crate::codec::decode::huffman::decode_samples(&jpeg, 8, true).map(|_| ()),
            Ok(())
        );
        assert!(matches!(
            crate::codec::decode::huffman::decode_samples(&cut, 8, true),
            Err(crate::codec::decode::huffman::DriverError::Fallback(_))
        ));
        for bytes in [&jpeg, &cut] {
            for m in 1..=8 {
                let s = DecodeScale::eighths(m);
                let ours = libjpeg_rgb_with(bytes, s, true, true).unwrap();
                let plain = libjpeg_rgb_with(bytes, s, true, false).unwrap();
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

    fn png_bytes(w: u32, h: u32, colour: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        bytes
    }

    /// An Adam7-interlaced 8-bit RGBA PNG, written by hand: the png crate
    /// only writes progressive-free files. Stored (uncompressed) deflate.
    fn interlaced_rgba_png(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
        const PASSES: [(u32, u32, u32, u32); 7] = [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ];
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in PASSES {
            if x0 >= w {
                continue;
            }
            for y in (y0..h).step_by(dy as usize) {
                raw.push(0); // filter: none
                for x in (x0..w).step_by(dx as usize) {
                    let i = ((y * w + x) * 4) as usize;
                    raw.extend_from_slice(&rgba[i..i + 4]);
                }
            }
        }
        let mut zlib = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            zlib.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            zlib.extend_from_slice(&len.to_le_bytes());
            zlib.extend_from_slice(&(!len).to_le_bytes());
            zlib.extend_from_slice(block);
        }
        let (a, b) = raw.iter().fold((1u32, 0u32), |(a, b), &v| {
            let a = (a + u32::from(v)) % 65_521;
            (a, (b + a) % 65_521)
        });
        zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let crc = |bytes: &[u8]| {
            !bytes.iter().fold(!0u32, |crc, &v| {
                (0..8).fold(crc ^ u32::from(v), |c, _| {
                    if c & 1 == 1 {
                        (c >> 1) ^ 0xEDB8_8320
                    } else {
                        c >> 1
                    }
                })
            })
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 1]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, body) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &zlib), (b"IEND", &[])] {
            png.extend_from_slice(&(body.len() as u32).to_be_bytes());
            let start = png.len();
            png.extend_from_slice(kind);
            png.extend_from_slice(body);
            let sum = crc(&png[start..]);
            png.extend_from_slice(&sum.to_be_bytes());
        }
        png
    }

    #[test]
    fn reduced_png_is_the_rounded_mean_of_each_block() {
        // Odd sizes leave partial blocks on the right and at the bottom;
        // varied alpha goes through the compositing first.
        let (w, h) = (37u32, 29u32);
        let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 97 % 251) as u8).collect();
        let matte = [100, 197, 255];
        let limits = DecodeLimits::default();
        let plain = png_bytes(w, h, png::ColorType::Rgba, &rgba);
        let full = decode(&plain, &limits, matte).unwrap();
        let interlaced = interlaced_rgba_png(w, h, &rgba);
        let full_interlaced = decode(&interlaced, &limits, matte).unwrap();
        assert!(full_interlaced.progressive);
        assert_eq!(full_interlaced.image, full.image);
        for (bytes, interlaced) in [(plain, false), (interlaced, true)] {
            for (eighths, factor) in [(4, 2u32), (2, 4), (1, 8)] {
                let reduce = Reduce {
                    min_width: 0,
                    min_height: 0,
                    min_scale: DecodeScale::eighths(eighths),
                };
                let small = decode_reduced(&bytes, &limits, matte, reduce).unwrap();
                assert_eq!(small.scale, DecodeScale::eighths(eighths));
                assert_eq!((small.full_width, small.full_height), (w, h));
                let img = &small.image;
                assert_eq!(
                    (img.width(), img.height()),
                    (w.div_ceil(factor), h.div_ceil(factor))
                );
                for (y, x, c) in (0..img.height()).flat_map(|y| {
                    (0..img.width()).flat_map(move |x| (0..3).map(move |c| (y, x, c)))
                }) {
                    let xs = x * factor..((x + 1) * factor).min(w);
                    let ys = y * factor..((y + 1) * factor).min(h);
                    let count = xs.len() as u32 * ys.len() as u32;
                    let sum: u32 = ys
                        .flat_map(|yy| xs.clone().map(move |xx| (xx, yy)))
                        .map(|(xx, yy)| u32::from(full.image.pixel(xx, yy)[c]))
                        .sum();
                    assert_eq!(
                        u32::from(img.pixel(x, y)[c]),
                        (sum + count / 2) / count,
                        "factor {factor} interlaced {interlaced} at {x},{y} channel {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn png_scale_is_a_power_of_two_that_keeps_the_minimum_size() {
        let (w, h) = (40u32, 24u32);
        let grey: Vec<u8> = (0..w * h).map(|i| (i % 256) as u8).collect();
        let bytes = png_bytes(w, h, png::ColorType::Grayscale, &grey);
        let reduce = Reduce {
            min_width: 12,
            min_height: 0,
            min_scale: DecodeScale::eighths(1),
        };
        // 3/8 would keep 15 columns, but only a power of two averages whole pixels.
        let d = decode_reduced(&bytes, &DecodeLimits::default(), [0; 3], reduce).unwrap();
        assert_eq!(d.scale, DecodeScale::eighths(4));
        assert_eq!((d.image.width(), d.image.height()), (20, 12));
        assert_eq!(d.image.pixel(0, 0), [21, 21, 21]);
    }

    #[test]
    fn png_alpha_is_composited_onto_the_matte() {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, 2, 1);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| e.to_string()).unwrap();
            w.write_image_data(&[255, 0, 0, 255, 255, 0, 0, 0])
                .map_err(|e| e.to_string())
                .unwrap();
        }
        let d = decode(&bytes, &DecodeLimits::default(), [100, 197, 255]).unwrap();
        assert_eq!(d.format, ImageFormat::Png);
        assert_eq!(d.image.pixel(0, 0), [255, 0, 0]);
        assert_eq!(d.image.pixel(1, 0), [100, 197, 255]);
    }
}
