//! Wires the stages together for a batch: readers that read and hash the
//! photos a little ahead, a pool of workers running the per-photo stages,
//! and a writer that writes outputs and the manifest as photos finish.
//!
//! Photos stream through bounded channels, so memory is bounded by the
//! number of workers, never by the size of the batch.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use sha2::{Digest, Sha256};

use crate::batch::digest::sha256_hex;
use crate::batch::discover::{Discovery, discover};
use crate::batch::lock::{FolderLock, LOCK_NAME, LockError};
use crate::batch::manifest::RosterFields;
use crate::batch::manifest::{
    self, ManifestWriter, PhotoRecord, Previous, Records, RunHeader, Status,
};
use crate::batch::output::{
    PROBE_PREFIX, WriteError, refuse_link, remove_stale_temporaries, validate_file_name,
    write_file_atomically,
};
use crate::batch::path_text::path_text;
use crate::batch::prints;
use crate::batch::report;
use crate::batch::roster::{NameTemplate, Roster, assign_names};
use crate::batch::shard::{PARTS_DIR, Shard, ShardKeys, shard_run};
use crate::codec::decode::{
    ImageFormat, Sniffed, jpeg_frame_size, png_frame_size, sniff, whole_frame_size,
};
use crate::photo::{Options, Processed, StageTimings, normalize_photo};
use crate::print::Print;
use crate::print::sheet::Sheet;

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
    /// This process's share of the batch, when it is one of several
    /// (`--shard`): photos go into `out_dir`, the manifest into the
    /// shard's part folder (`Shard::part_dir`).
    pub shard: Option<Shard>,
}

/// What the caller hears as the batch goes on (the CLI draws progress),
/// and how it asks the batch to stop.
pub trait Progress: Sync {
    fn started(&self, _total: usize) {}
    fn finished_photo(&self, _record: &PhotoRecord) {}
    fn note(&self, _message: &str) {}
    /// Asked before each photo is read and before it enters the stages:
    /// `Some(why)` (the CLI says `SIGINT` or `SIGTERM`) stops the batch.
    /// The photos already in the stages are finished and written, the
    /// manifest is completed with what was done (and `run.interrupted`
    /// says why it stopped), and a rerun resumes the rest.
    fn stop_requested(&self) -> Option<&'static str> {
        None
    }
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
    #[error(
        "output folder {0} is inside an input folder and already holds other files; choose another --out (or pass --allow-output-in-input)"
    )]
    OutputInsideInput(PathBuf),
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
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("refusing to write into {dir}: {source}")]
    Unsafe { dir: PathBuf, source: WriteError },
}

/// The settings that decide the output bytes, and their digest.
pub fn settings_fingerprint(options: &Options) -> (serde_json::Value, String) {
    let value = serde_json::to_value(options).unwrap_or(serde_json::Value::Null);
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(value.to_string().as_bytes());
    (value, hex::encode(hasher.finalize()))
}

/// The folders the user's inputs live in: each folder named, and the folder
/// of each file named.
fn input_folders(inputs: &[PathBuf]) -> Vec<PathBuf> {
    inputs
        .iter()
        .filter_map(|input| {
            let folder = if input.is_dir() {
                input.as_path()
            } else {
                input.parent()?
            };
            let folder = if folder.as_os_str().is_empty() {
                Path::new(".")
            } else {
                folder
            };
            folder.canonicalize().ok()
        })
        .collect()
}

/// Whether a folder inside an input folder holds anything besides what
/// gradphoto writes: then it is the user's folder of photos, not ours.
fn holds_foreign_files(out: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(out) else {
        return false;
    };
    let has_manifest = out.join(manifest::JSON_NAME).exists();
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with('.')
            || [
                manifest::JSON_NAME,
                manifest::CSV_NAME,
                manifest::JOURNAL_NAME,
            ]
            .contains(&name.as_str())
            || (has_manifest && name.ends_with(".jpg"));
        !ours
    })
}

/// The names of the files of ours in an output folder besides the photos.
pub const BOOKKEEPING: [&str; 6] = [
    manifest::JSON_NAME,
    manifest::CSV_NAME,
    manifest::JOURNAL_NAME,
    manifest::PREVIOUS_NAME,
    report::FILE_NAME,
    LOCK_NAME,
];

