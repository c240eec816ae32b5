//! The HEIC/HEIF decoder (the `heic` cargo feature): libheif through
//! libheif-rs, the primary image with libheif's own rotation and mirroring
//! applied (HEIF's `irot`/`imir` say how it stands, not EXIF), converted to
//! sRGB by its ICC profile when it has one.

use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

use super::profile::Tag;
use super::raster::{Frame, Samples, check_size, decoded};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce};
use crate::transform::orient::Orientation;

pub(super) fn decode_heic(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let err = |e: libheif_rs::HeifError| DecodeError::Image("HEIC", e.to_string());
    let context = HeifContext::read_from_bytes(bytes).map_err(err)?;
    let handle = context.primary_image_handle().map_err(err)?;
    let (width, height) = (handle.width(), handle.height());
    check_size(width, height, limits)?;
    let alpha = handle.has_alpha_channel();
    let (chroma, samples) = if alpha {
        (RgbChroma::Rgba, Samples::Rgba)
    } else {
        (RgbChroma::Rgb, Samples::Rgb)
    };
    let icc = handle.color_profile_raw().map(|p| p.data);
    let image = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(err)?;
    let plane = image
        .planes()
        .interleaved
        .ok_or_else(|| DecodeError::Image("HEIC", "no interleaved plane".into()))?;
    // The decoded size, which a rotation by libheif may have swapped.
    let (w, h) = (plane.width, plane.height);
    let row = w as usize * samples.channels();
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let start = y * plane.stride;
        let line = plane
            .data
            .get(start..start + row)
            .ok_or_else(|| DecodeError::Image("HEIC", "short plane".into()))?;
        data.extend_from_slice(line);
    }
    let orientation = Orientation::default();
    let tag = icc
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| Tag::Icc(p.into()));
    decoded(
        Frame {
            data: &data,
            samples,
            width: w,
            height: h,
            orientation,
            tag,
        },
        ImageFormat::Heic,
        if alpha { "rgba" } else { "rgb" }.into(),
        matte,
        reduce,
    )
}
