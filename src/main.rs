//! The `gradphoto` command: a thin layer of flags over the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use gradphoto::Options;
use gradphoto::manifest::{PhotoRecord, RecordSource, RosterSummary, RunHeader, Status};
use gradphoto::prints::{Paper, PrintSettings};
use gradphoto::{BatchConfig, Progress, run_normalize};
use gradphoto::{CheckConfig, run_check};
use gradphoto::{ColumnNames, NameTemplate, Roster};
use gradphoto::{MergeConfig, Shard, read_file_list, run_merge};
use gradphoto::{ThumbnailFn, thumbnail_from_files, write_report};
use indicatif::{ProgressBar, ProgressStyle};

const EXIT_CODES: &str = "\
Exit status:
  0  every photo was written (some may carry warnings to review)
  1  the run finished, but some photos failed (see manifest.csv and stderr)
  2  usage error, or a fatal error such as an output folder that cannot be written
       or that another run is using
130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM: the photos in hand were finished
       and the manifest lists every photo done; run again to resume. A second
       Ctrl-C stops at once";

const CHECK_EXIT_CODES: &str = "\
Exit status:
  0  every photo passes (some may carry warnings to review)
  1  some photos fail (see manifest.csv and stderr)
  2  usage error, or a fatal error such as an output folder that cannot be written
130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM, with the manifest of the photos done";

/// `println!` for lines that may carry names from file names, folders and
/// rosters: control characters are escaped ([`terminal_safe`]), so that a
/// terminal shows them instead of obeying them.
macro_rules! out {
    ($($arg:tt)*) => {
        println!("{}", terminal_safe(&format!($($arg)*)))
    };
}

/// `eprintln!` with control characters escaped, as [`out!`].
macro_rules! err {
    ($($arg:tt)*) => {
        eprintln!("{}", terminal_safe(&format!($($arg)*)))
    };
}