/// Takes `out`'s lock, then refuses a folder where one of our own files
/// is a symbolic link: whoever planted `manifest.jsonl -> elsewhere` wants
/// us to overwrite elsewhere. Writes never follow links anyway; this says
/// so before any work is done.
pub fn lock_output_folder(out: &Path) -> Result<FolderLock, BatchError> {
    lock_folder(out, false)
}

/// [`lock_output_folder`], the lock shared with the other shards of a
/// batch when `shared`.
fn lock_folder(out: &Path, shared: bool) -> Result<FolderLock, BatchError> {
    let lock = if shared {
        FolderLock::acquire_shared(out)?
    } else {
        FolderLock::acquire(out)?
    };
    for name in BOOKKEEPING {
        refuse_link(&out.join(name)).map_err(|source| BatchError::Unsafe {
            dir: out.to_owned(),
            source,
        })?;
    }
    Ok(lock)
}

/// Where a shard keeps its manifest: its part folder inside `out` (whose
/// shared lock the caller holds), made if missing, locked for this shard
/// alone and checked for planted links like the output folder.
pub(crate) fn open_part(out: &Path, shard: &Shard) -> Result<(PathBuf, FolderLock), BatchError> {
    let unsafe_at = |source| BatchError::Unsafe {
        dir: out.to_owned(),
        source,
    };
    refuse_link(&out.join(PARTS_DIR)).map_err(unsafe_at)?;
    let part = shard.part_dir(out);
    refuse_link(&part).map_err(unsafe_at)?;
    std::fs::create_dir_all(&part).map_err(|source| BatchError::CreateOut {
        path: part.clone(),
        source,
    })?;
    let lock = lock_output_folder(&part)?;
    Ok((part, lock))
}

/// Keeps the photos of this shard's share of `photos` (and of anything
/// else listed beside them), by [`Shard::takes`]; all of them when not
/// sharded.
pub(crate) fn keep_share<T>(
    items: Vec<T>,
    shard: Option<&Shard>,
    keys: &ShardKeys,
    path: impl Fn(&T) -> &Path,
) -> Vec<T> {
    match shard {
        None => items,
        Some(shard) => items
            .into_iter()
            .filter(|item| shard.takes(&keys.key(path(item))))
            .collect(),
    }
}

fn check_output_folder(config: &BatchConfig) -> Result<(PathBuf, FolderLock), BatchError> {
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
        // A fresh folder inside an input folder (`normalize . --out out`) is
        // fine: discovery leaves it out. One that already holds other files
        // is somebody's photos, which would be skipped as inputs and mixed
        // with outputs.
        for folder in input_folders(&config.inputs) {
            if canonical_out == folder {
                return Err(BatchError::OutputIsInput(out.clone()));
            }
            if canonical_out.starts_with(&folder) && holds_foreign_files(&canonical_out) {
                return Err(BatchError::OutputInsideInput(out.clone()));
            }
        }
    }
    let not_writable = |e: WriteError| BatchError::NotWritable {
        path: out.clone(),
        source: e.into_io(),
    };
    let lock = match lock_folder(out, config.shard.is_some()) {
        Err(BatchError::Locked(LockError::Write(e @ WriteError::Io { .. }))) => {
            return Err(not_writable(e));
        }
        other => other?,
    };
    // Find out now, not after the first photo, that we cannot write here.
    let probe = out.join(format!(".{PROBE_PREFIX}{}", std::process::id()));
    write_file_atomically(&probe, b"", true).map_err(not_writable)?;
    let _ = std::fs::remove_file(&probe);
    Ok((canonical_out, lock))
}

/// One photo as discovered: where it is and what it will be called.
struct Listed {
    input: PathBuf,
    /// The output file name, or why this input gets none.
    name: Result<String, String>,
    roster: Option<RosterFields>,
}

/// One photo on its way to the workers, read and hashed.
struct Job {
    listed: Listed,
    /// The file's bytes and their SHA-256, or why it could not be read.
    input: Result<Input, String>,
}

struct Input {
    bytes: Vec<u8>,
    sha256: String,
}

/// Readers for `jobs` workers. One reader reads and hashes a photo in a
/// few milliseconds, several times faster than a worker runs its stages,
/// so one keeps up with four workers with room to spare.
fn readers_for(jobs: usize) -> usize {
    jobs.div_ceil(4)
}

