//! Cost of the encode stage on a portrait-like 480x640 picture: the full
//! window search, one bare encode, and the jpeg-encoder crate (which the
//! stage used before our own writer) encoding the same picture once.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::EncodeSettings;
use gradphoto::stages::{Chroma, encode_once, encode_to_window};
use gradphoto::testkit::synth;

fn bench(c: &mut Criterion) {
    let img = synth::portrait(480, 640, 0.5, 42);
    let settings = EncodeSettings::default();
    c.bench_function("encode_to_window portrait 480x640", |b| {
        b.iter(|| encode_to_window(black_box(&img), black_box(&settings)))
    });
    c.bench_function("encode_once q90 4:4:4 portrait 480x640", |b| {
        b.iter(|| encode_once(black_box(&img), 90, Chroma::Full444, 300))
    });
    c.bench_function(
        "jpeg-encoder crate q90 4:4:4 optimised tables 480x640",
        |b| {
            b.iter(|| {
                let mut out = Vec::new();
                let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
                enc.set_optimized_huffman_tables(true);
                enc.encode(
                    black_box(img.as_bytes()),
                    480,
                    640,
                    jpeg_encoder::ColorType::Rgb,
                )
                .map(|()| out.len())
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
