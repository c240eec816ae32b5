//! What the decoders of whole-frame formats share (TIFF, BMP, WebP, HEIC: their
//! crates hand over the whole image at once): 8-bit samples, as stored, to
//! the RGB image the stages read, through the file's colour profile, alpha
//! composited onto the matte, reduced by a power of two as PNG is.

use super::png::{BoxShrink, samples_to_rgb};
use super::profile::{Managed, Stored, Tag};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce};
use crate::transform::orient::Orientation;

/// How 8-bit samples are laid out, per pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Samples {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
}

impl Samples {
    pub(super) fn channels(self) -> usize {
        match self {
            Samples::Grey => 1,
            Samples::GreyAlpha => 2,
            Samples::Rgb => 3,
            Samples::Rgba => 4,
        }
    }

    fn as_png(self) -> png::ColorType {
        match self {
            Samples::Grey => png::ColorType::Grayscale,
            Samples::GreyAlpha => png::ColorType::GrayscaleAlpha,
            Samples::Rgb => png::ColorType::Rgb,
            Samples::Rgba => png::ColorType::Rgba,
        }
    }

    fn stored(self) -> Stored {
        match self {
            Samples::Grey => Stored::Grey,
            Samples::GreyAlpha => Stored::GreyAlpha,
            Samples::Rgb => Stored::Rgb,
            Samples::Rgba => Stored::Rgba,
        }
    }
}

/// The most bytes a decoder may allocate for an image of the largest
/// accepted size: 8 per pixel (16-bit RGBA), as for PNG.
pub(super) fn byte_limit(limits: &DecodeLimits) -> usize {
    usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX)
}

/// A whole frame as a format's crate hands it over, and what the file says
/// of it.
pub(super) struct Frame<'a> {
    /// Rows of `width` pixels laid out as `samples`.
    pub data: &'a [u8],
    pub samples: Samples,
    pub width: u32,
    pub height: u32,
    pub orientation: Orientation,
    /// The file's colour profile, if it carries one.
    pub tag: Option<Tag<'a>>,
}

/// The decoded photo from a whole frame: converted to sRGB by the frame's
/// profile when there is one, alpha over `matte`, reduced as far as
/// `reduce` allows for the upright size; `colour` is how the manifest names
/// the stored pixels.
pub(super) fn decoded(
    frame: Frame<'_>,
    format: ImageFormat,
    colour: String,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let Frame {
        data,
        samples,
        width,
        height,
        orientation,
        tag,
    } = frame;
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let corrupt = |why: String| DecodeError::Image(format.label(), why);
    let scale = reduce.scale_for(upright_w, upright_h).power_of_two_above();
    let managed = tag.map(|t| Managed::new(t, samples.stored()));
    let transform = managed.as_ref().and_then(|m| m.transform.as_ref());
    let mut colour_warning = managed.as_ref().and_then(|m| m.warning.clone());
    let row_len = width as usize * samples.channels();
    if row_len == 0 || data.len() < row_len * height as usize {
        return Err(corrupt(
            "the image data is shorter than its header says".into(),
        ));
    }
    let mut shrink = BoxShrink::new(width, height, 8 / scale.numerator());
    let (mut rgb_row, mut srgb_row) = (Vec::new(), Vec::new());
    for row in data.chunks_exact(row_len).take(height as usize) {
        let converted = transform.map(|t| t.convert_row(row, &mut srgb_row));
        let (row, layout) = match converted {
            Some(Ok(())) => {
                let alpha = matches!(samples, Samples::GreyAlpha | Samples::Rgba);
                let layout = if alpha { Samples::Rgba } else { Samples::Rgb };
                (&srgb_row[..], layout)
            }
            Some(Err(why)) => {
                colour_warning.get_or_insert(why);
                (row, samples)
            }
            None => (row, samples),
        };
        shrink.push(samples_to_rgb(row, layout.as_png(), matte, &mut rgb_row));
    }
    let image = shrink.finish().map_err(|e| corrupt(e.to_string()))?;
    Ok(Decoded {
        image,
        format,
        orientation,
        colour,
        progressive: false,
        full_width: width,
        full_height: height,
        scale,
        colour_profile: managed.map(|m| m.label),
        colour_warning,
    })
}

/// 16-bit samples to 8, rounded.
pub(super) fn to_8bit(wide: &[u16]) -> Vec<u8> {
    wide.iter()
        .map(|&v| ((u32::from(v) * 255 + 32_767) / 65_535) as u8)
        .collect()
}

/// A decoder's refusal of a file's size, before it allocates.
pub(super) fn check_size(
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    super::check_limits(u64::from(width), u64::from(height), limits)
}
