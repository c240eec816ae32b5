//! The batch around the stages: finding the photos (discover), reading and
//! hashing them (digest), one run at a time per output folder (lock), running `normalize_photo` on worker threads
//! (pipeline), writing outputs atomically (output) and the manifest
//! (manifest), matching a roster (roster), the `check` command (check) and
//! the HTML report (report).

pub(crate) mod check;
pub(crate) mod digest;
pub(crate) mod discover;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod merge;
pub(crate) mod output;
pub(crate) mod path_text;
pub(crate) mod pipeline;
pub(crate) mod prints;
pub(crate) mod report;
pub(crate) mod roster;
pub(crate) mod shard;
