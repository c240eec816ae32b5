//! Manifest stage: what happened to every photo, as JSON for the registry
//! upload and as CSV for spreadsheet users (SPEC §5).
//!
//! The manifest must survive an interruption. Each finished record is
//! appended (one JSON line, flushed) to `manifest.jsonl`, so nothing that
//! finished is ever lost; `manifest.json` and `manifest.csv` are rewritten
//! atomically (temporary file, then rename) at most every
//! [`ManifestWriter::REWRITE_INTERVAL`] and at the end, so they are always
//! complete, readable documents.
//!
//! Memory must not grow with the batch, so the journal is also where the
//! records are kept: the writer remembers only where each record starts in
//! it, and the documents, the final sorted ones included, are streamed from
//! the journal record by record. Resuming reads an earlier run's records
//! the same way ([`Previous`]), and so do the summary and the report after
//! the run ([`Records`]).

use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::batch::lock::FolderLock;
use crate::batch::output::{open_no_follow, write_atomically_with};
use crate::batch::shard::{MergedRun, ShardRun};
use crate::image::Rect;
use crate::verdict::{Check, Verdict};

pub const JSON_NAME: &str = "manifest.json";
pub const CSV_NAME: &str = "manifest.csv";
pub const JOURNAL_NAME: &str = "manifest.jsonl";

/// What became of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written; every check passed.
    Ok,
    /// Written; some picture check warns: a person should look at it.
    Warn,
    /// Not written: a hard rule or a picture check failed, or the input is bad.
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// Where the subject ended up in the output, in output pixels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputGeometry {
    pub crown_y: f64,
    pub eye_line_y: f64,
    pub face_width: f64,
    pub head: Rect,
}

/// Pixels removed from each side of the upright image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorderRemoved {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

/// One record per input (SPEC §5). Fields stay `None` for stages the photo
/// never reached, so a failure still says how far it got.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhotoRecord {
    pub input: String,
    pub input_bytes: u64,
    pub input_sha256: String,
    /// Detected by content: `jpeg`, `png`, or the unsupported type's name.
    pub detected_type: Option<String>,
    /// The file name's extension disagrees with the content (e.g. a PNG named `.jpg`).
    pub extension_mismatch: bool,
    /// How the pixels were stored (`ycbcr`, `grayscale`, `cmyk`, `rgba`, ...).
    pub colour: Option<String>,
    /// The colour space the file declared, which its pixels were converted
    /// from to sRGB: `icc: <the profile's name>`, `png sRGB chunk`,
    /// `png cHRM gAMA 0.45455`, `exif: Adobe RGB`. Absent when the file
    /// declares none (read as sRGB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour_profile: Option<String>,
    pub progressive: Option<bool>,
    /// Stored size, before orientation.
    pub original_width: Option<u32>,
    pub original_height: Option<u32>,
    /// EXIF orientation applied (1-8).
    pub orientation: Option<u16>,
    pub border_removed: Option<BorderRemoved>,
    /// The 3:4 box cut from the upright image (before border removal, so it
    /// can be checked against the original directly).
    pub crop: Option<Rect>,
    /// Pixels of synthesised backdrop added above and beside the picture
    /// (in the file's pixels) so the crop could sit at the composition
    /// rule's aim; absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdrop_extended: Option<crate::analysis::extend::Extension>,
    /// Output pixels per input pixel.
    pub scale: Option<f64>,
    pub geometry: Option<OutputGeometry>,
    /// The face the crop was placed by (absent where no detection ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<crate::analysis::face::FaceRecord>,
    pub output: Option<String>,
    pub output_bytes: Option<u64>,
    pub output_sha256: Option<String>,
    pub jpeg_quality: Option<u8>,
    pub chroma: Option<String>,
    pub encode_attempts: Option<u32>,
    /// Bytes of COM padding added to reach the minimum size (0 when none).
    pub padding_bytes: Option<usize>,
    pub backdrop_rgb: Option<[u8; 3]>,
    pub backdrop_delta_e: Option<f64>,
    /// `--recolour`: the backdrop colour measured before it was replaced
    /// (`backdrop_rgb` and the checks then describe the photo written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backdrop_recoloured: Option<[u8; 3]>,
    pub checks: Vec<Check>,
    pub status: Option<Status>,
    pub error: Option<String>,
    /// Scales the photo was decoded at, in order (1 = full size, 0.375 =
    /// 3/8, down to 0.125); a second entry means the first was too coarse
    /// for the crop.
    #[serde(default)]
    pub decode_scales: Vec<f64>,
    /// Carried over from an earlier run with the same input and settings.
    #[serde(default)]
    pub resumed: bool,
    /// The graduate this photo belongs to, when a roster was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<RosterFields>,
    /// `check` only: whether `normalize` turns this failing photo into one
    /// that passes (`None` for photos that pass, and in `normalize` runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixable: Option<bool>,
    /// `check` only: what `normalize` would do, or why it cannot help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The input already met every rule as it stood (480x640, baseline
    /// JFIF at 300 dpi, no EXIF, in the size window, no crop needed, no
    /// check failing), so its bytes were written unchanged instead of
    /// being encoded again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub copied: bool,
    /// Set on a record kept from an earlier run into the same folder whose
    /// input this run was not given: the photo is still in the folder, and
    /// this says which run made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_run: Option<EarlierRun>,
    /// With `--print` and in `print` runs: the sizes printed (each one's
    /// crop from the file and the resolution it got) and the sheet files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prints: Option<crate::print::PrintsRecord>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The run an earlier record came from, as its manifest named it (empty
/// when that run's manifest.json could not be read).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierRun {
    pub started: String,
    pub settings_sha256: String,
}

/// A roster row's fields, carried on the photo matched to it (SPEC §4:
/// since 2022 the registry matches by collection code and student number).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterFields {
    /// Line of the roster file the row is on (the header is line 1).
    pub line: usize,
    pub student_no: String,
    pub id_card: String,
    pub name: String,
    pub collection_code: String,
    /// Why `id_card` is not a valid 18-digit ID-card number, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_card_problem: Option<String>,
}

