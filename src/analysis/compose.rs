//! The crop: where the 3:4 box goes so the head lands where the registry's
//! composition rule wants it (SPEC §2).
//!
//! Every box size that integer pixels allow is tried; each is placed at its
//! ideal position, shifted to fit inside the image, and scored by how far
//! the predicted crown, eye line, face width and centring are from their
//! targets. The best box that keeps all four inside their tolerances wins;
//! when none does, the photo is flagged with the constraint that failed.

use serde::{Deserialize, Serialize};

use crate::analysis::subject::Subject;
use crate::image::Rect;
use crate::verdict::{Check, Verdict};

/// The composition rule, in output pixels of the final photo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompositionRule {
    pub out_width: u32,
    pub out_height: u32,
    /// Top of the hair below the top edge.
    pub crown_target: f64,
    pub crown_range: (f64, f64),
    /// Eye line below the top edge.
    pub eye_target: f64,
    pub eye_range: (f64, f64),
    /// Face width, cheek to cheek.
    pub face_target: f64,
    pub face_range: (f64, f64),
    /// Largest scale (output px per input px) allowed; 1.0 never invents
    /// pixels, so an input box smaller than the output is flagged.
    pub max_upscale: f64,
    /// How far the head's centre may sit from the vertical centre line when
    /// the box must be shifted to fit (5% of 480).
    pub centre_tolerance: f64,
    /// Output pixels kept clear of each range's ends when the image allows,
    /// because crown, eyes and face are estimates.
    pub safety_margin: f64,
    /// The box's aspect ratio in whole numbers, when it is not the output
    /// size's own (a print of 35x53 mm is 413x626 px at 300 dpi, sizes with
    /// no common factor, so boxes of exactly that ratio would come in one
    /// size only). The box is then `box_unit * k` and the resize scales
    /// the two axes by factors that differ by under half an output pixel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_unit: Option<(u32, u32)>,
}

impl Default for CompositionRule {
    fn default() -> Self {
        CompositionRule {
            out_width: 480,
            out_height: 640,
            crown_target: 80.0,
            crown_range: (50.0, 110.0),
            eye_target: 250.0,
            eye_range: (200.0, 300.0),
            face_target: 240.0,
            face_range: (180.0, 300.0),
            max_upscale: 1.0,
            centre_tolerance: 24.0,
            safety_margin: 6.0,
            box_unit: None,
        }
    }
}

/// The chosen box and what the head will look like in the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropPlan {
    /// Box in input pixels, exactly the output's aspect ratio when the
    /// output's sides share a factor (3:4: width = 3k, height = 4k).
    pub rect: Rect,
    /// Output pixels per input pixel.
    pub scale: f64,
    /// Predicted, in output pixels.
    pub crown_y: f64,
    pub eye_line_y: f64,
    pub face_width: f64,
    /// Horizontal position of the head's centre.
    pub center_x: f64,
    pub head: Rect,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ComposeError {
    #[error("invalid composition rule: {0}")]
    BadRule(&'static str),
    #[error(
        "image {width}x{height} is too small for a {out_width}x{out_height} photo without upscaling"
    )]
    TooSmall {
        width: u32,
        height: u32,
        out_width: u32,
        out_height: u32,
    },
    #[error(
        "the head is too small in this image: it would need upscaling x{needed:.2} (allowed x{allowed:.2})"
    )]
    NeedsUpscale { needed: f64, allowed: f64 },
    #[error("no crop meets the composition rule: {0}")]
    Unplaceable(String),
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

struct Eval {
    rect: Rect,
    scale: f64,
    crown: f64,
    eye: f64,
    face: f64,
    offset: f64,
    cost: f64,
    violation: Option<String>,
}

