//! Wires the stages together for a batch: a reader thread, a pool of
//! workers running the per-photo stages, and a writer that writes outputs
//! and the manifest as photos finish.
//!
//! Photos stream through bounded channels, so memory is bounded by the
//! number of workers, never by the size of the batch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::bounded;
use sha2::{Digest, Sha256};

use crate::discover::{Discovery, discover};
use crate::manifest::RosterFields;
use crate::manifest::{self, Manifest, ManifestWriter, PhotoRecord, RunHeader, Status};
use crate::output::{WriteError, write_file_atomically};
use crate::photo::{Options, StageTimings, normalize_photo};
use crate::roster::{NameTemplate, Roster, assign_names};

/// Everything a `normalize` run needs besides the per-photo options.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    pub inputs: Vec<PathBuf>,
    pub out_dir: PathBuf,
    /// Worker threads for the CPU stages.
    pub jobs: usize,
    /// Replace outputs that exist and differ from what this run makes.
    pub overwrite: bool,
    /// Allow the output folder to be an input folder.
    pub allow_output_in_input: bool,
    pub options: Options,
    /// Graduates to match photos to, and how outputs are named.
    pub roster: Option<Roster>,
    pub name_template: NameTemplate,
}

/// What the caller hears as the batch goes on (the CLI draws progress).
pub trait Progress: Sync {
    fn started(&self, _total: usize) {}
    fn finished_photo(&self, _record: &PhotoRecord) {}
    fn note(&self, _message: &str) {}
}

/// A progress sink that says nothing.
pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("no input photos found")]
    NoInputs,
    #[error(
        "output folder {0} is also an input folder; choose another --out (or pass --allow-output-in-input)"
    )]
    OutputIsInput(PathBuf),
    #[error("cannot create output folder {path}: {source}")]
    CreateOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("output folder {path} is not writable: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the manifest: {0}")]
    Manifest(#[from] manifest::ManifestError),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error("fatal write error, stopping: {0}")]
    FatalWrite(String),
}

/// The settings that decide the output bytes, and their digest.
pub fn settings_fingerprint(options: &Options) -> (serde_json::Value, String) {
    let value = serde_json::to_value(options).unwrap_or(serde_json::Value::Null);
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(value.to_string().as_bytes());
    (value, hex::encode(hasher.finalize()))
}

fn check_output_folder(config: &BatchConfig) -> Result<PathBuf, BatchError> {
    let out = &config.out_dir;
    std::fs::create_dir_all(out).map_err(|source| BatchError::CreateOut {
        path: out.clone(),
        source,
    })?;
    let canonical_out = out.canonicalize().map_err(|source| BatchError::CreateOut {
        path: out.clone(),
        source,
    })?;
    if !config.allow_output_in_input {
        for input in &config.inputs {
            let folder = if input.is_dir() {
                Some(input.as_path())
            } else {
                input.parent()
            };
            let same = folder
                .map(|f| {
                    if f.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        f
                    }
                })
                .and_then(|f| f.canonicalize().ok())
                .is_some_and(|f| f == canonical_out);
            if same {
                return Err(BatchError::OutputIsInput(out.clone()));
            }
        }
    }
    // Find out now, not after the first photo, that we cannot write here.
    let probe = out.join(format!(".gradphoto-write-test-{}", std::process::id()));
    write_file_atomically(&probe, b"", true).map_err(|e| BatchError::NotWritable {
        path: out.clone(),
        source: e.into_io(),
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(canonical_out)
}

/// One photo on its way through the workers.
struct Job {
    input: PathBuf,
    /// The output file name, or why this input gets none.
    name: Result<String, String>,
    roster: Option<RosterFields>,
}

struct Done {
    record: PhotoRecord,
    jpeg: Option<Vec<u8>>,
    timings: StageTimings,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn failed_record(input: &Path, error: String) -> PhotoRecord {
    PhotoRecord {
        input: input.display().to_string(),
        status: Some(Status::Fail),
        error: Some(error),
        ..PhotoRecord::default()
    }
}

/// Runs one photo: read, hash, resume check, stages. Never panics outward:
/// a panic in one photo's stages becomes that photo's failure.
fn work(job: &Job, options: &Options, previous: &HashMap<String, PhotoRecord>, out: &Path) -> Done {
    let input_display = job.input.display().to_string();
    let bytes = match std::fs::read(&job.input) {
        Ok(b) => b,
        Err(e) => {
            return Done {
                record: failed_record(&job.input, format!("cannot read: {e}")),
                jpeg: None,
                timings: StageTimings::default(),
            };
        }
    };
    let input_sha256 = sha256_hex(&bytes);
    let mut base = PhotoRecord {
        input: input_display.clone(),
        input_bytes: bytes.len() as u64,
        input_sha256: input_sha256.clone(),
        ..PhotoRecord::default()
    };
    let name = match &job.name {
        Ok(n) => n.clone(),
        Err(e) => {
            base.status = Some(Status::Fail);
            base.error = Some(e.clone());
            return Done {
                record: base,
                jpeg: None,
                timings: StageTimings::default(),
            };
        }
    };
    if let Some(done) = previous
        .get(&input_display)
        .filter(|r| r.input_sha256 == input_sha256 && r.output.as_deref() == Some(name.as_str()))
        && output_intact(out, done)
    {
        let mut record = done.clone();
        record.resumed = true;
        return Done {
            record,
            jpeg: None,
            timings: StageTimings::default(),
        };
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        normalize_photo(&job.input, &bytes, options)
    }));
    let mut processed = match result {
        Ok(p) => p,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            base.status = Some(Status::Fail);
            base.error = Some(format!(
                "internal error while processing (please report): {message}"
            ));
            return Done {
                record: base,
                jpeg: None,
                timings: StageTimings::default(),
            };
        }
    };
    let record = &mut processed.record;
    record.input = input_display;
    record.input_bytes = base.input_bytes;
    record.input_sha256 = input_sha256;
    if let Some(jpeg) = &processed.jpeg {
        record.output = Some(name);
        record.output_bytes = Some(jpeg.len() as u64);
        record.output_sha256 = Some(sha256_hex(jpeg));
    }
    Done {
        record: processed.record,
        jpeg: processed.jpeg,
        timings: processed.timings,
    }
}

