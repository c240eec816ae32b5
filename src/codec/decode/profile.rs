//! Colour management: what a file says about its colours (an embedded ICC
//! profile, PNG's `sRGB`/`cHRM`/`gAMA` chunks, EXIF's Adobe RGB marker) and
//! the conversion of its pixels to sRGB, which every later stage assumes
//! (SPEC §1). Done by moxcms (see Cargo.toml for why that crate).
//!
//! A photo that says nothing about its colours pays nothing: the decoders
//! only look for the tags while reading the header they read anyway, and no
//! transform is built. A profile that turns out to be sRGB in all but name
//! (most camera JPEGs carry one) is recorded and its pixels are left as they
//! are: the transform is probed first ([`ToSrgb::prepare`]) and dropped when
//! it moves no probe colour by more than one level.

use std::borrow::Cow;
use std::sync::Arc;

use moxcms::{
    Chromaticity, ColorPrimaries, ColorProfile, DataColorSpace, Layout, ProfileText, ToneReprCurve,
    Transform8BitExecutor, TransformOptions,
};

use crate::image::RgbImage;

/// How the decoded samples are laid out when the profile is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// RGB (or YCbCr decoded to RGB), three samples per pixel.
    Rgb,
    /// RGB with alpha, four samples per pixel (alpha kept as it is).
    Rgba,
    /// Grey: one sample per pixel in rows ([`ToSrgb::convert_row`]), three
    /// equal ones in a decoded image ([`ToSrgb::apply_to`]).
    Grey,
    /// Grey with alpha, two samples per pixel (rows only; out as RGBA).
    GreyAlpha,
    /// CMYK, four samples per pixel with 0 meaning no ink.
    Cmyk,
}

/// What the file says about its colour space.
pub(super) enum Tag<'a> {
    /// An ICC profile, reassembled if it was split.
    Icc(Cow<'a, [u8]>),
    /// A profile that is there but cannot be had (say, a piece missing).
    Broken(String),
    /// PNG's `sRGB` chunk: sRGB by declaration.
    PngSrgb,
    /// PNG's `cHRM` and/or `gAMA` without `sRGB` or `iCCP`: primaries and
    /// white point as (x, y), and the encoding gamma.
    PngChromaticities {
        chromaticities: Option<[(f32, f32); 4]>,
        gamma: Option<f32>,
    },
    /// EXIF ColorSpace "uncalibrated" with the DCF interoperability index
    /// R03: the camera's Adobe RGB setting, when no ICC profile says it.
    ExifAdobeRgb,
}

/// The outcome for a file with a tag: what to record and what to do.
pub(super) struct Managed {
    /// For the manifest: where the colour space came from and its name.
    pub label: String,
    /// A profile that could not be used; the pixels are read as sRGB.
    pub warning: Option<String>,
    /// None when the pixels are already sRGB (or the profile is unusable).
    pub transform: Option<ToSrgb>,
}

/// A prepared conversion to sRGB.
pub(super) struct ToSrgb {
    executor: Arc<Transform8BitExecutor>,
    stored: Stored,
}

