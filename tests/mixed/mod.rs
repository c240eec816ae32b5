//! A folder of photos as a teaching secretary receives them: good registry
//! photos and each kind of bad one, with what `check` must say about each.
//! Shared by the audit and the browser report tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gradphoto::DecodeLimits;
use gradphoto::EncodeSettings;
use gradphoto::stages::RgbImage;
use gradphoto::stages::decode;
use gradphoto::stages::encode_to_window;

use crate::common::{BACKDROP, fixtures, run};

/// What `check` must conclude about one file.
pub struct Expect {
    pub file: &'static str,
    /// `None`: the photo passes (ok or warn). `Some(check)`: it fails, and
    /// `check` is among the reasons.
    pub fails: Option<&'static str>,
    /// For a failure: whether `normalize` can fix it.
    pub fixable: bool,
}

pub const EXPECTED: &[Expect] = &[
    Expect {
        file: "good-1.jpg",
        fails: None,
        fixable: false,
    },
    Expect {
        file: "good-2.jpg",
        fails: None,
        fixable: false,
    },
    Expect {
        file: "good-3.jpg",
        fails: None,
        fixable: false,
    },
    // A studio's full-size original: wrong size and too many bytes.
    Expect {
        file: "studio-original.jpg",
        fails: Some("dimensions"),
        fixable: true,
    },
    Expect {
        file: "png-named.jpg",
        fails: Some("jpeg_signature"),
        fixable: true,
    },
    Expect {
        file: "too-large.jpg",
        fails: Some("file_size"),
        fixable: true,
    },
    // 480x640 with a frame: once the frame is gone it is smaller than
    // 480x640, and normalize does not upscale.
    Expect {
        file: "bordered.jpg",
        fails: Some("no_border"),
        fixable: false,
    },
    Expect {
        file: "grey-backdrop.jpg",
        fails: Some("backdrop_colour"),
        fixable: false,
    },
    Expect {
        file: "two-people.jpg",
        fails: Some("subject"),
        fixable: false,
    },
];

fn good_outputs(scratch: &Path) -> Vec<PathBuf> {
    let good = scratch.join("normalized");
    let inputs = ["01-baseline.jpg", "06-progressive.jpg", "04-portrait.png"];
    let mut args: Vec<std::ffi::OsString> = vec!["normalize".into()];
    args.extend(inputs.iter().map(|f| fixtures().join(f).into_os_string()));
    args.extend([
        "--out".into(),
        good.clone().into_os_string(),
        "--quiet".into(),
    ]);
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let result = run(&refs);
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    ["01-baseline.jpg", "06-progressive.jpg", "04-portrait.jpg"]
        .iter()
        .map(|f| good.join(f))
        .collect()
}

fn pixels(jpeg: &[u8]) -> RgbImage {
    decode(jpeg, &DecodeLimits::default(), BACKDROP)
        .unwrap()
        .image
}

fn encode(img: &RgbImage) -> Vec<u8> {
    encode_to_window(img, &EncodeSettings::default())
        .unwrap()
        .bytes
}

/// Builds the folder under `scratch` and returns its path.
pub fn build(scratch: &Path) -> PathBuf {
    let dir = scratch.join("mixed");
    std::fs::create_dir_all(&dir).unwrap();
    let good = good_outputs(scratch);
    for (i, path) in good.iter().enumerate() {
        std::fs::copy(path, dir.join(format!("good-{}.jpg", i + 1))).unwrap();
    }
    let copy = |fixture: &str, name: &str| {
        std::fs::copy(fixtures().join(fixture), dir.join(name)).unwrap();
    };
    copy("01-baseline.jpg", "studio-original.jpg");
    copy("05-png-named.jpg", "png-named.jpg");
    copy("12-two-people.jpg", "two-people.jpg");

    let base = std::fs::read(&good[0]).unwrap();
    // Two comment segments after the JFIF header: pixels and every other
    // rule unchanged, over 100 KB.
    assert_eq!(&base[2..4], [0xFF, 0xE0], "JFIF APP0 first");
    let after_app0 = 4 + usize::from(u16::from_be_bytes([base[4], base[5]]));
    let mut large = base[..after_app0].to_vec();
    for _ in 0..2 {
        large.extend_from_slice(&[0xFF, 0xFE, 0xEA, 0x62]); // length 60002
        large.extend(std::iter::repeat_n(b'x', 60_000));
    }
    large.extend_from_slice(&base[after_app0..]);
    std::fs::write(dir.join("too-large.jpg"), large).unwrap();

    let mut framed = pixels(&base);
    let (w, h) = (framed.width(), framed.height());
    for y in 0..h {
        for x in 0..w {
            if x < 20 || y < 20 || x >= w - 20 || y >= h - 20 {
                framed.put_pixel(x, y, [255, 255, 255]);
            }
        }
    }
    std::fs::write(dir.join("bordered.jpg"), encode(&framed)).unwrap();

    // The backdrop repainted light grey, its noise and fall-off kept.
    let mut grey = pixels(&base);
    let bg = grey.pixel(10, 10);
    for y in 0..h {
        for x in 0..w {
            let p = grey.pixel(x, y);
            let near = (0..3).all(|k| p[k].abs_diff(bg[k]) < 40);
            if near {
                let v = (0..3)
                    .map(|k| i32::from(p[k]) - i32::from(bg[k]))
                    .sum::<i32>()
                    / 3;
                let g = (235 + v).clamp(0, 255) as u8;
                grey.put_pixel(x, y, [g, g, g]);
            }
        }
    }
    std::fs::write(dir.join("grey-backdrop.jpg"), encode(&grey)).unwrap();
    dir
}

/// SHA-256-free fingerprint of a folder's files (names and bytes), to show
/// that `check` changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}
