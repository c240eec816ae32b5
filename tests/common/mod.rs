//! Test helpers that judge outputs without trusting the code under test: a
//! marker walk written separately from `verify.rs`, and decoding with a
//! different decoder (jpeg-decoder) than the pipeline uses (zune-jpeg).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BACKDROP: [u8; 3] = [100, 197, 255];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gradphoto")
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fresh, empty folder for one test.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradphoto-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// What the marker segments of a JPEG say.
#[derive(Debug, Default)]
pub struct JpegFacts {
    pub sof_markers: Vec<u8>,
    pub width: u16,
    pub height: u16,
    pub components: u8,
    pub precision: u8,
    pub app_markers: Vec<u8>,
    pub jfif_units: Option<u8>,
    pub jfif_density: Option<(u16, u16)>,
    pub has_exif: bool,
    /// Bytes after the EOI that ends the entropy-coded data.
    pub trailing_bytes: usize,
    pub comment_bytes: usize,
    pub luma_dqt: Option<[u16; 64]>,
}

pub fn inspect_jpeg(b: &[u8]) -> JpegFacts {
    assert_eq!(&b[..2], [0xFF, 0xD8], "no SOI");
    let mut f = JpegFacts::default();
    let mut i = 2;
    loop {
        assert_eq!(b[i], 0xFF, "marker expected at {i}");
        while b[i + 1] == 0xFF {
            i += 1;
        }
        let m = b[i + 1];
        if m == 0xD9 {
            f.trailing_bytes = b.len() - (i + 2);
            return f;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        let seg = &b[i + 4..i + 2 + len];
        match m {
            0xE0..=0xEF => {
                f.app_markers.push(m);
                if m == 0xE0 && seg.starts_with(b"JFIF\0") {
                    f.jfif_units = Some(seg[7]);
                    f.jfif_density = Some((
                        u16::from_be_bytes([seg[8], seg[9]]),
                        u16::from_be_bytes([seg[10], seg[11]]),
                    ));
                }
                if m == 0xE1 && seg.starts_with(b"Exif") {
                    f.has_exif = true;
                }
            }
            0xFE => f.comment_bytes += len - 2,
            0xDB => {
                let mut k = 0;
                while k < seg.len() {
                    let (pq, tq) = (seg[k] >> 4, seg[k] & 15);
                    let n = if pq == 0 { 64 } else { 128 };
                    if tq == 0 {
                        let mut t = [0u16; 64];
                        for (j, v) in t.iter_mut().enumerate() {
                            *v = if pq == 0 {
                                u16::from(seg[k + 1 + j])
                            } else {
                                u16::from_be_bytes([seg[k + 1 + 2 * j], seg[k + 2 + 2 * j]])
                            };
                        }
                        f.luma_dqt = Some(t);
                    }
                    k += 1 + n;
                }
            }
            0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                f.sof_markers.push(m);
                f.precision = seg[0];
                f.height = u16::from_be_bytes([seg[1], seg[2]]);
                f.width = u16::from_be_bytes([seg[3], seg[4]]);
                f.components = seg[5];
            }
            _ => {}
        }
        i += 2 + len;
        if m == 0xDA {
            // Skip entropy-coded data: stuffed 0xFF00 and restart markers
            // belong to it; any other marker ends it.
            while !(b[i] == 0xFF && b[i + 1] != 0x00 && !(0xD0..=0xD7).contains(&b[i + 1])) {
                i += 1;
            }
        }
    }
}

/// Decodes with jpeg-decoder (not the pipeline's decoder): (width, height, RGB).
pub fn decode_independently(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let pixels = d.decode().expect("output decodes with jpeg-decoder");
    let info = d.info().unwrap();
    assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
    (u32::from(info.width), u32::from(info.height), pixels)
}

/// The estimated IJG quality of a luminance table (inverse of libjpeg's scaling).
pub fn estimate_quality(dqt: &[u16; 64]) -> u32 {
    const STD: [u16; 64] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
        56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
        104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ];
    // Tables may be stored in zig-zag order; the sum is order-independent.
    let sum: u32 = dqt.iter().map(|&v| u32::from(v)).sum();
    let std_sum: u32 = STD.iter().map(|&v| u32::from(v)).sum();
    let scale = f64::from(sum) * 100.0 / f64::from(std_sum);
    let q = if scale <= 100.0 {
        (200.0 - scale) / 2.0
    } else {
        5000.0 / scale
    };
    q.round().clamp(1.0, 100.0) as u32
}

fn colour_distance(a: [u8; 3], b: [u8; 3]) -> f64 {
    let d: i32 = (0..3)
        .map(|c| (i32::from(a[c]) - i32::from(b[c])).pow(2))
        .sum();
    f64::from(d).sqrt()
}

/// Mean colour of a line of pixels.
fn mean(pixels: &[[u8; 3]]) -> [u8; 3] {
    let mut s = [0u64; 3];
    for p in pixels {
        for c in 0..3 {
            s[c] += u64::from(p[c]);
        }
    }
    s.map(|v| (v / pixels.len() as u64) as u8)
}

/// The edges of an output that must be backdrop: top row, and the left and
/// right columns above the shoulders (upper 40%). Returns the worst mean
/// colour distance to the backdrop estimate taken from the top corners.
pub fn border_free(width: u32, height: u32, rgb: &[u8]) -> Result<(), String> {
    let px = |x: u32, y: u32| {
        let i = ((y * width + x) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let top: Vec<_> = (0..width).map(|x| px(x, 0)).collect();
    let left: Vec<_> = (0..height * 2 / 5).map(|y| px(0, y)).collect();
    let right: Vec<_> = (0..height * 2 / 5).map(|y| px(width - 1, y)).collect();
    let inner_top: Vec<_> = (0..width).map(|x| px(x, 8)).collect();
    let reference = mean(&inner_top);
    for (name, line) in [
        ("top row", top),
        ("left column", left),
        ("right column", right),
    ] {
        let m = mean(&line);
        if colour_distance(m, reference) > 25.0 {
            return Err(format!(
                "{name} mean {m:?} differs from the backdrop just inside {reference:?}: a border"
            ));
        }
        if colour_distance(m, BACKDROP) > 60.0 {
            return Err(format!("{name} mean {m:?} is not the light-blue backdrop"));
        }
    }
    Ok(())
}

/// The first row from the top, in the middle third, whose centre column
/// departs clearly from the backdrop: the crown of the head.
pub fn crown_row(width: u32, height: u32, rgb: &[u8]) -> Option<u32> {
    let backdrop = {
        let i = ((4 * width + 4) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    (0..height).find(|&y| {
        let hits = (width / 3..2 * width / 3)
            .filter(|&x| {
                let i = ((y * width + x) * 3) as usize;
                colour_distance([rgb[i], rgb[i + 1], rgb[i + 2]], backdrop) > 80.0
            })
            .count();
        hits > (width / 30) as usize
    })
}
