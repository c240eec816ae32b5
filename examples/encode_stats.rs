//! Measures the encode search on synthetic pictures: attempts per photo,
//! time per encode, and whether the answer matches a brute-force scan.
//!
//! `cargo run --release --example encode_stats [--brute] [--held-out] [--window=N]`
//!
//! `--window=N` picks 0: 30720..=100000 (default), 1: ..=60000,
//! 2: 20000..=40000, 3: 10000..=25000; `--brute` also encodes every quality
//! to show the answer the preference rule defines.

use std::time::Instant;

use gradphoto::EncodeSettings;
use gradphoto::stages::RgbImage;
use gradphoto::stages::{Chroma, encode_once, encode_to_window};
use gradphoto::testkit::synth;

fn main() {
    let brute = std::env::args().any(|a| a == "--brute");
    let windows = [
        (30_720, 100_000),
        (30_720, 60_000),
        (20_000, 40_000),
        (10_000, 25_000),
    ];
    let pick = std::env::args()
        .find_map(|a| {
            a.strip_prefix("--window=")
                .and_then(|w| w.parse::<usize>().ok())
        })
        .unwrap_or(0);
    let (min_bytes, max_bytes) = windows[pick.min(windows.len() - 1)];
    let settings = EncodeSettings {
        min_bytes,
        max_bytes,
        ..EncodeSettings::default()
    };
    // `--held-out` measures on seeds the size model's prior was not tuned on.
    let first_seed = if std::env::args().any(|a| a == "--held-out") {
        100
    } else {
        0
    };
    let mut images: Vec<(String, RgbImage)> = Vec::new();
    for seed in first_seed..first_seed + 12u64 {
        let detail = ((seed * 7) % 12) as f32 / 11.0;
        images.push((
            format!("portrait d={detail:.2}"),
            synth::portrait(480, 640, detail, seed),
        ));
    }
    for amp in [4.0, 8.0, 12.0, 16.0, 24.0] {
        images.push((
            format!("noise a={amp}"),
            synth::noise(480, 640, amp, amp as u64 + first_seed),
        ));
    }
    images.push(("gradient".into(), synth::gradient(480, 640)));

    let (mut total_attempts, mut n_ok, mut total_time) = (0u32, 0u32, 0f64);
    for (name, img) in &images {
        let t = Instant::now();
        let r = encode_to_window(img, &settings);
        let dt = t.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(e) => {
                total_attempts += e.attempts;
                total_time += dt;
                n_ok += 1;
                println!(
                    "{name:20} q={:3} {} {:6} B attempts={} {:.1} ms",
                    e.quality,
                    e.chroma,
                    e.bytes.len(),
                    e.attempts,
                    dt
                );
            }
            Err(err) => println!("{name:20} error: {err} ({dt:.1} ms)"),
        }
        if brute {
            for chroma in [Chroma::Full444, Chroma::Sub420] {
                let sizes: Vec<usize> = (60..=100)
                    .map(|q| encode_once(img, q, chroma, 300).map_or(0, |b| b.len()))
                    .collect();
                let best = (60..=100u8)
                    .zip(&sizes)
                    .filter(|&(_, &s)| (settings.min_bytes..=settings.max_bytes).contains(&s))
                    .map(|(q, _)| q)
                    .max();
                let nonmono = sizes.windows(2).filter(|w| w[1] < w[0]).count();
                println!(
                    "    {chroma}: best={best:?} q60={} q100={} non-monotonic steps={nonmono}",
                    sizes[0], sizes[40]
                );
            }
        }
    }
    let t = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        let _ = encode_once(&images[5].1, 85, Chroma::Full444, 300);
    }
    let per = t.elapsed().as_secs_f64() * 1000.0 / f64::from(reps);
    println!(
        "average attempts {:.2} over {n_ok} photos; {:.1} ms per photo; one encode {per:.1} ms",
        f64::from(total_attempts) / f64::from(n_ok.max(1)),
        total_time / f64::from(n_ok.max(1))
    );
}
