//! The `gradphoto` command: a thin layer of flags over the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use gradphoto::manifest::{Manifest, PhotoRecord, Status};
use gradphoto::photo::Options;
use gradphoto::pipeline::{BatchConfig, Progress, run_normalize};
use indicatif::{ProgressBar, ProgressStyle};

const EXIT_CODES: &str = "\
Exit status:
  0  every photo was written (some may carry warnings to review)
  1  the run finished, but some photos failed (see manifest.csv and stderr)
  2  usage error, or a fatal error such as an output folder that cannot be written";

/// Turns graduation portraits into photos the national degree registry
/// (CHSI, 学信网) accepts: 480x640 baseline JPEG of 30-100 KB on a light-blue
/// backdrop, no border, the subject well placed; plus a manifest that says
/// what happened to every photo.
#[derive(Parser, Debug)]
#[command(name = "gradphoto", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make registry-ready photos from a batch of portraits.
    ///
    /// Every input is decoded (JPEG or PNG, by content), turned upright by its
    /// EXIF orientation, stripped of scan/export borders, cropped to 3:4
    /// around the subject, resized to 480x640, and encoded as a baseline JPEG
    /// at the highest quality that fits the size window. The bytes are
    /// re-decoded and checked against every rule before they are written.
    /// DIR gets one `<name>.jpg` per photo plus manifest.json, manifest.csv
    /// and manifest.jsonl. Running the same command again resumes: photos
    /// already done with the same settings are kept, the rest are made.
    #[command(after_help = EXIT_CODES)]
    Normalize(NormalizeArgs),
}

#[derive(Args, Debug)]
struct NormalizeArgs {
    /// Photos or folders of photos (folders are searched recursively;
    /// files that are not images are passed over).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Folder for the photos and the manifest (created if missing).
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,

    /// Worker threads [default: all cores].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Smallest file size accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 30_720)]
    min_bytes: usize,

    /// Largest file size accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100_000)]
    max_bytes: usize,

    /// When even quality 100 is smaller than --min-bytes, pad the file with a
    /// JPEG comment segment (pixels untouched) instead of failing the photo.
    #[arg(long)]
    pad_to_min: bool,

    /// Replace existing output files that differ from what this run makes.
    #[arg(long)]
    overwrite: bool,

    /// Allow --out to be one of the input folders.
    #[arg(long)]
    allow_output_in_input: bool,

    /// Refuse images larger than this many megapixels (checked from the
    /// header, before decoding).
    #[arg(long, value_name = "MP", default_value_t = 100)]
    max_megapixels: u64,

    /// No progress output; failures are still reported.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Normalize(args) => normalize(args),
    }
}

fn normalize(args: NormalizeArgs) -> ExitCode {
    if args.min_bytes > args.max_bytes {
        eprintln!(
            "gradphoto: --min-bytes {} is larger than --max-bytes {}",
            args.min_bytes, args.max_bytes
        );
        return ExitCode::from(2);
    }
    let mut options = Options::default();
    options.encode.min_bytes = args.min_bytes;
    options.encode.max_bytes = args.max_bytes;
    options.encode.pad_to_min = args.pad_to_min;
    options.limits.max_pixels = args.max_megapixels.saturating_mul(1_000_000);
    let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let config = BatchConfig {
        inputs: args.inputs,
        out_dir: args.out.clone(),
        jobs,
        overwrite: args.overwrite,
        allow_output_in_input: args.allow_output_in_input,
        options,
    };
    let reporter = Reporter::new(args.quiet);
    let started = Instant::now();
    match run_normalize(&config, &reporter) {
        Ok(manifest) => {
            reporter.finish();
            print_summary(&manifest, &args.out, started.elapsed());
            if manifest.run.counts.fail > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            reporter.finish();
            eprintln!("gradphoto: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_summary(manifest: &Manifest, out: &std::path::Path, elapsed: Duration) {
    let c = &manifest.run.counts;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        c.inputs as f64 / secs
    } else {
        0.0
    };
    println!(
        "{} photos: {} written ({} ok, {} with warnings to review), {} failed{}{}",
        c.inputs,
        c.ok + c.warn,
        c.ok,
        c.warn,
        c.fail,
        if c.resumed > 0 {
            format!(", {} kept from an earlier run", c.resumed)
        } else {
            String::new()
        },
        if c.skipped_not_images > 0 {
            format!("; {} non-image files passed over", c.skipped_not_images)
        } else {
            String::new()
        },
    );
    println!("time {secs:.1} s, {rate:.1} photos/s");
    println!(
        "results: {}  (manifest.json, manifest.csv)",
        out.join("").display()
    );
}

/// Progress on stderr: a bar on a terminal, plain lines otherwise (logs,
/// CI), and one line for every photo that fails or warns.
struct Reporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    plain: Mutex<PlainProgress>,
}

struct PlainProgress {
    total: usize,
    done: usize,
    last_line: Instant,
}

impl Reporter {
    fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} photos  {per_sec}  ETA {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Reporter {
            bar,
            quiet,
            plain: Mutex::new(PlainProgress {
                total: 0,
                done: 0,
                last_line: Instant::now(),
            }),
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn started(&self, total: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
        }
        if let Ok(mut p) = self.plain.lock() {
            p.total = total;
        }
    }

    fn finished_photo(&self, record: &PhotoRecord) {
        match record.status() {
            Status::Fail => self.say(&format!(
                "gradphoto: FAIL {}: {}",
                record.input,
                record.reasons().join("; ")
            )),
            Status::Warn if !self.quiet => self.say(&format!(
                "gradphoto: warn {}: {}",
                record.input,
                record.reasons().join("; ")
            )),
            _ => {}
        }
        if let Some(bar) = &self.bar {
            bar.inc(1);
            return;
        }
        let Ok(mut p) = self.plain.lock() else { return };
        p.done += 1;
        let due = p.last_line.elapsed() >= Duration::from_secs(5) || p.done == p.total;
        if !self.quiet && due {
            p.last_line = Instant::now();
            eprintln!("gradphoto: {}/{} photos done", p.done, p.total);
        }
    }

    fn note(&self, message: &str) {
        self.say(&format!("gradphoto: {message}"));
    }
}
