//! `merge`: joins the manifest parts of a sharded batch (`--shard`) into
//! the one manifest a single run would have written, or refuses.
//!
//! Nothing is written until every part has been read and found to belong:
//! each shard of 1..N present and finished (not interrupted, not still
//! running), all made by the same version with the same settings over the
//! same list of inputs, no input in two parts, no output name in two, and
//! every photo a part lists present in the output folder with the size it
//! recorded. A shard found twice (two copies of its part) is taken once
//! when both hold the same records, and refused when they differ. Parts
//! are streamed record by record, as the manifest itself is, so memory
//! holds only the inputs and names seen (about a hundred bytes a photo).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::batch::lock::{FolderLock, LockError};
use crate::batch::manifest::{
    JSON_NAME, ManifestError, ManifestWriter, PhotoRecord, Records, RunHeader, manifest_command,
    read_document,
};
use crate::batch::pipeline::{BatchError, lock_output_folder};
use crate::batch::shard::{MergedRun, PARTS_DIR, ShardRun};

/// What to merge, and where.
#[derive(Clone, Debug)]
pub struct MergeConfig {
    /// Part folders (`DIR/.gradphoto-shards/shard-K-of-N`), folders of
    /// parts, or output folders holding them in `.gradphoto-shards/`.
    pub parts: Vec<PathBuf>,
    /// The folder the shards wrote their photos into; the merged manifest
    /// goes there.
    pub out_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(
        "{0} is not a shard's part (a folder whose manifest.json has run.shard) and holds none (nor a {PARTS_DIR} folder of them)"
    )]
    NotAPart(PathBuf),
    #[error("cannot read the part {path}: {why}")]
    Unreadable { path: PathBuf, why: String },
    #[error(
        "shard {index} of {count} did not finish ({why}): {path}. Run that shard again (it resumes where it stopped), then merge"
    )]
    Unfinished {
        index: usize,
        count: usize,
        path: PathBuf,
        why: String,
    },
    #[error(
        "the parts are not of one batch: {what} differs between {a} ({a_value}) and {b} ({b_value}); run every shard with the same command and version, then merge"
    )]
    Mismatch {
        what: &'static str,
        a: PathBuf,
        a_value: String,
        b: PathBuf,
        b_value: String,
    },
    #[error(
        "missing shards: {missing} of {count} (found parts for {found}); run them (the same command with --shard K/{count}), then merge"
    )]
    Missing {
        missing: String,
        found: String,
        count: usize,
    },
    #[error(
        "shard {index} of {count} was run twice with different results: {a} and {b} differ at input {input}; remove the part that is wrong (or run that shard again into one place), then merge"
    )]
    Twice {
        index: usize,
        count: usize,
        a: PathBuf,
        b: PathBuf,
        input: String,
    },
    #[error(
        "input {input} is in two parts, {a} and {b}: the shards overlap (were they given different inputs or a different --shard count?)"
    )]
    Overlap {
        input: String,
        a: PathBuf,
        b: PathBuf,
    },
    #[error(
        "output name {name} is given to {first} ({a}) and to {second} ({b}); give them different names (--name, or a roster), then run the shards again"
    )]
    NameClash {
        name: String,
        first: String,
        a: PathBuf,
        second: String,
        b: PathBuf,
    },
    #[error(
        "the parts list {records} photos but the batch they were made from has {expected}: a part lost records; run its shard again, then merge"
    )]
    Incomplete { records: usize, expected: usize },
    #[error(
        "{name}, the photo of {input} in {part}, is not in {dir} as the part recorded it: {why}"
    )]
    MissingOutput {
        name: String,
        input: String,
        part: PathBuf,
        dir: PathBuf,
        why: String,
    },
    #[error(
        "{0} holds the photos and manifest of a normalize run, which merging check parts would replace; merge them into another --out"
    )]
    NormalizeFolder(PathBuf),
    #[error(transparent)]
    Folder(#[from] BatchError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// One part as read: its folder, its header and its shard, and its lock
/// (so that the shard cannot start again while it is merged).
struct Part {
    dir: PathBuf,
    run: RunHeader,
    shard: ShardRun,
    _lock: FolderLock,
}

/// The part folders `arg` names: itself when it is one, else the parts in
/// it or in its `.gradphoto-shards`.
fn part_dirs(arg: &Path) -> Result<Vec<PathBuf>, MergeError> {
    let is_part = |dir: &Path| {
        read_document(&dir.join(JSON_NAME), &mut |_| Ok(()))
            .ok()
            .flatten()
            .is_some_and(|run| run.shard.is_some())
    };
    if is_part(arg) {
        return Ok(vec![arg.to_owned()]);
    }
    for folder in [arg.join(PARTS_DIR), arg.to_owned()] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .filter(|p| p.join(JSON_NAME).is_file())
            .collect();
        if !found.is_empty() {
            found.sort();
            return Ok(found);
        }
    }
    Err(MergeError::NotAPart(arg.to_owned()))
}

