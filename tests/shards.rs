//! A batch in shards (issue 26): N processes, each its share, merged into
//! what one run writes; `merge` refusing what is not one whole batch; a
//! shard that dies losing nothing of the others; the shard taken from the
//! scheduler's environment; lists of inputs on stdin.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The scheduler variables a test's own environment might carry: every
/// run here says its shard itself.
const SCHEDULER_VARIABLES: [&str; 6] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
];

fn gradphoto(args: &[&OsStr]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    for v in SCHEDULER_VARIABLES {
        c.env_remove(v);
    }
    c
}

fn normalize(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = gradphoto(&[OsStr::new("normalize"), input.as_os_str()]);
    c.args([OsStr::new("--out"), out.as_os_str()])
        .args(["--quiet"])
        .args(extra);
    c
}

/// Runs `c`: its exit status, stdout and stderr.
fn outcome(mut c: Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `c`, which must finish (0, or 1 for photos that failed).
fn finished(c: Command) -> String {
    let (code, stdout, stderr) = outcome(c);
    assert!(matches!(code, Some(0 | 1)), "{code:?}\n{stdout}\n{stderr}");
    stdout
}

fn merge(parts: &[&Path], out: &Path) -> (Option<i32>, String, String) {
    let mut c = gradphoto(&[OsStr::new("merge")]);
    c.args(parts).args([OsStr::new("--out"), out.as_os_str()]);
    outcome(c)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn part(out: &Path, k: usize, n: usize) -> PathBuf {
    out.join(format!(".gradphoto-shards/shard-{k:04}-of-{n:04}"))
}

/// Every file and manifest record of `merged` equals `plain`'s: photos
/// and manifest.csv byte for byte, manifest.json's records and header
/// with the fields that say when, how fast and in how many pieces left
/// out, and the journal's records in input order.
fn assert_same_batch(plain: &Path, merged: &Path) {
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(plain), names(merged));
    for name in names(plain) {
        if name.ends_with(".json") || name.ends_with(".jsonl") {
            continue;
        }
        assert!(
            std::fs::read(plain.join(&name)).unwrap() == std::fs::read(merged.join(&name)).unwrap(),
            "{name} differs"
        );
    }
    let (mut a, mut b) = (
        read_json(&plain.join("manifest.json")),
        read_json(&merged.join("manifest.json")),
    );
    assert!(b["run"]["merged"]["shards"].as_u64().unwrap() >= 1);
    for doc in [&mut a, &mut b] {
        let run = doc["run"].as_object_mut().unwrap();
        for timing in [
            "started",
            "finished",
            "seconds",
            "stage_seconds",
            "jobs",
            "merged",
        ] {
            run.remove(timing);
        }
    }
    assert_eq!(a["photos"], b["photos"]);
    assert_eq!(a["run"], b["run"]);
    let journal = |dir: &Path| -> Vec<Value> {
        let mut records: Vec<Value> = std::fs::read_to_string(dir.join("manifest.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        records.sort_by_key(|r| r["input"].as_str().unwrap_or_default().to_owned());
        records
    };
    assert_eq!(journal(plain), journal(merged));
}

/// `n` inputs in `dir`, copies of the baseline fixture under other names.
fn copies(dir: &Path, n: usize) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("p{i:02}.jpg")), &good).unwrap();
    }
    dir.to_owned()
}

