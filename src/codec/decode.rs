//! Decode stage: bytes in, upright-to-be RGB pixels out.
//!
//! The type is decided by the bytes, never the file name. Dimensions are read
//! from the header and checked against [`DecodeLimits`] before the pixel
//! buffer is allocated, so a hostile header cannot make us allocate gigabytes.
//!
//! This file is the stage's entry and what every decoder shares: [`sniff`],
//! [`decode`] and [`decode_reduced`] (which hands the bytes to the decoder of
//! their format), [`Decoded`], [`DecodeError`], [`DecodeLimits`] (checked by
//! `check_limits`), [`DecodeScale`] and [`Reduce`]. Each format's decoder is a
//! child module named after the format:
//! - `jpeg` (`decode/jpeg.rs`): JPEG through libjpeg-turbo, with its own
//!   children `huffman` (our Huffman decoder) and `idct` (our scaled inverse
//!   DCTs), which plug into libjpeg;
//! - `png` (`decode/png.rs`): PNG through the png crate, averaged down as the
//!   rows arrive;
//! - `tiff`, `bmp`, `webp` and (with the `heic` feature) `heic`: formats
//!   whose crates hand over the whole frame, finished alike by `raster`
//!   (profile, alpha over the matte, reduction as for PNG);
//! - `exif` (`decode/exif.rs`): the EXIF orientation tag and colour space;
//! - `profile` (`decode/profile.rs`): colour profiles, applied by every
//!   decoder to reach sRGB before any stage measures a colour.
//!
//! The decoders sit under `decode/` rather than beside this file in `codec/`
//! because they are parts of this one stage: `codec/` holds the stages
//! (decode, encode, verify), and a `codec/jpeg.rs` would not say whether it
//! reads or writes JPEG. A new format is a new sibling, `decode/<format>.rs`,
//! plus a variant of [`ImageFormat`], its magic bytes in [`sniff`] and an arm
//! in [`decode_reduced`]. Code outside the stage reaches the decoders through
//! this file (the re-exports below), not through their modules; only the
//! hidden `stages` module of lib.rs reaches into `jpeg::huffman`.

use serde::{Deserialize, Serialize};

use crate::image::RgbImage;
use crate::transform::orient::Orientation;

mod bmp;
mod exif;
#[cfg(feature = "heic")]
mod heic;
pub(crate) mod jpeg;
mod png;
mod profile;
mod raster;
mod tiff;
mod webp;

#[cfg(test)]
mod fixture_tests;

// What the rest of the crate uses of the decoders: the sizes in a header
// (the batch budgets memory by them) and the strict decode verify checks
// written files with. (`self::png` is our module, not the png crate.)
pub(crate) use self::png::png_frame_size;
pub(crate) use jpeg::{decode_jpeg_strictly, jpeg_frame_size};

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Jpeg,
    Png,
    Tiff,
    Bmp,
    Webp,
    /// Read only with the `heic` cargo feature.
    Heic,
}

