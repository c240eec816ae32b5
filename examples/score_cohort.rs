//! Scores a gradphoto run against a synthetic cohort's `truth.json`: border
//! removed per side, backdrop colour, where the true crown, eyes and face
//! landed in each output, and whether every unfixable photo was flagged for
//! the right reason. Prints a summary table and the photos that went wrong;
//! exits non-zero when any did.
//!
//! Usage: score_cohort COHORT_DIR OUT_DIR (OUT_DIR holds manifest.json).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use gradphoto::manifest::{JSON_NAME, Manifest};
use gradphoto::testkit::score::{Tolerances, score_photo, summarise};
use gradphoto::testkit::synth::Truth;
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(about = "Score a gradphoto run against a synthetic cohort's truth")]
struct Args {
    /// Folder with the cohort's photos and truth.json.
    cohort: PathBuf,
    /// The `--out` folder of `gradphoto normalize` (holds manifest.json).
    out: PathBuf,
    /// List at most this many failing photos.
    #[arg(long, default_value_t = 60)]
    show: usize,
}

/// One entry of truth.json; the generator's other fields are not needed.
#[derive(Deserialize)]
struct Entry {
    file: String,
    truth: Truth,
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_owned())
}

fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let truth_path = args.cohort.join("truth.json");
    let entries: Vec<Entry> = serde_json::from_slice(
        &std::fs::read(&truth_path).with_context(|| format!("reading {}", truth_path.display()))?,
    )
    .with_context(|| format!("parsing {}", truth_path.display()))?;
    let manifest_path = args.out.join(JSON_NAME);
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let records: BTreeMap<String, _> = manifest
        .photos
        .iter()
        .map(|r| (file_name(&r.input), r))
        .collect();

    let tol = Tolerances::default();
    let mut scores = Vec::new();
    let mut missing = Vec::new();
    for e in &entries {
        match records.get(&e.file) {
            Some(r) => scores.push(score_photo(&e.file, r, &e.truth, &tol)),
            None => missing.push(e.file.clone()),
        }
    }
    let summary = summarise(&scores);
    print!("{}", summary.table());
    if !missing.is_empty() {
        println!("{} photos have no record: {:?}", missing.len(), missing);
    }
    let failing: Vec<_> = scores.iter().filter(|s| !s.failures.is_empty()).collect();
    for s in failing.iter().take(args.show) {
        println!("FAIL {}: {}", s.file, s.failures.join("; "));
    }
    if failing.len() > args.show {
        println!("... and {} more", failing.len() - args.show);
    }
    if failing.is_empty() && missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} of {} photos scored wrong, {} missing",
            failing.len(),
            entries.len(),
            missing.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
