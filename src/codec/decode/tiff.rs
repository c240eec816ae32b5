//! The TIFF decoder: the `tiff` crate (uncompressed, LZW, Deflate,
//! PackBits; 8 and 16 bits; grey, RGB, with or without alpha; CMYK), with
//! the orientation and ICC profile TIFF carries in its own tags.

use std::io::Cursor;

use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag as TiffTag;

use super::profile::Tag;
use super::raster::{Frame, Samples, byte_limit, check_size, decoded, to_8bit};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce};
use crate::transform::orient::Orientation;

pub(super) fn decode_tiff(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let err = |e: tiff::TiffError| DecodeError::Image("TIFF", e.to_string());
    let mut tiff_limits = Limits::default();
    tiff_limits.decoding_buffer_size = byte_limit(limits);
    tiff_limits.intermediate_buffer_size = byte_limit(limits);
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(err)?
        .with_limits(tiff_limits);
    let (width, height) = decoder.dimensions().map_err(err)?;
    check_size(width, height, limits)?;
    let colour_type = decoder.colortype().map_err(err)?;
    let (samples, cmyk, depth) = match colour_type {
        ColorType::Gray(d) => (Samples::Grey, false, d),
        ColorType::GrayA(d) => (Samples::GreyAlpha, false, d),
        ColorType::RGB(d) => (Samples::Rgb, false, d),
        ColorType::RGBA(d) => (Samples::Rgba, false, d),
        ColorType::CMYK(d) => (Samples::Rgb, true, d),
        other => {
            return Err(DecodeError::UnsupportedKind(
                "TIFF",
                format!("{other:?} pixels are not read; grey, RGB and CMYK at 8 or 16 bits are"),
            ));
        }
    };
    if depth != 8 && depth != 16 {
        return Err(DecodeError::UnsupportedKind(
            "TIFF",
            format!("{depth}-bit samples are not read; 8 and 16 bits are"),
        ));
    }
    let orientation = decoder
        .find_tag_unsigned::<u16>(TiffTag::Orientation)
        .ok()
        .flatten()
        .and_then(Orientation::from_exif)
        .unwrap_or_default();
    let icc = decoder
        .get_tag_u8_vec(TiffTag::IccProfile)
        .ok()
        .filter(|p| !p.is_empty());
    let data = match decoder.read_image().map_err(err)? {
        DecodingResult::U8(v) => v,
        DecodingResult::U16(v) => to_8bit(&v),
        _ => {
            return Err(DecodeError::UnsupportedKind(
                "TIFF",
                "floating-point or signed samples are not read".into(),
            ));
        }
    };
    // CMYK without a profile: light let through per ink, as for JPEG.
    let (data, tag) = if cmyk {
        (naive_cmyk(&data), None)
    } else {
        (data, icc.as_deref().map(|p| Tag::Icc(p.into())))
    };
    decoded(
        Frame {
            data: &data,
            samples,
            width,
            height,
            orientation,
            tag,
        },
        ImageFormat::Tiff,
        format!("{colour_type:?}").to_ascii_lowercase(),
        matte,
        reduce,
    )
}

/// TIFF's CMYK (0 = no ink) to RGB without a profile.
fn naive_cmyk(cmyk: &[u8]) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|p| {
            let k = 255 - u32::from(p[3]);
            [0, 1, 2]
                .map(|c| ((255 - u32::from(p[c])) * k + 127) / 255)
                .map(|v| v as u8)
        })
        .collect()
}
