use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::BackdropSettings;
use gradphoto::BorderSettings;
use gradphoto::CompositionRule;
use gradphoto::SubjectSettings;
use gradphoto::stages::WorkingCopy;
use gradphoto::stages::estimate_backdrop;
use gradphoto::stages::find_borders;
use gradphoto::stages::locate_subject;
use gradphoto::stages::plan_crop;

use gradphoto::testkit::synth::framed_portrait_12mp;

fn bench(c: &mut Criterion) {
    let framed = framed_portrait_12mp();
    let borders = find_borders(&framed, &BorderSettings::default());
    assert_eq!(
        (borders.top, borders.bottom, borders.left, borders.right),
        (40, 40, 30, 30),
        "the generated frame"
    );
    let img = framed.crop(borders.inner(framed.width(), framed.height()));
    let copy = WorkingCopy::of(&img);
    let backdrop = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
    let subject = locate_subject(&copy, &backdrop, &SubjectSettings::default()).expect("subject");
    let rule = CompositionRule::default();
    c.bench_function("working copy 12MP", |b| {
        b.iter(|| WorkingCopy::of(std::hint::black_box(&img)))
    });
    c.bench_function("estimate_backdrop 12MP", |b| {
        b.iter(|| estimate_backdrop(std::hint::black_box(&copy), &BackdropSettings::default()))
    });
    c.bench_function("locate_subject 12MP", |b| {
        b.iter(|| {
            locate_subject(
                std::hint::black_box(&copy),
                &backdrop,
                &SubjectSettings::default(),
            )
        })
    });
    c.bench_function("plan_crop 12MP", |b| {
        b.iter(|| {
            plan_crop(
                img.width(),
                img.height(),
                std::hint::black_box(&subject),
                &rule,
            )
        })
    });
    c.bench_function("borders+backdrop+subject+plan 12MP", |b| {
        b.iter(|| {
            let bo = find_borders(std::hint::black_box(&framed), &BorderSettings::default());
            let inner = bo.inner(framed.width(), framed.height());
            let im = framed.crop(inner);
            let copy = WorkingCopy::of(&im);
            let bd = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
            let s = locate_subject(&copy, &bd, &SubjectSettings::default()).expect("subject");
            plan_crop(im.width(), im.height(), &s, &rule)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