/// Reads and locks one part, refusing one that did not finish.
fn open_part(dir: &Path) -> Result<Part, MergeError> {
    let lock = match FolderLock::acquire(dir) {
        Ok(lock) => lock,
        Err(LockError::Busy { holder, .. }) => {
            let run = read_header(dir)?;
            let shard = run.shard.unwrap_or_default();
            return Err(MergeError::Unfinished {
                index: shard.index,
                count: shard.count,
                path: dir.to_owned(),
                why: format!("still running, {holder}"),
            });
        }
        Err(e) => return Err(BatchError::from(e).into()),
    };
    let run = read_header(dir)?;
    let Some(shard) = run.shard.clone() else {
        return Err(MergeError::NotAPart(dir.to_owned()));
    };
    let why = match (&run.interrupted, &run.finished) {
        (Some(signal), _) => Some(format!("stopped by {signal}")),
        (None, None) => Some("it was killed or is still running".to_owned()),
        _ => None,
    };
    if let Some(why) = why {
        return Err(MergeError::Unfinished {
            index: shard.index,
            count: shard.count,
            path: dir.to_owned(),
            why,
        });
    }
    Ok(Part {
        dir: dir.to_owned(),
        run,
        shard,
        _lock: lock,
    })
}

fn read_header(dir: &Path) -> Result<RunHeader, MergeError> {
    let path = dir.join(JSON_NAME);
    match read_document(&path, &mut |_| Ok(())) {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(MergeError::Unreadable {
            path,
            why: "no readable manifest.json".into(),
        }),
        Err(e) => Err(MergeError::Unreadable {
            path,
            why: e.to_string(),
        }),
    }
}

