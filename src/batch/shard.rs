//! Shards: one batch spread over N independent processes (Slurm job
//! arrays, Kubernetes Indexed Jobs, GNU parallel), each taking a
//! deterministic share of the inputs, their manifest parts merged after
//! (`merge`).
//!
//! A photo's shard is decided by a stable hash (SHA-256) of its path
//! relative to the input it was found under (the folder given, or for a
//! file named directly its file name), never by its place in the list: a
//! new file, a re-listed folder or another mount point on another machine
//! moves no other photo to another shard.
//!
//! Every shard still lists the whole batch and names every photo, so that
//! two photos that would get the same output name are refused whichever
//! shards they fall in, exactly as in one run; then it keeps its share.
//! Photos go into the shared output folder; the manifest of a shard goes
//! into its own part folder, `DIR/.gradphoto-shards/shard-K-of-N/`, which
//! no other shard touches. A shard holds a shared lock on DIR (shards run
//! side by side; a plain run or `merge` into DIR is refused meanwhile) and
//! an exclusive lock on its part (the same shard twice at once is refused).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::batch::path_text::path_text;

/// The hidden folder inside the output folder that holds the parts.
pub const PARTS_DIR: &str = ".gradphoto-shards";

/// One shard of N: `index` counts from 1, as `--shard 1/4` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// Where the shard came from: `--shard`, `SLURM_ARRAY_TASK_ID` or
    /// `JOB_COMPLETION_INDEX`.
    pub from: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard {0:?}: expected K/N with 1 <= K <= N, such as 1/4 (or `none`)")]
    Flag(String),
    #[error("{variable}={value:?} is not a number")]
    NotNumber { variable: String, value: String },
    #[error(
        "this Slurm job array's task ids are not a plain range (SLURM_ARRAY_TASK_COUNT={count} but MIN..MAX is {min}..{max}): submit it as --array=0-{last}, or pass --shard K/N",
        last = count.saturating_sub(1)
    )]
    SlurmNotRange {
        count: usize,
        min: usize,
        max: usize,
    },
    #[error("shard {index} is outside 1..={count} ({from})")]
    OutOfRange {
        index: usize,
        count: usize,
        from: String,
    },
    #[error(
        "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but --shard-count is not: pass --shard-count N, N being the Job's completions (or --shard none to run the whole batch)"
    )]
    KubernetesCount,
    #[error("--shard-count {flag} disagrees with {variable}'s {env} shards")]
    CountDisagrees {
        flag: usize,
        variable: String,
        env: usize,
    },
}

impl Shard {
    /// `--shard K/N`: `Ok(None)` for `none` (no sharding, whatever the
    /// environment says).
    pub fn parse(text: &str) -> Result<Option<Shard>, ShardError> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        let bad = || ShardError::Flag(text.to_owned());
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Some(Shard {
            index,
            count,
            from: "--shard".into(),
        }))
    }

    /// The shard the scheduler's environment names, when there is none on
    /// the command line: a Slurm job array's task (its id among MIN..MAX,
    /// or among 0..COUNT when only the count is set), or a Kubernetes
    /// Indexed Job's `JOB_COMPLETION_INDEX` (counting from 0) with
    /// `count_flag` (`--shard-count`) saying how many.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        count_flag: Option<usize>,
    ) -> Result<Option<Shard>, ShardError> {
        let number = |variable: &str| -> Result<Option<usize>, ShardError> {
            match env(variable) {
                None => Ok(None),
                Some(value) if value.trim().is_empty() => Ok(None),
                Some(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ShardError::NotNumber {
                        variable: variable.into(),
                        value,
                    }),
            }
        };
        let checked = |index: usize, count: usize, variable: &str| {
            if let Some(flag) = count_flag
                && flag != count
            {
                return Err(ShardError::CountDisagrees {
                    flag,
                    variable: variable.into(),
                    env: count,
                });
            }
            if count == 0 || index == 0 || index > count {
                return Err(ShardError::OutOfRange {
                    index,
                    count,
                    from: variable.into(),
                });
            }
            Ok(Some(Shard {
                index,
                count,
                from: variable.into(),
            }))
        };
        const SLURM: &str = "SLURM_ARRAY_TASK_ID";
        if let Some(id) = number(SLURM)? {
            let count = number("SLURM_ARRAY_TASK_COUNT")?;
            return match (
                number("SLURM_ARRAY_TASK_MIN")?,
                number("SLURM_ARRAY_TASK_MAX")?,
            ) {
                (Some(min), Some(max)) if max >= min => {
                    let span = max - min + 1;
                    if let Some(count) = count
                        && count != span
                    {
                        return Err(ShardError::SlurmNotRange { count, min, max });
                    }
                    checked((id + 1).saturating_sub(min), span, SLURM)
                }
                _ => match count {
                    Some(count) => checked(id + 1, count, SLURM),
                    None => checked(id + 1, count_flag.unwrap_or(0), SLURM),
                },
            };
        }
        const KUBERNETES: &str = "JOB_COMPLETION_INDEX";
        if let Some(index) = number(KUBERNETES)? {
            let count = count_flag.ok_or(ShardError::KubernetesCount)?;
            return checked(index + 1, count, KUBERNETES);
        }
        Ok(None)
    }

    /// The part folder's name, `shard-0002-of-0004`: sorts by shard.
    pub fn part_name(&self) -> String {
        format!("shard-{:04}-of-{:04}", self.index, self.count)
    }

    /// This shard's part folder inside the output folder `out`.
    pub fn part_dir(&self, out: &Path) -> PathBuf {
        out.join(PARTS_DIR).join(self.part_name())
    }

    /// Whether the photo with shard key `key` ([`ShardKeys::key`]) is ours.
    pub fn takes(&self, key: &[u8]) -> bool {
        shard_of(key, self.count) + 1 == self.index
    }
}