/// Whether an earlier run's output is still there, unchanged.
fn output_intact(out: &Path, record: &PhotoRecord) -> bool {
    let (Some(name), Some(sha)) = (&record.output, &record.output_sha256) else {
        return false;
    };
    matches!(record.status, Some(Status::Ok | Status::Warn))
        && std::fs::read(out.join(name)).is_ok_and(|b| &sha256_hex(&b) == sha)
}

/// Writes one finished photo. An existing file with exactly these bytes is
/// accepted as is (a run killed between writing a photo and recording it).
fn write_output(out: &Path, done: &mut Done, overwrite: bool) -> Result<(), WriteError> {
    let (Some(jpeg), Some(name)) = (&done.jpeg, &done.record.output) else {
        return Ok(());
    };
    let path = out.join(name);
    match write_file_atomically(&path, jpeg, overwrite) {
        Err(WriteError::Exists(p)) => {
            if std::fs::read(&p).is_ok_and(|existing| &existing == jpeg) {
                return Ok(());
            }
            Err(WriteError::Exists(p))
        }
        other => other,
    }
}

/// Errors that mean the output folder itself is broken; going on would only
/// fail every photo the same way.
fn is_fatal(e: &WriteError) -> bool {
    match e {
        WriteError::Exists(_) => false,
        WriteError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::NotFound
        ),
    }
}

/// Runs `normalize` over a batch and returns the final manifest.
pub fn run_normalize(
    config: &BatchConfig,
    progress: &dyn Progress,
) -> Result<Manifest, BatchError> {
    let started = Instant::now();
    let out = check_output_folder(config)?;
    let Discovery {
        photos,
        skipped,
        problems,
    } = discover(&config.inputs, Some(&out));
    for (path, why) in &problems {
        progress.note(&format!("{}: {why}", path.display()));
    }
    if photos.is_empty() && problems.is_empty() {
        return Err(BatchError::NoInputs);
    }
    let (settings, settings_sha256) = settings_fingerprint(&config.options);
    let previous: HashMap<String, PhotoRecord> = manifest::read_previous(&config.out_dir)
        .filter(|m| m.run.settings_sha256 == settings_sha256)
        .map(|m| m.photos.into_iter().map(|p| (p.input.clone(), p)).collect())
        .unwrap_or_default();
    let jobs = config.jobs.max(1);
    let mut writer = ManifestWriter::create(
        &config.out_dir,
        RunHeader {
            tool: "gradphoto".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command: "normalize".into(),
            settings,
            settings_sha256,
            jobs,
            started: manifest::now_rfc3339(),
            ..RunHeader::default()
        },
    )?;
    writer.run_mut().counts.skipped_not_images = skipped.len();
    for (path, why) in &problems {
        writer.add(failed_record(path, why.clone()))?;
    }
    progress.started(photos.len());

    let assigned = assign_names(&photos, config.roster.as_ref(), &config.name_template);
    writer.run_mut().roster = assigned.summary;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("gradphoto-worker-{i}"))
        .build()
        .map_err(|e| BatchError::Threads(e.to_string()))?;
    // Small queues: a photo's bytes are megabytes, and a worker only ever
    // needs the next one.
    let (job_tx, job_rx) = bounded::<Job>(jobs);
    let (done_tx, done_rx) = bounded::<Done>(jobs * 2);
    let mut stage_totals = StageTimings::default();
    let mut fatal: Option<String> = None;

    std::thread::scope(|threads| -> Result<(), BatchError> {
        threads.spawn(move || {
            let rows = assigned.names.into_iter().zip(assigned.fields);
            for (input, (name, roster)) in photos.into_iter().zip(rows) {
                if job_tx
                    .send(Job {
                        input,
                        name,
                        roster,
                    })
                    .is_err()
                {
                    break; // the writer stopped on a fatal error
                }
            }
        });
        // The closure runs here, on this thread, as the writer; the
        // workers run on the pool.
        pool.in_place_scope(|workers| -> Result<(), BatchError> {
            for _ in 0..jobs {
                let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
                let (options, previous, out) = (&config.options, &previous, out.as_path());
                workers.spawn(move |_| {
                    for job in job_rx {
                        let mut done = work(&job, options, previous, out);
                        done.record.roster = job.roster;
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            drop(job_rx);
            for mut done in done_rx {
                if let Err(e) = write_output(&out, &mut done, config.overwrite) {
                    if is_fatal(&e) {
                        fatal = Some(e.to_string());
                    }
                    let record = &mut done.record;
                    record.status = Some(Status::Fail);
                    record.error = Some(e.to_string());
                    record.output = None;
                    record.output_bytes = None;
                    record.output_sha256 = None;
                }
                stage_totals.add(&done.timings);
                progress.finished_photo(&done.record);
                writer.add(done.record)?;
                if fatal.is_some() {
                    break; // dropping the receiver stops the workers
                }
            }
            Ok(())
        })
    })?;

    let run = writer.run_mut();
    run.stage_seconds = stage_totals.as_seconds();
    run.seconds = started.elapsed().as_secs_f64();
    let manifest = writer.finish()?;
    if let Some(e) = fatal {
        return Err(BatchError::FatalWrite(e));
    }
    Ok(manifest)
}