/// A roster row as the mismatch lists name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRef {
    pub line: usize,
    pub student_no: String,
    pub name: String,
}

/// A graduate matched by more than one photo; none of them is written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiplePhotos {
    pub graduate: RosterRef,
    pub photos: Vec<String>,
}

/// A photo that matches no roster row (or several rows at once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedPhoto {
    pub photo: String,
    pub reason: String,
}

/// A roster row whose ID-card number is not valid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidId {
    pub graduate: RosterRef,
    pub id_card: String,
    pub reason: String,
}

/// How the photos and the roster matched (SPEC §5: who has no photo, who
/// has two, which photos match nobody).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterSummary {
    pub file: String,
    /// `utf-8`, `gb18030` (which reads GBK) or `utf-16le`.
    pub encoding: String,
    pub rows: usize,
    /// Graduates matched by exactly one photo.
    pub matched: usize,
    pub no_photo: Vec<RosterRef>,
    pub multiple_photos: Vec<MultiplePhotos>,
    pub unmatched_photos: Vec<UnmatchedPhoto>,
    pub invalid_ids: Vec<InvalidId>,
    /// Student numbers that appear on more than one row.
    pub duplicate_student_nos: Vec<String>,
    /// ID-card numbers that appear on more than one row (a typing or
    /// copying mistake: an ID card belongs to one person), with the rows.
    #[serde(default)]
    pub duplicate_id_cards: Vec<DuplicateIdCard>,
}

/// One ID-card number on several roster rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateIdCard {
    pub id_card: String,
    pub graduates: Vec<RosterRef>,
}

impl RosterSummary {
    /// Whether every graduate has exactly one photo and every id is valid.
    pub fn is_clean(&self) -> bool {
        self.no_photo.is_empty()
            && self.multiple_photos.is_empty()
            && self.unmatched_photos.is_empty()
            && self.invalid_ids.is_empty()
            && self.duplicate_student_nos.is_empty()
            && self.duplicate_id_cards.is_empty()
    }

    /// Each kind of mismatch with its entries as a person reads them, for
    /// the terminal summary and the report alike.
    pub fn mismatch_lists(&self) -> [(&'static str, Vec<String>); 6] {
        let who = |r: &RosterRef| format!("{} {} (line {})", r.student_no, r.name, r.line);
        [
            ("No photo", self.no_photo.iter().map(who).collect()),
            (
                "Several photos (none used)",
                self.multiple_photos
                    .iter()
                    .map(|m| format!("{}: {}", who(&m.graduate), m.photos.join(", ")))
                    .collect(),
            ),
            (
                "Photos matching nobody",
                self.unmatched_photos
                    .iter()
                    .map(|u| format!("{}: {}", u.photo, u.reason))
                    .collect(),
            ),
            (
                "Invalid ID-card numbers",
                self.invalid_ids
                    .iter()
                    .map(|i| format!("{}: {:?} {}", who(&i.graduate), i.id_card, i.reason))
                    .collect(),
            ),
            (
                "Student numbers on several rows",
                self.duplicate_student_nos.clone(),
            ),
            (
                "ID-card numbers on several rows",
                self.duplicate_id_cards
                    .iter()
                    .map(|d| {
                        let rows: Vec<String> = d.graduates.iter().map(who).collect();
                        format!("{}: {}", d.id_card, rows.join(", "))
                    })
                    .collect(),
            ),
        ]
    }
}

impl PhotoRecord {
    pub fn status(&self) -> Status {
        self.status.unwrap_or(Status::Fail)
    }

    /// The reasons a person should read: the error, then every check that
    /// did not pass.
    pub fn reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self.error.iter().cloned().collect();
        reasons.extend(
            self.checks
                .iter()
                .filter(|c| c.verdict != Verdict::Pass)
                .map(|c| format!("{} ({}): {}", c.name, verdict_name(c.verdict), c.reason)),
        );
        reasons
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Warn => "warn",
        Verdict::Fail => "fail",
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub inputs: usize,
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    /// Files passed over because their bytes are not an image (not in `records`).
    pub skipped_not_images: usize,
    /// Hidden files and folders (names starting with a dot) passed over in
    /// the folders given (not in `records`; a hidden folder counts once).
    #[serde(default)]
    pub skipped_hidden: usize,
    /// Photos carried over unchanged from an earlier run.
    pub resumed: usize,
    /// `check`: failing photos that `normalize` would turn into passing ones.
    #[serde(default)]
    pub fixable: usize,
    /// Photos already compliant whose bytes were written unchanged.
    #[serde(default)]
    pub copied: usize,
    /// Records kept from earlier runs into the same folder for photos this
    /// run was not given (not counted in `inputs`, `ok`, `warn`, `fail`).
    #[serde(default)]
    pub from_earlier_runs: usize,
}

/// The run as a whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    pub tool: String,
    pub version: String,
    pub command: String,
    /// Every setting that influences the output, as used.
    pub settings: serde_json::Value,
    /// SHA-256 of `settings`: a rerun resumes only photos done with the same one.
    pub settings_sha256: String,
    pub jobs: usize,
    pub started: String,
    pub finished: Option<String>,
    pub seconds: f64,
    pub counts: Counts,
    /// How photos matched the roster, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<RosterSummary>,
    /// Seconds spent in each stage, summed over all photos and threads.
    pub stage_seconds: BTreeMap<String, f64>,
    /// Why the run stopped before every photo was done (`SIGINT`,
    /// `SIGTERM`); absent when it went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// Which shard of a batch this part is (`--shard`, or the scheduler's
    /// environment); absent in a run that was not sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRun>,
    /// Present on a manifest `merge` joined from shards' parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<MergedRun>,
}