/// `text` with every control character (C0 and C1: escape sequences, line
/// breaks, backspaces), bidirectional-text control and line separator
/// written out as a Rust-style escape (`\u{1b}`, `\n`), so that a name
/// cannot recolour the terminal, move its cursor, forge a line of output
/// or reorder what is shown.
fn terminal_safe(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden_meaning = c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if hidden_meaning {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

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

    /// Judge existing photos against every rule, without changing them.
    ///
    /// Each photo is checked against the file rules (real baseline JPEG,
    /// 480x640, size window, no EXIF, 300 dpi, quality, no border, nothing
    /// after the end) and the picture rules (light-blue even backdrop, one
    /// person, head size and place, light), as it stands. For every photo
    /// that fails, the manifest says whether `normalize` would make it pass
    /// (tried in memory) or why not. DIR gets manifest.json and
    /// manifest.csv (and report.html with --report).
    #[command(after_help = CHECK_EXIT_CODES)]
    Check(CheckArgs),

    /// Make paper prints of a batch of portraits: sheets for a photo lab
    /// and one PDF for an office printer.
    ///
    /// Every photo goes through the same stages as for `normalize` (decode,
    /// orientation, borders, backdrop, subject, checks); instead of the
    /// registry photo, each size of the print order (default 4 x 小二寸 and
    /// 8 x 一寸) is framed by the same composition rule at its own aspect
    /// ratio, cut from the file's pixels at 300 dpi and laid out on the
    /// fewest sheets of photo paper, with cut guides and the student number
    /// (with --roster) or the file name in the margin. DIR gets
    /// `<name>-1.jpg`, `<name>-2.jpg`... per photo (JPEG, 300 dpi), prints.pdf
    /// with every sheet, and the manifest.
    #[command(after_help = EXIT_CODES)]
    Print(NormalizeArgs),

    /// Join the manifest parts of a sharded batch into one manifest.
    ///
    /// Each shard (`normalize --shard K/N`, or from the scheduler's
    /// environment) writes its photos into DIR and its manifest into
    /// DIR/.gradphoto-shards/shard-K-of-N/. This joins the parts into
    /// DIR/manifest.json, manifest.csv and manifest.jsonl (and report.html
    /// with --report), the same records one run would have written. It
    /// refuses, with exit status 2 and nothing written, when a shard is
    /// missing, unfinished or still running, was run twice with different
    /// results, when parts overlap, or were made with different settings,
    /// versions or inputs.
    #[command(after_help = MERGE_EXIT_CODES)]
    Merge(MergeArgs),
}

const MERGE_EXIT_CODES: &str = "\
Exit status:
  0  merged; every photo was written (some may carry warnings to review)
  1  merged; some photos failed (see manifest.csv)
  2  refused (a shard missing, unfinished or twice with different results,
       parts that overlap or differ in settings, version or inputs), or a
       usage or fatal error; nothing was written";

#[derive(Args, Debug)]
struct MergeArgs {
    /// Shard parts (DIR/.gradphoto-shards/shard-K-of-N), folders of them,
    /// or output folders holding them.
    #[arg(required = true, value_name = "PART_OR_DIR")]
    parts: Vec<PathBuf>,

    /// The folder the shards wrote their photos into: the merged manifest
    /// goes there.
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,

    /// Also write report.html (see `normalize --report`).
    #[arg(long)]
    report: bool,

    /// Threads for the report's thumbnails [default: all cores].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

#[derive(Args, Debug)]
struct NormalizeArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Folder for the photos and the manifest (created if missing).
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,

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

    /// The list of graduates (CSV, UTF-8 or GBK/GB18030): a photo matches
    /// the row whose file-name column or student number equals its file
    /// name (without extension). Columns are found by header: 学号/student_no
    /// (required), 身份证号/id_card, 姓名/name, 采集码/collection_code,
    /// 文件名/file. Graduates without a photo or with several, photos that
    /// match nobody and invalid ID-card numbers are listed in the manifest.
    #[arg(long, value_name = "FILE.csv")]
    roster: Option<PathBuf>,

    /// Header names for roster columns the defaults do not recognise, e.g.
    /// `student_no=XH,id_card=SFZH,name=XM,file=ZP,collection_code=CJM`.
    #[arg(long, value_name = "FIELD=HEADER,...", requires = "roster")]
    roster_columns: Option<String>,

    /// Output file names: `{id}` (the student number with --roster, else the
    /// input's file name), `{stem}`, `{student_no}`, `{id_card}` (validated:
    /// a photo whose number is invalid is not written), `{name}`,
    /// `{collection_code}`. Must end in .jpg or .jpeg.
    #[arg(long, value_name = "TEMPLATE", default_value = "{id}.jpg")]
    name: String,

    /// Also make paper prints of every photo written (sheets and a PDF in
    /// DIR/prints/), from the same decode and subject: see `gradphoto print`.
    #[arg(long)]
    print: bool,

    /// The print order per photo: SIZE=COUNT,... where SIZE is 一寸 (25x35
    /// mm), 小一寸 (22x32), 大一寸 (33x48), 小二寸 (35x45), 二寸 (35x49),
    /// 大二寸 (35x53) or WxH in millimetres.
    #[arg(long, value_name = "SIZE=COUNT,...", default_value = gradphoto::prints::DEFAULT_ORDER)]
    print_sizes: String,

    /// Photo paper for the prints: 5in (3.5x5 in, 89x127 mm) or 6in (4x6 in,
    /// 102x152 mm).
    #[arg(long, value_name = "PAPER", default_value = "6in")]
    paper: String,
}

impl NormalizeArgs {
    /// The print settings, when prints are asked for.
    fn print_settings(&self, registry_photo: bool) -> Result<Option<PrintSettings>, String> {
        if registry_photo && !self.print {
            return Ok(None);
        }
        let settings = PrintSettings {
            paper: Paper::parse(&self.paper)?,
            order: gradphoto::prints::parse_order(&self.print_sizes)?,
            registry_photo,
            ..PrintSettings::default()
        };
        settings.validate()?;
        Ok(Some(settings))
    }
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Folder for the manifest and the report (created if missing; the
    /// photos themselves are never changed or copied).
    #[arg(short, long, value_name = "DIR", default_value = "gradphoto-check")]
    out: PathBuf,
}

/// Flags `normalize` and `check` share.
#[derive(Args, Debug)]
struct CommonArgs {
    /// Photos or folders of photos (folders are searched recursively;
    /// files that are not images are passed over).
    #[arg(required_unless_present = "files_from", value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Also take the photos (or folders) listed in LIST, one path a line;
    /// `-` reads the list from stdin.
    #[arg(long, value_name = "LIST")]
    files_from: Option<PathBuf>,

    /// Take only shard K of N of the inputs (1 <= K <= N), chosen by a
    /// stable hash of each photo's path below its input folder: photos go
    /// into --out, the manifest into --out's
    /// .gradphoto-shards/shard-K-of-N/, and `gradphoto merge` joins the
    /// parts. Without it the shard comes from a Slurm job array's
    /// SLURM_ARRAY_TASK_ID (and _MIN/_MAX or _COUNT), or from a Kubernetes
    /// Indexed Job's JOB_COMPLETION_INDEX with --shard-count; `none`
    /// ignores those and runs the whole batch.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,

    /// How many shards, with Kubernetes' JOB_COMPLETION_INDEX (the Job's
    /// completions); with Slurm it must agree with the array's size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    shard_count: Option<u32>,

    /// Worker threads for the stages [default: all cores].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Smallest file size accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 30_720)]
    min_bytes: usize,

    /// Largest file size accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 100_000)]
    max_bytes: usize,

    /// Refuse images larger than this many megapixels (checked from the
    /// header, before decoding).
    #[arg(long, value_name = "MP", default_value_t = 100)]
    max_megapixels: u64,

    /// The backdrop colour photos are judged against, as sRGB `R,G,B`. The
    /// school's notice asks for light blue; the registry's own standard also
    /// allows white and light grey (240,240,240).
    #[arg(long, value_name = "R,G,B", default_value = "100,197,255", value_parser = parse_rgb)]
    backdrop: [u8; 3],

    /// Replace a backdrop of another colour, or an uneven one, by the
    /// `--backdrop` colour through a matte of the person (the person's own
    /// pixels are never changed). A photo whose person cannot be told from
    /// its backdrop is flagged and not written. Off by default.
    #[arg(long)]
    recolour: bool,

    /// Also write report.html next to the manifest: a self-contained
    /// contact sheet of every photo, failed and warned first, filterable by
    /// status and check.
    #[arg(long)]
    report: bool,

    /// No progress output; failures are still reported.
    #[arg(short, long)]
    quiet: bool,
}

impl CommonArgs {
    /// The inputs named on the command line and in --files-from.
    fn all_inputs(&self) -> Result<Vec<PathBuf>, String> {
        let mut inputs = self.inputs.clone();
        if let Some(list) = &self.files_from {
            let listed = read_file_list(list)
                .map_err(|e| format!("cannot read --files-from {}: {e}", list.display()))?;
            inputs.extend(listed);
        }
        if inputs.is_empty() {
            return Err("no inputs: the --files-from list is empty".into());
        }
        Ok(inputs)
    }

    /// This run's shard: --shard, else the scheduler's environment.
    fn shard(&self) -> Result<Option<Shard>, String> {
        let count = self.shard_count.map(|n| n as usize);
        let shard = match &self.shard {
            Some(text) => Shard::parse(text).map_err(|e| e.to_string())?,
            None => Shard::from_env(&|name| std::env::var(name).ok(), count)
                .map_err(|e| e.to_string())?,
        };
        if let (Some(count), Some(s)) = (count, &shard)
            && s.count != count
        {
            return Err(format!(
                "--shard-count {count} disagrees with the shard count {} (from {})",
                s.count, s.from
            ));
        }
        if let (Some(count), None) = (count, &shard)
            && self.shard.is_none()
        {
            return Err(format!(
                "--shard-count {count} needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or a Slurm job array; pass --shard K/{count} otherwise"
            ));
        }
        if let Some(s) = &shard {
            err!(
                "gradphoto: shard {} of {} (from {})",
                s.index,
                s.count,
                s.from
            );
        }
        Ok(shard)
    }

    /// The per-photo options and the worker count, or a usage error.
    fn options(&self) -> Result<(Options, usize), String> {
        if self.min_bytes > self.max_bytes {
            return Err(format!(
                "--min-bytes {} is larger than --max-bytes {}",
                self.min_bytes, self.max_bytes
            ));
        }
        let mut options = Options::default();
        options.encode.min_bytes = self.min_bytes;
        options.encode.max_bytes = self.max_bytes;
        options.limits.max_pixels = self.max_megapixels.saturating_mul(1_000_000);
        options.backdrop.reference = self.backdrop;
        options.recolour.enabled = self.recolour;
        let jobs = self.jobs.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Ok((options, jobs))
    }
}

/// Parses `R,G,B` with each component 0-255.
fn parse_rgb(text: &str) -> Result<[u8; 3], String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [r, g, b] = parts.as_slice() else {
        return Err(format!("expected R,G,B such as 100,197,255, got {text:?}"));
    };
    let component = |v: &str| {
        v.parse::<u8>()
            .map_err(|_| format!("{v:?} is not a colour component from 0 to 255"))
    };
    Ok([component(r)?, component(g)?, component(b)?])
}

fn main() -> ExitCode {
    gradphoto::tune_malloc();
    let cli = Cli::parse();
    let signals = match catch_signals() {
        Ok(s) => s,
        Err(e) => return usage_error(&format!("cannot set up signal handling: {e}")),
    };
    match cli.command {
        Command::Normalize(args) => normalize(args, signals, true),
        Command::Print(args) => normalize(args, signals, false),
        Command::Check(args) => check(args, signals),
        Command::Merge(args) => merge(args),
    }
}

/// The first SIGINT (Ctrl-C) or SIGTERM is stored here (its number), and
/// the batch, which asks between photos, stops: the photos in hand are
/// finished, the manifests and the report written, and the exit status is
/// 128 + the signal (130, 143). A second one ends the process at once with
/// that status: what was written stays whole (every write is atomic, the
/// journal is read back line by line) and the rerun resumes from it.
fn catch_signals() -> std::io::Result<Arc<AtomicUsize>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let received = Arc::new(AtomicUsize::new(0));
    let again = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // In this order: the shutdown sees `again` still false the first
        // time, and the next handler sets it.
        flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&again))?;
        flag::register(signal, Arc::clone(&again))?;
        flag::register_usize(signal, Arc::clone(&received), signal as usize)?;
    }
    Ok(received)
}

