//! The backdrop replaced by the reference colour through the person's
//! matte ([`crate::analysis::matte`]), on the 480x640 output.
//!
//! Each pixel is `I + (1 - α)(R - B)`: with `I = αF + (1 - α)B` that is
//! `αF + (1 - α)R`, the person over the reference. The old backdrop's
//! colour is taken out of the edge pixels in proportion to how much of it
//! they hold (the spill), the backdrop keeps its own grain around the new
//! colour, and a pixel with α = 1, the person, is copied unchanged.

use crate::analysis::backdrop::{BackdropSettings, estimate_backdrop};
use crate::analysis::backdrop_model::BackdropPlane;
use crate::analysis::matte::{HeadPlace, Matte, MatteError, MatteSettings, compute_matte};
use crate::analysis::working_copy::WorkingCopy;
use crate::image::RgbImage;

/// `img` with its backdrop replaced by `reference`, and the matte used.
pub fn recolour(
    img: &RgbImage,
    reference: [u8; 3],
    head: HeadPlace,
    settings: &MatteSettings,
) -> Result<(RgbImage, Matte), MatteError> {
    let copy = WorkingCopy::of(img);
    let backdrop = estimate_backdrop(&copy, &BackdropSettings::default())
        .map_err(|_| MatteError::NoBackdrop(0.0))?;
    let plane = BackdropPlane::fit(&copy, &backdrop);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let matte = compute_matte(
        img.as_bytes(),
        w,
        h,
        |x, y| {
            plane
                .at(x as f64, y as f64)
                .map(|v| v.clamp(0.0, 255.0) as f32)
        },
        backdrop.rgb.map(f32::from),
        head,
        settings,
    )?;
    let out = composite(img, &matte, reference);
    Ok((out, matte))
}

