//! `gradphoto check` on a mixed folder: every bad photo is flagged with the
//! right reason and the right answer to "can normalize fix it", no good
//! one is flagged, and nothing is changed.

mod common;
mod mixed;

use std::ffi::OsStr;
use std::path::Path;

use common::*;
use serde_json::Value;

fn check(inputs: &[&Path], out: &Path) -> std::process::Output {
    let mut args: Vec<&OsStr> = vec![OsStr::new("check")];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    args.extend([OsStr::new("--out"), out.as_os_str(), OsStr::new("--quiet")]);
    run(&args)
}

fn record<'a>(manifest: &'a Value, file: &str) -> &'a Value {
    manifest["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| Path::new(r["input"].as_str().unwrap()).file_name() == Some(OsStr::new(file)))
        .unwrap_or_else(|| panic!("no record for {file}"))
}

fn failed_checks(r: &Value) -> Vec<&str> {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn check_flags_each_bad_photo_with_its_reason_and_no_good_one() {
    let scratch = scratch("audit-mixed");
    let dir = mixed::build(&scratch);
    let before = mixed::snapshot(&dir);
    let out = scratch.join("check");
    let result = check(&[&dir], &out);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "some photos fail: {stderr}");
    assert_eq!(mixed::snapshot(&dir), before, "check changed its inputs");

    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["run"]["command"], "check");
    assert_eq!(m["photos"].as_array().unwrap().len(), mixed::EXPECTED.len());
    let mut fails = 0;
    let mut fixable = 0;
    for e in mixed::EXPECTED {
        let r = record(&m, e.file);
        let failed = failed_checks(r);
        match e.fails {
            None => {
                assert_ne!(r["status"], "fail", "{}: {r:#}", e.file);
                assert!(failed.is_empty(), "{}: {failed:?}", e.file);
                assert!(r["fixable"].is_null(), "{}", e.file);
            }
            Some(check) => {
                fails += 1;
                fixable += usize::from(e.fixable);
                assert_eq!(r["status"], "fail", "{}: {r:#}", e.file);
                assert!(
                    failed.contains(&check),
                    "{}: expected {check} among {failed:?}",
                    e.file
                );
                assert_eq!(r["fixable"], e.fixable, "{}: {}", e.file, r["fix"]);
                let fix = r["fix"].as_str().unwrap();
                assert!(
                    fix.starts_with(if e.fixable {
                        "normalize makes"
                    } else {
                        "normalize cannot"
                    }),
                    "{fix}"
                );
            }
        }
    }
    assert_eq!(m["run"]["counts"]["fail"], fails);
    assert_eq!(m["run"]["counts"]["fixable"], fixable);

    // The renamed PNG is named as such, and only what is really wrong with
    // the too-large file fails.
    let png = record(&m, "png-named.jpg");
    assert_eq!(png["detected_type"], "png");
    assert!(png["extension_mismatch"].as_bool().unwrap());
    assert_eq!(failed_checks(record(&m, "too-large.jpg")), ["file_size"]);
    assert_eq!(failed_checks(record(&m, "bordered.jpg"))[0], "no_border");

    let csv = String::from_utf8(std::fs::read(out.join("manifest.csv")).unwrap()).unwrap();
    let header = csv.trim_start_matches('\u{feff}').lines().next().unwrap();
    assert!(header.contains(",fixable,fix"), "{header}");
    assert_eq!(csv.lines().count(), 1 + mixed::EXPECTED.len());
}

#[test]
fn check_passes_good_photos_with_status_zero() {
    let scratch = scratch("audit-good");
    let dir = mixed::build(&scratch);
    let goods: Vec<_> = mixed::EXPECTED
        .iter()
        .filter(|e| e.fails.is_none())
        .map(|e| dir.join(e.file))
        .collect();
    let refs: Vec<&Path> = goods.iter().map(|p| p.as_path()).collect();
    let result = check(&refs, &scratch.join("check"));
    assert_eq!(
        result.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&result.stdout)
    );
}

#[test]
fn unreadable_files_fail_without_stopping_the_batch() {
    let scratch = scratch("audit-corrupt");
    let dir = scratch.join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixtures().join("09-corrupt.jpg"), dir.join("corrupt.jpg")).unwrap();
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    let out = scratch.join("check");
    let result = check(&[&dir], &out);
    assert_eq!(result.status.code(), Some(1));
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for file in ["corrupt.jpg", "empty.jpg"] {
        let r = record(&m, file);
        assert_eq!(r["status"], "fail");
        assert_eq!(r["fixable"], false, "{file}");
    }
}
