//! Prints, for every photo given, the faces the detector finds on the
//! working copy (score, box, pupils, tilt, turn) and the time the detection
//! and the pupils took: a probe for the face stage alone.
//! Usage: face_probe FILE_OR_DIR...

use std::time::Instant;

use gradphoto::FaceSettings;
use gradphoto::Options;
use gradphoto::stages::{WorkingCopy, apply_orientation, decode_reduced, discover, find_faces};

fn main() {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let options = Options::default();
    let reduce = options.reduce.first_decode(&options.composition);
    let settings = FaceSettings {
        min_score: 0.3,
        ..FaceSettings::default()
    };
    let mut total = 0.0;
    let (mut detect, mut landmarks, mut cpu) = (0.0, 0.0, 0.0);
    let mut n = 0;
    for path in discover(&args, None).photos {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(d) = decode_reduced(&bytes, &options.limits, options.backdrop.reference, reduce)
        else {
            continue;
        };
        let img = apply_orientation(d.image, d.orientation);
        let copy = WorkingCopy::new(&img, options.work_size);
        let start = Instant::now();
        let cpu_start = thread_cpu_ms();
        let faces = find_faces(&copy, &img, &settings);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if n > 0 {
            cpu += thread_cpu_ms() - cpu_start;
        }
        if n > 0 {
            // The first photo pays for building the model.
            total += ms;
            if let Ok(f) = &faces {
                detect += f.detect_time.as_secs_f64() * 1e3;
                landmarks += f.landmarks_time.as_secs_f64() * 1e3;
            }
        }
        n += 1;
        match faces {
            Ok(f) => {
                let scores: Vec<String> =
                    f.found.iter().map(|f| format!("{:.3}", f.score)).collect();
                match f.found.first() {
                    Some(b) => println!(
                        "{} {}x{} {ms:.2} ms scores [{}] box {:.0},{:.0} {:.0}x{:.0} eyes ({:.1},{:.1}) ({:.1},{:.1}) tilt {:.2} turn {:.2} width {:.0}",
                        path.display(),
                        img.width(),
                        img.height(),
                        scores.join(" "),
                        b.bbox[0],
                        b.bbox[1],
                        b.bbox[2],
                        b.bbox[3],
                        b.right_eye[0],
                        b.right_eye[1],
                        b.left_eye[0],
                        b.left_eye[1],
                        b.tilt_degrees(),
                        b.turn(),
                        b.width(&FaceSettings::default())
                    ),
                    None => println!("{} {ms:.2} ms no face", path.display()),
                }
            }
            Err(e) => println!("{} error {e}", path.display()),
        }
    }
    if n > 1 {
        let k = (n - 1) as f64;
        println!(
            "mean {:.2} ms per photo over {} (first excluded): detector {:.2} ms, shape predictor and pupils {:.2} ms (wall); {:.2} ms of this thread's CPU time",
            total / k,
            n - 1,
            detect / k,
            landmarks / k,
            cpu / k
        );
    }
}

/// This thread's CPU time: on a busy machine, closer to what the work costs
/// than the wall time, which includes waiting for a core.
fn thread_cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}