/// The shard (from 0) that `key` falls in among `count`: the first 8 bytes
/// of its SHA-256 as a big-endian number, modulo `count`. Fixed for good:
/// changing it would move photos between the shards of a batch half done.
pub fn shard_of(key: &[u8], count: usize) -> usize {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % count.max(1) as u64) as usize
}

/// Finds each photo's shard key: its path relative to the input it was
/// found under, `/`-separated.
pub struct ShardKeys {
    /// Files named directly (on the command line or in --files-from).
    files: HashSet<PathBuf>,
    /// Folders named, in the order given: a photo under several takes the
    /// first.
    folders: Vec<PathBuf>,
}

impl ShardKeys {
    pub fn new(inputs: &[PathBuf]) -> Self {
        let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) =
            inputs.iter().cloned().partition(|p| p.is_dir());
        ShardKeys {
            files: files.into_iter().collect(),
            folders,
        }
    }

    /// The key of `photo`, as discovery listed it (each input's path with
    /// the found part joined on): for a file named directly its file name,
    /// for a photo found in a folder its path below that folder.
    pub fn key(&self, photo: &Path) -> Vec<u8> {
        let relative = if self.files.contains(photo) {
            photo.file_name().map(Path::new)
        } else {
            self.folders
                .iter()
                .find_map(|folder| photo.strip_prefix(folder).ok())
        };
        let Some(relative) = relative else {
            // Not found under any input (cannot happen for what discovery
            // lists): the path itself still gives every shard one answer.
            return photo.as_os_str().as_encoded_bytes().to_vec();
        };
        let parts: Vec<&[u8]> = relative
            .components()
            .map(|c| c.as_os_str().as_encoded_bytes())
            .collect();
        parts.join(&b'/')
    }
}

/// What a shard's run header says about it (`run.shard` in its part's
/// manifest.json), and what `merge` checks the parts agree on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRun {
    /// This shard, counting from 1.
    pub index: usize,
    pub count: usize,
    /// `--shard`, `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`.
    pub from: String,
    /// Photos in the whole batch, every shard's.
    pub batch_inputs: usize,
    /// SHA-256 of the whole batch's input list (every path, sorted): the
    /// shards of one batch all saw the same list.
    pub batch_sha256: String,
}

/// What a merged manifest says of its parts (`run.merged`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MergedRun {
    pub shards: usize,
    /// The parts' own `seconds`: their sum (the work) and the longest
    /// (about the wall time when all ran at once).
    pub shard_seconds_sum: f64,
    pub shard_seconds_max: f64,
}

/// [`ShardRun`] for shard `shard` of a batch whose inputs are `listed`.
pub fn shard_run(shard: &Shard, listed: &[&Path]) -> ShardRun {
    let mut texts: Vec<String> = listed.iter().map(|p| path_text(p)).collect();
    texts.sort();
    texts.dedup();
    let mut hasher = Sha256::new();
    for text in &texts {
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    }
    ShardRun {
        index: shard.index,
        count: shard.count,
        from: shard.from.clone(),
        batch_inputs: texts.len(),
        batch_sha256: hex::encode(hasher.finalize()),
    }
}

