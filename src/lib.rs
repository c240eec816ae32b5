//! gradphoto: turns graduation portraits into photos the national degree
//! registry (CHSI) accepts, and says what happened to every one.
//!
//! The entry points:
//! - [`normalize_photo`] runs every stage on one photo's bytes, in memory,
//!   under [`Options`];
//! - [`run_normalize`] and [`run_check`] run a whole batch ([`BatchConfig`],
//!   [`CheckConfig`]) on worker threads and write the [`manifest`];
//! - [`write_report`] writes the HTML report of a batch.
//!
//! The stages live in folders that follow the pipeline: `codec` decodes
//! (and, at the end, encodes and verifies), `analysis` finds borders, the
//! backdrop, the subject and the crop, `transform` orients and resizes, and
//! `batch` runs them over many photos. `photo.rs` wires the stages for one
//! photo.

mod analysis;
mod batch;
mod codec;
mod image;
mod photo;
mod print;
mod transform;
mod verdict;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use analysis::backdrop::BackdropSettings;
pub use analysis::border::BorderSettings;
pub use analysis::compose::CompositionRule;
pub use analysis::extend::{ExtendSettings, Extension};
pub use analysis::face::{FaceRecord, FaceSettings, NoFace};
pub use analysis::matte::MatteSettings;
pub use analysis::portrait::PortraitSettings;
pub use analysis::subject::SubjectSettings;
pub use batch::check::{CheckConfig, CheckError, CheckRun, run_check};
pub use batch::merge::{MergeConfig, MergeError, run_merge};
pub use batch::pipeline::{BatchConfig, BatchError, Progress, Silent, run_normalize, tune_malloc};
pub use batch::report::{ReportError, ThumbnailFn, thumbnail_from_files, write_report};
pub use batch::roster::{ColumnNames, NameTemplate, Roster, RosterError, TemplateError};
pub use batch::shard::{Shard, ShardError, read_file_list};
pub use codec::decode::DecodeLimits;
pub use codec::encode::EncodeSettings;
pub use photo::{Options, Processed, ReduceSettings, StageTimings, normalize_photo};

/// What a run writes about every photo: `manifest.json` is a
/// [`Manifest`](crate::manifest::Manifest): a
/// [`RunHeader`](crate::manifest::RunHeader) and one
/// [`PhotoRecord`](crate::manifest::PhotoRecord) per input.
pub mod manifest {
    pub use crate::batch::manifest::{
        BorderRemoved, CSV_NAME, Counts, DuplicateIdCard, EarlierRun, InvalidId, JOURNAL_NAME,
        JSON_NAME, Manifest, ManifestError, MultiplePhotos, OutputGeometry, PhotoRecord,
        RecordSource, Records, RosterFields, RosterRef, RosterSummary, RunHeader, Status,
        UnmatchedPhoto,
    };
    /// A path as the manifest writes it (`input`), and back: see the
    /// README, "Paths in the manifest".
    pub use crate::batch::path_text::{path_text, text_path};
    pub use crate::batch::shard::{MergedRun, PARTS_DIR, ShardRun};
    pub use crate::image::Rect;
    pub use crate::verdict::{Check, Verdict};
}

/// Paper prints: the size table, the order, the paper, and the print
/// rule derived from the registry's composition rule.
pub mod prints {
    pub use crate::print::{
        DEFAULT_ORDER, DPI, PRINT_SIZES, Paper, PrintLine, PrintSettings, PrintedSize,
        PrintsRecord, SheetFile, parse_order, print_rule,
    };
}

/// Single stages, for the examples, benches and fuzz targets that probe one
/// stage at a time. Not part of the supported interface: names and
/// signatures change with the pipeline.
#[doc(hidden)]
pub mod stages {
    pub use crate::analysis::backdrop::{Backdrop, estimate_backdrop};
    pub use crate::analysis::border::{find_borders, trace_side};
    pub use crate::analysis::compose::{CropPlan, centred_crop, plan_crop};
    pub use crate::analysis::face::{DlibRect, Face, ShapePredictor, find_faces};
    pub use crate::analysis::portrait::judge_portrait;
    pub use crate::analysis::subject::locate_subject;
    pub use crate::analysis::working_copy::WorkingCopy;
    pub use crate::batch::discover::discover;
    pub use crate::codec::decode::jpeg::huffman::{DriverError, decode_samples};
    pub use crate::codec::decode::{
        DecodeScale, ImageFormat, Reduce, Sniffed, decode, decode_reduced, sniff,
    };
    pub use crate::codec::encode::{Chroma, encode_once, encode_to_window};
    pub use crate::codec::verify::{OutputRules, verify_jpeg, verify_written};
    pub use crate::image::{Rect, RgbImage};
    pub use crate::transform::orient::{Orientation, apply_orientation};
    pub use crate::transform::resize::resize_crop;
}
