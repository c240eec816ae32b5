//! Measures what `scripts/bench.sh` needs beyond the CLI:
//!
//! - `decode`: the floor. Reads and decodes every photo exactly as the first
//!   pass of `normalize` does (same reduction), on `--jobs` threads, and
//!   nothing else.
//! - `normalize`: the whole pipeline with the decode reduction capped by
//!   `--max-factor` (1 = always full size), to show what reducing buys.
//!
//! Both print one line of `key=value` pairs for the script to read.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gradphoto::Options;
use gradphoto::stages::decode_reduced;
use gradphoto::stages::discover;
use gradphoto::{BatchConfig, Silent, run_normalize};
use rayon::prelude::*;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    Decode {
        inputs: Vec<PathBuf>,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long, default_value_t = 8)]
        max_factor: u32,
    },
    Normalize {
        inputs: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        #[arg(long, default_value_t = 8)]
        max_factor: u32,
    },
}

fn main() -> Result<()> {
    // The floor runs under the same allocator settings as the CLI.
    gradphoto::tune_malloc();
    match Args::parse().what {
        What::Decode {
            inputs,
            jobs,
            max_factor,
        } => {
            let mut options = Options::default();
            options.reduce.max_factor = max_factor;
            let reduce = options.reduce.first_decode(&options.composition);
            let photos = discover(&inputs, None).photos;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(jobs)
                .build()
                .context("thread pool")?;
            let start = Instant::now();
            let decoded: Vec<bool> = pool.install(|| {
                photos
                    .par_iter()
                    .map(|p| {
                        std::fs::read(p).ok().is_some_and(|bytes| {
                            let matte = options.backdrop.reference;
                            decode_reduced(&bytes, &options.limits, matte, reduce).is_ok()
                        })
                    })
                    .collect()
            });
            let secs = start.elapsed().as_secs_f64();
            let ok = decoded.iter().filter(|&&d| d).count();
            println!(
                "photos={} decoded={ok} seconds={secs:.3} photos_per_s={:.2}",
                photos.len(),
                photos.len() as f64 / secs
            );
        }
        What::Normalize {
            inputs,
            out,
            jobs,
            max_factor,
        } => {
            let mut options = Options::default();
            options.reduce.max_factor = max_factor;
            let config = BatchConfig {
                inputs,
                out_dir: out,
                jobs,
                overwrite: true,
                allow_output_in_input: false,
                options,
                roster: None,
                name_template: Default::default(),
                shard: None,
            };
            let start = Instant::now();
            let manifest = run_normalize(&config, &Silent)?;
            let secs = start.elapsed().as_secs_f64();
            let n = manifest.run().counts.inputs;
            println!(
                "photos={n} seconds={secs:.3} photos_per_s={:.2}",
                n as f64 / secs
            );
        }
    }
    Ok(())
}