impl RunHeader {
    /// The header of a run starting now.
    pub fn starting(
        command: &str,
        settings: serde_json::Value,
        settings_sha256: String,
        jobs: usize,
    ) -> Self {
        RunHeader {
            tool: "gradphoto".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command: command.into(),
            settings,
            settings_sha256,
            jobs,
            started: now_rfc3339(),
            ..RunHeader::default()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub run: RunHeader,
    pub photos: Vec<PhotoRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the manifest: {0}")]
    Encode(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where one record lives in a journal, with what the counts and the
/// report's order need of it, so that neither reads the record back.
#[derive(Clone, Debug)]
struct Entry {
    input: String,
    offset: u64,
    len: usize,
    status: Status,
    resumed: bool,
    fixable: bool,
    copied: bool,
    earlier: bool,
}

impl Entry {
    fn of(record: &PhotoRecord, offset: u64, len: usize) -> Self {
        Entry {
            input: record.input.clone(),
            offset,
            len,
            status: record.status(),
            resumed: record.resumed,
            fixable: record.fixable == Some(true),
            copied: record.copied,
            earlier: record.from_run.is_some(),
        }
    }
}

/// A journal read back one record at a time, by offset: a 4,500-photo
/// batch's records are megabytes, and only their places stay in memory.
struct JournalReader {
    path: PathBuf,
    // Behind a lock because readers share one handle and each read is a
    // seek then a read; the workers that look up earlier records read
    // rarely and briefly.
    file: Mutex<File>,
}

impl JournalReader {
    fn open(path: &Path) -> Result<Self, ManifestError> {
        let file = File::open(path).map_err(io_error(path))?;
        Ok(JournalReader {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    fn read(&self, entry: &Entry) -> Result<PhotoRecord, ManifestError> {
        self.read_at(entry.offset, entry.len)
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<PhotoRecord, ManifestError> {
        let mut line = vec![0; len];
        {
            let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut line))
                .map_err(|source| ManifestError::Read {
                    path: self.path.clone(),
                    source,
                })?;
        }
        serde_json::from_slice(&line).map_err(|e| ManifestError::Corrupt {
            path: self.path.clone(),
            offset,
            reason: e.to_string(),
        })
    }
}

/// The records of a manifest in the order given, read from the journal as
/// they are serialized: the documents are streamed from disk to disk.
struct Streamed<'a> {
    reader: &'a JournalReader,
    entries: &'a [Entry],
}

impl Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq};
        // The same calls `Vec<PhotoRecord>` makes, so the bytes are the same.
        let mut seq = serializer.serialize_seq(Some(self.entries.len()))?;
        for entry in self.entries {
            let record = self.reader.read(entry).map_err(S::Error::custom)?;
            seq.serialize_element(&record)?;
        }
        seq.end()
    }
}

/// [`Manifest`]'s shape with the records streamed: serializes to the same
/// bytes as the `Manifest` holding those records.
#[derive(Serialize)]
struct StreamedManifest<'a> {
    run: &'a RunHeader,
    photos: Streamed<'a>,
}

/// Keeps the manifest files in `dir` up to date as records arrive. Each
/// record is kept in the journal only; memory holds its place there (about
/// a hundred bytes a photo), whatever the size of the record.
pub struct ManifestWriter {
    dir: PathBuf,
    run: RunHeader,
    journal: File,
    journal_len: u64,
    reader: JournalReader,
    entries: Vec<Entry>,
    last_rewrite: Option<Instant>,
    /// How long the last rewrite took: a big batch's documents take a while
    /// to write, and rewriting them must not become the batch's work.
    last_rewrite_cost: Duration,
    started: Instant,
}

impl ManifestWriter {
    /// The journal is always current; the documents are for reading after
    /// (or during) a batch, and each rewrite re-reads and re-writes every
    /// record so far: once a second it was a few percent of a fast batch's
    /// CPU, on the core the workers need.
    pub const REWRITE_INTERVAL: Duration = Duration::from_secs(5);

    /// Starts a manifest in `dir`. The journal is started afresh (records
    /// carried over from an earlier run are passed in again by the caller,
    /// from [`Previous`], which must be loaded before this), and the
    /// documents are written at once, empty, so that from now on they carry
    /// this run's settings.
    pub fn create(dir: &Path, run: RunHeader) -> Result<Self, ManifestError> {
        let journal_path = dir.join(JOURNAL_NAME);
        let journal = open_no_follow(
            OpenOptions::new().create(true).write(true).truncate(true),
            &journal_path,
        )
        .map_err(|e| ManifestError::Io {
            path: journal_path.clone(),
            source: e.into_io(),
        })?;
        let mut writer = ManifestWriter {
            dir: dir.to_owned(),
            run,
            journal,
            journal_len: 0,
            reader: JournalReader::open(&journal_path)?,
            entries: Vec::new(),
            last_rewrite: None,
            last_rewrite_cost: Duration::ZERO,
            started: Instant::now(),
        };
        writer.rewrite(None)?;
        Ok(writer)
    }

    pub fn run_mut(&mut self) -> &mut RunHeader {
        &mut self.run
    }

    /// The inputs this run has written (or kept) a photo of, so that an
    /// earlier run's record of them is superseded.
    pub fn written_inputs(&self) -> HashSet<String> {
        self.entries
            .iter()
            .filter(|e| !e.earlier && e.status != Status::Fail)
            .map(|e| e.input.clone())
            .collect()
    }

    /// Adds a finished record: journalled at once, the documents refreshed
    /// when the last rewrite is old enough.
    pub fn add(&mut self, record: PhotoRecord) -> Result<(), ManifestError> {
        let mut line =
            serde_json::to_vec(&record).map_err(|e| ManifestError::Encode(e.to_string()))?;
        line.push(b'\n');
        let journal_path = self.dir.join(JOURNAL_NAME);
        self.journal
            .write_all(&line)
            .and_then(|()| self.journal.flush())
            .map_err(io_error(&journal_path))?;
        self.entries
            .push(Entry::of(&record, self.journal_len, line.len() - 1));
        self.journal_len += line.len() as u64;
        // At most every REWRITE_INTERVAL, and at most 2% of the writer's
        // time.
        let interval = Self::REWRITE_INTERVAL.max(self.last_rewrite_cost * 50);
        let due = self.last_rewrite.is_none_or(|t| t.elapsed() >= interval);
        if due {
            self.rewrite(None)?;
        }
        Ok(())
    }

