//! Judges a folder of finished photos, whoever made them, by the same
//! yardstick: SPEC §1 (gradphoto's verify stage plus a pixel check for a
//! border) and the composition rule (the subject found in the 480x640 photo
//! must have its crown, eye line, face width and centre inside the rule's
//! ranges). Used by `scripts/bench.sh` on gradphoto's and its peers' output.
//!
//! Prints `outputs=N spec_ok=N composition_ok=N valid=N` (valid: both)
//! and, with
//! `--list`, one line per invalid photo with the first reason.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use gradphoto::Options;
use gradphoto::manifest::Verdict;
use gradphoto::stages::WorkingCopy;
use gradphoto::stages::decode;
use gradphoto::stages::estimate_backdrop;
use gradphoto::stages::find_borders;
use gradphoto::stages::locate_subject;
use rayon::prelude::*;

#[derive(Parser)]
struct Args {
    dir: PathBuf,
    #[arg(long)]
    list: bool,
}

/// Whether the photo meets the composition rule, and the first reason it
/// is not acceptable (`None` when it is).
fn judge(path: &Path, options: &Options) -> (bool, Option<String>) {
    let Ok(bytes) = std::fs::read(path) else {
        return (false, Some("unreadable".into()));
    };
    let report = gradphoto::stages::verify_jpeg(&bytes, &options.output_rules());
    let spec_failure = report
        .checks
        .iter()
        .find(|c| c.verdict == Verdict::Fail)
        .map(|c| format!("{}: {}", c.name, c.reason));
    let decoded = match decode(&bytes, &options.limits, options.backdrop.reference) {
        Ok(d) => d.image,
        Err(e) => return (false, Some(format!("decode: {e}"))),
    };
    let borders = find_borders(&decoded, &options.border);
    let spec_failure =
        spec_failure.or_else(|| (!borders.is_none()).then(|| format!("border found: {borders:?}")));
    let rule = &options.composition;
    let copy = WorkingCopy::new(&decoded, options.work_size);
    let composition = estimate_backdrop(&copy, &options.backdrop)
        .map_err(|e| e.to_string())
        .and_then(|b| locate_subject(&copy, &b, &options.subject).map_err(|e| e.to_string()))
        .and_then(|s| {
            let inside = |v: f64, r: (f64, f64)| v >= r.0 && v <= r.1;
            let offset = f64::from(s.center_x) + 0.5 - f64::from(rule.out_width) / 2.0;
            let failures = [
                (!inside(f64::from(s.crown_y), rule.crown_range))
                    .then(|| format!("crown at {} px", s.crown_y)),
                (!inside(f64::from(s.eye_line_y), rule.eye_range))
                    .then(|| format!("eye line at {} px", s.eye_line_y)),
                (!inside(f64::from(s.face_width), rule.face_range))
                    .then(|| format!("face {} px wide", s.face_width)),
                (offset.abs() > rule.centre_tolerance)
                    .then(|| format!("head {offset:.0} px off centre")),
            ];
            match failures.into_iter().flatten().next() {
                Some(f) => Err(f),
                None => Ok(()),
            }
        });
    let composition_ok = composition.is_ok();
    let why = spec_failure.or_else(|| composition.err().map(|f| format!("composition: {f}")));
    (composition_ok, why)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = Options::default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    files.sort();
    let verdicts: Vec<(bool, Option<String>)> =
        files.par_iter().map(|p| judge(p, &options)).collect();
    let composition_ok = verdicts.iter().filter(|v| v.0).count();
    let spec_ok = verdicts
        .iter()
        .filter(|v| v.1.as_ref().is_none_or(|r| r.starts_with("composition")))
        .count();
    let valid = verdicts.iter().filter(|v| v.1.is_none()).count();
    if args.list {
        for (path, (_, why)) in files.iter().zip(&verdicts) {
            if let Some(why) = why {
                println!("invalid {}: {why}", path.display());
            }
        }
    }
    println!(
        "outputs={} spec_ok={spec_ok} composition_ok={composition_ok} valid={valid}",
        files.len()
    );
    Ok(())
}
