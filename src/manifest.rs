//! Manifest stage: what happened to every photo, as JSON for the registry
//! upload and as CSV for spreadsheet users (SPEC §5).
//!
//! The manifest must survive an interruption. Each finished record is
//! appended (one JSON line, flushed) to `manifest.jsonl`, so nothing that
//! finished is ever lost; `manifest.json` and `manifest.csv` are rewritten
//! from memory atomically (temporary file, then rename) at most every
//! [`ManifestWriter::REWRITE_INTERVAL`] and at the end, so they are always
//! complete, readable documents.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::check::{Check, Verdict};
use crate::image::Rect;
use crate::output::write_atomically_with;

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
    /// Output pixels per input pixel.
    pub scale: Option<f64>,
    pub geometry: Option<OutputGeometry>,
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
}

impl RosterSummary {
    /// Whether every graduate has exactly one photo and every id is valid.
    pub fn is_clean(&self) -> bool {
        self.no_photo.is_empty()
            && self.multiple_photos.is_empty()
            && self.unmatched_photos.is_empty()
            && self.invalid_ids.is_empty()
            && self.duplicate_student_nos.is_empty()
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
    /// Photos carried over unchanged from an earlier run.
    pub resumed: usize,
    /// `check`: failing photos that `normalize` would turn into passing ones.
    #[serde(default)]
    pub fixable: usize,
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
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Keeps the manifest files in `dir` up to date as records arrive.
pub struct ManifestWriter {
    dir: PathBuf,
    manifest: Manifest,
    journal: File,
    last_rewrite: Option<Instant>,
    /// How long the last rewrite took: a big batch's documents take a while
    /// to write, and rewriting them must not become the batch's work.
    last_rewrite_cost: Duration,
    started: Instant,
}

impl ManifestWriter {
    pub const REWRITE_INTERVAL: Duration = Duration::from_secs(1);

    /// Starts a manifest in `dir`. The journal is started afresh: records
    /// carried over from an earlier run are passed in again by the caller.
    pub fn create(dir: &Path, run: RunHeader) -> Result<Self, ManifestError> {
        let journal_path = dir.join(JOURNAL_NAME);
        let journal = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&journal_path)
            .map_err(io_error(&journal_path))?;
        Ok(ManifestWriter {
            dir: dir.to_owned(),
            manifest: Manifest {
                run,
                photos: Vec::new(),
            },
            journal,
            last_rewrite: None,
            last_rewrite_cost: Duration::ZERO,
            started: Instant::now(),
        })
    }

    pub fn run_mut(&mut self) -> &mut RunHeader {
        &mut self.manifest.run
    }

    pub fn records(&self) -> &[PhotoRecord] {
        &self.manifest.photos
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
        self.manifest.photos.push(record);
        // At most once a second, and at most 5% of the writer's time.
        let interval = Self::REWRITE_INTERVAL.max(self.last_rewrite_cost * 20);
        let due = self.last_rewrite.is_none_or(|t| t.elapsed() >= interval);
        if due {
            self.rewrite(None)?;
        }
        Ok(())
    }

    /// Writes the final documents, records sorted by input path so that the
    /// same batch gives the same manifest whatever the thread timing.
    pub fn finish(mut self) -> Result<Manifest, ManifestError> {
        self.manifest.photos.sort_by(|a, b| a.input.cmp(&b.input));
        self.rewrite(Some(now_rfc3339()))?;
        Ok(self.manifest)
    }

    fn rewrite(&mut self, finished: Option<String>) -> Result<(), ManifestError> {
        let began = Instant::now();
        let run = &mut self.manifest.run;
        run.finished = finished;
        run.seconds = self.started.elapsed().as_secs_f64();
        run.counts = count(&self.manifest.photos, run.counts.skipped_not_images);
        // Streamed to the files: the documents grow with the batch, and a
        // copy of each in memory would too.
        let json_path = self.dir.join(JSON_NAME);
        write_atomically_with(&json_path, true, |w| {
            serde_json::to_writer_pretty(w, &self.manifest).map_err(std::io::Error::other)
        })
        .map_err(|e| ManifestError::Io {
            path: json_path.clone(),
            source: e.into_io(),
        })?;
        let csv_path = self.dir.join(CSV_NAME);
        write_atomically_with(&csv_path, true, |w| {
            write_csv(w, &self.manifest.photos).map_err(std::io::Error::other)
        })
        .map_err(|e| ManifestError::Io {
            path: csv_path.clone(),
            source: e.into_io(),
        })?;
        self.last_rewrite = Some(Instant::now());
        self.last_rewrite_cost = began.elapsed();
        Ok(())
    }
}

/// Tallies records by status.
pub fn count(records: &[PhotoRecord], skipped_not_images: usize) -> Counts {
    let mut counts = Counts {
        inputs: records.len(),
        skipped_not_images,
        ..Counts::default()
    };
    for r in records {
        match r.status() {
            Status::Ok => counts.ok += 1,
            Status::Warn => counts.warn += 1,
            Status::Fail => counts.fail += 1,
        }
        counts.resumed += usize::from(r.resumed);
        counts.fixable += usize::from(r.fixable == Some(true));
    }
    counts
}

/// Reads a manifest written by an earlier run; `None` when there is none or
/// it cannot be read (then nothing is resumed, which is always safe).
pub fn read_previous(dir: &Path) -> Option<Manifest> {
    let json = std::fs::read(dir.join(JSON_NAME)).ok()?;
    let mut manifest: Manifest = serde_json::from_slice(&json).ok()?;
    // Records that finished after the last rewrite are only in the journal,
    // and a journal record is newer than the JSON's record for the same
    // input. A torn last line (killed mid-write) does not parse and is dropped.
    if let Ok(file) = File::open(dir.join(JOURNAL_NAME)) {
        let mut by_input: BTreeMap<String, PhotoRecord> = manifest
            .photos
            .drain(..)
            .map(|p| (p.input.clone(), p))
            .collect();
        for record in BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<PhotoRecord>(&line).ok())
        {
            by_input.insert(record.input.clone(), record);
        }
        manifest.photos = by_input.into_values().collect();
    }
    Some(manifest)
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
];

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// Writes the records as CSV, UTF-8 with a BOM so that spreadsheets on
/// Chinese Windows open names correctly.
pub fn write_csv(mut out: impl Write, records: &[PhotoRecord]) -> Result<(), ManifestError> {
    out.write_all("\u{feff}".as_bytes())
        .map_err(|e| ManifestError::Encode(e.to_string()))?;
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let fail = |e: csv::Error| ManifestError::Encode(e.to_string());
        w.write_record(CSV_COLUMNS).map_err(fail)?;
        for r in records {
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
            ];
            w.write_record(&row).map_err(fail)?;
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
    fn writer_keeps_json_readable_and_journal_complete() {
        let dir = std::env::temp_dir().join(format!("gradphoto-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = ManifestWriter::create(&dir, RunHeader::default()).unwrap();
        w.add(record("b.jpg", Status::Ok)).unwrap();
        // Within the rewrite interval the JSON may lag; the journal never does.
        w.add(record("a.jpg", Status::Fail)).unwrap();
        let previous = read_previous(&dir).unwrap();
        let mut seen: Vec<_> = previous.photos.iter().map(|p| p.input.as_str()).collect();
        seen.sort();
        assert_eq!(seen, ["a.jpg", "b.jpg"]);
        let done = w.finish().unwrap();
        assert_eq!(done.photos[0].input, "a.jpg");
        assert_eq!(done.run.counts.ok, 1);
        assert_eq!(done.run.counts.fail, 1);
        assert!(done.run.finished.is_some());
        let on_disk: Manifest =
            serde_json::from_slice(&std::fs::read(dir.join(JSON_NAME)).unwrap()).unwrap();
        assert_eq!(on_disk, done);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
