//! `normalize --roster` with a GBK roster that has a graduate with no
//! photo, one with two, a photo of nobody, an invalid ID-card number and an
//! id that tries to leave the output folder.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;
use serde_json::Value;

/// Valid numbers; check digits computed outside this project.
const ID_1: &str = "110105200304151238";
const ID_2: &str = "310115200207284565";
const ID_3: &str = "440305200111307897";
const ID_4: &str = "510107200401012341";
const ID_6: &str = "420102200309098767";
/// ID_4 with its check digit changed.
const ID_5_BAD: &str = "510107200401012342";

fn setup(scratch: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let input = scratch.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (fixture, name) in [
        ("01-baseline.jpg", "2025001.jpg"),
        ("04-portrait.png", "2025002.png"),
        ("06-progressive.jpg", "IMG_0042.jpg"),
        ("03-exif-orientation-6.jpg", "2025004.jpg"),
        ("10-landscape-restart-markers.jpg", "IMG_9.jpg"),
        ("11-black-border-left-right.jpg", "2025005.jpg"),
        ("02-white-border-double-frame.jpg", "9999999.jpg"),
    ] {
        std::fs::copy(fixtures().join(fixture), input.join(name)).unwrap();
    }
    let text = format!(
        "学号,姓名,身份证号码,采集码,照片文件名\r\n\
         2025001,张三,{ID_1},CJ0001,\r\n\
         2025002,李四,{ID_2},CJ0002,\r\n\
         2025003,王五,{ID_3},,IMG_0042.jpg\r\n\
         2025004,赵六,{ID_4},,IMG_9.jpg\r\n\
         2025005,钱七,{ID_5_BAD},,\r\n\
         2025006,孙八,{ID_6},,\r\n\
         2025007,周九,../../etc/x,,\r\n"
    );
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    let roster = scratch.join("名单.csv");
    std::fs::write(&roster, gbk).unwrap();
    (input, roster)
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.pointer(key).unwrap().as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn roster_names_outputs_by_id_card_and_lists_every_mismatch() {
    let scratch = scratch("roster");
    let (input, roster) = setup(&scratch);
    let out = scratch.join("out");
    let args: Vec<&OsStr> = vec![
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--roster"),
        roster.as_os_str(),
        OsStr::new("--name"),
        OsStr::new("{id_card}.jpg"),
        OsStr::new("--report"),
        OsStr::new("--quiet"),
    ];
    let result = run(&args);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("2025006 孙八"),
        "the summary names who has no photo: {stdout}"
    );

    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    written.sort();
    let mut expected = vec![
        format!("{ID_1}.jpg"),
        format!("{ID_2}.jpg"),
        format!("{ID_3}.jpg"),
    ];
    expected.sort();
    assert_eq!(written, expected);

    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let s = &m["run"]["roster"];
    assert_eq!(s["encoding"], "gb18030");
    assert_eq!(s["rows"], 7);
    assert_eq!(s["matched"], 4, "2025001-3 and 2025005 have one photo each");
    assert_eq!(names(&s["no_photo"], "/student_no"), ["2025006", "2025007"]);
    assert_eq!(
        names(&s["multiple_photos"], "/graduate/student_no"),
        ["2025004"]
    );
    assert_eq!(
        s["multiple_photos"][0]["photos"].as_array().unwrap().len(),
        2
    );
    let unmatched = names(&s["unmatched_photos"], "/photo");
    assert_eq!(unmatched.len(), 1);
    assert!(unmatched[0].ends_with("9999999.jpg"));
    assert_eq!(
        names(&s["invalid_ids"], "/graduate/student_no"),
        ["2025005", "2025007"]
    );

    let photos = m["photos"].as_array().unwrap();
    let by_file = |f: &str| {
        photos
            .iter()
            .find(|r| r["input"].as_str().unwrap().ends_with(f))
            .unwrap()
    };
    let li = by_file("2025002.png");
    assert_eq!(li["output"], format!("{ID_2}.jpg"));
    assert_eq!(li["roster"]["name"], "李四");
    assert_eq!(li["roster"]["collection_code"], "CJ0002");
    assert_eq!(by_file("IMG_0042.jpg")["roster"]["student_no"], "2025003");
    for (file, why) in [
        ("2025004.jpg", "2 photos"),
        ("IMG_9.jpg", "2 photos"),
        ("2025005.jpg", "check digit"),
        ("9999999.jpg", "nobody"),
    ] {
        let r = by_file(file);
        assert_eq!(r["status"], "fail", "{file}");
        assert!(r["output"].is_null(), "{file}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(why), "{file}: {error}");
    }

    let csv = String::from_utf8(std::fs::read(out.join("manifest.csv")).unwrap()).unwrap();
    assert!(csv.starts_with('\u{feff}'));
    assert!(csv.contains("张三") && csv.contains("CJ0001"));

    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<b id=\"r-no-photo\">2</b>"));
    assert!(report.contains("<b id=\"r-multiple\">1</b>"));
    assert!(report.contains("<b id=\"r-unmatched\">1</b>"));
    assert!(report.contains("<b id=\"r-invalid-ids\">2</b>"));
    assert!(report.contains("李四"));
}