/// Reads and hashes the listed photos ahead of the workers, so that on a
/// worker's thread only the stages run. The job queue holds one photo per
/// reader (and each reader one more in hand), which bounds the bytes read
/// ahead to a few photos whatever the number of workers.
fn read_ahead(
    listed: &Receiver<Listed>,
    jobs: &Sender<Job>,
    max_bytes: u64,
    progress: &dyn Progress,
) {
    for listed in listed {
        if progress.stop_requested().is_some() {
            break;
        }
        let input = read_input(&listed.input, max_bytes).map(|bytes| Input {
            sha256: sha256_hex(&bytes),
            bytes,
        });
        if jobs.send(Job { listed, input }).is_err() {
            break; // the writer stopped on a fatal error
        }
    }
}

struct Done {
    record: PhotoRecord,
    jpeg: Option<Vec<u8>>,
    timings: StageTimings,
    prints: Option<Vec<Print>>,
    /// The photo's sheets (`--print`, `print`), made on the worker, and
    /// the name they are called after.
    sheets: Vec<Sheet>,
    name: Option<String>,
}

fn failed_record(input: &Path, error: String) -> PhotoRecord {
    PhotoRecord {
        input: path_text(input),
        status: Some(Status::Fail),
        error: Some(error),
        ..PhotoRecord::default()
    }
}

/// The per-photo stages as the workers call them: the input's path (for
/// its extension) and bytes in, the record and JPEG out.
pub type PhotoFn<'a> = dyn Fn(&Path, &[u8]) -> Processed + Sync + 'a;

/// Reads a whole input, refusing what is not a regular file (a FIFO would
/// block the worker forever, a device never ends) or is larger than any
/// photo within the pixel limit could be.
fn read_input(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let too_big =
        || format!("file is over {max_bytes} bytes, larger than any photo within the pixel limit");
    if meta.len() > max_bytes {
        return Err(too_big());
    }
    // Room for the whole file up front: through `take` the reader gets no
    // size hint and would grow the buffer by doubling, copying megabytes.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    // The file may grow while we read it; never read more than the limit.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    Ok(bytes)
}

/// The largest input file accepted: 8 bytes a pixel at the pixel limit is
/// more than even an uncompressed 16-bit RGBA PNG needs.
fn max_input_bytes(options: &Options) -> u64 {
    options.limits.max_pixels.saturating_mul(8).max(1 << 20)
}

/// Runs the stages on one photo, turning a panic into that photo's failure
/// so that one bad file never ends the batch.
fn run_guarded(process: &PhotoFn<'_>, input: &Path, bytes: &[u8]) -> Result<Processed, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| process(input, bytes))).map_err(
        |panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            format!("internal error while processing (please report): {message}")
        },
    )
}

/// Estimated working memory of the stages on one photo, from its header:
/// the decoded image at the scale the first decode picks and the few copies
/// the stages make of it (upright, trimmed), about 9 bytes a decoded pixel.
/// A JPEG is decoded at an M/8 scale, a PNG read row by row and averaged
/// down by a power of two; only an interlaced (Adam7) PNG holds its whole
/// frame first (up to 4 bytes a pixel), since its rows arrive out of order.
/// So a 24 MP JPEG needs about 30 MB, a PNG 54 MB, an interlaced one 150 MB.
fn working_bytes(bytes: &[u8], options: &Options) -> u64 {
    let pixels = |w: u32, h: u32| u64::from(w) * u64::from(h);
    // The decode scale depends on which way up the photo is, which the
    // header alone does not say: the larger of the two.
    let reduce = options.reduce.first_decode(&options.composition);
    let decoded = |w: u32, h: u32, png: bool| {
        let mut scale = reduce.scale_for(w, h).max(reduce.scale_for(h, w));
        if png {
            scale = scale.power_of_two_above();
        }
        pixels(scale.of(w), scale.of(h)) * 3 * 3
    };
    match sniff(bytes) {
        Sniffed::Supported(ImageFormat::Png) => png_frame_size(bytes).map_or(0, |(w, h)| {
            // A header cut short of the interlace byte counts as interlaced.
            let interlaced = bytes.get(28).is_none_or(|&method| method != 0);
            decoded(w, h, true) + if interlaced { pixels(w, h) * 4 } else { 0 }
        }),
        Sniffed::Supported(ImageFormat::Jpeg) => {
            jpeg_frame_size(bytes).map_or(0, |(w, h)| decoded(u32::from(w), u32::from(h), false))
        }
        // TIFF, BMP and WebP are decoded whole (up to 8 bytes a pixel)
        // before they are averaged down as PNG is.
        Sniffed::Supported(_) => {
            whole_frame_size(bytes).map_or(0, |(w, h)| decoded(w, h, true) + pixels(w, h) * 8)
        }
        _ => 0,
    }
}

