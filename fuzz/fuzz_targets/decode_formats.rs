//! The decode stage alone on arbitrary bytes, seeded with every format and
//! colour profile it reads (tests/fixtures/formats: TIFF, BMP, WebP,
//! arithmetic JPEG, ICC profiles in JPEG and PNG, EXIF colour space):
//! the decoders and the colour management must fail cleanly, never panic,
//! and never allocate beyond the pixel limit (scripts/fuzz.sh sets
//! -malloc_limit_mb).

#![no_main]

use gradphoto::DecodeLimits;
use gradphoto::stages::{DecodeScale, Reduce, decode_reduced};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_pixels: 1_000_000,
    };
    // Both a full decode and a reduced one: the reduction is per format.
    let reduced = Reduce {
        min_width: 16,
        min_height: 16,
        min_scale: DecodeScale::eighths(1),
    };
    for reduce in [Reduce::NONE, reduced] {
        if let Ok(d) = decode_reduced(data, &limits, [100, 197, 255], reduce) {
            assert!(d.image.width() > 0 && d.image.height() > 0);
            assert!(u64::from(d.full_width) * u64::from(d.full_height) <= limits.max_pixels);
        }
    }
});