/// Reads `--files-from`: one path a line (a trailing `\r` dropped, empty
/// lines passed over), from `-` (stdin) or a file. Paths are bytes: a name
/// that is not UTF-8 is kept as it is.
pub fn read_file_list(source: &Path) -> std::io::Result<Vec<PathBuf>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    if source == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(source)?.read_to_end(&mut bytes)?;
    }
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(path_from_bytes)
        .collect())
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_flag_counts_from_one() {
        let s = Shard::parse("2/4").unwrap().unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert_eq!(s.part_name(), "shard-0002-of-0004");
        assert_eq!(Shard::parse("none").unwrap(), None);
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", "-1/4"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn the_schedulers_environment_names_the_shard() {
        let shard = |pairs: &[(&str, &str)], flag| Shard::from_env(&env_of(pairs), flag);
        assert_eq!(shard(&[], None).unwrap(), None);
        // --array=0-3, task 2: the third of four.
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        let s = shard(&slurm, None).unwrap().unwrap();
        assert_eq!(
            (s.index, s.count, s.from.as_str()),
            (3, 4, "SLURM_ARRAY_TASK_ID")
        );
        // --array=1-4, task 1: the first.
        let s = shard(
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "4"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.index, s.count), (1, 4));
        // --array=0-15:4 has four tasks whose ids are not 0..4.
        assert!(matches!(
            shard(
                &[
                    ("SLURM_ARRAY_TASK_ID", "4"),
                    ("SLURM_ARRAY_TASK_MIN", "0"),
                    ("SLURM_ARRAY_TASK_MAX", "12"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                ],
                None
            ),
            Err(ShardError::SlurmNotRange { .. })
        ));
        assert!(matches!(
            shard(&slurm, Some(8)),
            Err(ShardError::CountDisagrees { .. })
        ));
        let k8s = [("JOB_COMPLETION_INDEX", "0")];
        assert_eq!(shard(&k8s, None), Err(ShardError::KubernetesCount));
        let s = shard(&k8s, Some(3)).unwrap().unwrap();
        assert_eq!((s.index, s.count), (1, 3));
        assert!(shard(&[("JOB_COMPLETION_INDEX", "3")], Some(3)).is_err());
        assert!(shard(&[("JOB_COMPLETION_INDEX", "x")], Some(3)).is_err());
    }

    #[test]
    fn keys_are_paths_below_the_input_and_the_hash_is_fixed() {
        let root = std::env::temp_dir().join(format!("gradphoto-shard-{}", std::process::id()));
        std::fs::create_dir_all(root.join("in/sub")).unwrap();
        std::fs::create_dir_all(root.join("mnt/b")).unwrap();
        let keys = ShardKeys::new(&[root.join("in"), PathBuf::from("/elsewhere/x.jpg")]);
        assert_eq!(keys.key(&root.join("in/sub/a.jpg")), b"sub/a.jpg");
        assert_eq!(keys.key(Path::new("/elsewhere/x.jpg")), b"x.jpg");
        // The same photo under another mount point lands in the same shard.
        let other = ShardKeys::new(&[root.join("mnt/b")]);
        assert_eq!(other.key(&root.join("mnt/b/sub/a.jpg")), b"sub/a.jpg");
        // Pinned values: changing the hash would move photos between the
        // shards of a batch half done.
        assert_eq!(shard_of(b"sub/a.jpg", 4), shard_of(b"sub/a.jpg", 4));
        let spread: Vec<usize> = (0..8)
            .map(|i| shard_of(format!("{i:03}.jpg").as_bytes(), 4))
            .collect();
        assert_eq!(spread, PINNED_SPREAD);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// `shard_of("000.jpg".."007.jpg", 4)`, as Python computes it too:
    /// `int.from_bytes(hashlib.sha256(name).digest()[:8], "big") % 4`.
    const PINNED_SPREAD: [usize; 8] = [3, 0, 1, 1, 2, 1, 2, 2];

    #[test]
    fn shares_are_even_and_cover_every_photo_once() {
        let mut sizes = [0usize; 4];
        for i in 0..4000 {
            sizes[shard_of(format!("cohort/{i:05}.jpg").as_bytes(), 4)] += 1;
        }
        assert_eq!(sizes.iter().sum::<usize>(), 4000);
        assert!(sizes.iter().all(|&n| (900..1100).contains(&n)), "{sizes:?}");
    }
}