impl Managed {
    /// Reads the tag and prepares its conversion for pixels stored as
    /// `stored`. Never fails: what cannot be used is a warning.
    pub(super) fn new(tag: Tag<'_>, stored: Stored) -> Managed {
        let (label, profile) = match tag {
            Tag::PngSrgb => {
                return Managed {
                    label: "png sRGB chunk".into(),
                    warning: None,
                    transform: None,
                };
            }
            Tag::Broken(why) => return Managed::unusable("icc: unreadable".into(), why),
            Tag::Icc(data) => match ColorProfile::new_from_slice(&data) {
                Ok(p) => (format!("icc: {}", description(&p)), p),
                Err(e) => {
                    return Managed::unusable(
                        "icc: unreadable".into(),
                        format!("the embedded ICC profile cannot be read ({e})"),
                    );
                }
            },
            Tag::ExifAdobeRgb => ("exif: Adobe RGB".into(), ColorProfile::new_adobe_rgb()),
            Tag::PngChromaticities {
                chromaticities,
                gamma,
            } if srgb_in_all_but_name(chromaticities, gamma) => {
                // What the PNG spec tells sRGB writers to add for old
                // readers (and what ImageMagick writes into every PNG): not
                // a pure 2.2 curve to apply, sRGB spelled the old way.
                return Managed {
                    label: "png gAMA/cHRM of sRGB".into(),
                    warning: None,
                    transform: None,
                };
            }
            Tag::PngChromaticities {
                chromaticities,
                gamma,
            } => {
                let mut p = ColorProfile::new_srgb();
                // Without this, moxcms would take sRGB's transfer from the
                // code points instead of the curves set below.
                p.cicp = None;
                let mut parts = Vec::new();
                if let Some([w, r, g, b]) = chromaticities {
                    let c = |(x, y): (f32, f32)| Chromaticity::new(x, y);
                    p.update_rgb_colorimetry(
                        c(w).to_xyyb(),
                        ColorPrimaries {
                            red: c(r),
                            green: c(g),
                            blue: c(b),
                        },
                    );
                    parts.push("cHRM".to_owned());
                }
                if let Some(g) = gamma.filter(|g| g.is_finite() && *g > 0.0) {
                    let curve = ToneReprCurve::Parametric(vec![1.0 / g]);
                    p.red_trc = Some(curve.clone());
                    p.green_trc = Some(curve.clone());
                    p.blue_trc = Some(curve);
                    parts.push(format!("gAMA {g:.5}"));
                }
                (format!("png {}", parts.join(" ")), p)
            }
        };
        match ToSrgb::prepare(&profile, stored) {
            Ok(transform) => Managed {
                label,
                warning: None,
                transform,
            },
            Err(why) => Managed::unusable(label, why),
        }
    }

    fn unusable(label: String, why: String) -> Managed {
        Managed {
            label,
            warning: Some(format!("{why}; its colours are read as sRGB")),
            transform: None,
        }
    }
}

/// Whether PNG's gAMA and cHRM say what an sRGB writer is told to write:
/// gamma 1/2.2 (0.45455) and, if given, sRGB's primaries and D65 white.
fn srgb_in_all_but_name(chromaticities: Option<[(f32, f32); 4]>, gamma: Option<f32>) -> bool {
    const SRGB: [(f32, f32); 4] = [(0.3127, 0.3290), (0.64, 0.33), (0.30, 0.60), (0.15, 0.06)];
    let gamma_ok = gamma.is_none_or(|g| (g - 0.45455).abs() < 0.0005);
    let chrm_ok = chromaticities.is_none_or(|c| {
        c.iter()
            .zip(SRGB)
            .all(|(a, b)| (a.0 - b.0).abs() < 0.002 && (a.1 - b.1).abs() < 0.002)
    });
    gamma_ok && chrm_ok
}

/// The profile's own name for itself, or its colour space.
fn description(p: &ColorProfile) -> String {
    let text = match &p.description {
        Some(ProfileText::PlainString(s)) => s.clone(),
        Some(ProfileText::Localizable(l)) => l.first().map(|s| s.value.clone()).unwrap_or_default(),
        Some(ProfileText::Description(d)) => d.ascii_string.clone(),
        None => String::new(),
    };
    // Profile text is the file's: keep it to one printable line.
    let text: String = text.chars().filter(|c| !c.is_control()).take(80).collect();
    let text = text.trim();
    if text.is_empty() {
        format!("unnamed {:?} profile", p.color_space)
    } else {
        text.to_owned()
    }
}

