//! Real faces (tests/faces/, built by scripts/make-face-set.py from photos
//! whose packages state their licence; see tests/faces/SOURCES.md): every
//! portrait is written with the eye line, face width and crown inside the
//! registry's rule, measured against the truth marked by hand on the
//! originals; a photo with no face and one with two fail for that reason;
//! the astronaut as published is refused for its backdrop, not its face.

use std::path::Path;

use gradphoto::manifest::{PhotoRecord, Status, Verdict};
use gradphoto::{Options, normalize_photo};
use serde_json::Value;

const DIR: &str = "tests/faces";

fn run(file: &str) -> (PhotoRecord, bool) {
    let path = Path::new(DIR).join(file);
    let bytes = std::fs::read(&path).expect("fixture");
    let done = normalize_photo(&path, &bytes, &Options::default());
    (done.record, done.jpeg.is_some())
}

#[test]
fn every_real_face_is_placed_by_the_rule_against_the_marked_truth() {
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/truth.json")).expect("truth"))
            .expect("json");
    let truth = truth.as_object().expect("object");
    assert!(truth.len() >= 7);
    let mut failures = Vec::new();
    for (file, t) in truth {
        let (record, written) = run(file);
        let crop = record.crop.expect("crop");
        let s = record.scale.expect("scale");
        let y = |v: f64| (v - f64::from(crop.y)) * s;
        let pupils = &t["pupils"];
        let p = |i: usize, k: usize| pupils[i][k].as_f64().expect("number");
        let eye = y((p(0, 1) + p(1, 1)) / 2.0);
        let face = t["face_width"].as_f64().expect("width") * s;
        let crown = y(t["crown_y"].as_f64().expect("crown"));
        let true_tilt = t["tilt"].as_f64().expect("tilt");
        let f = record.face.clone().expect("face record");
        let pp = f.pupils.expect("pupils");
        let measured_eye = (pp[0][1] + pp[1][1]) / 2.0;
        let measured_face = record.geometry.as_ref().expect("geometry").face_width;
        let tilt = f.tilt_degrees.expect("tilt");
        println!(
            "{file}: eye line {eye:.1} (error {:+.1} px), face {face:.1} (error {:+.1}%), crown {crown:.1}, tilt {tilt:.2} (error {:+.2} deg), status {:?} {:?}",
            measured_eye - eye,
            (measured_face / face - 1.0) * 100.0,
            tilt - true_tilt,
            record.status,
            record
                .checks
                .iter()
                .filter(|c| c.verdict != Verdict::Pass)
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        );
        let ok = written
            && record.status != Some(Status::Fail)
            && (200.0..=300.0).contains(&eye)
            && (180.0..=300.0).contains(&face)
            && (50.0..=110.0).contains(&crown)
            && (tilt - true_tilt).abs() < 1.5;
        // Pupils tilted more than 2 degrees are warned about, never
        // levelled; the measured tilt is within 1.5 degrees of the marked
        // one (marks on a 42 px eye span are good to about half a degree).
        let warned = record
            .checks
            .iter()
            .any(|c| c.name == "pupils_level" && c.verdict == Verdict::Warn);
        let must_warn = true_tilt.abs() > 3.5;
        let must_not = true_tilt.abs() < 0.5;
        if !ok || (must_warn && !warned) || (must_not && warned) {
            failures.push(format!("{file}: {record:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_photo_with_no_face_or_two_fails_for_that_reason() {
    let (record, written) = run("no-face.jpg");
    assert!(!written);
    assert_eq!(record.error.as_deref(), Some("no face found"), "{record:?}");
    let (record, written) = run("two-faces.jpg");
    assert!(!written);
    let error = record.error.clone().unwrap_or_default();
    assert!(error.starts_with("2 faces"), "{record:?}");
}

#[test]
fn the_astronaut_as_published_is_refused_for_its_backdrop_not_its_face() {
    let (record, written) = run("astronaut-as-published.jpg");
    assert!(!written);
    let failed: Vec<&str> = record
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        failed.iter().any(|n| n.starts_with("backdrop")),
        "{record:?}"
    );
    let error = record.error.clone().unwrap_or_default();
    assert!(error.starts_with("failed checks: backdrop"), "{error}");
    let faces = record
        .checks
        .iter()
        .find(|c| c.name == "faces")
        .expect("faces");
    assert_eq!(faces.verdict, Verdict::Pass, "{record:?}");
    println!("astronaut: failed {failed:?}, error {:?}", record.error);
}
