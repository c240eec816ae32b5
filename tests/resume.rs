//! Kills a real `normalize` run with SIGKILL, twice, reruns it, and checks
//! that the end result equals an uninterrupted run's, byte for byte.
//!
//! "Equal" means:
//! - the same set of files in the output folder (no leftovers such as
//!   temporaries), and every photo byte-identical;
//! - manifest.json: the same records, field for field, except `resumed`
//!   (true exactly for the photos the rerun kept); the run header's settings,
//!   digest, version and counts (bar `resumed`) equal; its start, finish and
//!   timing fields are the only ones allowed to differ, because they describe
//!   the run, not the photos;
//! - manifest.csv: the same rows except the `resumed` column.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gradphoto::testkit::synth::{FileSpec, RandomOptions, SplitMix64, make_photo, random_spec};
use serde_json::Value;

const PHOTOS: usize = 30;

/// Small but real portraits (about 1 MP, so each is still cropped and
/// encoded at 480x640), a few with phone EXIF.
fn make_inputs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = SplitMix64::new(2025);
    let opts = RandomOptions {
        min_mp: 0.9,
        max_mp: 1.1,
        landscape: 0.0,
    };
    for i in 0..PHOTOS {
        let spec = random_spec(&mut rng, opts);
        let file = if i % 5 == 0 {
            FileSpec::phone(90, 1)
        } else {
            FileSpec::jpeg(92)
        };
        let (bytes, _) = make_photo(&spec, &file).unwrap();
        std::fs::write(dir.join(format!("student-{i:02}.jpg")), bytes).unwrap();
    }
}