impl ToSrgb {
    /// Builds the transform, or None when it would change nothing that
    /// matters (no probe colour moves by more than one level).
    fn prepare(profile: &ColorProfile, stored: Stored) -> Result<Option<ToSrgb>, String> {
        let (expected, layout, out) = match stored {
            Stored::Rgb => (DataColorSpace::Rgb, Layout::Rgb, Layout::Rgb),
            Stored::Rgba => (DataColorSpace::Rgb, Layout::Rgba, Layout::Rgba),
            Stored::Grey => (DataColorSpace::Gray, Layout::Gray, Layout::Rgb),
            Stored::GreyAlpha => (DataColorSpace::Gray, Layout::GrayAlpha, Layout::Rgba),
            Stored::Cmyk => (DataColorSpace::Cmyk, Layout::Rgba, Layout::Rgb),
        };
        if profile.color_space != expected {
            return Err(format!(
                "the embedded profile is for {:?} but the pixels are {:?}",
                profile.color_space, expected
            ));
        }
        let options = TransformOptions {
            rendering_intent: profile.rendering_intent,
            ..TransformOptions::default()
        };
        let executor = profile
            .create_transform_8bit(layout, &ColorProfile::new_srgb(), out, options)
            .map_err(|e| format!("the embedded profile cannot be applied ({e})"))?;
        let this = ToSrgb { executor, stored };
        if stored == Stored::Cmyk {
            return Ok(Some(this));
        }
        // Every grey level and a 9x9x9 lattice of colours, as RGB.
        let mut probe: Vec<[u8; 3]> = (0..=255u8).map(|v| [v; 3]).collect();
        let steps = [0u8, 32, 64, 96, 128, 160, 192, 224, 255];
        if matches!(stored, Stored::Rgb | Stored::Rgba) {
            for r in steps {
                for g in steps {
                    probe.extend(steps.map(|b| [r, g, b]));
                }
            }
        }
        let src: Vec<u8> = probe
            .iter()
            .flat_map(|p| match stored {
                Stored::Rgba => vec![p[0], p[1], p[2], 255],
                Stored::GreyAlpha => vec![p[0], 255],
                Stored::Grey => vec![p[0]],
                _ => p.to_vec(),
            })
            .collect();
        let mut converted = Vec::new();
        this.convert_row(&src, &mut converted)?;
        let channels = if matches!(stored, Stored::Rgba | Stored::GreyAlpha) {
            4
        } else {
            3
        };
        let identity = probe
            .iter()
            .zip(converted.chunks_exact(channels))
            .all(|(a, b)| (0..3).all(|c| a[c].abs_diff(b[c]) <= 1));
        Ok((!identity).then_some(this))
    }

    /// Converts one run of samples as stored into `out`: RGB, or RGBA when
    /// the samples carry alpha (kept as it was).
    pub(super) fn convert_row(&self, src: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let (inc, outc) = match self.stored {
            Stored::Rgb => (3, 3),
            Stored::Rgba => (4, 4),
            Stored::Grey => (1, 3),
            Stored::GreyAlpha => (2, 4),
            Stored::Cmyk => (4, 3),
        };
        let pixels = src.len() / inc;
        out.clear();
        out.resize(pixels * outc, 0);
        self.executor
            .transform(&src[..pixels * inc], out)
            .map_err(|e| format!("the colour conversion failed ({e})"))
    }

    /// Converts a decoded image's pixels in place (grey as three equal
    /// samples), a band of rows at a time to keep the copy small.
    pub(super) fn apply_to(&self, image: &mut RgbImage) -> Result<(), String> {
        let grey = self.stored == Stored::Grey;
        let (mut src, mut out) = (Vec::new(), Vec::new());
        for chunk in image.as_bytes_mut().chunks_mut(3 * 4096) {
            src.clear();
            if grey {
                src.extend(chunk.iter().step_by(3));
            } else {
                src.extend_from_slice(chunk);
            }
            self.convert_row(&src, &mut out)?;
            chunk.copy_from_slice(&out[..chunk.len()]);
        }
        Ok(())
    }

    /// Whether this converts CMYK (see [`ToSrgb::cmyk_to_rgb`]).
    pub(super) fn is_cmyk(&self) -> bool {
        self.stored == Stored::Cmyk
    }

