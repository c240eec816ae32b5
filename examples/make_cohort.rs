//! Writes synthetic graduation portraits plus `truth.json` describing what
//! gradphoto should find in each.
//!
//! `--preset fixtures` writes the small committed sample in `fixtures/`;
//! `--preset cohort` writes `--count` photos with a vendor-like mix.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use gradphoto::testkit::synth::{
    BorderSpec, ExifSpec, FileSpec, Format, PortraitSpec, RandomOptions, SplitMix64, Truth,
    make_photo, random_spec,
};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Preset {
    Fixtures,
    Cohort,
}

#[derive(Parser, Debug)]
#[command(about = "Generate synthetic graduation portraits with ground truth")]
struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 100)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Preset::Cohort)]
    preset: Preset,
    #[arg(long, default_value_t = 2.0)]
    min_mp: f64,
    #[arg(long, default_value_t = 24.0)]
    max_mp: f64,
    /// Replace files already in the output folder.
    #[arg(long)]
    force: bool,
    /// Share of `--preset cohort` photos framed too tightly (crown close to
    /// the top, backdrop above it), drawn from a stream of their own so a
    /// cohort made without it is unchanged. 0 by default.
    #[arg(long, default_value_t = 0.0)]
    tight: f64,
}

#[derive(Serialize)]
struct Record {
    file: String,
    bytes: usize,
    file_spec: FileSpec,
    spec: PortraitSpec,
    truth: Truth,
}

