//! The BMP decoder: zune-bmp (1 to 32 bits, palette, RLE, bit fields,
//! alpha), with the ICC profile a V5 header may embed.

use zune_bmp::BmpDecoder;
use zune_bmp::zune_core::bytestream::ZCursor;
use zune_bmp::zune_core::colorspace::ColorSpace;
use zune_bmp::zune_core::options::DecoderOptions;

use super::profile::Tag;
use super::raster::{Frame, Samples, check_size, decoded};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce};
use crate::transform::orient::Orientation;

pub(super) fn decode_bmp(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let err = |e: zune_bmp::BmpDecoderErrors| {
        DecodeError::Image("BMP", format!("{e:?}").trim().to_owned())
    };
    // zune-bmp's own cap (16384 a side) would refuse a wide panorama our
    // pixel limit accepts: ours, checked below from the header, governs.
    let options = DecoderOptions::default()
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = BmpDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(err)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| DecodeError::Image("BMP", "no header".into()))?;
    let width = u32::try_from(width).unwrap_or(u32::MAX);
    let height = u32::try_from(height).unwrap_or(u32::MAX);
    check_size(width, height, limits)?;
    let samples = match decoder.colorspace() {
        Some(ColorSpace::RGBA) => Samples::Rgba,
        Some(ColorSpace::Luma) => Samples::Grey,
        _ => Samples::Rgb,
    };
    let icc = decoder.icc_profile().cloned();
    let data = decoder.decode().map_err(err)?;
    let orientation = Orientation::default();
    decoded(
        Frame {
            data: &data,
            samples,
            width,
            height,
            orientation,
            tag: icc.as_deref().map(|p| Tag::Icc(p.into())),
        },
        ImageFormat::Bmp,
        format!("{samples:?}").to_ascii_lowercase(),
        matte,
        reduce,
    )
}
