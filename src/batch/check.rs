//! The `check` command: judges photos that already exist (a studio's, a
//! student's, or our own outputs) against every rule of SPEC §1 and §2
//! without changing them, and says for each failure whether `normalize`
//! would turn the photo into one that passes.
//!
//! The file rules come from [`verify_jpeg`]; "no border" and the picture
//! are judged on the pixels by [`judge_picture`] (shared with `normalize`,
//! which copies a photo that already passes). The picture is judged as it stands: scaled
//! to the output width (uniformly, only for measuring), the backdrop,
//! subject, composition and portrait stages measure it where it is, rather
//! than planning a new crop. Whether `normalize` can help is not guessed
//! from the failed checks: the photo is run through it in memory, so the
//! answer is the one `normalize` would really give (a 480x640 photo with a
//! frame, for one, is too small once the frame is gone and cannot be fixed
//! without upscaling).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::bounded;

use crate::batch::digest::sha256_hex;
use crate::batch::discover::{Discovery, discover};
use crate::batch::lock::FolderLock;
use crate::batch::manifest::{self, ManifestWriter, PhotoRecord, Records, RunHeader, Status};
use crate::batch::path_text::path_text;
use crate::batch::pipeline::{
    BatchError, Progress, keep_share, lock_output_folder, open_part, settings_fingerprint,
};
use crate::batch::report::thumbnail;
use crate::batch::shard::{Shard, ShardKeys, shard_run};
use crate::codec::decode::decode;
use crate::codec::verify::verify_jpeg;
use crate::photo::{Options, judge_picture, normalize_photo, record_decoded};
use crate::transform::orient::apply_orientation;
use crate::verdict::{Verdict, worst};

/// Everything a `check` run needs.
#[derive(Clone, Debug)]
pub struct CheckConfig {
    pub inputs: Vec<PathBuf>,
    /// Where the manifest (and the report) go; photos are never written.
    pub out_dir: PathBuf,
    pub jobs: usize,
    pub options: Options,
    /// Keep a small JPEG of every photo for the report.
    pub thumbnails: bool,
    /// This process's share of the batch (`--shard`): the manifest goes
    /// into the shard's part folder inside `out_dir`.
    pub shard: Option<Shard>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("no input photos found")]
    NoInputs,
    #[error("cannot create output folder {path}: {source}")]
    CreateOut {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the manifest: {0}")]
    Manifest(#[from] manifest::ManifestError),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error(
        "{0} holds the photos and manifest of a normalize run, which check would replace; choose another --out for check"
    )]
    NormalizeFolder(PathBuf),
    #[error(transparent)]
    Folder(#[from] BatchError),
}

/// One photo judged.
#[derive(Clone, Debug)]
pub struct Audited {
    pub record: PhotoRecord,
    /// A small JPEG of the photo as judged, when asked for and decodable.
    pub thumbnail: Option<Vec<u8>>,
}

/// The outcome of a `check` run.
pub struct CheckRun {
    pub records: Records,
    /// Thumbnails by the record's `input`.
    pub thumbnails: HashMap<String, Vec<u8>>,
}

/// Judges one photo's bytes; `name` is its path (for the record and to
/// notice an extension that lies).
pub fn audit_photo(name: &Path, bytes: &[u8], options: &Options, want_thumbnail: bool) -> Audited {
    let mut record = PhotoRecord {
        input: path_text(name),
        input_bytes: bytes.len() as u64,
        input_sha256: sha256_hex(bytes),
        ..PhotoRecord::default()
    };
    let file = verify_jpeg(bytes, &options.output_rules());
    record.jpeg_quality = file.quality;
    record.chroma = file.chroma.map(|c| c.to_string());
    record.checks = file.checks;

    let mut thumb = None;
    match decode(bytes, &options.limits, options.backdrop.reference) {
        Ok(decoded) => {
            record_decoded(name, &decoded, &mut record);
            let upright = apply_orientation(decoded.image, decoded.orientation);
            let view = judge_picture(upright, options, &mut record);
            if want_thumbnail {
                thumb = thumbnail(&view);
            }
        }
        Err(e) => record.error = Some(format!("cannot read the picture: {e}")),
    }

    let status = if record.error.is_some() {
        Status::Fail
    } else {
        match worst(&record.checks) {
            Verdict::Pass => Status::Ok,
            Verdict::Warn => Status::Warn,
            Verdict::Fail => Status::Fail,
        }
    };
    record.status = Some(status);
    if status == Status::Fail {
        let attempt = normalize_photo(name, bytes, options).record;
        let fixed = attempt.status() != Status::Fail;
        record.fixable = Some(fixed);
        record.fix = Some(if fixed {
            let warnings = attempt.reasons();
            if warnings.is_empty() {
                "normalize makes a photo that passes every check".to_owned()
            } else {
                format!(
                    "normalize makes a photo that passes, with warnings to review: {}",
                    warnings.join("; ")
                )
            }
        } else {
            format!("normalize cannot fix it: {}", why_not(&attempt))
        });
    }
    Audited {
        record,
        thumbnail: thumb,
    }
}

