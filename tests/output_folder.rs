//! The output folder as people really share it (issue 23): two runs at
//! once, runs one after another, links planted by a colleague, names as
//! long as the file system allows, and Ctrl-C. Nothing already written is
//! lost, nothing is written where it should not be.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn photos(m: &Value) -> &Vec<Value> {
    m["photos"].as_array().unwrap()
}

/// `n` inputs in `dir`, copies of the baseline fixture under other names.
fn inputs(dir: &Path, prefix: &str, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("{prefix}{i:02}.jpg")), &good).unwrap();
    }
    dir.to_owned()
}

fn normalize(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args([OsStr::new("normalize"), input.as_os_str()])
        .args([OsStr::new("--out"), out.as_os_str()])
        .args(extra);
    c
}

fn output(mut c: Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read(out.join("manifest.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Starts a quiet, one-worker run and waits until it has journalled
/// `records` photos.
fn start_and_wait(input: &Path, out: &Path, records: usize) -> Child {
    let mut child = normalize(input, out, &["--jobs", "1", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_lines(out) < records {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before the test could act; make it longer"
        );
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused_naming_the_holder() {
    let dir = scratch("busy");
    let a = inputs(&dir.join("a"), "a", 24);
    let b = inputs(&dir.join("b"), "b", 3);
    let out = dir.join("out");
    let first = start_and_wait(&a, &out, 1);
    let (code, _, stderr) = output(normalize(&b, &out, &["--quiet"]));
    assert!(
        first.try_wait_is_running(),
        "the first run ended before the second was refused; make it longer"
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another gradphoto run")
            && stderr.contains(&format!("pid {}", first.id())),
        "{stderr}"
    );
    let done = first.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let m = manifest(&out);
    assert_eq!(photos(&m).len(), 24, "every photo of the first run listed");
    assert!(
        photos(&m)
            .iter()
            .all(|r| r["input"].as_str().unwrap().contains("/a/a"))
    );
    assert!(
        !out.join("b00.jpg").exists(),
        "the refused run wrote nothing"
    );
    assert!(!out.join(".gradphoto.lock").exists(), "the lock is gone");

    // A lock file left by a run that was killed blocks nothing.
    std::fs::write(out.join(".gradphoto.lock"), "pid 4999999\n").unwrap();
    let (code, _, stderr) = output(normalize(&b, &out, &["--quiet"]));
    assert_eq!(code, Some(0), "{stderr}");
    // `check` takes the same lock on its folder.
    let checked = dir.join("checked");
    let holder = start_and_wait(&a, &dir.join("out2"), 1);
    let mut c = Command::new(bin());
    c.args([OsStr::new("check"), b.as_os_str(), OsStr::new("--out")])
        .arg(dir.join("out2"));
    let (code, _, stderr) = output(c);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", holder.id())), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    holder.wait_with_output().unwrap();
    let mut c = Command::new(bin());
    c.args([OsStr::new("check"), b.as_os_str(), OsStr::new("--out")])
        .arg(&checked)
        .arg("-q");
    // The originals are not 480x640: they fail, but the run goes through.
    assert_eq!(output(c).0, Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

trait Running {
    fn try_wait_is_running(&self) -> bool;
}

impl Running for Child {
    /// Whether the process is still running, without reaping it.
    fn try_wait_is_running(&self) -> bool {
        Path::new(&format!("/proc/{}", self.id())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.id()))
                .is_ok_and(|s| s.split(' ').nth(2) == Some("Z"))
    }
}

#[cfg(unix)]
#[test]
fn links_planted_in_the_output_folder_are_never_followed() {
    let dir = scratch("links");
    let input = inputs(&dir.join("in"), "p", 1);
    let victim = dir.join("victim.txt");
    for name in [
        "manifest.jsonl",
        "manifest.json",
        "manifest.csv",
        "report.html",
        ".gradphoto.lock",
        ".manifest-previous.jsonl",
    ] {
        std::fs::write(&victim, "precious").unwrap();
        let out = dir.join(format!("out-{name}"));
        std::fs::create_dir_all(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
        let (code, _, stderr) = output(normalize(&input, &out, &["--report", "-q"]));
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("symbolic link") && stderr.contains(name),
            "{name}: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "precious",
            "{name} was followed"
        );
        assert!(!out.join("p00.jpg").exists(), "{name}: nothing is done");
    }
    // A link where a photo goes fails that photo only.
    std::fs::write(&victim, "precious").unwrap();
    let more = inputs(&dir.join("more"), "p", 2);
    let out = dir.join("out-photo");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("p00.jpg")).unwrap();
    for extra in [&["-q"][..], &["-q", "--overwrite"]] {
        let (code, _, stderr) = output(normalize(&more, &out, extra));
        assert_eq!(code, Some(1), "{stderr}");
        let m = manifest(&out);
        let error = photos(&m)[0]["error"].as_str().unwrap();
        assert!(error.contains("symbolic link"), "{error}");
        assert_eq!(photos(&m)[1]["status"], "ok");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }
    // And `check` refuses a linked manifest of its own.
    let checked = dir.join("checked");
    std::fs::create_dir_all(&checked).unwrap();
    std::os::unix::fs::symlink(&victim, checked.join("manifest.json")).unwrap();
    let mut c = Command::new(bin());
    c.args([OsStr::new("check"), input.as_os_str(), OsStr::new("--out")])
        .arg(&checked);
    let (code, _, stderr) = output(c);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn names_as_long_as_the_file_system_allows_are_written() {
    let dir = scratch("long-names");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    // 243 to 255 bytes, the longest a name can be on ext4, XFS or APFS.
    let names: Vec<String> = [239, 247, 251]
        .iter()
        .map(|&n| format!("{}.jpg", "x".repeat(n)))
        .chain([format!("{}.jpg", "张".repeat(83))])
        .collect();
    for name in &names {
        std::fs::write(input.join(name), &good).unwrap();
    }
    let out = dir.join("out");
    let (code, _, stderr) = output(normalize(&input, &out, &["-q"]));
    assert_eq!(code, Some(0), "{stderr}");
    for name in &names {
        assert!(out.join(name).exists(), "{} bytes", name.len());
    }
    let m = manifest(&out);
    assert!(photos(&m).iter().all(|r| r["status"] == "ok"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn csv_rows(out: &Path) -> usize {
    let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let rows: Result<Vec<_>, _> = reader.records().collect();
    rows.unwrap().len()
}

/// Ctrl-C (or a TERM from a scheduler) mid-run: the photo in hand is
/// finished, the manifests list every photo done, the exit status says
/// which signal, and a rerun finishes the batch keeping what was done.
#[test]
fn a_signal_mid_run_finishes_the_photo_in_hand_and_flushes_the_manifests() {
    let dir = scratch("signal");
    let input = inputs(&dir.join("in"), "s", 24);
    for (name, status) in [("INT", 130), ("TERM", 143)] {
        let out = dir.join(format!("out-{name}"));
        let child = start_and_wait(&input, &out, 2);
        signal(&child, name);
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(status), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("stopped by SIG{name}"))
                && stderr.contains("run the same command again to resume"),
            "{stderr}"
        );
        let m = manifest(&out);
        let listed = photos(&m).len();
        assert!((2..24).contains(&listed), "{name}: {listed} photos listed");
        assert_eq!(listed, journal_lines(&out), "{name}: every photo done");
        assert_eq!(csv_rows(&out), listed, "{name}");
        assert_eq!(m["run"]["interrupted"], format!("SIG{name}"));
        assert!(m["run"]["finished"].is_string());
        assert!(photos(&m).iter().all(|r| r["status"] == "ok"));
        for r in photos(&m) {
            let bytes = std::fs::read(out.join(r["output"].as_str().unwrap())).unwrap();
            assert_eq!(bytes.len() as u64, r["output_bytes"].as_u64().unwrap());
        }
        assert!(!out.join(".gradphoto.lock").exists());

        let (code, _, stderr) = output(normalize(&input, &out, &["-q"]));
        assert_eq!(code, Some(0), "{stderr}");
        let m = manifest(&out);
        assert_eq!(photos(&m).len(), 24);
        assert_eq!(m["run"]["counts"]["resumed"], listed);
        assert!(m["run"]["interrupted"].is_null());
    }
    // A second Ctrl-C stops at once, with the same status.
    let out = dir.join("out-twice");
    let child = start_and_wait(&input, &out, 1);
    signal(&child, "INT");
    signal(&child, "INT");
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(130));
    let (code, _, stderr) = output(normalize(&input, &out, &["-q"]));
    assert_eq!(code, Some(0), "the rerun finishes: {stderr}");
    assert_eq!(photos(&manifest(&out)).len(), 24);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run B into the folder run A wrote: B's manifest still lists A's photos
/// (they are in the folder), each marked with the run that made it; a
/// photo of A's that B replaces, or that was deleted, is not listed as A's.
#[test]
fn runs_one_after_another_keep_every_photo_of_the_folder_in_its_manifest() {
    let dir = scratch("after");
    let a = inputs(&dir.join("a"), "a", 3);
    let b = inputs(&dir.join("b"), "b", 2);
    let out = dir.join("out");
    assert_eq!(output(normalize(&a, &out, &["-q"])).0, Some(0));
    let run_a = manifest(&out)["run"].clone();
    std::fs::remove_file(out.join("a02.jpg")).unwrap();
    // Other settings too: A's photos cannot be resumed, only listed.
    let (code, stdout, stderr) = output(normalize(&b, &out, &["--max-bytes", "99000"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("the manifest also lists 2 photos made in this folder by earlier runs"),
        "{stdout}"
    );
    let m = manifest(&out);
    let listed: Vec<(String, Value)> = photos(&m)
        .iter()
        .map(|r| {
            (
                r["output"].as_str().unwrap().to_owned(),
                r["from_run"].clone(),
            )
        })
        .collect();
    let names: Vec<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a00.jpg", "a01.jpg", "b00.jpg", "b01.jpg"]);
    for (name, from) in &listed {
        if name.starts_with('a') {
            assert_eq!(from["started"], run_a["started"], "{name}");
            assert_eq!(from["settings_sha256"], run_a["settings_sha256"], "{name}");
        } else {
            assert!(from.is_null(), "{name}: {from}");
        }
    }
    let counts = &m["run"]["counts"];
    assert_eq!(
        (
            counts["inputs"].as_u64(),
            counts["from_earlier_runs"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(csv_rows(&out), 4);
    // A third run into the folder keeps both earlier runs' photos, A's
    // still marked as A's.
    let c = inputs(&dir.join("c"), "c", 1);
    assert_eq!(output(normalize(&c, &out, &["-q"])).0, Some(0));
    let m = manifest(&out);
    assert_eq!(photos(&m).len(), 5);
    assert_eq!(photos(&m)[0]["from_run"]["started"], run_a["started"]);
    // Run A again, as it was: its photos are resumed (its own run again),
    // a02 is made anew, B's and C's stay listed as theirs.
    assert_eq!(output(normalize(&a, &out, &["-q"])).0, Some(0));
    let m = manifest(&out);
    assert_eq!(photos(&m).len(), 6);
    assert_eq!(m["run"]["counts"]["resumed"], 2);
    assert!(photos(&m)[..3].iter().all(|r| r["from_run"].is_null()));
    assert!(photos(&m)[3..].iter().all(|r| r["from_run"].is_object()));
    let run_a2 = m["run"].clone();
    // A with other settings, without --overwrite: its photos are in the
    // way and fail, and the photos in the folder stay listed as the
    // earlier run's.
    let smaller = std::fs::metadata(out.join("a00.jpg")).unwrap().len() - 5_000;
    let max = smaller.to_string();
    let (code, _, _) = output(normalize(&a, &out, &["-q", "--max-bytes", &max]));
    assert_eq!(code, Some(1));
    let m = manifest(&out);
    let a00: Vec<&Value> = photos(&m)
        .iter()
        .filter(|r| r["input"].as_str().unwrap().ends_with("a00.jpg"))
        .collect();
    assert_eq!(a00.len(), 2, "{a00:#?}");
    assert!(a00[0]["error"].as_str().unwrap().contains("already exists"));
    assert_eq!(a00[1]["output"], "a00.jpg");
    assert_eq!(a00[1]["from_run"]["started"], run_a2["started"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
