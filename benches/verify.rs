//! Cost of the verify stage (marker walk, checks and full decode) on the
//! file the encoder writes for a portrait-like 480x640 picture.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::EncodeSettings;
use gradphoto::stages::encode_to_window;
use gradphoto::stages::{OutputRules, verify_jpeg};
use gradphoto::testkit::synth;

fn bench(c: &mut Criterion) {
    let img = synth::portrait(480, 640, 0.5, 42);
    let Ok(encoded) = encode_to_window(&img, &EncodeSettings::default()) else {
        panic!("the bench picture must fit the default window");
    };
    let rules = OutputRules::default();
    c.bench_function("verify_jpeg portrait 480x640", |b| {
        b.iter(|| verify_jpeg(black_box(&encoded.bytes), black_box(&rules)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