impl ImageFormat {
    /// How error messages name the format ("corrupt WebP: ...").
    pub(crate) fn label(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::Tiff => "TIFF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Webp => "WebP",
            ImageFormat::Heic => "HEIC",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Tiff => "tiff",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Webp => "webp",
            ImageFormat::Heic => "heic",
        }
    }

    /// Whether a file name's extension agrees with the content.
    pub fn matches_extension(self, ext: &str) -> bool {
        let ext = ext.to_ascii_lowercase();
        match self {
            ImageFormat::Jpeg => matches!(ext.as_str(), "jpg" | "jpeg" | "jpe" | "jfif"),
            ImageFormat::Png => ext == "png",
            ImageFormat::Tiff => matches!(ext.as_str(), "tif" | "tiff"),
            ImageFormat::Bmp => matches!(ext.as_str(), "bmp" | "dib"),
            ImageFormat::Webp => ext == "webp",
            ImageFormat::Heic => matches!(ext.as_str(), "heic" | "heif" | "hif"),
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
        let heic = matches!(
            brand,
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1"
        );
        if heic && cfg!(feature = "heic") {
            return Sniffed::Supported(ImageFormat::Heic);
        }
        return Sniffed::Unsupported(match brand {
            b"avif" | b"avis" => "AVIF",
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => "HEIC/HEIF",
            _ => "ISO media (not a photo format we read)",
        });
    }
    // TIFF (classic; BigTIFF, 43, the tiff crate reads too) and BMP's
    // "BM" followed by the file header's reserved zeros.
    if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+")
    {
        return Sniffed::Supported(ImageFormat::Tiff);
    }
    if bytes.len() >= 14 && bytes.starts_with(b"BM") && bytes[6..10] == [0; 4] {
        return Sniffed::Supported(ImageFormat::Bmp);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Sniffed::Supported(ImageFormat::Webp);
    }
    let unsupported = [
        (&b"GIF8"[..], "GIF"),
        (&b"\0\0\0\x0cjXL "[..], "JPEG XL"),
        (&b"\xff\x0a"[..], "JPEG XL"),
        (&b"%PDF"[..], "PDF"),
    ];
    for (magic, name) in unsupported {
        if bytes.starts_with(magic) {
            return Sniffed::Unsupported(name);
        }
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
    /// The colour space the file declared (an ICC profile's name, PNG's
    /// sRGB/cHRM/gAMA, EXIF's Adobe RGB), if any; the pixels have been
    /// converted from it to sRGB.
    pub colour_profile: Option<String>,
    /// A declared colour space that could not be used (the pixels were
    /// read as sRGB).
    pub colour_warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("unsupported image type {0}: only JPEG, PNG, TIFF, BMP and WebP are read")]
    Unsupported(&'static str),
    #[error(
        "HEIC/HEIF is read only by a gradphoto built with the `heic` cargo feature (libheif), and this one was built without it"
    )]
    HeicNotBuilt,
    #[error("not an image: the content is none of JPEG, PNG, TIFF, BMP or WebP")]
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
    #[error("unsupported JPEG: {0}")]
    UnsupportedJpeg(String),
    #[error("corrupt JPEG: {0}")]
    Jpeg(String),
    #[error("corrupt PNG: {0}")]
    Png(String),
    #[error("corrupt {0}: {1}")]
    Image(&'static str, String),
    #[error("unsupported {0}: {1}")]
    UnsupportedKind(&'static str, String),
}

/// Width and height from the header of a TIFF, BMP or WebP (the formats
/// decoded whole, for the batch's memory budget), without decoding.
pub(crate) fn whole_frame_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let u32le = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    match sniff(bytes) {
        // BITMAPINFOHEADER: width and height (negative for top-down rows).
        Sniffed::Supported(ImageFormat::Bmp) => Some((
            (u32le(18)? as i32).unsigned_abs(),
            (u32le(22)? as i32).unsigned_abs(),
        )),
        Sniffed::Supported(ImageFormat::Webp) => {
            image_webp::WebPDecoder::new(std::io::Cursor::new(bytes))
                .ok()
                .map(|d| d.dimensions())
        }
        Sniffed::Supported(ImageFormat::Tiff) => {
            ::tiff::decoder::Decoder::new(std::io::Cursor::new(bytes))
                .ok()?
                .dimensions()
                .ok()
        }
        _ => None,
    }
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
        Sniffed::Supported(ImageFormat::Jpeg) => jpeg::decode_jpeg(bytes, limits, reduce),
        Sniffed::Supported(ImageFormat::Png) => png::decode_png(bytes, limits, matte, reduce),
        Sniffed::Supported(ImageFormat::Tiff) => tiff::decode_tiff(bytes, limits, matte, reduce),
        Sniffed::Supported(ImageFormat::Bmp) => bmp::decode_bmp(bytes, limits, matte, reduce),
        Sniffed::Supported(ImageFormat::Webp) => webp::decode_webp(bytes, limits, matte, reduce),
        #[cfg(feature = "heic")]
        Sniffed::Supported(ImageFormat::Heic) => heic::decode_heic(bytes, limits, matte, reduce),
        #[cfg(not(feature = "heic"))]
        Sniffed::Supported(ImageFormat::Heic) => Err(DecodeError::HeicNotBuilt),
        Sniffed::Unsupported("HEIC/HEIF") => Err(DecodeError::HeicNotBuilt),
        Sniffed::Unsupported(name) => Err(DecodeError::Unsupported(name)),
        Sniffed::NotAnImage => Err(DecodeError::NotAnImage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let heic = if cfg!(feature = "heic") {
            Sniffed::Supported(ImageFormat::Heic)
        } else {
            Sniffed::Unsupported("HEIC/HEIF")
        };
        assert_eq!(sniff(b"\0\0\0\x18ftypheic...."), heic);
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Sniffed::Supported(ImageFormat::Webp)
        );
        assert_eq!(
            sniff(b"II*\0\x08\0\0\0"),
            Sniffed::Supported(ImageFormat::Tiff)
        );
        assert_eq!(sniff(b"BM...."), Sniffed::NotAnImage);
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
}