/// Bounds the working memory of the photos in the stages at once. A worker
/// reserves its photo's [`working_bytes`] before the stages run and waits
/// while they do not fit: then peak memory depends neither on how many
/// large photos happen to be decoded at the same moment nor on the number
/// of cores. Photos stay whole and unchanged; only when each starts moves.
struct MemoryBudget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

/// A photo's share of the [`MemoryBudget`], given back when dropped.
struct Reservation<'a> {
    budget: &'a MemoryBudget,
    bytes: u64,
}

impl MemoryBudget {
    /// Working memory for the stages: with the program itself, the inputs
    /// being read and the finished photos queued, the process stays under
    /// about 400 MB, the goal for a 24 MP cohort on any number of cores. A
    /// 2-core machine runs any two 24 MP photos at once except two interlaced
    /// PNGs.
    const LIMIT: u64 = 256 << 20;

    fn new(limit: u64) -> Self {
        MemoryBudget {
            limit,
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits until `bytes` fit. A photo larger than the whole budget waits
    /// for it all, so it always runs eventually (alone), and nobody waits
    /// forever: every holder is a photo in the stages, which end.
    fn reserve(&self, bytes: u64) -> Reservation<'_> {
        let bytes = bytes.min(self.limit);
        let mut used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        while *used + bytes > self.limit {
            used = self
                .freed
                .wait(used)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *used += bytes;
        Reservation {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut used = self
            .budget
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *used -= self.bytes;
        self.budget.freed.notify_all();
    }
}

/// What a worker needs besides the job, the same for every photo.
struct WorkContext<'a> {
    process: &'a PhotoFn<'a>,
    options: &'a Options,
    previous: &'a Previous,
    out: &'a Path,
    budget: &'a MemoryBudget,
}

/// Runs one photo: resume check, stages. Never panics outward.
fn work(listed: &Listed, input: Result<Input, String>, cx: &WorkContext<'_>) -> Done {
    let WorkContext {
        process,
        previous,
        out,
        ..
    } = *cx;
    let input_display = path_text(&listed.input);
    let fail = |record: PhotoRecord, error: String| Done {
        record: PhotoRecord {
            status: Some(Status::Fail),
            error: Some(error),
            ..record
        },
        jpeg: None,
        timings: StageTimings::default(),
        prints: None,
        sheets: Vec::new(),
        name: None,
    };
    let Input {
        bytes,
        sha256: input_sha256,
    } = match input {
        Ok(input) => input,
        Err(e) => {
            let record = PhotoRecord {
                input: input_display,
                ..PhotoRecord::default()
            };
            return fail(record, e);
        }
    };
    let base = PhotoRecord {
        input: input_display.clone(),
        input_bytes: bytes.len() as u64,
        input_sha256: input_sha256.clone(),
        ..PhotoRecord::default()
    };
    let name = match &listed.name {
        Ok(n) => n.clone(),
        Err(e) => return fail(base, e.clone()),
    };
    if let Some(mut record) = previous.matching(&input_display, &input_sha256, &name)
        && output_intact(out, &record)
        && prints::sheets_intact(out, cx.options, &record)
    {
        record.resumed = true;
        return Done {
            record,
            jpeg: None,
            timings: StageTimings::default(),
            prints: None,
            sheets: Vec::new(),
            name: None,
        };
    }
    let reservation = cx.budget.reserve(working_bytes(&bytes, cx.options));
    let processed = run_guarded(process, &listed.input, &bytes);
    drop(bytes);
    drop(reservation);
    let mut processed = match processed {
        Ok(p) => p,
        Err(e) => return fail(base, e),
    };
    let record = &mut processed.record;
    record.input = input_display;
    record.input_bytes = base.input_bytes;
    record.input_sha256 = input_sha256;
    if let Some(jpeg) = &processed.jpeg {
        record.output = Some(name.clone());
        record.output_bytes = Some(jpeg.len() as u64);
        record.output_sha256 = Some(sha256_hex(jpeg));
    }
    Done {
        record: processed.record,
        jpeg: processed.jpeg,
        timings: processed.timings,
        prints: processed.prints,
        sheets: Vec::new(),
        name: Some(name),
    }
}

/// Whether an earlier run's output is still there, unchanged, as a file
/// of its own (a link planted under its name is not our photo).
fn output_intact(out: &Path, record: &PhotoRecord) -> bool {
    let (Some(name), Some(sha)) = (&record.output, &record.output_sha256) else {
        return false;
    };
    let path = out.join(name);
    matches!(record.status, Some(Status::Ok | Status::Warn))
        && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
        && std::fs::read(&path).is_ok_and(|b| &sha256_hex(&b) == sha)
}

/// Adds to the manifest the records of photos earlier runs made in this
/// folder that this run did not make again (not given, not reached, or
/// failed, say because the earlier photo is in the way), while the photo
/// is still there, unchanged, under a name this run did not write: the
/// folder's manifest lists every photo in it, each record of an earlier
/// run tagged with that run (`from_run`). Records of photos since removed,
/// changed or replaced are dropped, and so are earlier failures, which
/// left nothing in the folder.
fn keep_earlier_records(
    writer: &mut ManifestWriter,
    previous: &Previous,
    out: &Path,
    names_taken: &HashSet<String>,
) -> Result<(), BatchError> {
    let this_run = writer.written_inputs();
    let superseded = |input: &str| this_run.contains(input);
    let mut taken = names_taken.clone();
    for record in previous.earlier(&superseded) {
        let Some(name) = &record.output else { continue };
        if !output_intact(out, &record) || !taken.insert(name.to_lowercase()) {
            continue;
        }
        writer.add(record)?;
    }
    Ok(())
}

/// Writes one finished photo. An existing file with exactly these bytes is
/// accepted as is (a run killed between writing a photo and recording it).
fn write_output(out: &Path, done: &mut Done, overwrite: bool) -> Result<(), WriteError> {
    let (Some(jpeg), Some(name)) = (&done.jpeg, &done.record.output) else {
        return Ok(());
    };
    // Names were checked when assigned; checked again here, at the one place
    // a path is made, so no future source of names can bypass it.
    validate_file_name(name).map_err(|e| WriteError::Io {
        path: out.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
    })?;
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

/// Lays out and renders the photo's sheets, on its worker. A photo whose
/// prints cannot go on the paper fails when prints are all it makes, and
/// warns beside a registry photo.
fn make_sheets(done: &mut Done, input: &Path, options: &Options) {
    let (Some(settings), Some(prints)) = (&options.print, done.prints.take()) else {
        return;
    };
    let label = prints::label(input, done.record.roster.as_ref());
    let made = done
        .timings
        .time("sheets", || prints::sheets(&prints, &label, settings));
    match made {
        Ok(sheets) => done.sheets = sheets,
        Err(e) => {
            let record = &mut done.record;
            record.prints = None;
            if settings.registry_photo {
                record.checks.push(crate::verdict::Check::new(
                    "print_layout",
                    crate::verdict::Verdict::Warn,
                    None,
                    e,
                ));
                if record.status == Some(Status::Ok) {
                    record.status = Some(Status::Warn);
                }
            } else {
                record.status = Some(Status::Fail);
                record.error = Some(e);
            }
        }
    }
}

/// Writes a photo's sheets and records them.
fn write_sheets(out: &Path, done: &mut Done, config: &BatchConfig) -> Result<(), WriteError> {
    let (Some(settings), Some(name)) = (&config.options.print, &done.name) else {
        return Ok(());
    };
    if done.sheets.is_empty() {
        return Ok(());
    }
    let dir = prints::sheets_dir(out, settings);
    let files = prints::write_sheets(&dir, name, &done.sheets, config.overwrite)?;
    done.sheets.clear();
    if let Some(p) = &mut done.record.prints {
        p.sheets = files;
    }
    Ok(())
}

/// Errors that mean the output folder itself is broken; going on would only
/// fail every photo the same way.
fn is_fatal(e: &WriteError) -> bool {
    match e {
        WriteError::Exists(_) | WriteError::Link(_) | WriteError::NameTooLong { .. } => false,
        WriteError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::StorageFull
                | std::io::ErrorKind::ReadOnlyFilesystem
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::NotFound
        ),
    }
}

/// Runs `normalize` over a batch and returns the final manifest's records.
pub fn run_normalize(config: &BatchConfig, progress: &dyn Progress) -> Result<Records, BatchError> {
    let options = &config.options;
    run_batch(config, progress, &|input: &Path, bytes: &[u8]| {
        normalize_photo(input, bytes, options)
    })
}

/// `print` for the prints alone, else `normalize`.
fn command_name(options: &Options) -> &'static str {
    match &options.print {
        Some(p) if !p.registry_photo => "print",
        _ => "normalize",
    }
}

/// [`run_normalize`] with the per-photo stages passed in, so tests can make
/// one photo's processing misbehave and watch the batch go on.
fn run_batch(
    config: &BatchConfig,
    progress: &dyn Progress,
    process: &PhotoFn<'_>,
) -> Result<Records, BatchError> {
    let started = Instant::now();
    let (out, lock) = check_output_folder(config)?;
    if let Some(settings) = &config.options.print {
        let dir = prints::sheets_dir(&out, settings);
        std::fs::create_dir_all(&dir)
            .map_err(|source| BatchError::CreateOut { path: dir, source })?;
    }
    // A shard's manifest goes into its part; the photos into `out`, where
    // other shards write too, so only the part is cleared of temporaries
    // (another machine's pids cannot be told alive from here).
    let (book, part_lock) = match &config.shard {
        Some(shard) => {
            let (part, part_lock) = open_part(&out, shard)?;
            (part, Some(part_lock))
        }
        None => (config.out_dir.clone(), None),
    };
    let removed = remove_stale_temporaries(if config.shard.is_some() { &book } else { &out });
    if removed > 0 {
        progress.note(&format!(
            "removed {removed} temporary files left by an interrupted run"
        ));
    }
    let Discovery {
        photos,
        skipped,
        hidden,
        problems,
    } = discover(&config.inputs, Some(&out));
    for (path, why) in &problems {
        progress.note(&format!("{}: {why}", path_text(path)));
    }
    if photos.is_empty() && problems.is_empty() {
        return Err(BatchError::NoInputs);
    }
    let (settings, settings_sha256) = settings_fingerprint(&config.options);
    // Gathered before the writer starts the journal afresh.
    let previous = Previous::load(&book, &settings_sha256)?;
    let jobs = config.jobs.max(1);
    let mut header = RunHeader::starting(
        command_name(&config.options),
        settings,
        settings_sha256,
        jobs,
    );
    // Names are given over the whole batch, so that names that clash are
    // refused whichever shards the photos fall in; then the share is kept.
    let assigned = assign_names(&photos, config.roster.as_ref(), &config.name_template);
    let keys = ShardKeys::new(&config.inputs);
    if let Some(shard) = &config.shard {
        let listed: Vec<&Path> = (photos.iter().map(PathBuf::as_path))
            .chain(problems.iter().map(|(p, _)| p.as_path()))
            .collect();
        header.shard = Some(shard_run(shard, &listed));
    }
    let problems = keep_share(problems, config.shard.as_ref(), &keys, |(p, _)| p);
    let rows = photos
        .into_iter()
        .zip(assigned.names.into_iter().zip(assigned.fields));
    let rows = keep_share(rows.collect(), config.shard.as_ref(), &keys, |(p, _)| p);
    let mut writer = ManifestWriter::create(&book, header)?;
    writer.run_mut().counts.skipped_not_images = skipped.len();
    writer.run_mut().counts.skipped_hidden = hidden.len();
    for (path, why) in &problems {
        writer.add(failed_record(path, why.clone()))?;
    }
    progress.started(rows.len());
    writer.run_mut().roster = assigned.summary;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("gradphoto-worker-{i}"))
        .build()
        .map_err(|e| BatchError::Threads(e.to_string()))?;
    // Paths and names only: the whole batch can wait here.
    let (listed_tx, listed_rx) = unbounded::<Listed>();
    for (input, (name, roster)) in rows {
        // Cannot fail: the receiver is still here.
        let _ = listed_tx.send(Listed {
            input,
            name,
            roster,
        });
    }
    drop(listed_tx);
    // Small queues: a photo's bytes are megabytes, and a worker only ever
    // needs the next one.
    let readers = readers_for(jobs);
    let (job_tx, job_rx) = bounded::<Job>(readers);
    let max_bytes = max_input_bytes(&config.options);
    let (done_tx, done_rx) = bounded::<Done>(jobs * 2);
    let mut stage_totals = StageTimings::default();
    let mut fatal: Option<String> = None;
    let mut names_taken: HashSet<String> = HashSet::new();
    let budget = MemoryBudget::new(MemoryBudget::LIMIT);
    let context = WorkContext {
        process,
        options: &config.options,
        previous: &previous,
        out: &out,
        budget: &budget,
    };

