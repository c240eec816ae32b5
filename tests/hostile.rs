//! Hostile input (SPEC §3-§4, issue 5): every bad file is a per-photo
//! failure with a clear reason, no panic reaches the user, the batch goes
//! on, inputs stay untouched, nothing is written outside the output folder
//! and no metadata reaches an output.
//!
//! Byte-level cases run in process through `photo::normalize_photo`; file
//! system cases through the binary. Both are black-box: they hold whatever
//! decoder the pipeline uses.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use gradphoto::manifest::{PhotoRecord, Status};
use gradphoto::testkit::synth::{FileSpec, Format, PortraitSpec, SplitMix64, make_photo};
use gradphoto::{Options, normalize_photo};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// Committed hostile inputs, kept out of `fixtures/` because the fixture
/// test walks that folder as one batch of portraits.
fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

fn hostile(name: &str) -> Vec<u8> {
    std::fs::read(regressions().join(name)).unwrap()
}

/// Runs the binary with its address space capped at 4 GB, so that any
/// allocation a hostile header asks for (65535x65535 RGB is 12.9 GB) kills
/// it instead of passing unnoticed on a big machine.
fn normalize_capped(inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "ulimit -v 4000000 && exec \"$0\" \"$@\"",
        bin(),
        "normalize",
    ]);
    c.args(inputs).arg("--out").arg(out).args(extra);
    c.output().unwrap()
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn records(m: &Value) -> BTreeMap<String, Value> {
    m["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let input = PathBuf::from(r["input"].as_str().unwrap());
            let name = input.file_name().unwrap().to_string_lossy().into_owned();
            (name, r.clone())
        })
        .collect()
}

/// Every entry under `dir` (links not followed) with its bytes when it is a
/// readable regular file: a fingerprint to prove inputs were not touched.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (u64, Option<Vec<u8>>)> {
    let mut all = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            let bytes = meta.is_file().then(|| std::fs::read(&p).ok()).flatten();
            all.insert(p, (meta.len(), bytes));
        }
    }
    all
}

// ---------------------------------------------------------------------------
// Hand-made files

