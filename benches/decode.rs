//! Cost of the decode stage on camera-sized JPEGs (12 MP and 24 MP, baseline
//! 4:2:0, quality 92): ours (libjpeg-turbo via mozjpeg) at full size and
//! reduced 1/2, 1/4, 1/8 in the DCT domain, against the candidates we did not
//! pick: jpeg-decoder (pure Rust, same reductions) and zune-jpeg (full size
//! only, the decoder we replaced).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gradphoto::DecodeLimits;
use gradphoto::stages::{DecodeScale, Reduce, decode_reduced};
use gradphoto::testkit::synth::{FileSpec, PortraitSpec, make_photo};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

fn camera_jpeg(width: u32, height: u32) -> Vec<u8> {
    let spec = PortraitSpec {
        width,
        height,
        ..PortraitSpec::default()
    };
    match make_photo(&spec, &FileSpec::jpeg(92)) {
        Ok((bytes, _truth)) => bytes,
        Err(e) => panic!("bench fixture: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.sample_size(10);
    for (name, w, h) in [("12MP", 3000, 4000), ("24MP", 4000, 6000)] {
        let jpeg = camera_jpeg(w, h);
        let limits = DecodeLimits::default();
        for eighths in [3, 5] {
            let reduce = Reduce {
                min_width: 0,
                min_height: 0,
                min_scale: DecodeScale::eighths(eighths),
            };
            group.bench_function(format!("ours {name} {eighths}/8"), |b| {
                b.iter(|| decode_reduced(black_box(&jpeg), &limits, [0; 3], reduce))
            });
        }
        for factor in [1, 2, 4, 8] {
            let reduce = Reduce {
                min_width: 0,
                min_height: 0,
                min_scale: DecodeScale::eighths(8 / factor),
            };
            group.bench_function(format!("ours {name} 1/{factor}"), |b| {
                b.iter(|| decode_reduced(black_box(&jpeg), &limits, [0; 3], reduce))
            });
            group.bench_function(format!("jpeg-decoder {name} 1/{factor}"), |b| {
                b.iter(|| {
                    let mut d = jpeg_decoder::Decoder::new(black_box(&jpeg[..]));
                    let scaled = d.scale((w / factor) as u16, (h / factor) as u16);
                    scaled.and_then(|_| d.decode())
                })
            });
        }
        group.bench_function(format!("zune-jpeg {name} 1/1"), |b| {
            b.iter(|| {
                let options = DecoderOptions::default()
                    .set_max_width(usize::from(u16::MAX))
                    .set_max_height(usize::from(u16::MAX))
                    .jpeg_set_out_colorspace(ColorSpace::RGB);
                JpegDecoder::new_with_options(ZCursor::new(black_box(&jpeg)), options).decode()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