struct Job {
    name: String,
    spec: PortraitSpec,
    file: FileSpec,
    /// The name's extension does not match the content.
    lying_name: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.min_mp > 0.0 && args.max_mp >= args.min_mp && args.max_mp <= 100.0) {
        bail!("need 0 < --min-mp <= --max-mp <= 100");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let jobs = match args.preset {
        Preset::Fixtures => fixtures(args.seed),
        Preset::Cohort => cohort(args.seed, args.count, args.min_mp, args.max_mp, args.tight),
    };
    let start = Instant::now();
    let records: Vec<Record> = jobs
        .into_par_iter()
        .map(|job| write_one(&args.out, job, args.force))
        .collect::<Result<_>>()?;
    let total: usize = records.iter().map(|r| r.bytes).sum();
    let truth_path = args.out.join("truth.json");
    let mut json = serde_json::to_string_pretty(&records)?;
    json.push('\n');
    std::fs::write(&truth_path, json)
        .with_context(|| format!("writing {}", truth_path.display()))?;
    eprintln!(
        "wrote {} photos ({:.1} MB) and {} in {:.1} s",
        records.len(),
        total as f64 / 1e6,
        truth_path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn write_one(dir: &Path, job: Job, force: bool) -> Result<Record> {
    let (bytes, mut truth) =
        make_photo(&job.spec, &job.file).with_context(|| format!("making {}", job.name))?;
    if job.lying_name {
        truth.expected_warnings.push("extension_mismatch".into());
    }
    let path = dir.join(&job.name);
    if path.exists() && !force {
        bail!("{} exists (use --force to replace)", path.display());
    }
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(Record {
        file: job.name,
        bytes: bytes.len(),
        file_spec: job.file,
        spec: job.spec,
        truth,
    })
}

fn base(seed: u64, width: u32, height: u32) -> PortraitSpec {
    PortraitSpec {
        seed,
        width,
        height,
        ..PortraitSpec::default()
    }
}

fn job(name: &str, spec: PortraitSpec, file: FileSpec) -> Job {
    Job {
        name: name.to_string(),
        spec,
        file,
        lying_name: false,
    }
}

/// The committed sample: one photo per input feature the pipeline must
/// handle, small enough to keep in git.
fn fixtures(seed: u64) -> Vec<Job> {
    let s = |i: u64| seed.wrapping_mul(1000) + i;
    let q = 90;
    let mut white = base(s(2), 1224, 1632);
    white.border = BorderSpec {
        top: 64,
        bottom: 96,
        left: 52,
        right: 52,
        colour: [255, 255, 255],
        inner_line: 3,
        inner_line_colour: [40, 40, 40],
    };
    white.skin = [196, 148, 112];
    let mut png = base(s(4), 900, 1200);
    png.noise = 1.0;
    png.skin = [236, 200, 172];
    let mut png_jpg = base(s(5), 900, 1200);
    png_jpg.noise = 1.0;
    png_jpg.clothing = [236, 236, 232];
    png_jpg.shirt = [250, 250, 250];
    let mut gray = base(s(7), 1224, 1632);
    gray.hair = [60, 45, 34];
    let mut cmyk = base(s(8), 1224, 1632);
    cmyk.clothing = [40, 44, 66];
    let mut landscape = base(s(10), 2000, 1500);
    landscape.head_height = 0.36;
    landscape.headroom = 0.10;
    let mut black = base(s(11), 1224, 1632);
    black.border = BorderSpec {
        top: 0,
        bottom: 0,
        left: 90,
        right: 90,
        colour: [0, 0, 0],
        ..BorderSpec::default()
    };
    let mut two = base(s(12), 1632, 1224);
    two.second_person = true;
    two.head_height = 0.34;
    vec![
        job("01-baseline.jpg", base(s(1), 1224, 1632), FileSpec::jpeg(q)),
        job("02-white-border-double-frame.jpg", white, FileSpec::jpeg(q)),
        job(
            "03-exif-orientation-6.jpg",
            base(s(3), 1500, 2000),
            FileSpec::phone(88, 6),
        ),
        job(
            "04-portrait.png",
            png,
            FileSpec::with_format(Format::PngRgb8, q),
        ),
        Job {
            lying_name: true,
            ..job(
                "05-png-named.jpg",
                png_jpg,
                FileSpec::with_format(Format::PngRgba, q),
            )
        },
        job(
            "06-progressive.jpg",
            base(s(6), 1224, 1632),
            FileSpec::with_format(Format::JpegProgressive, q),
        ),
        job(
            "07-grayscale.jpg",
            gray,
            FileSpec::with_format(Format::JpegGray, q),
        ),
        job(
            "08-cmyk-adobe.jpg",
            cmyk,
            FileSpec::with_format(Format::JpegCmyk, q),
        ),
        job(
            "09-corrupt.jpg",
            base(s(9), 1224, 1632),
            FileSpec::with_format(Format::CorruptJpeg, q),
        ),
        job(
            "10-landscape-restart-markers.jpg",
            landscape,
            FileSpec::with_format(Format::JpegRestart, q),
        ),
        job("11-black-border-left-right.jpg", black, FileSpec::jpeg(q)),
        job("12-two-people.jpg", two, FileSpec::jpeg(q)),
    ]
}

/// A vendor-like batch: mostly ordinary baseline JPEGs, with the awkward
/// cases at roughly the rates a season brings.
fn cohort(seed: u64, count: usize, min_mp: f64, max_mp: f64, tight: f64) -> Vec<Job> {
    (0..count)
        .map(|i| {
            let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let opts = RandomOptions {
                min_mp,
                max_mp,
                landscape: 0.05,
            };
            let mut spec = random_spec(&mut rng, opts);
            let mut tags = Vec::new();

            // Picture problems.
            let r = rng.next_f64();
            if r < 0.01 {
                spec.headroom = -rng.range(0.02, 0.08);
                tags.push("cut-off");
            } else if r < 0.02 {
                spec.second_person = true;
                tags.push("two-people");
            } else if r < 0.03 {
                spec.backdrop = if rng.chance(0.5) {
                    [200, 40, 45]
                } else {
                    [246, 246, 244]
                };
                tags.push("not-blue");
            } else if r < 0.06 {
                spec.clothing = [112, 186, 238];
                spec.shirt = [120, 194, 246];
                tags.push("blue-shirt");
            } else if r < 0.09 {
                spec.uneven_light = rng.range(0.3, 0.5);
                tags.push("shadow");
            }

            // Tight framing, from its own stream: the crown 4-15% of the
            // head's height below the top, where no crop inside the photo
            // gives the composition rule's crown margin (or only its edge).
            let mut own = SplitMix64::new(!seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            if tight > 0.0 && tags.is_empty() && own.chance(tight) {
                spec.headroom = spec.head_height * own.range(0.04, 0.15);
                tags.push("tight");
            }

            // Borders from scanning or export.
            if rng.chance(0.15) {
                spec.border = random_border(&mut rng, spec.width, spec.height);
                tags.push("border");
            }

            // Container and encoding.
            let quality = rng.int(84, 97) as u8;
            let r = rng.next_f64();
            let mut lying_name = false;
            let file = if r < 0.10 {
                let o = [3, 6, 8][rng.int(0, 2) as usize];
                tags.push(
                    ["exif3", "exif6", "exif8"]
                        [[3, 6, 8].iter().position(|v| *v == o).unwrap_or(0)],
                );
                let mut f = FileSpec::phone(quality, o);
                if let Some(e) = f.exif.as_mut() {
                    e.big_endian = rng.chance(0.5);
                    if rng.chance(0.5) {
                        *e = ExifSpec {
                            make: Some("HUAWEI".into()),
                            model: Some("P60".into()),
                            ..e.clone()
                        };
                    }
                    if rng.chance(0.3) {
                        e.gps = None;
                    }
                }
                f
            } else if r < 0.20 {
                // PNG exports of huge frames are rare and huge; keep them
                // to the low end of the size range.
                shrink_to(&mut spec, 8.0);
                let fmt = [
                    Format::PngRgb8,
                    Format::PngRgb16,
                    Format::PngPalette,
                    Format::PngRgba,
                ][rng.int(0, 3) as usize];
                tags.push("png");
                lying_name = rng.chance(0.2);
                FileSpec::with_format(fmt, quality)
            } else if r < 0.23 {
                tags.push("progressive");
                FileSpec::with_format(Format::JpegProgressive, quality)
            } else if r < 0.25 {
                tags.push("gray");
                FileSpec::with_format(Format::JpegGray, quality)
            } else if r < 0.27 {
                let cmyk = rng.chance(0.5);
                tags.push(if cmyk { "cmyk" } else { "ycck" });
                FileSpec::with_format(
                    if cmyk {
                        Format::JpegCmyk
                    } else {
                        Format::JpegYcck
                    },
                    quality,
                )
            } else if r < 0.29 {
                tags.push("restart");
                FileSpec::with_format(Format::JpegRestart, quality)
            } else if r < 0.30 {
                tags.push("corrupt");
                FileSpec::with_format(Format::CorruptJpeg, quality)
            } else {
                FileSpec::jpeg(quality)
            };
            let ext = if lying_name {
                "jpg"
            } else {
                file.format.extension()
            };
            let tag = if tags.is_empty() {
                "ok".to_string()
            } else {
                tags.join("-")
            };
            Job {
                name: format!("{i:05}-{tag}.{ext}"),
                spec,
                file,
                lying_name,
            }
        })
        .collect()
}

fn random_border(rng: &mut SplitMix64, w: u32, h: u32) -> BorderSpec {
    let colours = [
        [255, 255, 255],
        [236, 236, 236],
        [200, 200, 200],
        [0, 0, 0],
        [18, 18, 18],
    ];
    let colour = colours[rng.int(0, colours.len() as i64 - 1) as usize];
    // Up to a quarter of the side, but mostly thin scanner margins.
    let mut side = |len: u32| -> u32 {
        let max = f64::from(len / 4);
        let f = rng.next_f64();
        (max * f * f * f).max(2.0) as u32
    };
    let mut b = BorderSpec {
        top: side(h),
        bottom: side(h),
        left: side(w),
        right: side(w),
        colour,
        ..BorderSpec::default()
    };
    match rng.int(0, 3) {
        0 => {
            b.top = 0;
            b.bottom = 0;
        }
        1 => {
            b.left = 0;
            b.right = 0;
        }
        2 => {
            b.right = 0;
            b.bottom = 0;
        }
        _ => {}
    }
    keep_to_a_quarter(&mut b, w, h);
    if colour[0] > 200 && rng.chance(0.3) {
        b.inner_line = rng.int(2, 5) as u32;
        b.inner_line_colour = [30, 30, 30];
    }
    b
}

fn shrink_to(spec: &mut PortraitSpec, max_mp: f64) {
    let mp = f64::from(spec.width) * f64::from(spec.height) / 1e6;
    if mp > max_mp {
        let f = (max_mp / mp).sqrt();
        spec.width = ((f64::from(spec.width) * f) as u32 / 2).max(16) * 2;
        spec.height = ((f64::from(spec.height) * f) as u32 / 2).max(16) * 2;
    }
    // A frame drawn for the larger canvas may not fit the smaller one
    // (seed 67 made one). Frames that already fit are left as they were, so
    // cohorts made before this keep their photos.
    keep_to_a_quarter(&mut spec.border, spec.width, spec.height);
}

/// Keeps each side of `b` to a quarter of a `w` x `h` canvas, so the inner
/// photo is at least half the canvas each way.
fn keep_to_a_quarter(b: &mut BorderSpec, w: u32, h: u32) {
    b.top = b.top.min(h / 4);
    b.bottom = b.bottom.min(h / 4);
    b.left = b.left.min(w / 4);
    b.right = b.right.min(w / 4);
}