/// A valid 8x8 grey JPEG with 12-bit samples (SOF1): every coefficient
/// zero, one Huffman code per table.
fn jpeg_12_bit() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    b.extend([0xFF, 0xDB, 0x00, 0x83, 0x10]); // DQT, 16-bit table 0
    b.extend([0x00, 0x01].repeat(64));
    b.extend([0xFF, 0xC1, 0x00, 0x0B, 12, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    for class in [0x00, 0x10] {
        // DHT: one code of length 1, for symbol 0 (DC: no difference; AC: EOB).
        b.extend([0xFF, 0xC4, 0x00, 0x14, class, 1]);
        b.extend([0; 15]);
        b.push(0);
    }
    b.extend([0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
    b.push(0b0011_1111); // DC code 0, EOB code 0, padded with ones
    b.extend([0xFF, 0xD9]);
    b
}

/// SOI and a baseline frame header claiming 65535x65535, then a scan.
fn jpeg_claiming_65535() -> Vec<u8> {
    let mut b = jpeg_12_bit();
    let sof = b.windows(2).position(|w| w == [0xFF, 0xC1]).unwrap();
    b[sof + 1] = 0xC0;
    b[sof + 4] = 8;
    b[sof + 5..sof + 9].copy_from_slice(&[0xFF; 4]);
    b
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend(kind);
    c.extend(data);
    // CRC-32 (ISO-HDLC) over type and data, as the PNG spec defines it.
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in kind.iter().chain(data) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    c.extend((!crc).to_be_bytes());
    c
}

/// Inserts a chunk right after IHDR (8-byte signature + 25-byte IHDR).
fn png_with_chunk(png: &[u8], chunk: &[u8]) -> Vec<u8> {
    let mut b = png[..33].to_vec();
    b.extend(chunk);
    b.extend(&png[33..]);
    b
}

fn png_rgb(width: u32, height: u32, fill: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&fill.repeat((width * height) as usize))
        .unwrap();
    w.finish().unwrap();
    bytes
}

fn jpeg_rgb(width: u16, height: u16, fill: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let pixels = fill.repeat(usize::from(width) * usize::from(height));
    jpeg_encoder::Encoder::new(&mut bytes, 90)
        .encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    bytes
}

/// Inserts marker segments right after SOI.
fn jpeg_with_segments(jpeg: &[u8], segments: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = jpeg[..2].to_vec();
    for (marker, data) in segments {
        b.extend([0xFF, *marker]);
        b.extend(((data.len() + 2) as u16).to_be_bytes());
        b.extend(*data);
    }
    b.extend(&jpeg[2..]);
    b
}

fn synth(format: Format, width: u32, height: u32) -> Vec<u8> {
    let spec = PortraitSpec {
        seed: u64::from(width) * 7 + u64::from(height),
        width,
        height,
        ..PortraitSpec::default()
    };
    make_photo(&spec, &FileSpec::with_format(format, 90))
        .unwrap()
        .0
}

// ---------------------------------------------------------------------------
// In process: bytes

fn process(bytes: &[u8]) -> (PhotoRecord, Option<Vec<u8>>) {
    let p = normalize_photo(Path::new("x.jpg"), bytes, &Options::default());
    (p.record, p.jpeg)
}

fn assert_fails_clearly(bytes: &[u8], what: &str, expect: &[&str]) -> String {
    let (record, jpeg) = process(bytes);
    assert_eq!(record.status(), Status::Fail, "{what} was accepted");
    assert!(jpeg.is_none(), "{what}: a failure has no output");
    let error = record.error.unwrap_or_default();
    assert!(
        expect.iter().any(|e| error.contains(e)),
        "{what}: reason {error:?} does not say any of {expect:?}"
    );
    error
}

#[test]
fn truncation_at_many_points_always_fails_with_a_reason() {
    let files = [
        ("baseline", fixture("01-baseline.jpg")),
        ("exif", fixture("03-exif-orientation-6.jpg")),
        ("progressive", fixture("06-progressive.jpg")),
        (
            "restart markers",
            fixture("10-landscape-restart-markers.jpg"),
        ),
        ("png", fixture("04-portrait.png")),
    ];
    for (what, bytes) in &files {
        // Every cut inside the headers, then cuts spread over the data.
        let cuts = (0..200).chain((1..64).map(|i| bytes.len() * i / 64));
        for cut in cuts {
            assert_fails_clearly(
                &bytes[..cut],
                &format!("{what} cut at {cut} of {}", bytes.len()),
                &["empty", "truncated", "corrupt", "not an image", "EOF"],
            );
        }
    }
}

/// A JPEG whose EXIF carries a thumbnail (a whole JPEG, with its own scan
/// and end marker) must still fail when the main image is cut off.
#[test]
fn truncation_is_caught_behind_an_exif_thumbnail() {
    let main = fixture("01-baseline.jpg");
    let thumbnail = jpeg_rgb(32, 24, [90, 180, 240]);
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
    exif.extend(&thumbnail);
    let with_thumbnail = jpeg_with_segments(&main, &[(0xE1, &exif)]);
    let (record, _) = process(&with_thumbnail);
    assert_ne!(record.status(), Status::Fail, "{:?}", record.error);
    let scan = with_thumbnail.len() - main.len() / 2;
    for cut in [scan, scan + 1000, with_thumbnail.len() - 2] {
        assert_fails_clearly(
            &with_thumbnail[..cut],
            &format!("thumbnail JPEG cut at {cut}"),
            &["truncated"],
        );
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = SplitMix64::new(5);
    let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    for i in 0..300 {
        let magic: &[u8] = match i % 3 {
            0 => &[0xFF, 0xD8, 0xFF],
            1 => b"\x89PNG\r\n\x1a\n",
            _ => &[],
        };
        let mut bytes = magic.to_vec();
        bytes.extend(random(1 + i * 7));
        assert_fails_clearly(
            &bytes,
            &format!("random buffer {i}"),
            &[
                "corrupt",
                "not an image",
                "truncated",
                "unsupported",
                "zero",
                "over the limit",
            ],
        );
    }
    // Single-byte damage to a small real photo and to the 12-bit file: any
    // outcome but a panic, and whatever is written is a whole JPEG.
    for base in [synth(Format::JpegBaseline, 200, 266), jpeg_12_bit()] {
        for _ in 0..150 {
            let mut bytes = base.clone();
            let at = (rng.next_u64() % bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
            let (record, jpeg) = process(&bytes);
            if let Some(jpeg) = jpeg {
                assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
            } else {
                assert!(record.error.is_some_and(|e| !e.is_empty()));
            }
        }
    }
}

#[test]
fn odd_but_valid_images_fail_with_a_reason_or_succeed() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("12-bit JPEG", jpeg_12_bit()),
        ("1x1 JPEG", jpeg_rgb(1, 1, [100, 197, 255])),
        ("1x1 PNG", png_rgb(1, 1, [100, 197, 255])),
        ("10000x10 PNG", png_rgb(10_000, 10, [100, 197, 255])),
        ("10x10000 JPEG", jpeg_rgb(10, 10_000, [100, 197, 255])),
    ];
    for (what, bytes) in cases {
        let error = assert_fails_clearly(&bytes, what, &[""]);
        assert!(!error.is_empty(), "{what}: empty reason");
    }
    for format in [Format::JpegCmyk, Format::JpegYcck] {
        let (record, jpeg) = process(&synth(format, 900, 1200));
        assert!(jpeg.is_some(), "{format:?}: {:?}", record.error);
        assert_eq!(
            record.colour.as_deref(),
            Some(if format == Format::JpegCmyk {
                "cmyk"
            } else {
                "ycck"
            })
        );
    }
}

#[test]
fn hostile_headers_are_refused_before_decoding() {
    let error = assert_fails_clearly(&jpeg_claiming_65535(), "65535x65535 JPEG", &["limit"]);
    assert!(error.contains("65535x65535"), "{error}");
    // A chunk claiming almost 2 GB in a file of a few hundred bytes.
    let small = png_rgb(4, 4, [0, 0, 0]);
    let mut claim = 0x7FFF_FFF0u32.to_be_bytes().to_vec();
    claim.extend(b"zTXtjunk");
    assert_fails_clearly(
        &png_with_chunk(&small, &claim),
        "PNG with a 2 GB chunk header",
        &["corrupt PNG"],
    );
    // A PNG header claiming 100,000 x 100,000.
    let mut huge = png_rgb(4, 4, [0, 0, 0]);
    huge[16..24].copy_from_slice(&[0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0]);
    let fixed = png_chunk(b"IHDR", &huge[16..29]);
    huge[8..33].copy_from_slice(&fixed);
    assert_fails_clearly(&huge, "100000x100000 PNG", &["limit"]);
}

#[test]
fn a_large_private_png_chunk_is_passed_over() {
    let png = fixture("04-portrait.png");
    let big = png_with_chunk(&png, &png_chunk(b"prVt", &vec![7u8; 8 << 20]));
    let (record, jpeg) = process(&big);
    assert!(jpeg.is_some(), "{:?}", record.error);
}

// ---------------------------------------------------------------------------
// Through the binary: a hostile folder

#[cfg(unix)]
#[test]
fn a_hostile_folder_gets_a_reason_per_photo_and_the_batch_goes_on() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = scratch("hostile-folder");
    let (inp, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(inp.join("folder.jpg")).unwrap();
    let good = fixture("01-baseline.jpg");
    let write = |name: &str, bytes: &[u8]| std::fs::write(inp.join(name), bytes).unwrap();
    write("zero.jpg", b"");
    write("random.jpg", &hostile("random.bin"));
    write("text.jpg", b"name,student_no\n");
    write("pdf.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
    write("huge-header.jpg", &jpeg_claiming_65535());
    write("twelve-bit.jpg", &jpeg_12_bit());
    write("truncated.jpg", &good[..good.len() / 2]);
    write("one-pixel.png", &png_rgb(1, 1, [0, 0, 0]));
    write("张三 照片.jpg", &good);
    write("line\nbreak.jpg", &good);
    write("back\\slash.jpg", &good);
    write("CON.jpg", &good);
    write("cmyk.jpg", &fixture("08-cmyk-adobe.jpg"));
    write("folder.jpg/inside.jpg", &fixture("06-progressive.jpg"));
    write(
        "unreadable.jpg",
        &fixture("02-white-border-double-frame.jpg"),
    );
    std::fs::set_permissions(
        inp.join("unreadable.jpg"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // Root reads whatever the permissions say; then this case is a plain photo.
    let unreadable = std::fs::read(inp.join("unreadable.jpg")).is_err();
    symlink("loop.jpg", inp.join("loop.jpg")).unwrap();
    symlink("..", inp.join("up")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(inp.join("pipe.jpg"))
        .status()
        .is_ok_and(|s| s.success());
    let before = tree(&inp);

    let result = normalize_capped(&[&inp], &out, &["--jobs", "2"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(tree(&inp), before, "inputs were modified");

    let r = records(&manifest(&out));
    let expect_fail = [
        ("zero.jpg", "empty"),
        ("random.jpg", "not an image"),
        ("text.jpg", "not an image"),
        ("pdf.jpg", "PDF"),
        ("huge-header.jpg", "over the limit"),
        ("twelve-bit.jpg", ""),
        ("truncated.jpg", "truncated"),
        ("one-pixel.png", ""),
        ("line\nbreak.jpg", "control"),
        ("back\\slash.jpg", "leave the output folder"),
        ("CON.jpg", "reserved"),
        ("loop.jpg", "symbolic links"),
    ];
    for (name, reason) in expect_fail {
        let rec = r
            .get(name)
            .unwrap_or_else(|| panic!("no record for {name:?}"));
        assert_eq!(rec["status"], "fail", "{name:?}: {rec:#}");
        let error = rec["error"].as_str().unwrap_or_default();
        assert!(
            !error.is_empty() && error.contains(reason),
            "{name:?}: {error:?}"
        );
        assert!(!error.contains('\n'), "{name:?}: a reason fits on one line");
    }
    if fifo {
        let rec = &r["pipe.jpg"];
        assert!(
            rec["error"].as_str().unwrap().contains("named pipe"),
            "{rec:#}"
        );
    }
    if unreadable {
        let rec = &r["unreadable.jpg"];
        assert!(
            rec["error"].as_str().unwrap().contains("cannot read"),
            "{rec:#}"
        );
    }
    let mut expected_outputs = vec!["cmyk.jpg", "inside.jpg", "张三 照片.jpg"];
    if !unreadable {
        expected_outputs.push("unreadable.jpg");
    }
    for name in &expected_outputs {
        assert_ne!(r[*name]["status"], "fail", "{name}: {:#}", r[*name]);
        let bytes = std::fs::read(out.join(name)).unwrap();
        let facts = inspect_jpeg(&bytes);
        assert_eq!((facts.width, facts.height), (480, 640), "{name}");
    }
    // Exactly the expected photos and the manifest: nothing else was made.
    let mut made: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("manifest."))
        .collect();
    made.sort();
    expected_outputs.sort();
    assert_eq!(made, expected_outputs);
    let _ = std::fs::set_permissions(
        inp.join("unreadable.jpg"),
        std::fs::Permissions::from_mode(0o644),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_never_lead_outside_the_output_folder() {
    let dir = scratch("escape");
    let (inp, out) = (dir.join("in"), dir.join("deep/out"));
    std::fs::create_dir_all(inp.join("sub")).unwrap();
    let good = fixture("01-baseline.jpg");
    // Explicit inputs reached through `..`, a hidden name, and an absolute path.
    std::fs::write(inp.join("sub/a.jpg"), &good).unwrap();
    std::fs::write(inp.join("..evil.jpg"), &good).unwrap();
    let via_dots = inp.join("sub/../sub/a.jpg");
    let hidden = inp.join("..evil.jpg");
    let before = tree(&dir);
    let result = normalize_capped(&[&via_dots, &hidden], &out, &["-q"]);
    assert_eq!(result.status.code(), Some(1));
    let r = records(&manifest(&out));
    assert_eq!(r["a.jpg"]["output"], "a.jpg");
    let evil = r["..evil.jpg"]["error"].as_str().unwrap();
    assert!(evil.contains("leave the output folder"), "{evil}");
    // Only the output folder gained files.
    let after: Vec<PathBuf> = tree(&dir)
        .into_keys()
        .filter(|p| !before.contains_key(p))
        .collect();
    assert!(!after.is_empty());
    for p in after {
        assert!(
            p.starts_with(dir.join("deep")),
            "{} outside --out",
            p.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exif_gps_and_other_metadata_never_reach_an_output() {
    let dir = scratch("metadata");
    let (inp, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&inp).unwrap();
    let spec = PortraitSpec {
        seed: 44,
        width: 1224,
        height: 1632,
        ..PortraitSpec::default()
    };
    let (phone, _) = make_photo(&spec, &FileSpec::phone(90, 1)).unwrap();
    let (rotated, _) = make_photo(&spec, &FileSpec::phone(90, 6)).unwrap();
    let xmp = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><exif:GPSLatitude>31,1.59N</exif:GPSLatitude></x:xmpmeta>";
    let icc = b"ICC_PROFILE\0\x01\x01secret-profile";
    let iptc = b"Photoshop 3.0\08BIM\x04\x04serial 123456";
    let extra = jpeg_with_segments(
        &phone,
        &[
            (0xE1, xmp),
            (0xE2, icc),
            (0xED, iptc),
            (0xFE, b"Studio serial 998877"),
        ],
    );
    for text in [&b"Exif"[..], b"Apple", b"iPhone"] {
        assert!(
            phone.windows(text.len()).any(|w| w == text),
            "the input carries them"
        );
    }
    std::fs::write(inp.join("phone.jpg"), &phone).unwrap();
    std::fs::write(inp.join("rotated.jpg"), &rotated).unwrap();
    std::fs::write(inp.join("extra.jpg"), &extra).unwrap();
    let result = normalize_capped(&[&inp], &out, &["-q"]);
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for name in ["phone.jpg", "rotated.jpg", "extra.jpg"] {
        let bytes = std::fs::read(out.join(name)).unwrap();
        let facts = inspect_jpeg(&bytes);
        assert_eq!(facts.app_markers, [0xE0], "{name}: only JFIF");
        assert!(!facts.has_exif, "{name}");
        assert_eq!(facts.comment_bytes, 0, "{name}: a comment came through");
        // Metadata can only live in the segments before the scan; three
        // bytes like "GPS" turn up by chance in compressed pixel data.
        let scan = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .unwrap_or(bytes.len());
        let header = &bytes[..scan];
        for text in [
            "Exif",
            "GPS",
            "Apple",
            "iPhone",
            "xmpmeta",
            "ICC_PROFILE",
            "serial",
            "8BIM",
        ] {
            let t = text.as_bytes();
            assert!(
                !header.windows(t.len()).any(|w| w == t),
                "{name} contains {text:?}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_folder_holding_other_photos_inside_the_input_is_refused() {
    let dir = scratch("nested-out");
    let inp = dir.join("in");
    std::fs::create_dir_all(inp.join("2024")).unwrap();
    let good = fixture("01-baseline.jpg");
    std::fs::write(inp.join("a.jpg"), &good).unwrap();
    std::fs::write(inp.join("2024/b.jpg"), &good).unwrap();
    let before = tree(&inp);
    let refused = normalize_capped(&[&inp], &inp.join("2024"), &["-q"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("inside an input folder"));
    assert_eq!(tree(&inp), before);

    // A fresh folder inside the input is ours: allowed, left out of the
    // inputs, and a rerun does not take its outputs for photos.
    let fresh = inp.join("out");
    for _ in 0..2 {
        let ok = normalize_capped(&[&inp], &fresh, &["-q"]);
        assert_eq!(
            ok.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let m = manifest(&fresh);
        assert_eq!(m["run"]["counts"]["inputs"], 2, "{m:#}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Mounts a tmpfs, or says why it cannot (not root, no mount in the
/// sandbox); unmounts when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs at {} here", at.display());
        }
        ok.then(|| Mount(at.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_or_full_output_folder_is_fatal_and_corrupts_nothing() {
    let dir = scratch("diskfull");
    let inp = dir.join("in");
    std::fs::create_dir_all(&inp).unwrap();
    let names = [
        "01-baseline.jpg",
        "06-progressive.jpg",
        "07-grayscale.jpg",
        "11-black-border-left-right.jpg",
        "04-portrait.png",
    ];
    for name in names {
        std::fs::copy(fixtures().join(name), inp.join(name)).unwrap();
    }
    let reference = dir.join("reference");
    let ok = normalize_capped(&[&inp], &reference, &["-q"]);
    assert!(matches!(ok.status.code(), Some(0 | 1)));

    let Some(ro) = Mount::tmpfs(&dir.join("ro"), "ro,size=64k") else {
        return;
    };
    let result = normalize_capped(&[&inp], &ro.0, &["-q"]);
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("not writable"), "{stderr}");
    drop(ro);

    // Room for about two photos and the manifest.
    let Some(full) = Mount::tmpfs(&dir.join("full"), "size=200k") else {
        return;
    };
    let result = normalize_capped(&[&inp], &full.0, &["-q", "--jobs", "1"]);
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("No space left"), "{stderr}");
    let mut photos = 0;
    for entry in std::fs::read_dir(&full.0).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temporary {name} left behind");
        if name.ends_with(".jpg") {
            let bytes = std::fs::read(full.0.join(&name)).unwrap();
            assert_eq!(
                bytes,
                std::fs::read(reference.join(&name)).unwrap(),
                "{name} is damaged"
            );
            photos += 1;
        }
    }
    assert!(photos < names.len(), "the disk did not fill");
    // Whatever manifest got written is whole.
    if let Ok(json) = std::fs::read(full.0.join("manifest.json")) {
        serde_json::from_slice::<Value>(&json).expect("manifest.json readable");
    }
    drop(full);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn committed_regression_inputs_fail_cleanly() {
    let dir = regressions();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let (record, jpeg) = process(&bytes);
        if let Some(jpeg) = jpeg {
            assert!(jpeg.ends_with(&[0xFF, 0xD9]), "{}", path.display());
        } else {
            assert!(
                record.error.is_some_and(|e| !e.is_empty()),
                "{}",
                path.display()
            );
        }
    }
}
