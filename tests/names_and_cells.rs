//! What reaches a spreadsheet, a terminal and the manifest from names a
//! user (or a hostile colleague) chose: roster cells and file names that a
//! spreadsheet would run as formulas, control characters that a terminal
//! would obey, file names that are not UTF-8, and hidden files (issue 23).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// manifest.csv as rows of cells, the header first.
fn csv_rows(out: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0].iter().position(|h| h == name).unwrap()
}

/// Runs the binary in `cwd`.
fn run_in(cwd: &Path, args: &[&OsStr]) -> Output {
    Command::new(bin())
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

const FORMULAS: [&str; 4] = [
    "=HYPERLINK(\"http://x\",\"click\")",
    "+cmd|' /C calc'!A0",
    "@SUM(A1)",
    "-2+3+cmd|' /C calc'!A0",
];

fn assert_no_live_formula(rows: &[Vec<String>]) {
    for row in rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a spreadsheet would run {cell:?}"
            );
        }
    }
}

#[test]
fn csv_cells_never_start_a_formula_and_the_json_keeps_the_values() {
    let dir = scratch("formulas");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    let mut roster = String::from("学号,姓名\n");
    for (i, name) in FORMULAS.iter().enumerate() {
        std::fs::write(input.join(format!("202500{i}.jpg")), &good).unwrap();
        let quoted = name.replace('"', "\"\"");
        roster.push_str(&format!("202500{i},\"{quoted}\"\n"));
    }
    std::fs::write(dir.join("roster.csv"), roster).unwrap();
    let out = dir.join("out");
    let result = run(&[
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--roster"),
        dir.join("roster.csv").as_os_str(),
        OsStr::new("-q"),
    ]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 1 + FORMULAS.len());
    assert_no_live_formula(&rows);
    let names = column(&rows, "name");
    let mut shown: Vec<&str> = rows[1..].iter().map(|r| r[names].as_str()).collect();
    shown.sort();
    let mut expected: Vec<String> = FORMULAS.iter().map(|f| format!("'{f}")).collect();
    expected.sort();
    assert_eq!(shown, expected, "neutralised with a leading apostrophe");
    // The JSON is data, not a spreadsheet: it keeps the values as they are.
    let m = manifest(&out);
    let mut json_names: Vec<&str> = m["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["roster"]["name"].as_str().unwrap())
        .collect();
    json_names.sort();
    let mut raw = FORMULAS.to_vec();
    raw.sort();
    assert_eq!(json_names, raw);

    // A photo named like a formula, given by a relative path: both its
    // input and its output cell would start with '='.
    std::fs::write(input.join("=1+2.jpg"), &good).unwrap();
    let out2 = dir.join("out2");
    let result = run_in(
        &input,
        &[
            OsStr::new("normalize"),
            OsStr::new("=1+2.jpg"),
            OsStr::new("--out"),
            out2.as_os_str(),
            OsStr::new("-q"),
        ],
    );
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let rows = csv_rows(&out2);
    assert_no_live_formula(&rows);
    assert_eq!(rows[1][column(&rows, "input")], "'=1+2.jpg");
    assert_eq!(rows[1][column(&rows, "output")], "'=1+2.jpg");
    assert_eq!(manifest(&out2)["photos"][0]["output"], "=1+2.jpg");
    assert!(out2.join("=1+2.jpg").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn control_characters_in_names_reach_the_terminal_escaped() {
    let dir = scratch("escapes");
    let input = dir.join("in");
    let red = input.join("\u{1b}[31mred\u{1b}[0m");
    std::fs::create_dir_all(&red).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    std::fs::write(red.join("empty.jpg"), b"").unwrap();
    // A name that would print a second, forged line.
    std::fs::write(input.join("a\ngradphoto: OK b.jpg"), &good).unwrap();
    std::fs::write(input.join("bell\u{7}.jpg"), &good).unwrap();
    let out = dir.join("out");
    let result = run(&[
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(result.status.code(), Some(1), "{result:?}");
    let stderr = String::from_utf8(result.stderr).unwrap();
    let stdout = String::from_utf8(result.stdout).unwrap();
    for text in [&stderr, &stdout] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}']),
            "raw control characters: {text:?}"
        );
    }
    assert!(
        !stderr.lines().any(|l| l.starts_with("gradphoto: OK")),
        "a file name forged a line: {stderr}"
    );
    let fails: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("gradphoto: FAIL"))
        .collect();
    assert_eq!(fails.len(), 3, "{stderr}");
    assert!(
        fails
            .iter()
            .any(|l| l.contains("\\u{1b}[31mred\\u{1b}[0m/empty.jpg")),
        "{stderr}"
    );
    assert!(
        fails.iter().any(|l| l.contains("a\\ngradphoto: OK b.jpg")),
        "{stderr}"
    );
    assert!(
        fails.iter().any(|l| l.contains("bell\\u{7}.jpg")),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hidden_files_are_counted_as_passed_over() {
    let dir = scratch("hidden");
    let input = dir.join("in");
    std::fs::create_dir_all(input.join(".thumbnails")).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    std::fs::write(input.join("a.jpg"), &good).unwrap();
    std::fs::write(input.join(".x.jpg"), &good).unwrap();
    std::fs::write(input.join(".thumbnails/t.jpg"), &good).unwrap();
    let out = dir.join("out");
    let result = run(&[
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let counts = &manifest(&out)["run"]["counts"];
    assert_eq!(counts["inputs"], 1, "{counts}");
    assert_eq!(counts["skipped_hidden"], 2, "{counts}");
    let stdout = String::from_utf8(result.stdout).unwrap();
    assert!(
        stdout.contains("2 hidden files or folders (names starting with a dot) passed over"),
        "{stdout}"
    );
    assert!(!out.join("x.jpg").exists() && !out.join(".x.jpg").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Undoes the manifest's escaping of paths (README, "Paths in the
/// manifest"), written here from the rule, not from the library.
#[cfg(unix)]
fn unescape(text: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if !(text.contains("\\\\") || text.contains("\\x")) {
        return text.into();
    }
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'\\' && tail.first() == Some(&b'\\') {
            bytes.push(b'\\');
            rest = &tail[1..];
        } else if b == b'\\' && tail.first() == Some(&b'x') {
            let hex = std::str::from_utf8(&tail[1..3]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[3..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    Path::new(std::ffi::OsStr::from_bytes(&bytes)).to_owned()
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_kept_exactly_and_never_renamed() {
    use std::os::unix::ffi::OsStrExt;
    let dir = scratch("not-utf8");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let good = std::fs::read(fixtures().join("01-baseline.jpg")).unwrap();
    let latin1 = input.join(std::ffi::OsStr::from_bytes(b"latin1_\xe9.jpg"));
    let gbk = input.join(std::ffi::OsStr::from_bytes(b"\xd5\xc5\xc8\xfd.jpg"));
    for path in [&latin1, &gbk] {
        std::fs::write(path, &good).unwrap();
    }
    std::fs::write(input.join("ok.jpg"), &good).unwrap();
    // Valid UTF-8 that looks like an escape is escaped itself.
    std::fs::write(input.join("lit\\xe9.jpg"), &good).unwrap();
    let out = dir.join("out");
    let args = [
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("-q"),
    ];
    for round in 0..2 {
        let result = run(&args);
        assert_eq!(result.status.code(), Some(1), "{result:?}");
        let m = manifest(&out);
        let inputs: Vec<&str> = m["photos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["input"].as_str().unwrap())
            .collect();
        let prefix = input.to_str().unwrap();
        let expected = [
            format!("{prefix}/\\xd5\\xc5\\xc8\\xfd.jpg"),
            format!("{prefix}/latin1_\\xe9.jpg"),
            format!("{prefix}/lit\\\\xe9.jpg"),
            format!("{prefix}/ok.jpg"),
        ];
        assert_eq!(inputs, expected, "round {round}");
        // The text names the real file, byte for byte.
        assert_eq!(unescape(inputs[0]), gbk);
        assert_eq!(unescape(inputs[1]), latin1);
        assert_eq!(unescape(inputs[2]), input.join("lit\\xe9.jpg"));
        for r in &m["photos"].as_array().unwrap()[..2] {
            assert_eq!(r["status"], "fail");
            assert!(r["output"].is_null());
            let error = r["error"].as_str().unwrap();
            assert!(error.contains("not valid UTF-8"), "{error}");
            assert_eq!(r["input_bytes"], good.len(), "the real file was read");
        }
        // CSV keeps the same text.
        let rows = csv_rows(&out);
        let at = column(&rows, "input");
        let csv_inputs: Vec<&str> = rows[1..].iter().map(|r| r[at].as_str()).collect();
        assert_eq!(csv_inputs, inputs);
        // Only the UTF-8 name was written, under its own name.
        let mut written: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
            .filter(|n| n.ends_with(".jpg"))
            .collect();
        written.sort();
        assert_eq!(written, ["ok.jpg"]);
    }
    // check reads the same files and names them the same way.
    let checked = dir.join("checked");
    let result = run(&[
        OsStr::new("check"),
        input.as_os_str(),
        OsStr::new("--out"),
        checked.as_os_str(),
        OsStr::new("-q"),
    ]);
    assert_eq!(result.status.code(), Some(1));
    let m = manifest(&checked);
    let r = &m["photos"][1];
    assert_eq!(r["input"], format!("{}/latin1_\\xe9.jpg", input.display()));
    assert_eq!(r["input_bytes"], good.len());
    assert!(r["error"].is_null(), "{r:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}