    /// Writes the final documents, records sorted by input path so that the
    /// same batch gives the same manifest whatever the thread timing, and
    /// hands the records over for reading.
    pub fn finish(mut self) -> Result<Records, ManifestError> {
        // Stable, as sorting the records themselves was.
        self.entries.sort_by(|a, b| a.input.cmp(&b.input));
        self.rewrite(Some(now_rfc3339()))?;
        Ok(Records {
            run: self.run,
            reader: self.reader,
            entries: self.entries,
            locks: Vec::new(),
        })
    }

    fn rewrite(&mut self, finished: Option<String>) -> Result<(), ManifestError> {
        let began = Instant::now();
        let run = &mut self.run;
        run.finished = finished;
        run.seconds = self.started.elapsed().as_secs_f64();
        run.counts = tally(&self.entries, &run.counts);
        write_documents(&self.dir, &self.run, &self.reader, &self.entries)?;
        self.last_rewrite = Some(Instant::now());
        self.last_rewrite_cost = began.elapsed();
        Ok(())
    }
}

/// Replaces manifest.json and manifest.csv in `dir` atomically, each
/// streamed from the journal record by record.
fn write_documents(
    dir: &Path,
    run: &RunHeader,
    reader: &JournalReader,
    entries: &[Entry],
) -> Result<(), ManifestError> {
    let json_path = dir.join(JSON_NAME);
    let document = StreamedManifest {
        run,
        photos: Streamed { reader, entries },
    };
    write_atomically_with(&json_path, true, |w| {
        serde_json::to_writer_pretty(w, &document).map_err(std::io::Error::other)
    })
    .map_err(|e| ManifestError::Io {
        path: json_path.clone(),
        source: e.into_io(),
    })?;
    let csv_path = dir.join(CSV_NAME);
    write_atomically_with(&csv_path, true, |w| {
        write_csv_rows(w, entries.iter().map(|e| reader.read(e))).map_err(std::io::Error::other)
    })
    .map_err(|e| ManifestError::Io {
        path: csv_path.clone(),
        source: e.into_io(),
    })
}

/// A finished run's records, sorted by input, read from the journal when
/// asked for.
pub struct Records {
    run: RunHeader,
    reader: JournalReader,
    entries: Vec<Entry>,
    /// The output folder's lock (and a shard's part's), held for as long
    /// as the records are read (the report is written from them).
    locks: Vec<FolderLock>,
}

impl Records {
    /// Keeps the output folder locked until the records are dropped.
    pub(crate) fn holding(mut self, lock: FolderLock) -> Self {
        self.locks.push(lock);
        self
    }

    pub fn run(&self) -> &RunHeader {
        &self.run
    }

    /// Reads the whole manifest into memory: for small batches and tests.
    pub fn to_manifest(&self) -> Result<Manifest, ManifestError> {
        Ok(Manifest {
            run: self.run.clone(),
            photos: self.iter().collect::<Result<_, _>>()?,
        })
    }

    /// The records in input order, each read as it is reached.
    pub fn iter(&self) -> impl Iterator<Item = Result<PhotoRecord, ManifestError>> + '_ {
        self.entries.iter().map(|e| self.reader.read(e))
    }
}

/// A manifest's records in input order, from memory ([`Manifest`]) or
/// from the journal ([`Records`]), for readers that go through them more
/// than once (the report) without holding them all.
pub trait RecordSource: Sync {
    fn run(&self) -> &RunHeader;
    fn records(&self) -> RecordIter<'_>;
}

/// The records of a [`RecordSource`], each as read.
pub type RecordIter<'a> =
    Box<dyn Iterator<Item = Result<Cow<'a, PhotoRecord>, ManifestError>> + 'a>;

impl RecordSource for Records {
    fn run(&self) -> &RunHeader {
        &self.run
    }

    fn records(&self) -> RecordIter<'_> {
        Box::new(self.iter().map(|r| r.map(Cow::Owned)))
    }
}

impl RecordSource for Manifest {
    fn run(&self) -> &RunHeader {
        &self.run
    }

    fn records(&self) -> RecordIter<'_> {
        let mut order: Vec<&PhotoRecord> = self.photos.iter().collect();
        order.sort_by(|a, b| a.input.cmp(&b.input));
        Box::new(order.into_iter().map(|r| Ok(Cow::Borrowed(r))))
    }
}

/// Tallies records by status.
#[cfg(test)]
pub fn count(records: &[PhotoRecord], skipped_not_images: usize) -> Counts {
    let entries: Vec<Entry> = records.iter().map(|r| Entry::of(r, 0, 0)).collect();
    let passed_over = Counts {
        skipped_not_images,
        ..Counts::default()
    };
    tally(&entries, &passed_over)
}

/// Counts of the records' entries; the files passed over are taken from
/// `passed_over`, which the caller set.
fn tally(entries: &[Entry], passed_over: &Counts) -> Counts {
    let mut counts = Counts {
        skipped_not_images: passed_over.skipped_not_images,
        skipped_hidden: passed_over.skipped_hidden,
        ..Counts::default()
    };
    for e in entries {
        if e.earlier {
            counts.from_earlier_runs += 1;
            continue;
        }
        counts.inputs += 1;
        match e.status {
            Status::Ok => counts.ok += 1,
            Status::Warn => counts.warn += 1,
            Status::Fail => counts.fail += 1,
        }
        counts.resumed += usize::from(e.resumed);
        counts.fixable += usize::from(e.fixable);
        counts.copied += usize::from(e.copied);
    }
    counts
}

/// Where [`Previous`] gathers an earlier run's records (hidden: the output
/// folder is what a school uploads).
pub const PREVIOUS_NAME: &str = ".manifest-previous.jsonl";

/// The records of the runs before this one into the same folder, for
/// resuming and for keeping: gathered into one file (the journal and
/// manifest.json of the last run, and what an interrupted run before it had
/// gathered), each tagged with the run that made it ([`EarlierRun`]), and
/// found by input path. A photo made again with the same bytes and
/// settings is resumed from its record ([`Previous::matching`]); the
/// records of photos this run was not given are kept in its manifest while
/// their photos are still in the folder ([`Previous::earlier`]). The file
/// stays until a run has written its manifest, so a run that is killed
/// loses nothing its predecessors had done.
pub struct Previous {
    reader: Option<JournalReader>,
    by_input: HashMap<String, PreviousEntry>,
    /// This run's settings digest: only records made with it are resumed.
    settings_sha256: String,
}

