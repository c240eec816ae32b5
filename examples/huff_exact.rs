//! Checks our Huffman decoder (src/entropy.rs) against plain libjpeg on every
//! JPEG under the given folders: each file is decoded at the scale the
//! pipeline's first pass picks and at full size, with and without our
//! decoder, and the samples must be identical byte for byte. Files our
//! decoder does not take (progressive, multi-scan, ...) and files it gives
//! up on (then the pipeline decodes them with plain libjpeg) are counted,
//! with the reasons. Each photo is also cut off 60% into the file (EOI
//! appended) and decoded at full size: libjpeg conceals the missing part,
//! ours must give up on it (or match).
//!
//! `cargo run --release --example huff_exact -- /tmp/c80 /work/cohort500 --jobs 2`
//! Exit status 1 if any decode differs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result};
use clap::Parser;
use gradphoto::Options;
use gradphoto::stages::discover;
use gradphoto::stages::{DriverError, decode_samples};
use gradphoto::stages::{ImageFormat, Sniffed, decode_reduced, sniff};
use rayon::prelude::*;

#[derive(Parser)]
struct Args {
    inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

#[derive(Default)]
struct Tally {
    decodes: usize,
    fast: usize,
    identical: usize,
    differ: Vec<String>,
    outcome: BTreeMap<String, usize>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let options = Options::default();
    let reduce = options.reduce.first_decode(&options.composition);
    let photos = discover(&args.inputs, None).photos;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs)
        .build()
        .context("thread pool")?;
    let tally = Mutex::new(Tally::default());
    let files = Mutex::new(0usize);
    pool.install(|| {
        photos.par_iter().for_each(|path| {
            let Ok(bytes) = std::fs::read(path) else {
                return;
            };
            if sniff(&bytes) != Sniffed::Supported(ImageFormat::Jpeg) {
                return;
            }
            if let Ok(mut n) = files.lock() {
                *n += 1;
            }
            let matte = options.backdrop.reference;
            // The scale the pipeline's first pass decodes at (a file the
            // pipeline refuses is still compared, at full size only).
            let mut scales = vec![8];
            if let Ok(d) = decode_reduced(&bytes, &options.limits, matte, reduce)
                && d.scale.numerator() != 8
            {
                scales.push(d.scale.numerator());
            }
            // The same photo cut off 60% into the file, an EOI appended:
            // libjpeg conceals the rest, ours must hand it back.
            let mut cut = bytes[..bytes.len() * 3 / 5].to_vec();
            while cut.last() == Some(&0xFF) {
                cut.pop();
            }
            cut.extend_from_slice(&[0xFF, 0xD9]);
            let mut jobs: Vec<(&[u8], &str, u32)> =
                scales.iter().map(|&s| (&bytes[..], "", s)).collect();
            jobs.push((&cut, " (cut at 60%)", 8));
            for (bytes, label, scale) in jobs {
                let plain = decode_samples(bytes, scale, false);
                let fast = decode_samples(bytes, scale, true);
                let outcome = match &fast {
                    Ok(_) => format!("fast{label}"),
                    Err(DriverError::NotEligible) => format!("not eligible (plain libjpeg){label}"),
                    Err(DriverError::Fallback(why)) => format!("fallback: {why}{label}"),
                    Err(DriverError::Libjpeg(e)) => {
                        format!("libjpeg error in fast run: {e}{label}")
                    }
                };
                let Ok(mut t) = tally.lock() else {
                    return;
                };
                t.decodes += 1;
                *t.outcome.entry(outcome).or_default() += 1;
                match (&plain, &fast) {
                    (Ok(p), Ok(f)) => {
                        t.fast += 1;
                        if p == f {
                            t.identical += 1;
                        } else {
                            t.differ
                                .push(format!("{}{label} at {scale}/8", path.display()));
                        }
                    }
                    (Err(_), Ok(_)) => t.differ.push(format!(
                        "{}{label} at {scale}/8: plain failed, fast did not",
                        path.display()
                    )),
                    _ => {}
                }
            }
        });
    });
    let t = tally
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let files = files
        .into_inner()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    println!("jpeg files: {files}, decodes compared: {}", t.decodes);
    for (outcome, n) in &t.outcome {
        println!("  {n:5}  {outcome}");
    }
    println!(
        "decoded by ours: {}, identical to plain libjpeg: {}, different: {}",
        t.fast,
        t.identical,
        t.differ.len()
    );
    for d in &t.differ {
        println!("DIFFERS: {d}");
    }
    if !t.differ.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
