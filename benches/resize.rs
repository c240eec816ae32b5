//! Cost of the resize stage: a typical 3:4 box (1020x1360, the box of a
//! 12 MP portrait decoded at 1/2) cut and scaled to 480x640 with Lanczos-3.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::manifest::Rect;
use gradphoto::stages::resize_crop;
use gradphoto::testkit::synth;

fn bench(c: &mut Criterion) {
    let img = synth::portrait(1500, 2000, 0.5, 7);
    let rect = Rect::new(240, 200, 1020, 1360);
    c.bench_function("resize_crop 1020x1360 -> 480x640", |b| {
        b.iter(|| resize_crop(black_box(&img), rect, 480, 640))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
