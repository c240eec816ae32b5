//! report.html in a real browser: headless Chromium loads the page that
//! `check --report` wrote for a mixed folder; the counts and verdicts in the
//! rendered DOM must match the manifest, the filter script must work, and a
//! screenshot is kept for a person to look at.
//!
//! Chromium is found at /usr/bin/chromium (Debian package `chromium`, which
//! scripts/test.sh installs) or at $GRADPHOTO_CHROMIUM.

mod common;
mod mixed;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

fn chromium() -> PathBuf {
    let path = std::env::var_os("GRADPHOTO_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the report test needs Chromium at {} (apt-get install chromium, or set GRADPHOTO_CHROMIUM)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `extra` flags; returns stdout.
fn browse(profile: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with `id`, as the browser rendered it.
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

/// Opening tags of the contact sheet's cards.
fn cards(dom: &str) -> Vec<&str> {
    dom.match_indices("<figure ")
        .map(|(at, _)| &dom[at..at + dom[at..].find('>').unwrap()])
        .collect()
}

#[test]
fn report_shows_the_manifest_verdicts_in_a_browser() {
    let scratch = scratch("report-browser");
    let dir = mixed::build(&scratch);
    let out = scratch.join("check");
    let args: Vec<&OsStr> = vec![
        OsStr::new("check"),
        dir.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--report"),
        OsStr::new("--quiet"),
    ];
    let result = run(&args);
    assert_eq!(result.status.code(), Some(1));
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let report = out.join("report.html");
    let url = format!("file://{}", report.display());
    let profile = scratch.join("profile");

    let dom = browse(&profile, &url, &["--dump-dom"]);
    let counts = &m["run"]["counts"];
    for (id, key) in [
        ("n-total", "inputs"),
        ("n-ok", "ok"),
        ("n-warn", "warn"),
        ("n-fail", "fail"),
        ("n-fixable", "fixable"),
    ] {
        assert_eq!(text_of(&dom, id), counts[key].to_string(), "#{id}");
    }
    let sheet = cards(&dom);
    assert_eq!(sheet.len(), mixed::EXPECTED.len());
    assert_eq!(
        text_of(&dom, "n-shown"),
        sheet.len().to_string(),
        "script ran, nothing filtered"
    );
    // Failures first, and each bad photo's card names its failed check.
    let first_pass = sheet
        .iter()
        .position(|c| !c.contains("data-s=\"fail\""))
        .unwrap();
    assert_eq!(first_pass, counts["fail"].as_u64().unwrap() as usize);
    for e in mixed::EXPECTED {
        let at = dom
            .find(&format!(">{}<", e.file))
            .unwrap_or_else(|| panic!("no card for {}", e.file));
        let open = dom[..at].rfind("<figure ").unwrap();
        let tag = &dom[open..open + dom[open..].find('>').unwrap()];
        match e.fails {
            Some(check) => {
                assert!(tag.contains("data-s=\"fail\""), "{}: {tag}", e.file);
                assert!(tag.contains(&format!(" {check} ")), "{}: {tag}", e.file);
            }
            None => assert!(!tag.contains("data-s=\"fail\""), "{}: {tag}", e.file),
        }
    }
    assert!(dom.matches("src=\"data:image/jpeg;base64,").count() >= mixed::EXPECTED.len() - 1);

    // The filters, driven from the URL as a link would.
    let filtered = browse(
        &profile,
        &format!("{url}#status=fail&check=no_border"),
        &["--dump-dom"],
    );
    let visible: Vec<&str> = cards(&filtered)
        .into_iter()
        .filter(|c| !c.contains("hidden"))
        .collect();
    assert_eq!(visible.len(), 1, "{visible:?}");
    assert_eq!(text_of(&filtered, "n-shown"), "1");

    let shot = out.join("report.png");
    browse(
        &profile,
        &url,
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot {} bytes",
        png.len()
    );
    eprintln!("report screenshot: {}", shot.display());
}