/// Calls `each` on every record of a part, in the part's (input) order.
fn for_each_record(
    part: &Part,
    each: &mut dyn FnMut(PhotoRecord) -> Result<(), MergeError>,
) -> Result<(), MergeError> {
    let path = part.dir.join(JSON_NAME);
    let mut failure = None;
    let read = read_document(&path, &mut |record| {
        each(record).map_err(|e| {
            failure = Some(e);
            std::io::Error::other("stopped")
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    match read {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(MergeError::Unreadable {
            path,
            why: "manifest.json is damaged".into(),
        }),
        Err(e) => Err(MergeError::Unreadable {
            path,
            why: e.to_string(),
        }),
    }
}

/// The header fields every part of one batch shares, by name, as text.
fn batch_identity(run: &RunHeader) -> [(&'static str, String); 9] {
    let shard = run.shard.clone().unwrap_or_default();
    [
        ("the tool", run.tool.clone()),
        ("the version", run.version.clone()),
        ("the command", run.command.clone()),
        (
            "the settings (settings_sha256)",
            run.settings_sha256.clone(),
        ),
        ("the number of shards", shard.count.to_string()),
        (
            "the list of inputs (run.shard.batch_sha256)",
            format!("{} photos, {}", shard.batch_inputs, shard.batch_sha256),
        ),
        (
            "the files passed over (counts.skipped_not_images)",
            run.counts.skipped_not_images.to_string(),
        ),
        (
            "the hidden files passed over (counts.skipped_hidden)",
            run.counts.skipped_hidden.to_string(),
        ),
        (
            "the roster's matching (run.roster)",
            serde_json::to_string(&run.roster).unwrap_or_default(),
        ),
    ]
}

/// A record's digest for comparing two copies of one shard: what it says
/// of the photo, not whether a rerun kept it (`resumed`, `from_run`).
fn record_digest(record: &PhotoRecord) -> [u8; 32] {
    let mut record = record.clone();
    record.resumed = false;
    record.from_run = None;
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// Of two or more copies of one shard's part, the first, when they hold
/// the same records.
fn one_of(mut copies: Vec<Part>) -> Result<Part, MergeError> {
    let digests = |part: &Part| -> Result<Vec<(String, [u8; 32])>, MergeError> {
        let mut list = Vec::new();
        for_each_record(part, &mut |r| {
            list.push((r.input.clone(), record_digest(&r)));
            Ok(())
        })?;
        Ok(list)
    };
    let first = copies.remove(0);
    let reference = digests(&first)?;
    for other in copies {
        let theirs = digests(&other)?;
        if theirs != reference {
            let input = reference
                .iter()
                .zip(&theirs)
                .find(|(a, b)| a != b)
                .map(|(a, b)| a.0.clone().min(b.0.clone()))
                .or_else(|| {
                    let (longer, n) = if reference.len() > theirs.len() {
                        (&reference, theirs.len())
                    } else {
                        (&theirs, reference.len())
                    };
                    longer.get(n).map(|e| e.0.clone())
                })
                .unwrap_or_default();
            return Err(MergeError::Twice {
                index: first.shard.index,
                count: first.shard.count,
                a: first.dir,
                b: other.dir,
                input,
            });
        }
    }
    Ok(first)
}

/// Joins the parts into `out_dir`'s manifest.json, manifest.csv and
/// manifest.jsonl, and returns the records (for the summary and report).
pub fn run_merge(config: &MergeConfig) -> Result<Records, MergeError> {
    let out = &config.out_dir;
    std::fs::create_dir_all(out).map_err(|source| BatchError::CreateOut {
        path: out.clone(),
        source,
    })?;
    // Refused while any shard still writes the folder (they share a lock
    // that excludes this one).
    let lock = lock_output_folder(out)?;

    let mut dirs = Vec::new();
    for arg in &config.parts {
        dirs.extend(part_dirs(arg)?);
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
    let mut by_index: BTreeMap<usize, Vec<Part>> = BTreeMap::new();
    let mut reference: Option<(PathBuf, [(&'static str, String); 9])> = None;
    for dir in &dirs {
        let part = open_part(dir)?;
        let identity = batch_identity(&part.run);
        match &reference {
            None => reference = Some((part.dir.clone(), identity)),
            Some((first, expected)) => {
                if let Some(((what, a_value), (_, b_value))) =
                    expected.iter().zip(&identity).find(|(a, b)| a.1 != b.1)
                {
                    return Err(MergeError::Mismatch {
                        what,
                        a: first.clone(),
                        a_value: a_value.clone(),
                        b: part.dir.clone(),
                        b_value: b_value.clone(),
                    });
                }
            }
        }
        by_index.entry(part.shard.index).or_default().push(part);
    }
    let Some(count) = by_index.values().next().map(|p| p[0].shard.count) else {
        return Err(MergeError::NotAPart(
            config.parts.first().cloned().unwrap_or_default(),
        ));
    };
    let missing: Vec<String> = (1..=count)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        let found: Vec<String> = by_index.keys().map(usize::to_string).collect();
        return Err(MergeError::Missing {
            missing: missing.join(", "),
            found: found.join(", "),
            count,
        });
    }
    let mut parts = Vec::with_capacity(count);
    for copies in by_index.into_values() {
        parts.push(one_of(copies)?);
    }

    // Every input once, every name once, every photo there.
    let mut inputs: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, (String, usize)> = HashMap::new();
    let mut records = 0usize;
    for (i, part) in parts.iter().enumerate() {
        for_each_record(part, &mut |r| {
            if r.from_run.is_none() {
                records += 1;
            }
            if let Some(j) = inputs.insert(r.input.clone(), i) {
                return Err(MergeError::Overlap {
                    input: r.input.clone(),
                    a: parts[j].dir.clone(),
                    b: part.dir.clone(),
                });
            }
            let Some(name) = &r.output else {
                return Ok(());
            };
            if let Some((first, j)) = names.insert(name.to_lowercase(), (r.input.clone(), i)) {
                return Err(MergeError::NameClash {
                    name: name.clone(),
                    first,
                    a: parts[j].dir.clone(),
                    second: r.input.clone(),
                    b: part.dir.clone(),
                });
            }
            check_output(out, part, &r)
        })?;
    }
    let expected = parts[0].shard.batch_inputs;
    if records != expected {
        return Err(MergeError::Incomplete { records, expected });
    }

    if parts[0].run.command == "check" && manifest_command(out).as_deref() == Some("normalize") {
        return Err(MergeError::NormalizeFolder(out.clone()));
    }
    let mut header = parts[0].run.clone();
    header.shard = None;
    header.finished = None;
    header.started = parts
        .iter()
        .map(|p| p.run.started.clone())
        .min()
        .unwrap_or_default();
    let mut stage_seconds: BTreeMap<String, f64> = BTreeMap::new();
    for part in &parts {
        for (stage, seconds) in &part.run.stage_seconds {
            *stage_seconds.entry(stage.clone()).or_default() += seconds;
        }
    }
    header.stage_seconds = stage_seconds;
    header.merged = Some(MergedRun {
        shards: count,
        shard_seconds_sum: parts.iter().map(|p| p.run.seconds).sum(),
        shard_seconds_max: parts.iter().map(|p| p.run.seconds).fold(0.0, f64::max),
    });
    let mut writer = ManifestWriter::create(out, header)?;
    for part in &parts {
        for_each_record(part, &mut |r| writer.add(r).map_err(MergeError::from))?;
    }
    Ok(writer.finish()?.holding(lock))
}

/// Whether the photo a part recorded is in `out`, a file of the size it
/// recorded (its bytes were checked when written; reading every photo
/// back would make merging a big batch as slow as copying it).
fn check_output(out: &Path, part: &Part, r: &PhotoRecord) -> Result<(), MergeError> {
    let Some(name) = &r.output else {
        return Ok(());
    };
    let why = match std::fs::symlink_metadata(out.join(name)) {
        Err(e) => Some(e.to_string()),
        Ok(m) if !m.is_file() => Some("not a regular file".to_owned()),
        Ok(m) if Some(m.len()) != r.output_bytes => Some(format!(
            "{} bytes, the part says {}",
            m.len(),
            r.output_bytes.map_or("none".to_owned(), |b| b.to_string())
        )),
        Ok(_) => None,
    };
    match why {
        None => Ok(()),
        Some(why) => Err(MergeError::MissingOutput {
            name: name.clone(),
            input: r.input.clone(),
            part: part.dir.clone(),
            dir: out.to_owned(),
            why,
        }),
    }
}