#[test]
fn four_shards_merged_are_what_one_run_writes() {
    let root = scratch("shards-four");
    let fixtures = fixtures();
    let plain = root.join("plain");
    finished(normalize(&fixtures, &plain, &[]));
    let sharded = root.join("sharded");
    let mut seen = Vec::new();
    for k in 1..=4 {
        let shard = format!("{k}/4");
        finished(normalize(
            &fixtures,
            &sharded,
            &["--shard", &shard, "--jobs", "1"],
        ));
        let m = read_json(&part(&sharded, k, 4).join("manifest.json"));
        assert_eq!(m["run"]["shard"]["index"], k);
        assert_eq!(m["run"]["shard"]["from"], "--shard");
        for r in m["photos"].as_array().unwrap() {
            seen.push(r["input"].as_str().unwrap().to_owned());
        }
        assert!(!sharded.join("manifest.json").exists(), "parts only");
    }
    let plain_inputs: Vec<String> = read_json(&plain.join("manifest.json"))["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["input"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, plain_inputs, "every photo in exactly one shard");
    let (code, stdout, stderr) = merge(&[&sharded], &sharded);
    assert_eq!(code, Some(1), "fixtures has unfit photos: {stdout}{stderr}");
    assert!(stdout.contains("merged 4 shards"), "{stdout}");
    assert_same_batch(&plain, &sharded);

    // `check` too, in two shards.
    let checked = root.join("check-plain");
    let mut c = gradphoto(&[OsStr::new("check"), fixtures.as_os_str()]);
    c.args([
        OsStr::new("--out"),
        checked.as_os_str(),
        OsStr::new("--quiet"),
    ]);
    finished(c);
    let checked_shards = root.join("check-shards");
    for k in 1..=2 {
        let mut c = gradphoto(&[OsStr::new("check"), fixtures.as_os_str()]);
        c.args([OsStr::new("--out"), checked_shards.as_os_str()])
            .args(["--quiet", "--shard", &format!("{k}/2")]);
        finished(c);
    }
    // Never over a normalize run's manifest.
    let (code, _, stderr) = merge(&[&checked_shards], &plain);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("manifest of a normalize run"), "{stderr}");
    let (code, _, stderr) = merge(&[&checked_shards], &checked_shards);
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    assert_same_batch(&checked, &checked_shards);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Copies part folder `from` into `to` (a new part folder).
fn copy_part(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Edits a part's manifest.json with `edit`.
fn edit_part(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("manifest.json");
    let mut m = read_json(&path);
    edit(&mut m);
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn merge_refuses_what_is_not_one_whole_batch_and_writes_nothing() {
    let root = scratch("shards-refuse");
    let fixtures = fixtures();
    let out = root.join("out");
    for k in 1..=4 {
        finished(normalize(
            &fixtures,
            &out,
            &["--shard", &format!("{k}/4"), "--jobs", "1"],
        ));
    }
    let parts: Vec<PathBuf> = (1..=4).map(|k| part(&out, k, 4)).collect();
    let refused = |args: &[&Path], why: &str| {
        let (code, stdout, stderr) = merge(args, &out);
        assert_eq!(code, Some(2), "{why}: {stdout}{stderr}");
        assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
        assert!(
            !out.join("manifest.json").exists(),
            "{why}: nothing written"
        );
    };

    refused(&[&parts[0], &parts[1], &parts[2]], "missing shards: 4 of 4");

    // The same shard twice, with a record that differs.
    let twice = root.join("twice/shard-0002-of-0004");
    copy_part(&parts[1], &twice);
    edit_part(&twice, |m| {
        m["photos"][0]["jpeg_quality"] = Value::from(61);
    });
    refused(
        &[&out, &twice],
        "shard 2 of 4 was run twice with different results",
    );

    // An input in two parts.
    let overlap = root.join("overlap");
    for (k, p) in parts.iter().enumerate() {
        copy_part(p, &overlap.join(format!("shard-{:04}-of-0004", k + 1)));
    }
    let stolen = read_json(&parts[0].join("manifest.json"))["photos"][0].clone();
    edit_part(&overlap.join("shard-0002-of-0004"), |m| {
        m["photos"].as_array_mut().unwrap().push(stolen);
    });
    refused(&[&overlap], "is in two parts");

    // Other settings, another version, a shard that did not finish.
    let other = root.join("other");
    finished(normalize(
        &fixtures,
        &other,
        &["--shard", "3/4", "--max-bytes", "99000"],
    ));
    refused(
        &[&parts[0], &parts[1], &part(&other, 3, 4), &parts[3]],
        "the settings (settings_sha256) differs",
    );
    let old = root.join("old/shard-0004-of-0004");
    copy_part(&parts[3], &old);
    edit_part(&old, |m| m["run"]["version"] = Value::from("0.0.9"));
    refused(
        &[&parts[0], &parts[1], &parts[2], &old],
        "the version differs",
    );
    let killed = root.join("killed/shard-0004-of-0004");
    copy_part(&parts[3], &killed);
    edit_part(&killed, |m| m["run"]["finished"] = Value::Null);
    refused(
        &[&parts[0], &parts[1], &parts[2], &killed],
        "did not finish",
    );

    // A photo a part lists that is not in the folder.
    let elsewhere = root.join("elsewhere");
    let (code, _, stderr) = merge(&[&out], &elsewhere);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is not in"), "{stderr}");
    assert!(!elsewhere.join("manifest.json").exists());

    // The same shard twice with the same records is taken once.
    let again = root.join("again/shard-0002-of-0004");
    copy_part(&parts[1], &again);
    let (code, stdout, stderr) = merge(&[&out, &again], &out);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(out.join("manifest.json").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

fn journal_lines(dir: &Path) -> usize {
    std::fs::read(dir.join("manifest.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_shard_that_dies_loses_nothing_of_the_others_and_resumes() {
    let root = scratch("shards-die");
    let input = copies(&root.join("in"), 40);
    let plain = root.join("plain");
    finished(normalize(&input, &plain, &[]));
    let out = root.join("out");
    let shard = |k: usize| normalize(&input, &out, &["--shard", &format!("{k}/4"), "--jobs", "1"]);
    let mut victim = spawn(shard(2));
    let others: Vec<Child> = [1, 3, 4].into_iter().map(|k| spawn(shard(k))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_lines(&part(&out, 2, 4)) < 2 {
        assert!(
            victim.try_wait().unwrap().is_none(),
            "shard 2 finished before the test could kill it"
        );
        assert!(Instant::now() < deadline, "shard 2 made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Shards exclude a plain run into their folder, not each other.
    let (code, _, stderr) = outcome(normalize(&input, &out, &[]));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("shards of a batch"), "{stderr}");
    victim.kill().unwrap();
    victim.wait().unwrap();
    for child in others {
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, _, stderr) = merge(&[&out], &out);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("shard 2 of 4 did not finish"), "{stderr}");
    // The others' parts and photos are whole.
    for k in [1, 3, 4] {
        let m = read_json(&part(&out, k, 4).join("manifest.json"));
        assert!(m["run"]["finished"].is_string());
        for r in m["photos"].as_array().unwrap() {
            let name = r["output"].as_str().unwrap();
            assert_eq!(
                std::fs::read(out.join(name)).unwrap(),
                std::fs::read(plain.join(name)).unwrap()
            );
        }
    }
    let stdout = finished(shard(2));
    assert!(stdout.contains("kept from an earlier run"), "{stdout}");
    let (code, _, stderr) = merge(&[&out], &out);
    assert_eq!(code, Some(0), "{stderr}");
    // A resumed record says so; the plain run made it in one go.
    let mut merged = read_json(&out.join("manifest.json"));
    let resumed = merged["photos"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|r| r["resumed"] == true)
        .map(|r| r["resumed"] = Value::from(false))
        .count();
    assert!(resumed >= 2, "{resumed}");
    let plain_manifest = read_json(&plain.join("manifest.json"));
    assert_eq!(merged["photos"], plain_manifest["photos"]);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_shard_comes_from_the_schedulers_environment_and_lists_from_stdin() {
    let root = scratch("shards-env");
    let fixtures = fixtures();
    let plain = root.join("plain");
    finished(normalize(&fixtures, &plain, &[]));
    let out = root.join("out");
    // A Slurm array --array=0-1, task 1: the second of two.
    let mut slurm = normalize(&fixtures, &out, &[]);
    slurm
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_MAX", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2");
    let (code, _, stderr) = outcome(slurm);
    assert!(matches!(code, Some(0 | 1)), "{stderr}");
    assert!(
        stderr.contains("shard 2 of 2 (from SLURM_ARRAY_TASK_ID)"),
        "{stderr}"
    );
    let m = read_json(&part(&out, 2, 2).join("manifest.json"));
    assert_eq!(m["run"]["shard"]["from"], "SLURM_ARRAY_TASK_ID");
    // A Kubernetes Indexed Job's pod 0 needs the count.
    let mut k8s = normalize(&fixtures, &out, &[]);
    k8s.env("JOB_COMPLETION_INDEX", "0");
    let (code, _, stderr) = outcome(k8s);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--shard-count"), "{stderr}");
    let mut k8s = normalize(&fixtures, &out, &["--shard-count", "2"]);
    k8s.env("JOB_COMPLETION_INDEX", "0");
    finished(k8s);
    assert!(part(&out, 1, 2).join("manifest.json").exists());
    let (code, _, stderr) = merge(&[&out], &out);
    assert_eq!(code, Some(1), "{stderr}");
    assert_same_batch(&plain, &out);
    // `--shard none` runs the whole batch whatever the environment says.
    let whole = root.join("whole");
    let mut none = normalize(&fixtures, &whole, &["--shard", "none"]);
    none.env("JOB_COMPLETION_INDEX", "0");
    finished(none);
    assert!(whole.join("manifest.json").exists());

    // The same photos from a list: one run from a file, three shards from
    // stdin, merged.
    let mut listed: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "json"))
        .collect();
    listed.sort();
    let list: String = listed
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    let list_file = root.join("list.txt");
    std::fs::write(&list_file, &list).unwrap();
    let from_list = root.join("from-list");
    let mut c = gradphoto(&[OsStr::new("normalize"), OsStr::new("--files-from")]);
    c.args([
        list_file.as_os_str(),
        OsStr::new("--out"),
        from_list.as_os_str(),
    ])
    .arg("--quiet");
    finished(c);
    let read: Value = read_json(&from_list.join("manifest.json"));
    assert_eq!(read["photos"].as_array().unwrap().len(), listed.len());
    let stdin_shards = root.join("stdin-shards");
    for k in 1..=3 {
        let mut c = gradphoto(&[
            OsStr::new("normalize"),
            OsStr::new("--files-from"),
            OsStr::new("-"),
        ]);
        c.args([OsStr::new("--out"), stdin_shards.as_os_str()])
            .args(["--quiet", "--shard", &format!("{k}/3")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let (code, _, stderr) = merge(&[&stdin_shards], &stdin_shards);
    assert_eq!(code, Some(1), "{stderr}");
    assert_same_batch(&from_list, &stdin_shards);
    std::fs::remove_dir_all(&root).unwrap();
}