fn evaluate(
    k: u32,
    unit: (u32, u32),
    width: u32,
    height: u32,
    s: &Subject,
    rule: &CompositionRule,
) -> Eval {
    let (bw, bh) = (unit.0 * k, unit.1 * k);
    let scale = f64::from(rule.out_width) / f64::from(bw);
    let cx = f64::from(s.center_x) + 0.5;
    let ideal_x = cx - f64::from(bw) / 2.0;
    let ideal_y = f64::from(s.crown_y) - rule.crown_target / scale;
    let x = ideal_x.round().clamp(0.0, f64::from(width - bw)) as u32;
    let y = ideal_y.round().clamp(0.0, f64::from(height - bh)) as u32;
    let crown = (f64::from(s.crown_y) - f64::from(y)) * scale;
    let eye = (f64::from(s.eye_line_y) - f64::from(y)) * scale;
    let face = f64::from(s.face_width) * scale;
    let offset = (cx - f64::from(x)) * scale - f64::from(rule.out_width) / 2.0;
    let rel = |v: f64, t: f64, r: (f64, f64)| (v - t) / ((r.1 - r.0) / 2.0).max(1.0);
    let cost = rel(crown, rule.crown_target, rule.crown_range).powi(2)
        + rel(eye, rule.eye_target, rule.eye_range).powi(2)
        + rel(face, rule.face_target, rule.face_range).powi(2)
        + (offset / rule.centre_tolerance.max(1.0)).powi(2);
    let out = |v: f64, r: (f64, f64)| v < r.0 - 1e-9 || v > r.1 + 1e-9;
    let violation = if out(crown, rule.crown_range) {
        Some(format!(
            "crown would be {crown:.0} px below the top (needs {:.0}-{:.0})",
            rule.crown_range.0, rule.crown_range.1
        ))
    } else if out(eye, rule.eye_range) {
        Some(format!(
            "eye line would be {eye:.0} px below the top (needs {:.0}-{:.0})",
            rule.eye_range.0, rule.eye_range.1
        ))
    } else if out(face, rule.face_range) {
        Some(format!(
            "face would be {face:.0} px wide (needs {:.0}-{:.0})",
            rule.face_range.0, rule.face_range.1
        ))
    } else if offset.abs() > rule.centre_tolerance + 1e-9 {
        Some(format!(
            "subject would sit {:.0} px off centre (tolerance {:.0}): too little room on the {} side",
            offset.abs(),
            rule.centre_tolerance,
            if offset > 0.0 { "right" } else { "left" }
        ))
    } else {
        None
    };
    Eval {
        rect: Rect::new(x, y, bw, bh),
        scale,
        crown,
        eye,
        face,
        offset,
        cost,
        violation,
    }
}

/// Plans the crop for `subject` in a `width` x `height` image.
///
/// Rounding: the box is `unit * k` for the output's reduced aspect ratio
/// (3:4 → 3k x 4k), so its aspect ratio is exact and the resize scales both
/// axes by the same factor, `out_width / (3k)`.
pub fn plan_crop(
    width: u32,
    height: u32,
    subject: &Subject,
    rule: &CompositionRule,
) -> Result<CropPlan, ComposeError> {
    if rule.out_width == 0 || rule.out_height == 0 {
        return Err(ComposeError::BadRule("output size is zero"));
    }
    if rule.max_upscale.is_nan() || rule.max_upscale <= 0.0 {
        return Err(ComposeError::BadRule("max_upscale must be positive"));
    }
    let g = gcd(rule.out_width, rule.out_height);
    let (unit, g) = match rule.box_unit {
        Some((w, h)) if w > 0 && h > 0 => ((w, h), f64::from(rule.out_width) / f64::from(w)),
        _ => ((rule.out_width / g, rule.out_height / g), f64::from(g)),
    };
    let k_max = (width / unit.0).min(height / unit.1);
    // Smallest box allowed by the upscale limit.
    let k_min = (g / rule.max_upscale).ceil().max(1.0) as u32;
    if k_max == 0 || k_max < k_min {
        return Err(ComposeError::TooSmall {
            width,
            height,
            out_width: rule.out_width,
            out_height: rule.out_height,
        });
    }
    let mut best: Option<Eval> = None;
    let mut closest: Option<Eval> = None;
    // First with the ranges narrowed by the safety margin, so an estimate a
    // few pixels off still lands inside; then with the rule's own ranges.
    for margin in [rule.safety_margin, 0.0] {
        closest = None;
        let m = margin.max(0.0);
        let narrowed = CompositionRule {
            crown_range: (rule.crown_range.0 + m, rule.crown_range.1 - m),
            eye_range: (rule.eye_range.0 + m, rule.eye_range.1 - m),
            face_range: (rule.face_range.0 + m, rule.face_range.1 - m),
            ..rule.clone()
        };
        for k in k_min..=k_max {
            let e = evaluate(k, unit, width, height, subject, &narrowed);
            let slot = if e.violation.is_none() {
                &mut best
            } else {
                &mut closest
            };
            if slot.as_ref().is_none_or(|b| e.cost < b.cost) {
                *slot = Some(e);
            }
        }
        if best.is_some() {
            break;
        }
    }
    let Some(e) = best else {
        // Say why: first whether the head is simply too small at full size.
        let face_full =
            f64::from(subject.face_width) * f64::from(rule.out_width) / f64::from(unit.0 * k_min);
        if face_full < rule.face_range.0 && k_min > 1 {
            let needed = rule.face_target / f64::from(subject.face_width.max(1));
            return Err(ComposeError::NeedsUpscale {
                needed,
                allowed: rule.max_upscale,
            });
        }
        let why = closest
            .and_then(|c| c.violation)
            .unwrap_or_else(|| "no box fits".to_owned());
        return Err(ComposeError::Unplaceable(why));
    };
    let map_x = |v: u32| (f64::from(v) - f64::from(e.rect.x)) * e.scale;
    let map_y = |v: u32| (f64::from(v) - f64::from(e.rect.y)) * e.scale;
    let hx = map_x(subject.head.x).clamp(0.0, f64::from(rule.out_width - 1));
    let hy = map_y(subject.head.y).clamp(0.0, f64::from(rule.out_height - 1));
    let hw = (f64::from(subject.head.width) * e.scale).min(f64::from(rule.out_width) - hx);
    let hh = (f64::from(subject.head.height) * e.scale).min(f64::from(rule.out_height) - hy);
    Ok(CropPlan {
        rect: e.rect,
        scale: e.scale,
        crown_y: e.crown,
        eye_line_y: e.eye,
        face_width: e.face,
        center_x: f64::from(rule.out_width) / 2.0 + e.offset,
        head: Rect::new(hx as u32, hy as u32, hw.max(1.0) as u32, hh.max(1.0) as u32),
    })
}

