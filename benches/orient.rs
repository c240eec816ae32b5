//! Cost of the orient stage on what it usually gets: a 12 MP photo decoded
//! at 1/2 (1500x2000), for the common EXIF rotations.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::stages::{Orientation, apply_orientation};
use gradphoto::testkit::synth;

fn bench(c: &mut Criterion) {
    let img = synth::portrait(1500, 2000, 0.5, 7);
    let mut group = c.benchmark_group("orient 1500x2000");
    group.sample_size(20);
    for o in [
        Orientation::Rotate90,
        Orientation::Rotate180,
        Orientation::Rotate270,
    ] {
        group.bench_function(format!("{o:?}"), |b| {
            b.iter(|| apply_orientation(black_box(img.clone()), o))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