struct PreviousEntry {
    input_sha256: String,
    /// The settings digest of the run that made the record.
    settings_sha256: String,
    offset: u64,
    len: usize,
}

impl Previous {
    /// Gathers the records earlier runs left in `dir`, for a run whose
    /// settings are digested as `settings_sha256`. Records that cannot be
    /// read are left out (then that photo is made again, which is always
    /// safe); an error is returned only when the gathered file cannot be
    /// written.
    pub fn load(dir: &Path, settings_sha256: &str) -> Result<Self, ManifestError> {
        let path = dir.join(PREVIOUS_NAME);
        let temp = dir.join(format!(".{PREVIOUS_NAME}.{}-0.tmp", std::process::id()));
        let by_input = match gather_previous(dir, &path, &temp) {
            Ok(found) => found,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        std::fs::rename(&temp, &path).map_err(io_error(&path))?;
        Ok(Previous {
            reader: Some(JournalReader::open(&path)?),
            by_input,
            settings_sha256: settings_sha256.to_owned(),
        })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_input.len()
    }

    /// The earlier record of `input` when it was made from the same bytes,
    /// with this run's settings, and written under `output`: this run's
    /// record now. A record that cannot be read back counts as none.
    pub fn matching(&self, input: &str, input_sha256: &str, output: &str) -> Option<PhotoRecord> {
        let entry = self.by_input.get(input).filter(|e| {
            e.input_sha256 == input_sha256 && e.settings_sha256 == self.settings_sha256
        })?;
        let mut record = self
            .reader
            .as_ref()?
            .read_at(entry.offset, entry.len)
            .ok()?;
        record.from_run = None;
        (record.output.as_deref() == Some(output)).then_some(record)
    }

    /// The earlier records of the photos written (status ok or warn) whose
    /// inputs `superseded` does not claim, each still tagged with the run
    /// that made it. Whether each photo is still in the folder is the
    /// caller's to check.
    pub fn earlier<'a>(
        &'a self,
        superseded: &'a dyn Fn(&str) -> bool,
    ) -> impl Iterator<Item = PhotoRecord> + 'a {
        let reader = self.reader.as_ref();
        self.by_input
            .iter()
            .filter(move |(input, _)| !superseded(input))
            .filter_map(move |(_, e)| reader?.read_at(e.offset, e.len).ok())
            .filter(|r| r.output.is_some() && matches!(r.status, Some(Status::Ok | Status::Warn)))
    }

    /// Removes the gathered file once a run's manifest holds what it
    /// needs of it: the records it resumed or kept, the rest being
    /// superseded or of photos no longer in the folder.
    pub fn discard(self, dir: &Path) {
        drop(self.reader);
        let _ = std::fs::remove_file(dir.join(PREVIOUS_NAME));
    }
}

/// Writes every earlier record of `dir` into `temp`, newest first and each
/// input once, each tagged with the run that made it: the journal (newer
/// than manifest.json, which is rewritten from it) and manifest.json, whose
/// own records the header of manifest.json names the run of, then what an
/// interrupted run had gathered at `previous` (tagged when gathered).
/// Returns where each input's record is.
fn gather_previous(
    dir: &Path,
    previous: &Path,
    temp: &Path,
) -> Result<HashMap<String, PreviousEntry>, ManifestError> {
    // The last run, as its manifest.json names it (written when it
    // started, so there even if it was killed); unknown when unreadable.
    let last_run = read_document(&dir.join(JSON_NAME), &mut |_| Ok(()))
        .ok()
        .flatten()
        .map(|run| EarlierRun {
            started: run.started,
            settings_sha256: run.settings_sha256,
        })
        .unwrap_or_default();
    // Whatever is at this name is a leftover (the folder is locked): gone,
    // and a link there is removed, never followed.
    let _ = std::fs::remove_file(temp);
    let file =
        open_no_follow(OpenOptions::new().write(true).create_new(true), temp).map_err(|e| {
            ManifestError::Io {
                path: temp.to_owned(),
                source: e.into_io(),
            }
        })?;
    let mut out = BufWriter::new(file);
    let mut len = 0u64;
    let mut by_input: HashMap<String, PreviousEntry> = HashMap::new();
    let mut keep = |record: &PhotoRecord, newest: bool| -> std::io::Result<()> {
        if !newest && by_input.contains_key(&record.input) {
            return Ok(());
        }
        let mut record = record.clone();
        let run = record.from_run.get_or_insert_with(|| last_run.clone());
        let settings_sha256 = run.settings_sha256.clone();
        let line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        by_input.insert(
            record.input.clone(),
            PreviousEntry {
                input_sha256: record.input_sha256.clone(),
                settings_sha256,
                offset: len,
                len: line.len(),
            },
        );
        len += line.len() as u64 + 1;
        Ok(())
    };
    // Within the journal a later line is newer; across files, the first
    // file to name an input wins.
    for_each_line(&dir.join(JOURNAL_NAME), &mut |record, _| keep(record, true))
        .map_err(io_error(temp))?;
    read_document(&dir.join(JSON_NAME), &mut |record| keep(&record, false))
        .map_err(io_error(temp))?;
    for_each_line(previous, &mut |record, _| keep(record, false)).map_err(io_error(temp))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_error(temp))?;
    file.sync_all().map_err(io_error(temp))?;
    Ok(by_input)
}

/// The command (`normalize`, `check`) that wrote the manifest.json in
/// `dir`, when there is a readable one.
pub fn manifest_command(dir: &Path) -> Option<String> {
    read_document(&dir.join(JSON_NAME), &mut |_| Ok(()))
        .ok()
        .flatten()
        .map(|run| run.command)
}

type LineFn<'a> = dyn FnMut(&PhotoRecord, &[u8]) -> std::io::Result<()> + 'a;

/// Calls `each` on every record of a journal-like file (one JSON record a
/// line). A missing file has none; a line that does not parse (a torn last
/// line of a killed run) is passed over.
fn for_each_line(path: &Path, each: &mut LineFn<'_>) -> std::io::Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A read error ends the file early: what was read is still good.
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Ok(record) = serde_json::from_slice::<PhotoRecord>(&line) {
            each(&record, &line)?;
        }
    }
}

