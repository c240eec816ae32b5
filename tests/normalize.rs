//! Runs the `gradphoto` binary on the bundled fixtures, as a user would, and
//! judges every output against SPEC §1 with code independent of the
//! pipeline's own verify stage.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn truth() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("truth.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn record_for<'a>(manifest: &'a Value, file: &str) -> &'a Value {
    manifest["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["input"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("no record for {file}"))
}

fn normalize(inputs: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&OsStr> = vec![OsStr::new("normalize")];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    args.push(OsStr::new("--out"));
    args.push(out.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

/// Every hard rule of SPEC §1, checked on the bytes written.
fn assert_registry_ready(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.display();
    assert!(
        (30_720..=100_000).contains(&bytes.len()),
        "{name}: {} bytes is outside the window",
        bytes.len()
    );
    assert_eq!(
        &bytes[bytes.len() - 2..],
        [0xFF, 0xD9],
        "{name}: no EOI at the end"
    );
    let facts = inspect_jpeg(&bytes);
    assert_eq!(facts.trailing_bytes, 0, "{name}: bytes after EOI");
    assert_eq!(facts.sof_markers, [0xC0], "{name}: not baseline SOF0");
    assert_eq!(facts.precision, 8, "{name}");
    assert_eq!(facts.components, 3, "{name}: not 3 components");
    assert_eq!(
        (facts.width, facts.height),
        (480, 640),
        "{name}: wrong size"
    );
    assert_eq!(facts.app_markers, [0xE0], "{name}: metadata beyond JFIF");
    assert!(!facts.has_exif, "{name}: EXIF present");
    assert_eq!(facts.jfif_units, Some(1), "{name}: JFIF density not in dpi");
    assert_eq!(facts.jfif_density, Some((300, 300)), "{name}: not 300 dpi");
    let q = estimate_quality(&facts.luma_dqt.unwrap());
    assert!(q >= 60, "{name}: quality {q} below 60");
    let (w, h, rgb) = decode_independently(&bytes);
    assert_eq!((w, h), (480, 640));
    if let Err(e) = border_free(w, h, &rgb) {
        panic!("{name}: {e}");
    }
    let crown = crown_row(w, h, &rgb).unwrap_or_else(|| panic!("{name}: no subject found"));
    assert!(
        (50..=110).contains(&crown),
        "{name}: crown at row {crown}, the rule wants 50-110"
    );
}

#[test]
fn fixtures_become_registry_ready_photos_and_the_bad_ones_are_reported() {
    let out = scratch("fixtures");
    let result = normalize(&[&fixtures()], &out, &["--quiet"]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(1),
        "exit status 1 because some fixtures are bad; stderr:\n{stderr}"
    );
    let m = manifest(&out);
    let truth = truth();
    assert_eq!(
        m["photos"].as_array().unwrap().len(),
        truth.len(),
        "one record per photo"
    );
    assert_eq!(
        m["run"]["counts"]["skipped_not_images"], 1,
        "truth.json is passed over"
    );
    for t in &truth {
        let file = t["file"].as_str().unwrap();
        let r = record_for(&m, file);
        // A photo is written unless its truth names a reason to flag it.
        let flagged = !t["truth"]["expected_flag"].is_null();
        let fixable = t["truth"]["fixable"].as_bool().unwrap_or(false);
        if fixable && !flagged {
            assert_ne!(r["status"], "fail", "{file} should be written: {r:#}");
            let output = out.join(r["output"].as_str().unwrap());
            assert_registry_ready(&output);
            assert!(r["jpeg_quality"].as_u64().unwrap() >= 60);
            assert!(r["input_sha256"].as_str().unwrap().len() == 64);
        } else {
            assert_eq!(r["status"], "fail", "{file} must be flagged: {r:#}");
            assert!(
                r["output"].is_null(),
                "{file}: nothing written for a failure"
            );
            let error = r["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty(), "{file}: a failure needs a reason");
            assert!(
                stderr.contains(file),
                "{file}: failure not reported on stderr"
            );
        }
    }
    let corrupt = record_for(&m, "09-corrupt.jpg");
    let reason = corrupt["error"].as_str().unwrap();
    assert!(
        reason.contains("truncated") || reason.contains("corrupt"),
        "unclear reason: {reason}"
    );
    let rotated = record_for(&m, "03-exif-orientation-6.jpg");
    assert_eq!(rotated["orientation"], 6);
    let lying = record_for(&m, "05-png-named.jpg");
    assert_eq!(lying["detected_type"], "png");
    assert_eq!(lying["extension_mismatch"], true);
    assert_eq!(
        lying["status"], "warn",
        "a lying extension is flagged: {lying:#}"
    );
    assert!(
        lying["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "file_type" && c["verdict"] == "warn")
    );
    let bordered = record_for(&m, "11-black-border-left-right.jpg");
    let truth_border = &truth
        .iter()
        .find(|t| t["file"] == "11-black-border-left-right.jpg")
        .unwrap()["truth"]["border"];
    for side in ["top", "bottom", "left", "right"] {
        let found = bordered["border_removed"][side].as_i64().unwrap();
        let expected = truth_border[side].as_i64().unwrap();
        assert!(
            (found - expected).abs() <= 2,
            "{side} border: removed {found}, truth {expected}"
        );
    }

    let csv = std::fs::read(out.join("manifest.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}".as_bytes()), "CSV needs a BOM");
    let rows = String::from_utf8(csv).unwrap().lines().count();
    assert_eq!(rows, truth.len() + 1, "header plus one row per photo");
    std::fs::remove_dir_all(&out).unwrap();
}

fn jpgs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .map(|p| {
            (
                PathBuf::from(p.file_name().unwrap()),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn output_bytes_do_not_depend_on_jobs_and_a_rerun_resumes() {
    let (one, two) = (scratch("jobs1"), scratch("jobs2"));
    let inputs = [
        fixtures().join("01-baseline.jpg"),
        fixtures().join("03-exif-orientation-6.jpg"),
        fixtures().join("04-portrait.png"),
        fixtures().join("08-cmyk-adobe.jpg"),
    ];
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    assert_eq!(
        normalize(&inputs, &one, &["--jobs", "1", "-q"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        normalize(&inputs, &two, &["--jobs", "2", "-q"])
            .status
            .code(),
        Some(0)
    );
    let first = jpgs(&one);
    assert_eq!(first.len(), 4);
    assert_eq!(
        first,
        jpgs(&two),
        "same input and settings must give the same bytes"
    );

    let again = normalize(&inputs, &one, &["-q"]);
    assert_eq!(again.status.code(), Some(0));
    let m = manifest(&one);
    assert_eq!(m["run"]["counts"]["resumed"], 4, "all four kept: {m:#}");
    assert_eq!(
        jpgs(&one),
        first,
        "a rerun leaves finished outputs as they were"
    );
    for dir in [one, two] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn existing_outputs_are_not_replaced_without_overwrite() {
    let out = scratch("clobber");
    std::fs::write(out.join("01-baseline.jpg"), b"somebody's file").unwrap();
    let input = fixtures().join("01-baseline.jpg");
    let refused = normalize(&[&input], &out, &["-q"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        std::fs::read(out.join("01-baseline.jpg")).unwrap(),
        b"somebody's file"
    );
    let r = record_for(&manifest(&out), "01-baseline.jpg").clone();
    assert!(
        r["error"].as_str().unwrap().contains("already exists"),
        "{r:#}"
    );

    let replaced = normalize(&[&input], &out, &["-q", "--overwrite"]);
    assert_eq!(replaced.status.code(), Some(0));
    assert_registry_ready(&out.join("01-baseline.jpg"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn two_inputs_for_one_name_are_both_reported() {
    let dir = scratch("samename");
    let (inp, out) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(inp.join("b")).unwrap();
    std::fs::copy(fixtures().join("01-baseline.jpg"), inp.join("a.jpg")).unwrap();
    std::fs::copy(fixtures().join("04-portrait.png"), inp.join("b/A.png")).unwrap();
    let result = normalize(&[&inp], &out, &["-q"]);
    assert_eq!(result.status.code(), Some(1));
    let m = manifest(&out);
    for file in ["a.jpg", "A.png"] {
        let r = record_for(&m, file);
        assert_eq!(r["status"], "fail");
        assert!(
            r["error"].as_str().unwrap().contains("shared with"),
            "{r:#}"
        );
    }
    assert!(jpgs(&out).is_empty(), "neither silently wins");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_and_fatal_errors_exit_with_2() {
    assert_eq!(run(&[OsStr::new("normalize")]).status.code(), Some(2));
    assert_eq!(run(&[OsStr::new("--no-such-flag")]).status.code(), Some(2));
    let input = fixtures().join("01-baseline.jpg");
    // An output folder that cannot exist: below a regular file.
    let dir = scratch("fatal");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let result = normalize(&[&input], &dir.join("file/out"), &[]);
    assert_eq!(result.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&result.stderr).contains("output folder"));

    // The output folder may not be the input folder.
    let inp = dir.join("in");
    std::fs::create_dir_all(&inp).unwrap();
    std::fs::copy(&input, inp.join("p.jpg")).unwrap();
    let result = normalize(&[&inp], &inp, &[]);
    assert_eq!(result.status.code(), Some(2));
    assert_eq!(
        std::fs::read_dir(&inp).unwrap().count(),
        1,
        "input folder untouched"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_documents_exit_codes() {
    let help = run(&[OsStr::new("normalize"), OsStr::new("--help")]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Exit status"), "{text}");
    assert!(text.contains("--max-bytes"));
}

#[test]
fn the_backdrop_reference_is_a_setting() {
    let grey = fixtures().join("07-grayscale.jpg");
    let blue_default = scratch("backdrop-default");
    assert_eq!(
        normalize(&[&grey], &blue_default, &["-q"]).status.code(),
        Some(1)
    );
    let r = record_for(&manifest(&blue_default), "07-grayscale.jpg").clone();
    assert!(r["error"].as_str().unwrap().contains("backdrop"), "{r:#}");

    // A school that accepts the grey backdrop says so, and the photo passes.
    let grey_ref = scratch("backdrop-grey");
    let run_grey = normalize(&[&grey], &grey_ref, &["-q", "--backdrop", "177,177,177"]);
    assert_eq!(run_grey.status.code(), Some(0));
    // A grayscale input is still written as 3 components (SPEC §1).
    let written = std::fs::read(grey_ref.join("07-grayscale.jpg")).unwrap();
    let facts = inspect_jpeg(&written);
    assert_eq!((facts.width, facts.height, facts.components), (480, 640, 3));
    assert_eq!(facts.sof_markers, [0xC0]);
    let settings = &manifest(&grey_ref)["run"]["settings"]["backdrop"]["reference"];
    assert_eq!(settings, &serde_json::json!([177, 177, 177]));

    let bad = normalize(&[&grey], &grey_ref, &["--backdrop", "300,0,0"]);
    assert_eq!(bad.status.code(), Some(2));
    for dir in [blue_default, grey_ref] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A photo that already meets every rule (here: one of our own outputs) is
/// written as it is, byte for byte, and the manifest says so; encoding it
/// again each pass would only lose detail and grow the file. The same
/// photo with EXIF or with bytes after its end is made anew (issue 23,
/// item 11).
#[test]
fn an_already_compliant_photo_is_copied_unchanged() {
    let dir = scratch("compliant");
    let first_in = dir.join("in");
    std::fs::create_dir_all(&first_in).unwrap();
    std::fs::copy(fixtures().join("01-baseline.jpg"), first_in.join("a.jpg")).unwrap();
    let first = dir.join("first");
    assert_eq!(
        normalize(&[&first_in], &first, &["-q"]).status.code(),
        Some(0)
    );
    let compliant = std::fs::read(first.join("a.jpg")).unwrap();

    let again_in = dir.join("again-in");
    std::fs::create_dir_all(&again_in).unwrap();
    std::fs::write(again_in.join("a.jpg"), &compliant).unwrap();
    // With EXIF (an APP1 right after the JFIF header) it breaks a rule.
    let app0_len = usize::from(u16::from_be_bytes([compliant[4], compliant[5]]));
    let mut with_exif = compliant[..4 + app0_len].to_vec();
    let exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0";
    with_exif.extend([0xFF, 0xE1]);
    with_exif.extend(((exif.len() + 2) as u16).to_be_bytes());
    with_exif.extend(exif);
    with_exif.extend(&compliant[4 + app0_len..]);
    std::fs::write(again_in.join("exif.jpg"), &with_exif).unwrap();
    let mut padded = compliant.clone();
    padded.extend([0u8; 64]);
    std::fs::write(again_in.join("padded.jpg"), &padded).unwrap();

    let again = dir.join("again");
    let result = normalize(&[&again_in], &again, &["-q"]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(
        std::fs::read(again.join("a.jpg")).unwrap(),
        compliant,
        "the compliant photo was encoded again"
    );
    let m = manifest(&again);
    let a = record_for(&m, "a.jpg");
    assert_eq!(a["copied"], true, "{a:#}");
    assert_eq!(a["status"], "ok");
    assert_eq!(a["encode_attempts"], 0);
    assert_eq!(a["output_sha256"], a["input_sha256"]);
    assert_eq!(m["run"]["counts"]["copied"], 1);
    for name in ["exif.jpg", "padded.jpg"] {
        let r = record_for(&m, name);
        assert!(r["copied"].is_null(), "{name}: {r:#}");
        let written = again.join(name);
        assert_registry_ready(&written);
        let facts = inspect_jpeg(&std::fs::read(&written).unwrap());
        assert!(!facts.has_exif && facts.trailing_bytes == 0, "{name}");
    }
    let csv = std::fs::read_to_string(again.join("manifest.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let column = rows.headers().unwrap().iter().position(|h| h == "copied");
    let copied: Vec<String> = rows
        .records()
        .map(|r| r.unwrap()[column.unwrap()].to_owned())
        .collect();
    assert_eq!(copied, ["true", "false", "false"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
