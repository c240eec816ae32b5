//! The whole per-photo path (sniff, decode, orient, borders, backdrop,
//! subject, crop, resize, portrait checks, encode, verify) on arbitrary bytes.
//!
//! The geometry is the default rule scaled to a 120x160 output and the
//! pixel limit is 1 MP: every stage still runs the same code, but a small
//! seed reaches the encoder in milliseconds instead of a second, so the
//! fuzzer explores far more inputs. An allocation beyond the limit is caught
//! by libFuzzer's -malloc_limit_mb, which scripts/fuzz.sh sets.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use gradphoto::{Options, normalize_photo};
use libfuzzer_sys::fuzz_target;

fn options() -> &'static Options {
    static OPTIONS: OnceLock<Options> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut o = Options::default();
        o.limits.max_pixels = 1_000_000;
        let scale = 0.25;
        let rule = &mut o.composition;
        rule.out_width = 120;
        rule.out_height = 160;
        for v in [
            &mut rule.crown_target,
            &mut rule.crown_range.0,
            &mut rule.crown_range.1,
            &mut rule.eye_target,
            &mut rule.eye_range.0,
            &mut rule.eye_range.1,
            &mut rule.face_target,
            &mut rule.face_range.0,
            &mut rule.face_range.1,
            &mut rule.centre_tolerance,
            &mut rule.safety_margin,
        ] {
            *v *= scale;
        }
        o.encode.min_bytes = 2_000;
        o.encode.pad_to_min = true;
        o
    })
}

fuzz_target!(|data: &[u8]| {
    let processed = normalize_photo(Path::new("x.jpg"), data, options());
    // A photo the pipeline would write must be one it can stand behind.
    if let Some(jpeg) = &processed.jpeg {
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
        assert!(processed.record.error.is_none());
    }
});