/// `I + (1 - α)(R - B)` per pixel; α = 1 copies the pixel.
pub fn composite(img: &RgbImage, matte: &Matte, reference: [u8; 3]) -> RgbImage {
    let r = reference.map(f32::from);
    let mut out = img.clone();
    for (i, p) in out.as_bytes_mut().chunks_exact_mut(3).enumerate() {
        let a = matte.alpha[i];
        if a >= 1.0 {
            continue;
        }
        let b = matte.backdrop[i];
        for c in 0..3 {
            let v = f32::from(p[c]) + (1.0 - a) * (r[c] - b[c]);
            p[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::colour::{ciede2000, srgb_to_lab};
    use crate::testkit::synth::matte::{MatteBackdrop, MattePortrait, MatteSpec, render_matte};

    const REFERENCE: [u8; 3] = [100, 197, 255];

    fn head_of(spec: &MatteSpec) -> HeadPlace {
        let hh = spec.sitter.face_width / (2.0 * 0.38);
        HeadPlace {
            center_x: spec.sitter.cx,
            crown_y: spec.sitter.crown,
            eye_y: spec.sitter.crown + 0.52 * hh,
        }
    }

    /// SAD (in thousands, as the matting benchmarks report it) and the
    /// gradient error (sum of squared differences of gradient magnitudes,
    /// in thousands) of `alpha` against the truth.
    fn matte_errors(alpha: &[f32], truth: &[f32], w: usize, h: usize) -> (f64, f64) {
        let sad: f64 = alpha
            .iter()
            .zip(truth)
            .map(|(a, t)| f64::from((a - t).abs()))
            .sum();
        let grad = |v: &[f32], x: usize, y: usize| {
            let gx = f64::from(v[y * w + x + 1] - v[y * w + x - 1]) / 2.0;
            let gy = f64::from(v[(y + 1) * w + x] - v[(y - 1) * w + x]) / 2.0;
            gx.hypot(gy)
        };
        let mut g = 0.0;
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                g += (grad(alpha, x, y) - grad(truth, x, y)).powi(2);
            }
        }
        (sad / 1000.0, g / 1000.0)
    }

    struct Scores {
        sad: f64,
        grad: f64,
        backdrop_de: f64,
        spread_p90: f64,
        ring_mean: f64,
        ring_p95: f64,
    }

    fn lab(c: [f64; 3]) -> [f64; 3] {
        srgb_to_lab(c.map(|v| v.round().clamp(0.0, 255.0) as u8))
    }

    fn score(spec: &MatteSpec, m: &MattePortrait, out: &RgbImage, matte: &Matte) -> Scores {
        let (w, h) = (spec.width as usize, spec.height as usize);
        let (sad, grad) = matte_errors(&matte.alpha, &m.alpha, w, h);
        // Backdrop: pixels the true matte says are pure backdrop, away from
        // the person by 6 px; their mean against the reference and the 90th
        // percentile of their block means' distance from it.
        let near_person = |x: usize, y: usize, r: usize| {
            (y.saturating_sub(r)..(y + r + 1).min(h)).any(|yy| {
                (x.saturating_sub(r)..(x + r + 1).min(w)).any(|xx| m.alpha[yy * w + xx] > 0.0)
            })
        };
        let mut blocks = Vec::new();
        let mut all = [0f64; 3];
        let mut n = 0.0;
        for by in (0..h - 8).step_by(8) {
            for bx in (0..w - 8).step_by(8) {
                if near_person(bx + 4, by + 4, 10) {
                    continue;
                }
                let mut s = [0f64; 3];
                for y in by..by + 8 {
                    for x in bx..bx + 8 {
                        let p = out.pixel(x as u32, y as u32);
                        for c in 0..3 {
                            s[c] += f64::from(p[c]);
                        }
                    }
                }
                let mean = s.map(|v| v / 64.0);
                for c in 0..3 {
                    all[c] += mean[c];
                }
                n += 1.0;
                blocks.push(ciede2000(lab(mean), srgb_to_lab(REFERENCE)));
            }
        }
        blocks.sort_by(f64::total_cmp);
        let spread_p90 = blocks[blocks.len() * 9 / 10];
        let backdrop_de = ciede2000(lab(all.map(|v| v / n)), srgb_to_lab(REFERENCE));
        // The ring: pixels outside the person's true outline (α < 0.5) but
        // within 3 px of it, against the true matte over the reference.
        let want = m.composited_onto(REFERENCE);
        let mut ring = Vec::new();
        for y in 3..h - 3 {
            for x in 3..w - 3 {
                let i = y * w + x;
                if m.alpha[i] >= 0.5
                    || !(y.saturating_sub(3)..y + 4)
                        .any(|yy| (x - 3..x + 4).any(|xx| m.alpha[yy * w + xx] >= 0.5))
                {
                    continue;
                }
                let got = out.pixel(x as u32, y as u32).map(f64::from);
                ring.push(ciede2000(lab(got), lab(want[i])));
            }
        }
        ring.sort_by(f64::total_cmp);
        Scores {
            sad,
            grad,
            backdrop_de,
            spread_p90,
            ring_mean: ring.iter().sum::<f64>() / ring.len() as f64,
            ring_p95: ring[ring.len() * 95 / 100],
        }
    }

    fn kinds() -> Vec<(&'static str, MatteBackdrop)> {
        vec![
            ("white", MatteBackdrop::Flat([250, 250, 250])),
            ("grey", MatteBackdrop::Flat([200, 200, 200])),
            ("dark blue", MatteBackdrop::Flat([67, 142, 219])),
            ("light blue", MatteBackdrop::Flat([150, 210, 250])),
            (
                "gradient",
                MatteBackdrop::Gradient {
                    top: [120, 205, 255],
                    bottom: [60, 130, 190],
                },
            ),
            (
                "shadowed",
                MatteBackdrop::Shadow {
                    colour: [100, 197, 255],
                    depth: 0.35,
                    x: 390.0,
                    y: 260.0,
                    radius: 200.0,
                },
            ),
        ]
    }

    #[test]
    fn recolouring_meets_the_matting_backdrop_and_halo_bounds() {
        let mut report = String::new();
        for (name, kind) in kinds() {
            let mut spec = MatteSpec::new(kind);
            if matches!(name, "white" | "grey") {
                // A pale blue shirt: a white one on white is the case that
                // must be flagged (see below).
                spec.shirt = [170, 190, 220];
            }
            let m = render_matte(&spec).expect("renders");
            let (out, matte) = recolour(
                &m.image,
                REFERENCE,
                head_of(&spec),
                &MatteSettings::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = score(&spec, &m, &out, &matte);
            report.push_str(&format!(
                "{name}: SAD {:.2}k, gradient {:.3}k, backdrop ΔE {:.2}, spread p90 {:.2}, ring ΔE mean {:.2} p95 {:.2}\n",
                s.sad, s.grad, s.backdrop_de, s.spread_p90, s.ring_mean, s.ring_p95
            ));
            // Person pixels (true α = 1, away from any edge) are untouched.
            let w = spec.width as usize;
            for (i, a) in m.alpha.iter().enumerate() {
                if *a >= 1.0 && matte.alpha[i] >= 1.0 {
                    assert_eq!(
                        out.pixel((i % w) as u32, (i / w) as u32),
                        m.image.pixel((i % w) as u32, (i / w) as u32)
                    );
                }
            }
            assert!(s.backdrop_de <= 1.0, "{name}: {report}");
            assert!(s.spread_p90 <= 2.0, "{name}: {report}");
            assert!(s.ring_mean <= 5.0, "{name}: {report}");
            assert!(s.ring_p95 <= 10.0, "{name}: {report}");
            assert!(s.sad <= 1.0 && s.grad <= 0.1, "{name}: {report}");
        }
        eprintln!("{report}");
    }

    #[test]
    fn the_guided_filter_lowers_the_matte_error() {
        // Radius 0 makes the guided filter the identity but for the
        // epsilon's shrinkage; compare the refined matte with the raw one.
        let spec = MatteSpec {
            shirt: [170, 190, 220],
            ..MatteSpec::new(MatteBackdrop::Flat([250, 250, 250]))
        };
        let m = render_matte(&spec).expect("renders");
        let (w, h) = (480, 640);
        let with = |s: MatteSettings| {
            let (_, matte) = recolour(&m.image, REFERENCE, head_of(&spec), &s).expect("matte");
            matte_errors(&matte.alpha, &m.alpha, w, h)
        };
        let refined = with(MatteSettings::default());
        let raw = with(MatteSettings {
            epsilon: 1e6,
            radius: 0,
            ..MatteSettings::default()
        });
        eprintln!(
            "refined SAD {:.2}k grad {:.3}k; raw SAD {:.2}k grad {:.3}k",
            refined.0, refined.1, raw.0, raw.1
        );
        assert!(
            refined.0 < raw.0 && refined.1 < raw.1,
            "{refined:?} vs {raw:?}"
        );
    }

    #[test]
    fn clothes_of_the_backdrop_colour_are_flagged_not_recoloured() {
        let shirt = MatteSpec::new(MatteBackdrop::Flat([250, 250, 250]));
        let suit = MatteSpec {
            clothing: [244, 244, 242],
            shirt: [248, 248, 246],
            ..MatteSpec::new(MatteBackdrop::Flat([248, 248, 248]))
        };
        for spec in [shirt, suit] {
            let m = render_matte(&spec).expect("renders");
            let r = recolour(
                &m.image,
                REFERENCE,
                head_of(&spec),
                &MatteSettings::default(),
            );
            assert!(
                matches!(
                    r,
                    Err(MatteError::Pockets(_) | MatteError::Uncertain("clothing", _))
                ),
                "{:?}",
                r.err()
            );
        }
    }

    #[test]
    fn dark_hair_on_a_dark_backdrop_is_flagged() {
        let spec = MatteSpec {
            hair: [30, 30, 34],
            ..MatteSpec::new(MatteBackdrop::Flat([36, 36, 40]))
        };
        let m = render_matte(&spec).expect("renders");
        let r = recolour(
            &m.image,
            REFERENCE,
            head_of(&spec),
            &MatteSettings::default(),
        );
        assert!(
            r.is_err(),
            "separated with a matte the hair cannot be told from"
        );
    }
}