/// What stopped `normalize`: the failed checks, or its error when it
/// stopped before judging (its error then names no check).
fn why_not(attempt: &PhotoRecord) -> String {
    let failed: Vec<String> = attempt
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect();
    if failed.is_empty() {
        attempt.error.clone().unwrap_or_default()
    } else {
        failed.join("; ")
    }
}

fn audit_file(path: &Path, options: &Options, want_thumbnail: bool) -> Audited {
    match std::fs::read(path) {
        Ok(bytes) => audit_photo(path, &bytes, options, want_thumbnail),
        Err(e) => Audited {
            record: unreadable(path, format!("cannot read: {e}")),
            thumbnail: None,
        },
    }
}

fn unreadable(path: &Path, error: String) -> PhotoRecord {
    PhotoRecord {
        input: path_text(path),
        status: Some(Status::Fail),
        error: Some(error),
        fixable: Some(false),
        ..PhotoRecord::default()
    }
}

/// Runs `check` over files and folders; the manifest is kept up to date in
/// `out_dir` as photos finish, like `normalize`'s.
pub fn run_check(config: &CheckConfig, progress: &dyn Progress) -> Result<CheckRun, CheckError> {
    let out = &config.out_dir;
    std::fs::create_dir_all(out).map_err(|source| CheckError::CreateOut {
        path: out.clone(),
        source,
    })?;
    let (book, locks) = match &config.shard {
        Some(shard) => {
            let shared = FolderLock::acquire_shared(out).map_err(BatchError::from)?;
            let (part, part_lock) = open_part(out, shard)?;
            (part, vec![shared, part_lock])
        }
        None => (out.clone(), vec![lock_output_folder(out)?]),
    };
    // A shard's part too: merging it would replace DIR's manifest.
    for dir in [out, &book] {
        if manifest::manifest_command(dir).as_deref() == Some("normalize") {
            return Err(CheckError::NormalizeFolder(dir.clone()));
        }
    }
    let Discovery {
        photos,
        skipped,
        hidden,
        problems,
    } = discover(&config.inputs, Some(out));
    for (path, why) in &problems {
        progress.note(&format!("{}: {why}", path_text(path)));
    }
    if photos.is_empty() && problems.is_empty() {
        return Err(CheckError::NoInputs);
    }
    let (settings, settings_sha256) = settings_fingerprint(&config.options);
    let jobs = config.jobs.max(1);
    let mut header = RunHeader::starting("check", settings, settings_sha256, jobs);
    let keys = ShardKeys::new(&config.inputs);
    if let Some(shard) = &config.shard {
        let listed: Vec<&Path> = (photos.iter().map(PathBuf::as_path))
            .chain(problems.iter().map(|(p, _)| p.as_path()))
            .collect();
        header.shard = Some(shard_run(shard, &listed));
    }
    let photos = keep_share(photos, config.shard.as_ref(), &keys, |p| p);
    let problems = keep_share(problems, config.shard.as_ref(), &keys, |(p, _)| p);
    let mut writer = ManifestWriter::create(&book, header)?;
    writer.run_mut().counts.skipped_not_images = skipped.len();
    writer.run_mut().counts.skipped_hidden = hidden.len();
    for (path, why) in &problems {
        writer.add(unreadable(path, why.clone()))?;
    }
    progress.started(photos.len());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("gradphoto-check-{i}"))
        .build()
        .map_err(|e| CheckError::Threads(e.to_string()))?;
    // Bounded: a worker holds one decoded photo at a time and the writer
    // keeps only records and thumbnails, whatever the batch size.
    let (done_tx, done_rx) = bounded::<Audited>(jobs * 2);
    let next = AtomicUsize::new(0);
    let mut thumbnails = HashMap::new();
    pool.in_place_scope(|workers| -> Result<(), CheckError> {
        for _ in 0..jobs {
            let (done_tx, next, photos) = (done_tx.clone(), &next, &photos);
            workers.spawn(move |_| {
                while let Some(path) = photos.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if progress.stop_requested().is_some() {
                        break;
                    }
                    let audited = audit_file(path, &config.options, config.thumbnails);
                    if done_tx.send(audited).is_err() {
                        break; // the writer stopped on an error
                    }
                }
            });
        }
        drop(done_tx);
        for audited in done_rx {
            progress.finished_photo(&audited.record);
            if let Some(t) = audited.thumbnail {
                thumbnails.insert(audited.record.input.clone(), t);
            }
            writer.add(audited.record)?;
        }
        Ok(())
    })?;
    writer.run_mut().interrupted = progress.stop_requested().map(str::to_owned);
    let mut records = writer.finish()?;
    for lock in locks {
        records = records.holding(lock);
    }
    Ok(CheckRun {
        records,
        thumbnails,
    })
}