/// The largest box of the output's aspect ratio, centred: the fallback when
/// no subject is found or the operator asks for it.
pub fn centred_crop(width: u32, height: u32, rule: &CompositionRule) -> Rect {
    let g = gcd(rule.out_width.max(1), rule.out_height.max(1));
    let unit = (rule.out_width.max(1) / g, rule.out_height.max(1) / g);
    let k = (width / unit.0).min(height / unit.1);
    if k == 0 {
        // Smaller than one aspect unit: the whole image is all there is.
        return Rect::full(width, height);
    }
    let (bw, bh) = (unit.0 * k, unit.1 * k);
    Rect::new((width - bw) / 2, (height - bh) / 2, bw, bh)
}

/// `crown_margin`, `eye_line`, `face_width`, `centred`: pass inside the
/// rule's range, warn within a further quarter of the range, fail beyond.
pub fn judge_composition(plan: &CropPlan, rule: &CompositionRule) -> Vec<Check> {
    let band = |name: &str, v: f64, r: (f64, f64), what: &str| {
        let slack = (r.1 - r.0) / 4.0;
        let verdict = if v >= r.0 && v <= r.1 {
            Verdict::Pass
        } else if v >= r.0 - slack && v <= r.1 + slack {
            Verdict::Warn
        } else {
            Verdict::Fail
        };
        Check::new(
            name,
            verdict,
            Some(v),
            format!("{what} {v:.0} px (rule {:.0}-{:.0})", r.0, r.1),
        )
    };
    let offset = plan.center_x - f64::from(rule.out_width) / 2.0;
    vec![
        band(
            "crown_margin",
            plan.crown_y,
            rule.crown_range,
            "hair top below the top edge",
        ),
        band(
            "eye_line",
            plan.eye_line_y,
            rule.eye_range,
            "eye line below the top edge",
        ),
        band("face_width", plan.face_width, rule.face_range, "face width"),
        band(
            "centred",
            offset,
            (-rule.centre_tolerance, rule.centre_tolerance),
            "head centre off the middle by",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::subject::tests::{BLUE, find};
    use crate::testkit::synth::{Sitter, Sitting, Truth};

    /// The crop planned for `p` painted alone on a `w` x `h` backdrop, and
    /// the truth about `p`.
    fn plan(w: u32, h: u32, p: Sitter) -> (Result<CropPlan, ComposeError>, Truth) {
        let (img, truth) = Sitting::new(w, h, BLUE).with(p).render().expect("renders");
        let s = find(&img).expect("subject");
        (
            plan_crop(w, h, &s, &CompositionRule::default()),
            truth[0].clone(),
        )
    }

    /// Where the true crown, eyes and face land in the output under `plan`.
    fn truth_in_output(plan: &CropPlan, t: &Truth) -> (f64, f64, f64, f64) {
        let s = plan.scale;
        (
            (t.crown_row as f64 - f64::from(plan.rect.y)) * s,
            (t.eye_row as f64 - f64::from(plan.rect.y)) * s,
            f64::from(t.face_width) * s,
            (t.center_x as f64 - f64::from(plan.rect.x)) * s,
        )
    }

    fn assert_good(plan: &CropPlan, p: &Truth, w: u32, h: u32) {
        let rule = CompositionRule::default();
        assert!(plan.rect.fits_in(w, h), "{plan:?}");
        assert_eq!(plan.rect.width * 4, plan.rect.height * 3, "{plan:?}");
        assert!(plan.scale <= rule.max_upscale + 1e-12);
        let (crown, eye, face, cx) = truth_in_output(plan, p);
        let inside = |v: f64, r: (f64, f64)| v >= r.0 && v <= r.1;
        assert!(
            inside(crown, rule.crown_range),
            "true crown at {crown:.1}: {plan:?}"
        );
        assert!(
            inside(eye, rule.eye_range),
            "true eye line at {eye:.1}: {plan:?}"
        );
        assert!(
            inside(face, rule.face_range),
            "true face {face:.1}: {plan:?}"
        );
        assert!(
            (cx - 240.0).abs() <= rule.centre_tolerance + 4.0,
            "true centre {cx:.1}: {plan:?}"
        );
        assert!(
            judge_composition(plan, &rule)
                .iter()
                .all(|c| c.verdict == Verdict::Pass)
        );
    }

    #[test]
    fn studio_portrait() {
        let (r, p) = plan(1200, 1600, Sitter::new(600.0, 250.0, 480.0));
        let plan = r.expect("plan");
        assert_good(&plan, &p, 1200, 1600);
        let (crown, eye, face, _) = truth_in_output(&plan, &p);
        // Near the targets, not just inside the ranges.
        assert!(
            (crown - 80.0).abs() < 15.0
                && (eye - 250.0).abs() < 25.0
                && (face - 240.0).abs() < 30.0
        );
    }

    #[test]
    fn landscape_with_subject_in_the_middle() {
        let (r, p) = plan(2000, 1200, Sitter::new(1000.0, 300.0, 300.0));
        assert_good(&r.expect("plan"), &p, 2000, 1200);
    }

    #[test]
    fn far_too_much_headroom() {
        let (r, p) = plan(1000, 1400, Sitter::new(500.0, 700.0, 320.0));
        assert_good(&r.expect("plan"), &p, 1000, 1400);
    }

    #[test]
    fn tight_crop_shifts_and_shrinks_within_tolerance() {
        // Crown close to the top, shoulders cut just below the chin region:
        // the ideal box pokes out at the top and bottom.
        let (r, p) = plan(600, 800, Sitter::new(300.0, 70.0, 330.0));
        assert_good(&r.expect("plan"), &p, 600, 800);
    }

    #[test]
    fn off_to_one_side_without_room_is_flagged() {
        let (r, p) = plan(1000, 1000, Sitter::new(150.0, 200.0, 240.0));
        assert_eq!(p.expected_flag.as_deref(), Some("too_close_to_edge"));
        match r {
            Err(ComposeError::Unplaceable(why)) => assert!(why.contains("off centre"), "{why}"),
            other => panic!("expected a flag, got {other:?}"),
        }
    }

    #[test]
    fn small_head_needs_upscaling() {
        let (r, p) = plan(500, 700, Sitter::new(250.0, 150.0, 90.0));
        assert_eq!(p.expected_flag.as_deref(), Some("too_small"));
        assert!(matches!(r, Err(ComposeError::NeedsUpscale { .. })), "{r:?}");
    }

    #[test]
    fn tiny_and_odd_sizes() {
        let rule = CompositionRule::default();
        let s = Subject {
            crown_y: 1,
            chin_y: 5,
            head: Rect::new(0, 1, 3, 4),
            face_width: 2,
            eye_line_y: 3,
            center_x: 1,
            shoulder_y: None,
            touches_top: false,
            people: 1,
            area_share: 0.5,
            neck_seen: false,
        };
        assert!(plan_crop(1, 1, &s, &rule).is_err());
        assert!(plan_crop(10_000, 10, &s, &rule).is_err());
        assert_eq!(centred_crop(1, 1, &rule), Rect::full(1, 1));
        let c = centred_crop(10_000, 10, &rule);
        assert!(
            c.fits_in(10_000, 10) && c.width * 4 == c.height * 3,
            "{c:?}"
        );
        let c = centred_crop(4000, 3000, &rule);
        assert_eq!(c, Rect::new(875, 0, 2250, 3000));
    }
}
