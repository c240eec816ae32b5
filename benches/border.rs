use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::BorderSettings;
use gradphoto::stages::find_borders;

use gradphoto::testkit::synth::framed_portrait_12mp;

fn bench(c: &mut Criterion) {
    let img = framed_portrait_12mp();
    let s = BorderSettings::default();
    c.bench_function("find_borders 12MP framed portrait", |b| {
        b.iter(|| find_borders(std::hint::black_box(&img), &s))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