fn command(input: &Path, out: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args([OsStr::new("normalize"), input.as_os_str()])
        .args([OsStr::new("--out"), out.as_os_str()])
        .args(["--jobs", "1", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read(out.join("manifest.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Waits until the run has journalled `records` photos, then kills it.
fn kill_after(mut child: Child, out: &Path, records: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_lines(out) < records {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed; make it longer"
        );
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
    child.wait().unwrap();
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with("manifest."))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn manifest(out: &Path) -> Value {
    let bytes = std::fs::read(out.join("manifest.json")).unwrap();
    serde_json::from_slice(&bytes).expect("manifest.json is always readable")
}

/// The records with `resumed` taken out, and how many had it set.
fn records_without_resumed(m: &Value) -> (Vec<Value>, usize) {
    let mut resumed = 0;
    let records = m["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let flag = r.as_object_mut().unwrap().remove("resumed");
            resumed += usize::from(flag == Some(Value::Bool(true)));
            r
        })
        .collect();
    (records, resumed)
}

/// CSV rows with the `resumed` column dropped.
fn csv_without_resumed(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = headers.iter().position(|h| h == "resumed").unwrap();
    reader
        .records()
        .map(|row| {
            row.unwrap()
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != column)
                .map(|(_, v)| v.to_owned())
                .collect()
        })
        .collect()
}

/// Every photo present after a kill is complete: identical to the
/// uninterrupted run's. Temporaries may remain (hidden); they are cleaned up
/// by the rerun.
fn assert_no_partial_photo(out: &Path, reference: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut complete = 0;
    for (name, bytes) in files(out) {
        if name.starts_with('.') {
            continue;
        }
        assert_eq!(
            Some(&bytes),
            reference.get(&name),
            "{name} after the kill differs from the uninterrupted run's"
        );
        complete += 1;
    }
    complete
}

#[test]
fn a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let dir = scratch("resume");
    let input = dir.join("in");
    make_inputs(&input);
    let (reference_out, out) = (dir.join("reference"), dir.join("out"));

    let status = command(&input, &reference_out).status().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status}");
    let reference = files(&reference_out);
    let reference_manifest = manifest(&reference_out);
    let (reference_records, _) = records_without_resumed(&reference_manifest);
    assert_eq!(reference_records.len(), PHOTOS);
    let written = reference.len();
    assert!(written >= PHOTOS * 2 / 3, "most inputs make a photo");

    // First kill: a third of the way in.
    kill_after(command(&input, &out).spawn().unwrap(), &out, PHOTOS / 3);
    let after_first = assert_no_partial_photo(&out, &reference);
    let interrupted = manifest(&out);
    assert!(
        interrupted["run"]["finished"].is_null(),
        "the kill landed after the run finished"
    );

    // Second kill, in the rerun, after it has journalled more than the
    // first run did: the rerun restarts the journal, so this checks that
    // nothing done before is lost when a resumed run dies too.
    kill_after(command(&input, &out).spawn().unwrap(), &out, PHOTOS * 2 / 3);
    let after_second = assert_no_partial_photo(&out, &reference);
    assert!(after_second >= after_first);
    assert!(after_second < written, "the second kill came too late");

    let status = command(&input, &out).status().unwrap();
    assert_eq!(
        status.code(),
        command(&input, &reference_out).status().unwrap().code()
    );
    // (The line above also reruns the finished reference: a no-op resume.)

    assert_eq!(
        files(&out),
        reference,
        "photos differ from the uninterrupted run"
    );
    let finished = manifest(&out);
    let (records, resumed) = records_without_resumed(&finished);
    assert_eq!(records, reference_records, "records differ");
    assert!(
        resumed >= after_first,
        "only {resumed} photos resumed, but {after_first} were finished before the first kill"
    );
    assert_eq!(
        csv_without_resumed(&out),
        csv_without_resumed(&reference_out)
    );
    eprintln!(
        "{written} photos written; {after_first} complete after the first kill, \
         {after_second} after the second; the final rerun kept {resumed}"
    );
    let run = &finished["run"];
    let reference_run = &reference_manifest["run"];
    for key in ["settings", "settings_sha256", "version", "tool", "command"] {
        assert_eq!(run[key], reference_run[key], "run.{key}");
    }
    let counts = |run: &Value| {
        let mut c = run["counts"].clone();
        c.as_object_mut().unwrap().remove("resumed");
        c
    };
    assert_eq!(counts(run), counts(reference_run));

    // The reference, rerun above, resumed everything and changed nothing.
    let rerun_reference = manifest(&reference_out);
    assert_eq!(rerun_reference["run"]["counts"]["resumed"], written);
    assert_eq!(files(&reference_out), reference);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A damaged output is never taken as done: the rerun makes the photo again
/// and, since a file is in the way, refuses to replace it without
/// --overwrite, then replaces it with.
#[test]
fn a_damaged_output_is_redone_not_resumed() {
    let dir = scratch("damaged");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(fixtures().join("01-baseline.jpg"), input.join("a.jpg")).unwrap();
    let out = dir.join("out");
    assert_eq!(command(&input, &out).status().unwrap().code(), Some(0));
    let good = std::fs::read(out.join("a.jpg")).unwrap();
    std::fs::write(out.join("a.jpg"), &good[..good.len() / 2]).unwrap();

    assert_eq!(command(&input, &out).status().unwrap().code(), Some(1));
    let m = manifest(&out);
    let r = &m["photos"][0];
    assert_eq!(r["resumed"], false);
    assert!(
        r["error"].as_str().unwrap().contains("already exists"),
        "{r:#}"
    );
    let mut with_overwrite = command(&input, &out);
    with_overwrite.arg("--overwrite");
    assert_eq!(with_overwrite.status().unwrap().code(), Some(0));
    assert_eq!(std::fs::read(out.join("a.jpg")).unwrap(), good);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Inputs changed since the last run are made again, unchanged ones kept.
#[test]
fn only_changed_inputs_are_redone() {
    let dir = scratch("changed");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (name, fixture) in [
        ("a.jpg", "01-baseline.jpg"),
        ("b.jpg", "06-progressive.jpg"),
    ] {
        std::fs::copy(fixtures().join(fixture), input.join(name)).unwrap();
    }
    let out = dir.join("out");
    assert_eq!(command(&input, &out).status().unwrap().code(), Some(0));
    // The vendor re-shot b: new content under the same name.
    std::fs::copy(
        fixtures().join("10-landscape-restart-markers.jpg"),
        input.join("b.jpg"),
    )
    .unwrap();
    std::fs::remove_file(out.join("b.jpg")).unwrap();
    assert_eq!(command(&input, &out).status().unwrap().code(), Some(0));
    let m = manifest(&out);
    let resumed: Vec<(String, bool)> = m["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = PathBuf::from(r["input"].as_str().unwrap());
            (
                name.file_name().unwrap().to_string_lossy().into_owned(),
                r["resumed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(resumed, [("a.jpg".into(), true), ("b.jpg".into(), false)]);
    std::fs::remove_dir_all(&dir).unwrap();
}
