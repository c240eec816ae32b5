//! The WebP decoder: image-webp (lossy VP8 and lossless VP8L, with alpha),
//! with the EXIF orientation and ICC profile of its extended format.

use std::io::Cursor;

use image_webp::WebPDecoder;

use super::exif::exif_orientation;
use super::profile::Tag;
use super::raster::{Frame, Samples, byte_limit, check_size, decoded};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce};

pub(super) fn decode_webp(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let err = |e: image_webp::DecodingError| DecodeError::Image("WebP", e.to_string());
    let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(err)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    decoder.set_memory_limit(byte_limit(limits));
    let lossy = decoder.is_lossy();
    let samples = if decoder.has_alpha() {
        Samples::Rgba
    } else {
        Samples::Rgb
    };
    // Metadata that cannot be read is no reason to refuse the picture.
    let orientation = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .as_deref()
        .and_then(exif_orientation)
        .unwrap_or_default();
    let icc = decoder.icc_profile().ok().flatten();
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| DecodeError::Image("WebP", "image too large for this machine".into()))?;
    let mut data = Vec::new();
    data.try_reserve_exact(size)
        .map_err(|_| DecodeError::Image("WebP", "out of memory".into()))?;
    data.resize(size, 0);
    decoder.read_image(&mut data).map_err(err)?;
    decoded(
        Frame {
            data: &data,
            samples,
            width,
            height,
            orientation,
            tag: icc.as_deref().map(|p| Tag::Icc(p.into())),
        },
        ImageFormat::Webp,
        if lossy { "vp8" } else { "vp8l" }.into(),
        matte,
        reduce,
    )
}