    std::thread::scope(|threads| -> Result<(), BatchError> {
        for _ in 0..readers {
            let (listed_rx, job_tx) = (listed_rx.clone(), job_tx.clone());
            threads.spawn(move || read_ahead(&listed_rx, &job_tx, max_bytes, progress));
        }
        drop(job_tx);
        // The closure runs here, on this thread, as the writer; the
        // workers run on the pool.
        pool.in_place_scope(|workers| -> Result<(), BatchError> {
            for _ in 0..jobs {
                let (job_rx, done_tx, context) = (job_rx.clone(), done_tx.clone(), &context);
                workers.spawn(move |_| {
                    for Job { listed, input } in job_rx {
                        if progress.stop_requested().is_some() {
                            break; // read, not started: the rerun does it
                        }
                        // The input's bytes are freed inside, before the
                        // send below can wait on a busy writer.
                        let mut done = work(&listed, input, context);
                        done.record.roster = listed.roster;
                        make_sheets(&mut done, &listed.input, &config.options);
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(done_tx);
            drop(job_rx);
            for mut done in done_rx {
                let written = write_output(&out, &mut done, config.overwrite)
                    .and_then(|()| write_sheets(&out, &mut done, config));
                if let Err(e) = written {
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
                if let Some(name) = &done.record.output {
                    names_taken.insert(name.to_lowercase());
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

    keep_earlier_records(&mut writer, &previous, &out, &names_taken)?;
    let interrupted = progress.stop_requested();
    let run = writer.run_mut();
    run.interrupted = interrupted.map(str::to_owned);
    run.stage_seconds = stage_totals.as_seconds();
    run.seconds = started.elapsed().as_secs_f64();
    let mut records = writer.finish()?;
    // Each shard makes only its own photos' sheets: the batch PDF is one
    // run's (or, for a sharded batch, left to the sheets themselves).
    if let (Some(settings), None) = (&config.options.print, &config.shard) {
        match prints::write_batch_pdf(&prints::sheets_dir(&out, settings), &records) {
            Ok(Some((path, pages))) => {
                progress.note(&format!("{pages} sheets in {}", path_text(&path)))
            }
            Ok(None) => {}
            Err(e) => fatal = Some(e.to_string()),
        }
    }
    records = records.holding(lock);
    if let Some(part_lock) = part_lock {
        records = records.holding(part_lock);
    }
    // Everything of it that still matters is in the manifest now (for a
    // photo not reached, fatal error or signal, its earlier record).
    previous.discard(&book);
    if let Some(e) = fatal {
        return Err(BatchError::FatalWrite(e));
    }
    Ok(records)
}

/// Tunes glibc's malloc for a batch of photos; a setting the user made in
/// the environment wins. Call it first thing in `main`, before any other
/// thread exists (the CLI does; so does the decode floor in
/// `examples/speed.rs`, which must run under the same allocator).
///
/// - Two arenas: glibc gives threads their own arenas (up to 8 per core)
///   and keeps what is freed in each for that arena only, so with workers
///   that each decode megabytes the resident memory settles well above
///   what is live. On a 500-photo run of 24 MP photos on 2 cores the median
///   resident memory fell from 133 to 76 MB and the peak from 179 to
///   148 MB, at the same speed (benches/README.md, memory).
/// - Buffers up to 32 MB from the heap, and the heap trimmed only past
///   128 MB free: by default every decoded image, working copy and encode
///   buffer of a few MB was a fresh mmap, so each photo paid page faults
///   and the kernel's zeroing for all of them. On the 80-photo slice page
///   faults fell from 100-130 thousand to 64 thousand and CPU time by 2-5%;
///   on 500 photos of 24 MP, 23.4 -> 25.1 photos/s, peak 142 -> 162 MB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_malloc() {
    let user_set = |name: &str| std::env::var_os(name).is_some();
    let tunables = user_set("GLIBC_TUNABLES");
    let settings = [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2),
        ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 32 << 20),
        ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 128 << 20),
    ];
    for (variable, parameter, value) in settings {
        if !tunables && !user_set(variable) {
            // SAFETY: mallopt only sets an allocator parameter, under
            // glibc's own lock; called early, it also applies to every
            // arena made later.
            unsafe {
                libc::mallopt(parameter, value);
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_malloc() {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::manifest::Status;
    use std::collections::HashMap;

    /// A stand-in for the stages: fails loudly on one photo, "encodes" the
    /// others as their own bytes.
    fn panics_on_b(input: &Path, bytes: &[u8]) -> Processed {
        if input.ends_with("b.jpg") {
            panic!("stage bug on {}", input.display());
        }
        Processed {
            record: PhotoRecord {
                status: Some(Status::Ok),
                ..PhotoRecord::default()
            },
            jpeg: Some(bytes.to_vec()),
            timings: StageTimings::default(),
            prints: None,
        }
    }

    #[test]
    fn a_panic_in_one_photo_fails_that_photo_and_the_batch_goes_on() {
        let root = std::env::temp_dir().join(format!("gradphoto-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let input = root.join("in");
        std::fs::create_dir_all(&input).unwrap();
        for name in ["a.jpg", "b.jpg", "c.jpg"] {
            std::fs::write(input.join(name), [0xFF, 0xD8, 0xFF, name.as_bytes()[0]]).unwrap();
        }
        let config = BatchConfig {
            inputs: vec![input.clone()],
            out_dir: root.join("out"),
            jobs: 2,
            overwrite: false,
            allow_output_in_input: false,
            options: Options::default(),
            roster: None,
            name_template: NameTemplate::default(),
            shard: None,
        };
        let manifest = run_batch(&config, &Silent, &panics_on_b)
            .unwrap()
            .to_manifest()
            .unwrap();
        let by_name: HashMap<&str, &PhotoRecord> = manifest
            .photos
            .iter()
            .map(|r| (r.input.rsplit('/').next().unwrap_or_default(), r))
            .collect();
        assert_eq!(by_name.len(), 3);
        let b = by_name["b.jpg"];
        assert_eq!(b.status, Some(Status::Fail));
        let error = b.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("internal error") && error.contains("stage bug"),
            "{error}"
        );
        for name in ["a.jpg", "c.jpg"] {
            assert_eq!(by_name[name].status, Some(Status::Ok));
            let written = std::fs::read(root.join("out").join(name)).unwrap();
            assert_eq!(written, [0xFF, 0xD8, 0xFF, name.as_bytes()[0]]);
        }
        assert!(!root.join("out/b.jpg").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn inputs_over_the_byte_limit_or_not_regular_are_refused_unread() {
        let root = std::env::temp_dir().join(format!("gradphoto-read-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let file = root.join("big.jpg");
        std::fs::write(&file, vec![0u8; 2048]).unwrap();
        assert_eq!(read_input(&file, 2048).map(|b| b.len()), Ok(2048));
        assert!(
            read_input(&file, 2047)
                .unwrap_err()
                .contains("larger than any photo")
        );
        assert_eq!(read_input(&root, 1 << 20), Err("not a regular file".into()));
        assert!(
            read_input(&root.join("missing.jpg"), 10)
                .unwrap_err()
                .starts_with("cannot read")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_budget_holds_a_photo_back_until_its_share_is_free() {
        let budget = MemoryBudget::new(100);
        let first = budget.reserve(70);
        let started = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let second = budget.reserve(70);
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                second.bytes
            });
            // However long this waits, the second cannot start before the
            // first is given back.
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
            drop(first);
            assert_eq!(waiting.join().unwrap(), 70);
        });
        // More than the whole budget runs alone instead of never.
        assert_eq!(budget.reserve(1_000).bytes, 100);
        assert_eq!(*budget.used.lock().unwrap(), 0);
    }

    #[test]
    fn working_memory_is_estimated_from_the_header() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(6000u32.to_be_bytes());
        png.extend(4000u32.to_be_bytes());
        let options = Options::default();
        // Averaged down by 2 to 3000x2000 (the first decode keeps at least
        // 960x1280 either way up: 3/8 at least, so 1/2 for a power of two),
        // plus the whole frame while it is interlaced.
        let reduced = 3000 * 2000 * 9;
        png.extend([8, 2, 0, 0, 1]);
        assert_eq!(working_bytes(&png, &options), reduced + 6000 * 4000 * 4);
        png[28] = 0;
        assert_eq!(working_bytes(&png, &options), reduced);
        assert_eq!(working_bytes(&png[..20], &options), 0, "cut-off header");
        assert_eq!(working_bytes(b"%PDF-1.7", &options), 0);
    }
}
