//! Every format and colour profile the decode stage reads, on the files
//! scripts/make-format-fixtures.sh makes from one synthetic sRGB portrait
//! (tests/fixtures/formats/source.png), converted by Little CMS: the
//! decoded backdrop must be the source's within ΔE2000 1 (what a
//! colour-managed viewer shows), and the picture must stand as the
//! source does (orientation).

use super::{DecodeError, DecodeLimits, Decoded, decode};
use crate::analysis::colour::{ciede2000, srgb_to_lab};
use crate::image::RgbImage;
use crate::transform::orient::apply_orientation;

const MATTE: [u8; 3] = [240, 20, 20];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/formats/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn open(name: &str) -> Decoded {
    decode(&fixture(name), &DecodeLimits::default(), MATTE)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The mean colour of the backdrop patch at the top left.
fn backdrop(img: &RgbImage) -> [u8; 3] {
    let mut sum = [0u64; 3];
    let mut n = 0;
    for y in 4..24 {
        for x in 4..28 {
            let p = img.pixel(x, y);
            for c in 0..3 {
                sum[c] += u64::from(p[c]);
            }
            n += 1;
        }
    }
    sum.map(|s| ((s + n / 2) / n) as u8)
}

/// Decodes `name`, stands it upright and compares it with the source
/// (`alpha`: the share of the source over the matte).
fn check(name: &str, alpha: f64) -> Decoded {
    let source = open("source.png").image;
    let decoded = open(name);
    let upright = apply_orientation(decoded.image.clone(), decoded.orientation);
    assert_eq!(
        (upright.width(), upright.height()),
        (source.width(), source.height()),
        "{name}: upright size"
    );
    let blend = |s: u8, m: u8| (f64::from(s) * alpha + f64::from(m) * (1.0 - alpha)).round() as u8;
    let truth = backdrop(&source);
    let truth = [0, 1, 2].map(|c| blend(truth[c], MATTE[c]));
    let got = backdrop(&upright);
    let de = ciede2000(srgb_to_lab(truth), srgb_to_lab(got));
    assert!(
        de <= 1.0,
        "{name}: backdrop {got:?}, truth {truth:?}, ΔE {de:.2}"
    );
    // The whole picture, so a wrong orientation or a swapped channel shows.
    let diff: u64 = source
        .as_bytes()
        .iter()
        .zip(upright.as_bytes())
        .enumerate()
        .map(|(i, (&s, &u))| u64::from(blend(s, MATTE[i % 3]).abs_diff(u)))
        .sum();
    let mean = diff as f64 / source.as_bytes().len() as f64;
    assert!(mean < 4.0, "{name}: mean difference {mean:.2}");
    decoded
}

#[test]
fn embedded_profiles_are_converted_to_srgb() {
    for (name, label) in [
        ("adobe-rgb.jpg", "icc: Compatible with Adobe RGB (1998)"),
        (
            "adobe-rgb-split.jpg",
            "icc: Compatible with Adobe RGB (1998)",
        ),
        ("display-p3.jpg", "icc: DisplayP3 color profile"),
        ("prophoto-v4.jpg", "icc: ProPhoto RGB"),
        ("adobe-rgb.png", "icc: Compatible with Adobe RGB (1998)"),
        ("linear-gamma.png", "png gAMA 1.00000"),
        ("exif-adobe-rgb-rotated.jpg", "exif: Adobe RGB"),
        ("display-p3.tif", "icc: DisplayP3 color profile"),
    ] {
        let d = check(name, 1.0);
        assert_eq!(d.colour_profile.as_deref(), Some(label), "{name}");
        assert_eq!(d.colour_warning, None, "{name}");
    }
}

#[test]
fn read_as_srgb_the_profile_is_visibly_wrong() {
    // The test can fail: without conversion the Adobe RGB backdrop is off.
    let bytes = fixture("adobe-rgb.jpg");
    let source = backdrop(&open("source.png").image);
    let raw = super::jpeg::decode_jpeg_strictly(&bytes, super::DecodeScale::FULL).unwrap();
    let de = ciede2000(srgb_to_lab(source), srgb_to_lab(backdrop(&raw)));
    assert!(de > 3.0, "ΔE {de:.2}");
}

#[test]
fn an_unreadable_profile_is_a_warning_and_srgb() {
    let d = open("broken-icc.jpg");
    assert!(d.colour_warning.unwrap().contains("read as sRGB"));
}

#[test]
fn tiff_bmp_and_webp_are_read() {
    for name in [
        "rgb8-none.tif",
        "rgb8-lzw.tif",
        "rgb16-deflate.tif",
        "rotated-lzw.tif",
        "rgb24.bmp",
        "lossless.webp",
        "lossy.webp",
        "arithmetic.jpg",
        "arithmetic-progressive.jpg",
    ] {
        let d = check(name, 1.0);
        assert_eq!(d.colour_profile, None, "{name}");
    }
    assert_eq!(open("rotated-lzw.tif").orientation.exif_value(), 6);
    assert!(open("arithmetic-progressive.jpg").progressive);
}

#[test]
fn alpha_is_composited_onto_the_matte() {
    for name in ["alpha-deflate.tif", "alpha32.bmp", "alpha-lossless.webp"] {
        check(name, 0.5);
    }
}

#[test]
fn unsupported_kinds_say_what_is_unsupported() {
    let limits = DecodeLimits::default();
    match decode(&fixture("precision-12.jpg"), &limits, MATTE) {
        Err(e @ DecodeError::UnsupportedJpeg(_)) => {
            assert!(e.to_string().contains("12-bit"), "{e}")
        }
        other => panic!("{:?}", other.map(|d| d.format)),
    }
    #[cfg(not(feature = "heic"))]
    match decode(&fixture("portrait.heic"), &limits, MATTE) {
        Err(e @ DecodeError::HeicNotBuilt) => assert!(e.to_string().contains("`heic`"), "{e}"),
        other => panic!("{:?}", other.map(|d| d.format)),
    }
}

#[cfg(feature = "heic")]
#[test]
fn heic_is_read_with_the_feature() {
    check("portrait.heic", 1.0);
}

#[test]
fn huge_headers_are_refused_before_decoding() {
    // BMP: a 24-bit BITMAPINFOHEADER claiming 100000 x 100000 pixels.
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0]);
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&100_000i32.to_le_bytes());
    bmp.extend_from_slice(&100_000i32.to_le_bytes());
    bmp.extend_from_slice(&[1, 0, 24, 0]);
    bmp.extend_from_slice(&[0; 24]);
    bmp.extend_from_slice(&[0; 64]);
    // TIFF: one strip of 8-bit grey claiming the same.
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    let entries: [(u16, u16, u32); 9] = [
        (256, 4, 100_000),
        (257, 4, 100_000),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 0),
        (277, 3, 1),
        (278, 4, 100_000),
        (279, 4, 10),
    ];
    tiff.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&kind.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&value.to_le_bytes());
    }
    tiff.extend_from_slice(&[0; 4]);
    for (name, bytes) in [("BMP", bmp), ("TIFF", tiff)] {
        match decode(&bytes, &DecodeLimits::default(), MATTE) {
            Err(DecodeError::TooLarge { pixels, .. }) => assert_eq!(pixels, 10_000_000_000),
            other => panic!("{name}: {:?}", other.map(|d| d.format)),
        }
    }
}
