//! Times one stage alone on a real cohort: every photo is decoded as the
//! pipeline's first pass does (same reduction, orientation applied), kept in
//! memory, and then the chosen stage runs over all of them `--reps` times on
//! one thread. Where `benches/` measures a stage on one fixed fixture, this
//! measures it on the mix of sizes, frames and clothes a cohort has, so a
//! change to a stage can be weighed on what it will really see (and run
//! under `valgrind --tool=callgrind` for instruction counts).
//!
//! `cargo run --release --example stage_probe -- border /tmp/c80 --reps 5`

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Parser;
use gradphoto::CompositionRule;
use gradphoto::Options;
use gradphoto::stages::Backdrop;
use gradphoto::stages::RgbImage;
use gradphoto::stages::WorkingCopy;
use gradphoto::stages::apply_orientation;
use gradphoto::stages::decode_reduced;
use gradphoto::stages::discover;
use gradphoto::stages::encode_to_window;
use gradphoto::stages::estimate_backdrop;
use gradphoto::stages::find_borders;
use gradphoto::stages::judge_portrait;
use gradphoto::stages::locate_subject;
use gradphoto::stages::resize_crop;
use gradphoto::stages::verify_written;
use gradphoto::stages::{CropPlan, centred_crop, plan_crop};

#[derive(Parser)]
struct Args {
    /// `border`, `subject` (working copy, backdrop, subject), `resize` (the
    /// planned crop scaled to the output), `portrait` (its checks on that
    /// output), `encode` (a centre crop resized to the output, then the
    /// size-window search) or `verify` (the pipeline's checks on what that encode wrote).
    stage: String,
    inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = 3)]
    reps: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = Options::default();
    let reduce = options.reduce.first_decode(&options.composition);
    let mut images: Vec<RgbImage> = Vec::new();
    for path in discover(&args.inputs, None).photos {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let matte = options.backdrop.reference;
        if let Ok(d) = decode_reduced(&bytes, &options.limits, matte, reduce) {
            images.push(apply_orientation(d.image, d.orientation));
        }
    }
    let rule = &options.composition;
    if matches!(args.stage.as_str(), "encode" | "verify") {
        images = images
            .iter()
            .filter_map(|img| {
                let rect = centred_crop(img.width(), img.height(), rule);
                resize_crop(img, rect, rule.out_width, rule.out_height).ok()
            })
            .collect();
    }
    // Resize and portrait run where the pipeline runs them: on the crop the
    // subject stage planned (any upscale allowed, as the pipeline's finer
    // decode would), so what they see is set up first and not timed.
    let planned: Vec<(&RgbImage, Backdrop, CropPlan)> =
        if matches!(args.stage.as_str(), "resize" | "portrait") {
            let rule = CompositionRule {
                max_upscale: f64::INFINITY,
                ..rule.clone()
            };
            images
                .iter()
                .filter_map(|img| {
                    let copy = WorkingCopy::new(img, options.work_size);
                    let backdrop = estimate_backdrop(&copy, &options.backdrop).ok()?;
                    let subject = locate_subject(&copy, &backdrop, &options.subject).ok()?;
                    let plan = plan_crop(img.width(), img.height(), &subject, &rule).ok()?;
                    Some((img, backdrop, plan))
                })
                .collect()
        } else {
            Vec::new()
        };
    let outputs: Vec<RgbImage> = if args.stage == "portrait" {
        planned
            .iter()
            .filter_map(|(img, _, plan)| {
                resize_crop(img, plan.rect, rule.out_width, rule.out_height).ok()
            })
            .collect()
    } else {
        Vec::new()
    };
    // Verify runs on what the encode stage writes for each centre crop.
    let encoded: Vec<Vec<u8>> = if args.stage == "verify" {
        images
            .iter()
            .filter_map(|img| encode_to_window(img, &options.encode).ok())
            .map(|e| e.bytes)
            .collect()
    } else {
        Vec::new()
    };
    let rules = options.output_rules();
    let mut checksum = 0u64;
    let start = Instant::now();
    let hash = |v: &dyn std::fmt::Debug| {
        let mut hasher = DefaultHasher::new();
        format!("{v:?}").hash(&mut hasher);
        hasher.finish() >> 16
    };
    for _ in 0..args.reps {
        if args.stage == "resize" {
            for (img, _, plan) in &planned {
                let out = resize_crop(img, plan.rect, rule.out_width, rule.out_height);
                checksum += out.map_or(0, |o| {
                    let mut hasher = DefaultHasher::new();
                    o.as_bytes().hash(&mut hasher);
                    hasher.finish() >> 16
                });
            }
            continue;
        }
        if args.stage == "verify" {
            for bytes in &encoded {
                checksum += hash(&verify_written(bytes, &rules).checks);
            }
            continue;
        }
        if args.stage == "portrait" {
            for ((_, backdrop, plan), out) in planned.iter().zip(&outputs) {
                let checks = judge_portrait(out, plan, backdrop, &options.portrait);
                checksum += hash(&checks);
            }
            continue;
        }
        for img in &images {
            checksum += match args.stage.as_str() {
                "border" => {
                    let b = find_borders(img, &options.border);
                    u64::from(b.top + b.bottom + b.left + b.right)
                }
                "subject" => {
                    // Every field of both results (floats to the last bit,
                    // errors too) goes into the checksum, so a change that
                    // moves any of them shows, not just one that moves the
                    // crown. Sixteen bits of headroom keep the sum from
                    // overflowing over 65,536 runs.
                    let copy = WorkingCopy::new(img, options.work_size);
                    let backdrop = estimate_backdrop(&copy, &options.backdrop);
                    let subject = backdrop
                        .as_ref()
                        .map(|b| locate_subject(&copy, b, &options.subject));
                    let mut hasher = DefaultHasher::new();
                    format!("{backdrop:?}{subject:?}").hash(&mut hasher);
                    hasher.finish() >> 16
                }
                "encode" => {
                    encode_to_window(img, &options.encode).map_or(0, |e| u64::from(e.quality))
                }
                other => bail!("unknown stage {other}"),
            };
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let per_rep = if !planned.is_empty() {
        planned.len()
    } else if args.stage == "verify" {
        encoded.len()
    } else {
        images.len()
    };
    let runs = f64::from(args.reps) * per_rep as f64;
    println!(
        "stage={} images={} reps={} ms_per_image={:.3} checksum={checksum}",
        args.stage,
        per_rep,
        args.reps,
        secs * 1000.0 / runs.max(1.0)
    );
    Ok(())
}