#[test]
fn roster_problems_are_usage_errors() {
    let scratch = scratch("roster-usage");
    let (input, roster) = setup(&scratch);
    let out = scratch.join("out");
    let attempt = |extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("normalize"),
            input.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(OsStr::new));
        run(&args)
    };
    let no_roster = attempt(&["--name", "{id_card}.jpg"]);
    assert_eq!(no_roster.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_roster.stderr).contains("--roster"));
    let roster = roster.to_str().unwrap();
    let bad_column = attempt(&["--roster", roster, "--roster-columns", "student_no=XH"]);
    assert_eq!(bad_column.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_column.stderr).contains("XH"));
    let bad_template = attempt(&["--roster", roster, "--name", "{id_card}.png"]);
    assert_eq!(bad_template.status.code(), Some(2));
    assert!(!out.join("manifest.json").exists(), "nothing ran");
}

/// One ID card on two students is a copying mistake in the roster: it is
/// listed like a repeated student number, in the manifest, on stdout and
/// in the report (issue 23, item 10).
#[test]
fn an_id_card_number_on_two_students_is_reported() {
    let scratch = scratch("roster-dup-id");
    let input = scratch.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in ["2025001.jpg", "2025002.jpg", "2025003.jpg"] {
        std::fs::copy(fixtures().join("01-baseline.jpg"), input.join(name)).unwrap();
    }
    // 2025003's number is 2025001's with the check digit in lower case:
    // still the same number.
    let id_x = "11010519491231002X";
    let text = format!(
        "学号,姓名,身份证号\n2025001,张三,{id_x}\n2025002,李四,{ID_2}\n2025003,王五,{}\n",
        id_x.to_lowercase()
    );
    let roster = scratch.join("roster.csv");
    std::fs::write(&roster, text).unwrap();
    let out = scratch.join("out");
    let result = run(&[
        OsStr::new("normalize"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--roster"),
        roster.as_os_str(),
        OsStr::new("--report"),
        OsStr::new("--quiet"),
    ]);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert_eq!(result.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("ID-card numbers on several rows")
            && stdout.contains(&format!(
                "{id_x}: 2025001 张三 (line 2), 2025003 王五 (line 4)"
            )),
        "{stdout}"
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let dup = &m["run"]["roster"]["duplicate_id_cards"];
    assert_eq!(dup.as_array().map(Vec::len), Some(1), "{dup:#}");
    assert_eq!(dup[0]["id_card"], id_x);
    assert_eq!(
        names(&dup[0]["graduates"], "/student_no"),
        ["2025001", "2025003"]
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<b id=\"r-duplicate-ids\">1</b>"));
}