    /// CMYK samples as libjpeg hands over an Adobe file's (inverted: 255
    /// is no ink) to sRGB.
    pub(super) fn cmyk_to_rgb(&self, inverted_cmyk: &[u8]) -> Result<Vec<u8>, String> {
        let mut rgb = Vec::with_capacity(inverted_cmyk.len() / 4 * 3);
        let (mut src, mut out) = (Vec::new(), Vec::new());
        for ink in inverted_cmyk.chunks(4 * 4096) {
            src.clear();
            src.extend(ink.iter().map(|v| 255 - v));
            self.convert_row(&src, &mut out)?;
            rgb.extend_from_slice(&out);
        }
        Ok(rgb)
    }
}

/// The ICC profile of a JPEG, from its APP2 `ICC_PROFILE` segments put
/// back together in sequence order. `segments` are the APP2 bodies. None
/// when there is none; Err when the pieces do not make a whole.
pub(super) fn join_icc_chunks(segments: &[&[u8]]) -> Option<Result<Vec<u8>, String>> {
    const SIGNATURE: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, u8, &[u8])> = segments
        .iter()
        .filter_map(|s| s.strip_prefix(SIGNATURE))
        .filter_map(|s| Some((*s.first()?, *s.get(1)?, s.get(2..)?)))
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    let count = chunks[0].1;
    let whole = usize::from(count) == chunks.len()
        && chunks
            .iter()
            .enumerate()
            .all(|(i, c)| usize::from(c.0) == i + 1 && c.1 == count);
    if !whole {
        return Some(Err(format!(
            "the ICC profile is split into {} of {} pieces, out of order or missing",
            chunks.len(),
            count
        )));
    }
    Some(Ok(chunks.iter().flat_map(|c| c.2).copied().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icc_pieces_are_joined_in_sequence_order() {
        let piece = |seq: u8, count: u8, data: &[u8]| {
            let mut v = b"ICC_PROFILE\0".to_vec();
            v.extend_from_slice(&[seq, count]);
            v.extend_from_slice(data);
            v
        };
        let (a, b) = (piece(2, 2, b"world"), piece(1, 2, b"hello "));
        let other = b"MPF\0stuff".to_vec();
        let joined = join_icc_chunks(&[&a, &other, &b]);
        assert_eq!(joined, Some(Ok(b"hello world".to_vec())));
        assert!(matches!(join_icc_chunks(&[&a]), Some(Err(_))));
        assert_eq!(join_icc_chunks(&[&other]), None);
    }

    #[test]
    fn srgb_profiles_cost_no_pass_and_others_convert() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let m = Managed::new(Tag::Icc(srgb.into()), Stored::Rgb);
        assert!(m.transform.is_none() && m.warning.is_none(), "{}", m.label);
        let adobe = ColorProfile::new_adobe_rgb().encode().unwrap();
        let m = Managed::new(Tag::Icc(adobe.clone().into()), Stored::Rgb);
        let t = m.transform.expect("Adobe RGB converts");
        // Adobe RGB's pure green is outside sRGB: clipped to it.
        let mut px = Vec::new();
        t.convert_row(&[0, 255, 0, 128, 128, 128], &mut px).unwrap();
        assert_eq!(&px[..3], &[0, 255, 0]);
        assert!(px[3..].iter().all(|v| v.abs_diff(128) <= 1));
        // The washed-out backdrop: Adobe RGB (136,197,254) is a
        // deeper blue in sRGB.
        t.convert_row(&[136, 197, 254], &mut px).unwrap();
        assert!(px[0] < 110, "{px:?}");
    }

    #[test]
    fn a_broken_profile_is_a_warning() {
        let m = Managed::new(
            Tag::Icc(Cow::Borrowed(b"not a profile at all")),
            Stored::Rgb,
        );
        assert!(m.transform.is_none());
        assert!(m.warning.unwrap().contains("read as sRGB"));
        let adobe = ColorProfile::new_adobe_rgb().encode().unwrap();
        let m = Managed::new(Tag::Icc(adobe.clone().into()), Stored::Cmyk);
        assert!(m.warning.unwrap().contains("Cmyk"));
    }
}