/// The name of a signal [`catch_signals`] stored.
fn signal_name(number: usize) -> Option<&'static str> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match i32::try_from(number).ok()? {
        SIGINT => Some("SIGINT"),
        SIGTERM => Some("SIGTERM"),
        _ => None,
    }
}

fn usage_error(message: &str) -> ExitCode {
    err!("gradphoto: {message}");
    ExitCode::from(2)
}

/// `normalize`, or with `registry_photo` false the `print` command.
fn normalize(args: NormalizeArgs, signals: Arc<AtomicUsize>, registry_photo: bool) -> ExitCode {
    let common = &args.common;
    let (mut options, jobs) = match common.options() {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    options.encode.pad_to_min = args.pad_to_min;
    options.print = match args.print_settings(registry_photo) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let name_template = match NameTemplate::parse(&args.name) {
        Ok(t) => t,
        Err(e) => return usage_error(&e.to_string()),
    };
    let roster = match &args.roster {
        None => None,
        Some(path) => {
            let columns = match ColumnNames::parse(args.roster_columns.as_deref().unwrap_or("")) {
                Ok(c) => c,
                Err(e) => return usage_error(&e.to_string()),
            };
            match Roster::read(path, &columns) {
                Ok(r) => Some(r),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
    };
    if let Err(e) = name_template.check_against(roster.as_ref()) {
        return usage_error(&e.to_string());
    }
    let (inputs, shard) = match common.all_inputs().and_then(|i| Ok((i, common.shard()?))) {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    // A shard's manifest and report go into its part of the folder.
    let book = shard
        .as_ref()
        .map_or_else(|| args.out.clone(), |s| s.part_dir(&args.out));
    let config = BatchConfig {
        inputs,
        shard,
        out_dir: args.out.clone(),
        jobs,
        overwrite: args.overwrite,
        allow_output_in_input: args.allow_output_in_input,
        options,
        roster,
        name_template,
    };
    let reporter = Reporter::new(common.quiet, signals);
    let started = Instant::now();
    match run_normalize(&config, &reporter) {
        Ok(records) => {
            reporter.finish();
            print_summary(records.run(), &book, started.elapsed());
            if let Some(roster) = &records.run().roster {
                print_roster(roster);
            }
            if common.report {
                let thumbnail =
                    |r: &PhotoRecord| thumbnail_from_files(r, &config.out_dir, &config.options);
                if let Err(e) = write_and_announce(&book, &records, &thumbnail, jobs) {
                    return e;
                }
            }
            exit_for(
                records.run(),
                "run the same command again to resume: the photos done are kept",
            )
        }
        Err(e) => {
            reporter.finish();
            err!("gradphoto: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(args: CheckArgs, signals: Arc<AtomicUsize>) -> ExitCode {
    let common = &args.common;
    let (options, jobs) = match common.options() {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    let (inputs, shard) = match common.all_inputs().and_then(|i| Ok((i, common.shard()?))) {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    let book = shard
        .as_ref()
        .map_or_else(|| args.out.clone(), |s| s.part_dir(&args.out));
    let config = CheckConfig {
        inputs,
        shard,
        out_dir: args.out.clone(),
        jobs,
        options,
        thumbnails: common.report,
    };
    let reporter = Reporter::new(common.quiet, signals);
    let started = Instant::now();
    match run_check(&config, &reporter) {
        Ok(run) => {
            reporter.finish();
            let c = &run.records.run().counts;
            let secs = started.elapsed().as_secs_f64();
            out!(
                "{} photos: {} pass ({} with warnings to review), {} fail ({} of them normalize can fix)",
                c.inputs,
                c.ok + c.warn,
                c.warn,
                c.fail,
                c.fixable
            );
            out!("time {secs:.1} s");
            out!(
                "results: {}  (manifest.json, manifest.csv)",
                book.join("").display()
            );
            let thumbnail = |r: &PhotoRecord| run.thumbnails.get(&r.input).cloned();
            if common.report
                && let Err(e) = write_and_announce(&book, &run.records, &thumbnail, jobs)
            {
                return e;
            }
            exit_for(
                run.records.run(),
                "run the same command again to check every photo",
            )
        }
        Err(e) => {
            reporter.finish();
            err!("gradphoto: {e}");
            ExitCode::from(2)
        }
    }
}

fn merge(args: MergeArgs) -> ExitCode {
    let config = MergeConfig {
        parts: args.parts.clone(),
        out_dir: args.out.clone(),
    };
    let started = Instant::now();
    let records = match run_merge(&config) {
        Ok(r) => r,
        Err(e) => {
            err!("gradphoto: merge refused: {e}");
            return ExitCode::from(2);
        }
    };
    let run = records.run();
    let c = &run.counts;
    out!(
        "merged {} shards: {} photos, {} written ({} ok, {} with warnings to review), {} failed",
        run.merged.as_ref().map_or(0, |m| m.shards),
        c.inputs,
        c.ok + c.warn,
        c.ok,
        c.warn,
        c.fail
    );
    if let Some(roster) = &run.roster {
        print_roster(roster);
    }
    out!("time {:.1} s", started.elapsed().as_secs_f64());
    out!(
        "results: {}  (manifest.json, manifest.csv)",
        args.out.join("").display()
    );
    if args.report {
        let options: Options = serde_json::from_value(run.settings.clone()).unwrap_or_default();
        let jobs = args.jobs.map(usize::from).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let thumbnail = |r: &PhotoRecord| thumbnail_from_files(r, &args.out, &options);
        if let Err(e) = write_and_announce(&args.out, &records, &thumbnail, jobs) {
            return e;
        }
    }
    if c.fail > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The exit status of a run that went through (0 or 1), or 128 + the
/// signal that stopped it, after saying how to go on.
fn exit_for(run: &RunHeader, go_on: &str) -> ExitCode {
    if let Some(signal) = &run.interrupted {
        err!(
            "gradphoto: stopped by {signal} after {} photos; the manifest lists them. To finish, {go_on}.",
            run.counts.inputs
        );
        let number = match signal.as_str() {
            "SIGTERM" => signal_hook::consts::SIGTERM,
            _ => signal_hook::consts::SIGINT,
        };
        return ExitCode::from(128 + number as u8);
    }
    if run.counts.fail > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn write_and_announce(
    out: &std::path::Path,
    records: &dyn RecordSource,
    thumbnail: &ThumbnailFn<'_>,
    jobs: usize,
) -> Result<(), ExitCode> {
    match write_report(out, records, thumbnail, jobs) {
        Ok(path) => {
            out!("report: {}", path.display());
            Ok(())
        }
        Err(e) => {
            err!("gradphoto: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// The roster's mismatches, a few of each on the terminal; the manifest
/// has them all.
fn print_roster(s: &RosterSummary) {
    out!(
        "roster {}: {} graduates, {} with one photo, {} with no photo, {} with several, {} photos matching nobody, {} invalid ID-card numbers, {} ID-card numbers on several rows",
        s.file,
        s.rows,
        s.matched,
        s.no_photo.len(),
        s.multiple_photos.len(),
        s.unmatched_photos.len(),
        s.invalid_ids.len(),
        s.duplicate_id_cards.len()
    );
    const SHOWN: usize = 10;
    let show = |title: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        out!("  {title}:");
        for item in items.iter().take(SHOWN) {
            out!("    {item}");
        }
        if items.len() > SHOWN {
            out!(
                "    ... and {} more (see manifest.json)",
                items.len() - SHOWN
            );
        }
    };
    for (title, items) in s.mismatch_lists() {
        show(title, items);
    }
}

fn print_summary(run: &RunHeader, out: &std::path::Path, elapsed: Duration) {
    let c = &run.counts;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        c.inputs as f64 / secs
    } else {
        0.0
    };
    out!(
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
    if c.from_earlier_runs > 0 {
        out!(
            "the manifest also lists {} photos made in this folder by earlier runs (marked from_run)",
            c.from_earlier_runs
        );
    }
    if c.copied > 0 {
        out!(
            "{} photos already met every rule and were copied unchanged",
            c.copied
        );
    }
    if c.skipped_hidden > 0 {
        out!(
            "{} hidden files or folders (names starting with a dot) passed over",
            c.skipped_hidden
        );
    }
    out!("time {secs:.1} s, {rate:.1} photos/s");
    out!(
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
    /// The signal received, 0 for none (see [`catch_signals`]).
    signals: Arc<AtomicUsize>,
}

struct PlainProgress {
    total: usize,
    done: usize,
    last_line: Instant,
}

impl Reporter {
    fn new(quiet: bool, signals: Arc<AtomicUsize>) -> Self {
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
            signals,
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(terminal_safe(line)),
            None => err!("{line}"),
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
            err!("gradphoto: {}/{} photos done", p.done, p.total);
        }
    }

    fn note(&self, message: &str) {
        self.say(&format!("gradphoto: {message}"));
    }

    fn stop_requested(&self) -> Option<&'static str> {
        signal_name(self.signals.load(Ordering::Relaxed))
    }
}