pub(crate) type RecordFn<'a> = dyn FnMut(PhotoRecord) -> std::io::Result<()> + 'a;

/// Reads a manifest.json one record at a time, calling `each` on each, and
/// returns its run header; `Ok(None)` when there is no readable document
/// (records already passed to `each` then belong to no known settings). An
/// error is `each`'s.
pub(crate) fn read_document(
    path: &Path,
    each: &mut RecordFn<'_>,
) -> std::io::Result<Option<RunHeader>> {
    let Ok(file) = File::open(path) else {
        return Ok(None);
    };
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(file));
    let seed = DocumentSeed {
        each,
        failure: &mut failure,
    };
    let run = serde::de::DeserializeSeed::deserialize(seed, &mut de)
        .ok()
        .filter(|_| de.end().is_ok());
    match failure {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

/// Deserializes manifest.json's object, passing each record on as it is
/// read instead of collecting them.
struct DocumentSeed<'a, 'b> {
    each: &'a mut RecordFn<'b>,
    failure: &'a mut Option<std::io::Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DocumentSeed<'_, '_> {
    type Value = RunHeader;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<RunHeader, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocumentSeed<'_, '_> {
    type Value = RunHeader;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a gradphoto manifest")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RunHeader, A::Error> {
        let mut run = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "run" => run = Some(map.next_value::<RunHeader>()?),
                "photos" => map.next_value_seed(PhotosSeed {
                    each: &mut *self.each,
                    failure: &mut *self.failure,
                })?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        run.ok_or_else(|| serde::de::Error::missing_field("run"))
    }
}

struct PhotosSeed<'a, 'b> {
    each: &'a mut RecordFn<'b>,
    failure: &'a mut Option<std::io::Error>,
}

impl<'de> serde::de::DeserializeSeed<'de> for PhotosSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PhotosSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of photo records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element::<PhotoRecord>()? {
            if let Err(e) = (self.each)(record) {
                *self.failure = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

const CSV_COLUMNS: &[&str] = &[
    "input",
    "status",
    "reasons",
    "output",
    "output_bytes",
    "jpeg_quality",
    "chroma",
    "encode_attempts",
    "padding_bytes",
    "detected_type",
    "extension_mismatch",
    "colour",
    "original_width",
    "original_height",
    "orientation",
    "border_top",
    "border_bottom",
    "border_left",
    "border_right",
    "crop_x",
    "crop_y",
    "crop_width",
    "crop_height",
    "crown_y",
    "eye_line_y",
    "face_width",
    "backdrop_rgb",
    "backdrop_delta_e",
    "checks",
    "input_bytes",
    "input_sha256",
    "output_sha256",
    "resumed",
    "student_no",
    "id_card",
    "name",
    "collection_code",
    "fixable",
    "fix",
    "copied",
    "from_run",
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// First characters that make a spreadsheet (Excel, WPS, LibreOffice) read
/// a CSV cell as a formula, or that it strips before doing so (OWASP, "CSV
/// Injection").
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A CSV cell a spreadsheet shows as text, never runs: one that starts with
/// a formula trigger gets a leading apostrophe, as OWASP recommends (a
/// student named `=HYPERLINK(...)` in the roster, or a photo named
/// `=1+2.jpg`, would otherwise be a live formula on the secretary's
/// screen). Quoting and doubling of inner quotes is the CSV writer's.
pub fn neutralise_formula(cell: String) -> String {
    if cell.starts_with(FORMULA_TRIGGERS) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// Writes the records as CSV, UTF-8 with a BOM so that spreadsheets on
/// Chinese Windows open names correctly; every cell passes through
/// [`neutralise_formula`].
#[cfg(test)]
pub fn write_csv(out: impl Write, records: &[PhotoRecord]) -> Result<(), ManifestError> {
    write_csv_rows(out, records.iter().map(Ok))
}

/// [`write_csv`] for records that arrive one at a time (read from the
/// journal); stops at the first that cannot be read.
fn write_csv_rows<R: Borrow<PhotoRecord>>(
    mut out: impl Write,
    records: impl IntoIterator<Item = Result<R, ManifestError>>,
) -> Result<(), ManifestError> {
    out.write_all("\u{feff}".as_bytes())
        .map_err(|e| ManifestError::Encode(e.to_string()))?;
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let fail = |e: csv::Error| ManifestError::Encode(e.to_string());
        w.write_record(CSV_COLUMNS).map_err(fail)?;
        for r in records {
            let r = r?;
            let r: &PhotoRecord = r.borrow();
            let border = r.border_removed.unwrap_or_default();
            let crop = r.crop;
            let geometry = r.geometry.as_ref();
            let roster = r.roster.as_ref();
            let row: Vec<String> = vec![
                r.input.clone(),
                r.status().name().to_owned(),
                r.reasons().join("; "),
                opt(&r.output),
                opt(&r.output_bytes),
                opt(&r.jpeg_quality),
                opt(&r.chroma),
                opt(&r.encode_attempts),
                opt(&r.padding_bytes),
                opt(&r.detected_type),
                r.extension_mismatch.to_string(),
                opt(&r.colour),
                opt(&r.original_width),
                opt(&r.original_height),
                opt(&r.orientation),
                opt(&r.border_removed.map(|_| border.top)),
                opt(&r.border_removed.map(|_| border.bottom)),
                opt(&r.border_removed.map(|_| border.left)),
                opt(&r.border_removed.map(|_| border.right)),
                opt(&crop.map(|c| c.x)),
                opt(&crop.map(|c| c.y)),
                opt(&crop.map(|c| c.width)),
                opt(&crop.map(|c| c.height)),
                opt(&geometry.map(|g| format!("{:.0}", g.crown_y))),
                opt(&geometry.map(|g| format!("{:.0}", g.eye_line_y))),
                opt(&geometry.map(|g| format!("{:.0}", g.face_width))),
                opt(&r.backdrop_rgb.map(|[r, g, b]| format!("{r},{g},{b}"))),
                opt(&r.backdrop_delta_e.map(|d| format!("{d:.2}"))),
                r.checks
                    .iter()
                    .map(|c| format!("{}={}", c.name, verdict_name(c.verdict)))
                    .collect::<Vec<_>>()
                    .join(" "),
                r.input_bytes.to_string(),
                r.input_sha256.clone(),
                opt(&r.output_sha256),
                r.resumed.to_string(),
                opt(&roster.map(|f| f.student_no.clone())),
                opt(&roster.map(|f| f.id_card.clone())),
                opt(&roster.map(|f| f.name.clone())),
                opt(&roster.map(|f| f.collection_code.clone())),
                opt(&r.fixable),
                opt(&r.fix),
                r.copied.to_string(),
                opt(&r.from_run.as_ref().map(|run| run.started.clone())),
            ];
            w.write_record(row.into_iter().map(neutralise_formula))
                .map_err(fail)?;
        }
        w.flush()
            .map_err(|e| ManifestError::Encode(e.to_string()))?;
    }
    Ok(())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_from_unix(secs)
}

fn rfc3339_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian), by the
    // era/day-of-era decomposition.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_right() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_795_660_245), "2026-11-26T02:30:45Z");
    }

    fn record(input: &str, status: Status) -> PhotoRecord {
        PhotoRecord {
            input: input.to_owned(),
            status: Some(status),
            error: (status == Status::Fail).then(|| "corrupt JPEG: bad huffman".to_owned()),
            ..PhotoRecord::default()
        }
    }

    #[test]
    fn csv_has_bom_header_and_quoted_reasons() {
        let mut csv = Vec::new();
        write_csv(&mut csv, &[record("张三, 1.jpg", Status::Fail)]).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert!(text.starts_with('\u{feff}'));
        let mut lines = text.trim_start_matches('\u{feff}').lines();
        assert!(lines.next().unwrap().starts_with("input,status,reasons,"));
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("\"张三, 1.jpg\",fail,corrupt JPEG: bad huffman,"),
            "{row}"
        );
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_run_start_with_an_apostrophe() {
        let evil = [
            "=HYPERLINK(\"http://x\",\"click\")",
            "+cmd|' /C calc'!A0",
            "@SUM(A1)",
            "-2+3+cmd|' /C calc'!A0",
            "\t=1+2",
            "\r=1+2",
        ];
        for cell in evil {
            assert_eq!(neutralise_formula(cell.to_owned()), format!("'{cell}"));
        }
        for cell in ["2025001", "张三", "a=b", "", "'quoted"] {
            assert_eq!(neutralise_formula(cell.to_owned()), cell);
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gradphoto-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn header(settings_sha256: &str) -> RunHeader {
        RunHeader {
            settings_sha256: settings_sha256.to_owned(),
            ..RunHeader::default()
        }
    }

    #[test]
    fn writer_keeps_json_readable_and_journal_complete() {
        let dir = temp_dir("manifest");
        let mut w = ManifestWriter::create(&dir, header("s")).unwrap();
        w.add(record("b.jpg", Status::Ok)).unwrap();
        // Within the rewrite interval the JSON may lag; the journal never does.
        w.add(record("a.jpg", Status::Fail)).unwrap();
        let previous = Previous::load(&dir, "s").unwrap();
        assert_eq!(previous.len(), 2);
        assert!(previous.by_input.contains_key("a.jpg") && previous.by_input.contains_key("b.jpg"));
        let done = w.finish().unwrap().to_manifest().unwrap();
        assert_eq!(done.photos[0].input, "a.jpg");
        assert_eq!(done.run.counts.ok, 1);
        assert_eq!(done.run.counts.fail, 1);
        assert!(done.run.finished.is_some());
        let on_disk: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(JSON_NAME)).unwrap()).unwrap();
        assert_eq!(on_disk, done);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A record with every kind of field filled, floats included whose
    /// shortest decimal form needs all 17 digits, so that a lossy trip
    /// through the journal would show.
    fn full_record(i: u64) -> PhotoRecord {
        let mut rng = crate::testkit::synth::SplitMix64::new(i);
        let mut float = || rng.next_f64() * 1000.0;
        let status = [Status::Ok, Status::Warn, Status::Fail][(i % 3) as usize];
        PhotoRecord {
            input: format!("in/{:03}, 张{}.jpg", (i * 37) % 101, i),
            input_bytes: i * 1_000_003,
            input_sha256: format!("{i:064x}"),
            detected_type: Some("jpeg".into()),
            extension_mismatch: i.is_multiple_of(4),
            colour: Some("ycbcr".into()),
            colour_profile: Some("icc: Display P3".into()),
            progressive: Some(i.is_multiple_of(2)),
            original_width: Some(4000 + i as u32),
            original_height: Some(6000),
            orientation: Some(6),
            border_removed: Some(BorderRemoved {
                top: 1,
                bottom: 2,
                left: 3,
                right: 4,
            }),
            crop: Some(Rect {
                x: 10,
                y: 20,
                width: 300,
                height: 400,
            }),
            backdrop_extended: i
                .is_multiple_of(5)
                .then_some(crate::analysis::extend::Extension {
                    top: 120,
                    left: 0,
                    right: 3,
                }),
            scale: Some(float()),
            geometry: Some(OutputGeometry {
                crown_y: float(),
                eye_line_y: 0.1 + 0.2,
                face_width: float(),
                head: Rect::default(),
            }),
            face: None,
            output: (status != Status::Fail).then(|| format!("{i}.jpg")),
            output_bytes: Some(50_000 + i),
            output_sha256: Some(format!("{:064x}", i + 1)),
            jpeg_quality: Some(91),
            chroma: Some("4:2:0".into()),
            encode_attempts: Some(2),
            padding_bytes: Some(0),
            backdrop_rgb: Some([100, 197, 255]),
            backdrop_delta_e: Some(float()),
            backdrop_recoloured: i.is_multiple_of(7).then_some([250, 250, 250]),
            checks: vec![
                Check::new("backdrop_colour", Verdict::Pass, Some(float()), "fine"),
                Check::new(
                    "crown_margin",
                    Verdict::Warn,
                    Some(1e-7),
                    "a \"quoted\"\nline",
                ),
            ],
            status: Some(status),
            error: (status == Status::Fail).then(|| "bad, \"really\"".into()),
            decode_scales: vec![0.375, float()],
            resumed: i.is_multiple_of(5),
            roster: (i % 2 == 1).then(|| RosterFields {
                line: i as usize,
                student_no: format!("2026{i:04}"),
                name: "李四".into(),
                ..RosterFields::default()
            }),
            fixable: i.is_multiple_of(7).then_some(true),
            fix: None,
            copied: i % 6 == 1,
            from_run: (i % 9 == 2).then(|| EarlierRun {
                started: "2026-06-01T08:00:00Z".into(),
                settings_sha256: format!("{i:064x}"),
            }),
            prints: (i % 5 == 3).then(|| crate::print::PrintsRecord {
                paper: "6in".into(),
                sizes: Vec::new(),
                sheets: vec![crate::print::SheetFile {
                    file: format!("p{i}-1.jpg"),
                    bytes: 1000 + i,
                    sha256: format!("{i:064x}"),
                }],
            }),
        }
    }

    #[test]
    fn streamed_documents_equal_the_in_memory_ones() {
        let dir = temp_dir("streamed");
        let mut run = header("s");
        run.settings = serde_json::json!({"encode": {"min_bytes": 30720}});
        let mut w = ManifestWriter::create(&dir, run).unwrap();
        w.run_mut().counts.skipped_not_images = 3;
        let mut records: Vec<PhotoRecord> = (0..200).map(full_record).collect();
        // Two records for one input: the sort must keep their arrival order.
        records.push(PhotoRecord {
            jpeg_quality: Some(7),
            ..full_record(0)
        });
        for r in &records {
            w.add(r.clone()).unwrap();
        }
        let finished = w.finish().unwrap();
        records.sort_by(|a, b| a.input.cmp(&b.input));
        let in_memory = Manifest {
            run: finished.run().clone(),
            photos: records.clone(),
        };
        assert_eq!(in_memory.run.counts, count(&records, 3));
        let streamed = std::fs::read_to_string(dir.join(JSON_NAME)).unwrap();
        let expected = serde_json::to_string_pretty(&in_memory).unwrap();
        let first_difference = streamed
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(streamed.len().min(expected.len()));
        assert!(
            streamed == expected,
            "streamed manifest.json differs at byte {first_difference}: {:?} vs {:?}",
            &streamed[first_difference.saturating_sub(200)..][..300],
            &expected[first_difference.saturating_sub(200)..][..300],
        );
        let mut csv = Vec::new();
        write_csv(&mut csv, &records).unwrap();
        assert_eq!(std::fs::read(dir.join(CSV_NAME)).unwrap(), csv);
        assert_eq!(finished.to_manifest().unwrap(), in_memory);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn done(input: &str, sha: &str) -> PhotoRecord {
        PhotoRecord {
            input_sha256: sha.to_owned(),
            output: Some(format!("{input}.out")),
            ..record(input, Status::Ok)
        }
    }

    #[test]
    fn a_killed_resume_loses_nothing_its_predecessors_did() {
        let dir = temp_dir("resume");
        // Run 1 finishes a, b, c.
        let mut w = ManifestWriter::create(&dir, header("s")).unwrap();
        for input in ["a", "b", "c"] {
            w.add(done(input, "1")).unwrap();
        }
        w.finish().unwrap();
        // Run 2 resumes a, makes d, redoes c from changed bytes, and is
        // killed in the middle of a line.
        let previous = Previous::load(&dir, "s").unwrap();
        assert_eq!(previous.len(), 3);
        let mut w = ManifestWriter::create(&dir, header("s")).unwrap();
        let mut a = previous.matching("a", "1", "a.out").unwrap();
        a.resumed = true;
        w.add(a).unwrap();
        w.add(done("d", "1")).unwrap();
        w.add(done("c", "2")).unwrap();
        drop(w);
        let mut journal = OpenOptions::new()
            .append(true)
            .open(dir.join(JOURNAL_NAME))
            .unwrap();
        journal.write_all(b"{\"input\":\"e\",\"inpu").unwrap();
        drop((journal, previous));
        // Run 3 finds all of it, the newest record of each input.
        let previous = Previous::load(&dir, "s").unwrap();
        assert_eq!(previous.len(), 4);
        assert!(previous.matching("a", "1", "a.out").unwrap().resumed);
        assert_eq!(
            previous.matching("b", "1", "b.out").unwrap(),
            done("b", "1")
        );
        assert!(
            previous.matching("c", "1", "c.out").is_none(),
            "older bytes"
        );
        assert_eq!(
            previous.matching("c", "2", "c.out").unwrap(),
            done("c", "2")
        );
        assert!(
            previous.matching("d", "1", "other.out").is_none(),
            "other name"
        );
        assert!(previous.matching("d", "1", "d.out").is_some());
        assert!(previous.matching("e", "1", "e.out").is_none());
        previous.discard(&dir);
        assert!(!dir.join(PREVIOUS_NAME).exists());
        // Other settings resume nothing, but the records are kept for the
        // photos still in the folder, tagged with the run that made them.
        assert_eq!(Previous::load(&dir, "s").unwrap().len(), 3, "run 2's own");
        assert!(dir.join(PREVIOUS_NAME).exists());
        let other = Previous::load(&dir, "t").unwrap();
        assert_eq!(other.len(), 3);
        assert!(other.matching("d", "1", "d.out").is_none());
        let none_superseded = |_: &str| false;
        let mut kept: Vec<PhotoRecord> = other.earlier(&none_superseded).collect();
        kept.sort_by(|a, b| a.input.cmp(&b.input));
        let inputs: Vec<&str> = kept.iter().map(|r| r.input.as_str()).collect();
        assert_eq!(inputs, ["a", "c", "d"]);
        let run = kept[0].from_run.as_ref().unwrap();
        assert_eq!(run.settings_sha256, "s");
        let only_d = |input: &str| input != "d";
        assert_eq!(other.earlier(&only_d).count(), 1);
        other.discard(&dir);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
