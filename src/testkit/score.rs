//! Scores what gradphoto did to a photo against the synthetic generator's
//! ground truth ([`crate::testkit::synth::Truth`]): border removed per side, backdrop
//! colour, where the true crown, eyes and face landed in the output, and
//! whether the photo was flagged for the right reason (and only then).
//!
//! The truth is in the upright frame of the whole picture, borders included,
//! and so are the record's crop box and scale, so the true features are
//! mapped straight through the crop: this measures the output a school will
//! see, not the pipeline's own belief about it.

use std::fmt::Write as _;

use crate::analysis::colour::{ciede2000, srgb_to_lab};
use crate::analysis::compose::CompositionRule;
use crate::batch::manifest::{PhotoRecord, Status};
use crate::testkit::synth::Truth;
use crate::verdict::Verdict;

/// What counts as right.
#[derive(Clone, Debug)]
pub struct Tolerances {
    /// Border removed per side, in pixels of the upright original; a photo
    /// decoded at scale s is allowed ceil(1/s) pixels when that is more.
    pub border_px: u32,
    /// CIEDE2000 between the estimated and the true backdrop.
    pub backdrop_delta_e: f64,
    /// Ranges the true crown, eye line, face width and centre must land in.
    pub rule: CompositionRule,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            border_px: 2,
            backdrop_delta_e: 2.0,
            rule: CompositionRule::default(),
        }
    }
}

/// Where the true features landed in the output, in output pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Landing {
    pub crown: f64,
    pub eye: f64,
    pub face: f64,
    /// Head centre minus the output's centre line.
    pub offset: f64,
    pub scale: f64,
}

/// The pipeline's estimate minus the truth, in output pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EstimateError {
    pub crown: f64,
    pub eye: f64,
    pub face: f64,
}

/// One photo's score. `failures` is empty when everything is right.
#[derive(Clone, Debug, Default)]
pub struct PhotoScore {
    pub file: String,
    pub fixable: bool,
    pub expected_flag: Option<String>,
    /// Flags the record shows, in the truth's vocabulary.
    pub flags: Vec<&'static str>,
    /// Found minus true, per side: top, bottom, left, right.
    pub border_error: Option<[i64; 4]>,
    /// Whether every side is within the tolerance (see [`Tolerances`]).
    pub border_ok: bool,
    pub had_border: bool,
    pub backdrop_delta_e: Option<f64>,
    pub landing: Option<Landing>,
    pub estimate: Option<EstimateError>,
    pub unexpected_warnings: Vec<String>,
    pub failures: Vec<String>,
}

/// The truth's flag names, derived from a record. Messages are matched on
/// the stable phrases of the stages' own error texts.
pub fn record_flags(r: &PhotoRecord) -> Vec<&'static str> {
    let mut flags = Vec::new();
    let err = r.error.as_deref().unwrap_or("").to_lowercase();
    if r.original_width.is_none() && r.error.is_some() {
        flags.push("corrupt");
    }
    if err.contains("cut off") {
        flags.push("subject_cut_off");
    }
    // Two people, by the silhouette or (a failing `faces` check counting
    // two or more) by the face detector.
    let faces_counted = r.checks.iter().any(|c| {
        c.name == "faces" && c.verdict == Verdict::Fail && c.value.is_some_and(|v| v >= 2.0)
    });
    if err.contains("two or more people") || faces_counted {
        flags.push("two_people");
    }
    if err.contains("too small") || err.contains("upscaling") {
        flags.push("too_small");
    }
    if err.contains("no crop meets") {
        flags.push("too_close_to_edge");
    }
    let failed = |name: &str| {
        r.checks
            .iter()
            .any(|c| c.name == name && c.verdict == Verdict::Fail)
    };
    if failed("backdrop_colour") {
        flags.push("backdrop_not_blue");
    }
    if err.contains("no person found") || err.contains("could not be measured") {
        flags.push("no_subject");
    }
    flags
}

/// Warnings in the truth's vocabulary, and any other check that warned.
fn record_warnings(r: &PhotoRecord) -> Vec<String> {
    let mut out = Vec::new();
    if r.extension_mismatch {
        out.push("extension_mismatch".to_owned());
    }
    for c in r.checks.iter().filter(|c| c.verdict == Verdict::Warn) {
        out.push(
            match c.name.as_str() {
                "clothing_contrast" => "clothing_like_backdrop",
                "face_light" => "uneven_light",
                other => other,
            }
            .to_owned(),
        );
    }
    out
}

/// Whether a border error `found - true` is right at the decode scale the
/// record ended with. A decoded pixel stands for 1/scale file pixels, so the
/// edge can only be placed to that grain either way. Beyond that, an
/// over-trim by one more file pixel is allowed (an edge pixel that a scaled
/// IDCT smeared goes with the frame, and its mapping to file pixels rounds
/// outward), but never a frame left in.
pub fn border_error_allowed(error: i64, scale: Option<f64>, tol: &Tolerances) -> bool {
    let scale = scale.unwrap_or(1.0);
    let grain = (1.0 / scale.max(0.125)).ceil() as i64;
    let allowed = i64::from(tol.border_px).max(grain);
    let over = if scale < 1.0 {
        allowed.max(grain + 1)
    } else {
        allowed
    };
    (-allowed..=over).contains(&error)
}

pub fn score_photo(file: &str, r: &PhotoRecord, t: &Truth, tol: &Tolerances) -> PhotoScore {
    let mut s = PhotoScore {
        file: file.to_owned(),
        fixable: t.fixable,
        expected_flag: t.expected_flag.clone(),
        flags: record_flags(r),
        had_border: t.border.top + t.border.bottom + t.border.left + t.border.right > 0,
        ..PhotoScore::default()
    };
    let mut fail = |m: String| s.failures.push(m);

    if let Some(b) = r.border_removed {
        let e = [
            i64::from(b.top) - i64::from(t.border.top),
            i64::from(b.bottom) - i64::from(t.border.bottom),
            i64::from(b.left) - i64::from(t.border.left),
            i64::from(b.right) - i64::from(t.border.right),
        ];
        s.border_ok = e
            .iter()
            .all(|&v| border_error_allowed(v, r.decode_scales.last().copied(), tol));
        if !s.border_ok {
            fail(format!(
                "border off by {e:?} (top, bottom, left, right; truth {:?})",
                t.border
            ));
        }
        s.border_error = Some(e);
    }

    if let Some(rgb) = r.backdrop_rgb {
        let d = ciede2000(srgb_to_lab(rgb), srgb_to_lab(t.backdrop_rgb));
        if d > tol.backdrop_delta_e {
            fail(format!(
                "backdrop {rgb:?} is ΔE2000 {d:.1} from the true {:?}",
                t.backdrop_rgb
            ));
        }
        s.backdrop_delta_e = Some(d);
    }

    // Geometry is judged wherever a crop was planned, flagged or not: a
    // grey-backdrop photo fails for its colour but must still be framed
    // right.
    if let (Some(crop), Some(scale)) = (r.crop, r.scale) {
        let rule = &tol.rule;
        let (cx, cy) = (f64::from(crop.x), f64::from(crop.y));
        let l = Landing {
            crown: (t.crown_row as f64 - cy) * scale,
            eye: (t.eye_row as f64 - cy) * scale,
            face: f64::from(t.face_width) * scale,
            offset: (t.center_x as f64 + 0.5 - cx) * scale - f64::from(rule.out_width) / 2.0,
            scale,
        };
        let inside = |v: f64, r: (f64, f64)| v >= r.0 && v <= r.1;
        if t.fixable {
            if !inside(l.crown, rule.crown_range) {
                fail(format!("true crown lands at {:.0} px", l.crown));
            }
            if !inside(l.eye, rule.eye_range) {
                fail(format!("true eye line lands at {:.0} px", l.eye));
            }
            if !inside(l.face, rule.face_range) {
                fail(format!("true face is {:.0} px wide", l.face));
            }
            if l.offset.abs() > rule.centre_tolerance {
                fail(format!("true head centre is {:.0} px off", l.offset));
            }
            if scale > rule.max_upscale + 1e-9 {
                fail(format!("upscaled x{scale:.3}"));
            }
        }
        // The output must not show any of the true frame.
        let b = &t.border;
        if crop.x < b.left
            || crop.y < b.top
            || crop.right() > t.width.saturating_sub(b.right)
            || crop.bottom() > t.height.saturating_sub(b.bottom)
        {
            fail(format!("crop {crop:?} reaches into the border {b:?}"));
        }
        if let Some(g) = &r.geometry {
            s.estimate = Some(EstimateError {
                crown: g.crown_y - l.crown,
                eye: g.eye_line_y - l.eye,
                face: g.face_width - l.face,
            });
        }
        s.landing = Some(l);
    } else if t.fixable {
        fail(format!("no crop was planned: {:?}", r.error));
    }

    match (&t.expected_flag, r.status()) {
        (Some(want), status) => {
            if status != Status::Fail {
                fail(format!(
                    "expected flag {want}, but status {}",
                    status.name()
                ));
            } else if !s.flags.contains(&want.as_str()) {
                fail(format!(
                    "expected flag {want}, got {:?}: {:?}",
                    s.flags, r.error
                ));
            }
        }
        (None, Status::Fail) => fail(format!(
            "false flag {:?}: {}",
            s.flags,
            r.reasons().join("; ")
        )),
        (None, _) => {}
    }

    let warned = record_warnings(r);
    for w in &t.expected_warnings {
        // A failed photo never reaches the checks that warn.
        if r.status() != Status::Fail && !warned.contains(w) {
            fail(format!("expected warning {w} missing"));
        }
    }
    s.unexpected_warnings = warned
        .into_iter()
        .filter(|w| !t.expected_warnings.contains(w))
        .collect();
    s
}

/// Mean, maximum and percentiles of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Stats {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Stats {
            n: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: v[v.len() - 1],
        }
    }
}

/// The whole cohort's scores.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub photos: usize,
    pub failed: usize,
    pub fixable: usize,
    pub fixable_ok: usize,
    pub flagged_expected: usize,
    pub flagged_right: usize,
    pub false_flags: usize,
    pub bordered: usize,
    pub bordered_ok: usize,
    /// |found − true| per side, pixels, over every photo with a record.
    pub border_abs: Stats,
    /// Sides where some frame was left in (found < true), and the largest
    /// such shortfall: a visible line in the output, unlike an over-trim.
    pub border_left_in: usize,
    pub border_left_in_max: u64,
    pub backdrop_de: Stats,
    pub crown: Stats,
    pub eye: Stats,
    pub face: Stats,
    pub offset_abs: Stats,
    pub est_crown_abs: Stats,
    pub est_eye_abs: Stats,
    pub est_face_abs: Stats,
    pub unexpected_warnings: Vec<(String, usize)>,
}

pub fn summarise(scores: &[PhotoScore]) -> Summary {
    let collect = |f: &dyn Fn(&PhotoScore) -> Vec<f64>| -> Stats {
        Stats::of(&scores.iter().flat_map(f).collect::<Vec<_>>())
    };
    let good_fix = |s: &&PhotoScore| s.fixable && s.expected_flag.is_none();
    let mut warn_counts: std::collections::BTreeMap<String, usize> = Default::default();
    for w in scores.iter().flat_map(|s| &s.unexpected_warnings) {
        *warn_counts.entry(w.clone()).or_default() += 1;
    }
    let short = scores
        .iter()
        .flat_map(|s| s.border_error.into_iter().flatten())
        .filter(|&v| v < 0)
        .map(i64::unsigned_abs);
    Summary {
        photos: scores.len(),
        failed: scores.iter().filter(|s| !s.failures.is_empty()).count(),
        fixable: scores.iter().filter(good_fix).count(),
        fixable_ok: scores
            .iter()
            .filter(good_fix)
            .filter(|s| s.failures.is_empty())
            .count(),
        flagged_expected: scores.iter().filter(|s| s.expected_flag.is_some()).count(),
        flagged_right: scores
            .iter()
            .filter(|s| {
                s.expected_flag
                    .as_deref()
                    .is_some_and(|f| s.flags.contains(&f))
            })
            .count(),
        false_flags: scores
            .iter()
            .filter(|s| s.failures.iter().any(|f| f.starts_with("false flag")))
            .count(),
        bordered: scores.iter().filter(|s| s.had_border).count(),
        bordered_ok: scores
            .iter()
            .filter(|s| s.had_border && s.border_ok)
            .count(),
        border_abs: collect(&|s| {
            s.border_error
                .map(|e| e.iter().map(|v| v.unsigned_abs() as f64).collect())
                .unwrap_or_default()
        }),
        border_left_in: short.clone().count(),
        border_left_in_max: short.max().unwrap_or(0),
        backdrop_de: collect(&|s| s.backdrop_delta_e.into_iter().collect()),
        crown: collect(&|s| landing_of(s, |l| l.crown)),
        eye: collect(&|s| landing_of(s, |l| l.eye)),
        face: collect(&|s| landing_of(s, |l| l.face)),
        offset_abs: collect(&|s| landing_of(s, |l| l.offset.abs())),
        est_crown_abs: collect(&|s| s.estimate.map(|e| e.crown.abs()).into_iter().collect()),
        est_eye_abs: collect(&|s| s.estimate.map(|e| e.eye.abs()).into_iter().collect()),
        est_face_abs: collect(&|s| s.estimate.map(|e| e.face.abs()).into_iter().collect()),
        unexpected_warnings: warn_counts.into_iter().collect(),
    }
}

/// Landings of photos whose truth says they can be fixed.
fn landing_of(s: &PhotoScore, f: impl Fn(&Landing) -> f64) -> Vec<f64> {
    s.landing
        .filter(|_| s.fixable)
        .map(|l| f(&l))
        .into_iter()
        .collect()
}

impl Summary {
    /// A plain-text report: counts, then one line per distribution.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "photos {}  all right {}  with a failure {}",
            self.photos,
            self.photos - self.failed,
            self.failed
        );
        let _ = writeln!(
            out,
            "fixable, no flag expected: {}/{} right;  flags expected: {}/{} with the right reason;  false flags: {}",
            self.fixable_ok,
            self.fixable,
            self.flagged_right,
            self.flagged_expected,
            self.false_flags
        );
        let _ = writeln!(
            out,
            "bordered photos: {}/{} removed within max(2, decode grain) px on every side (+1 over-trim at reduced scale)",
            self.bordered_ok, self.bordered
        );
        let _ = writeln!(
            out,
            "sides with frame left in: {} (largest {} px)",
            self.border_left_in, self.border_left_in_max
        );
        let _ = writeln!(
            out,
            "{:<34} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "measure", "n", "mean", "p50", "p90", "p99", "max"
        );
        for (name, s) in [
            ("border |found-true| px/side", self.border_abs),
            ("backdrop ΔE2000 to truth", self.backdrop_de),
            ("true crown in output px", self.crown),
            ("true eye line in output px", self.eye),
            ("true face width in output px", self.face),
            ("true head |offset| output px", self.offset_abs),
            ("|est-true| crown output px", self.est_crown_abs),
            ("|est-true| eye line output px", self.est_eye_abs),
            ("|est-true| face width output px", self.est_face_abs),
        ] {
            let _ = writeln!(
                out,
                "{name:<34} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                s.n, s.mean, s.p50, s.p90, s.p99, s.max
            );
        }
        if !self.unexpected_warnings.is_empty() {
            let _ = writeln!(out, "warnings the truth does not expect:");
            for (w, n) in &self.unexpected_warnings {
                let _ = writeln!(out, "  {w}: {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::manifest::BorderRemoved;
    use crate::image::Rect;
    use crate::testkit::synth::{BoxI, Sides};
    use crate::verdict::Check;

    fn truth() -> Truth {
        Truth {
            width: 1200,
            height: 1600,
            border: Sides::default(),
            backdrop_rgb: [100, 197, 255],
            crown_row: 200,
            head_box: BoxI::default(),
            face_width: 400,
            eye_row: 410,
            center_x: 600,
            chin_row: 600,
            shoulder_row: 800,
            fixable: true,
            expected_flag: None,
            expected_warnings: Vec::new(),
        }
    }

    fn record() -> PhotoRecord {
        PhotoRecord {
            original_width: Some(1200),
            original_height: Some(1600),
            border_removed: Some(BorderRemoved::default()),
            backdrop_rgb: Some([100, 197, 255]),
            // 0.6 px out per px in: crown at 80, eyes at 206, face 240.
            crop: Some(Rect::new(200, 67, 800, 1067)),
            scale: Some(0.6),
            status: Some(Status::Ok),
            ..PhotoRecord::default()
        }
    }

    #[test]
    fn a_right_photo_scores_clean_and_a_wrong_one_does_not() {
        let tol = Tolerances::default();
        let s = score_photo("a", &record(), &truth(), &tol);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        let l = s.landing.expect("landing");
        assert!((l.crown - 79.8).abs() < 0.01 && (l.face - 240.0).abs() < 0.01);

        let mut r = record();
        r.crop = Some(Rect::new(200, 0, 800, 1067));
        r.border_removed = Some(BorderRemoved {
            top: 3,
            ..BorderRemoved::default()
        });
        r.backdrop_rgb = Some([120, 197, 255]);
        let s = score_photo("b", &r, &truth(), &tol);
        assert_eq!(s.failures.len(), 3, "{:?}", s.failures);
    }

    #[test]
    fn border_tolerance_follows_the_decode_scale() {
        let tol = Tolerances::default();
        let mut r = record();
        r.crop = Some(Rect::new(200, 67, 800, 1067));
        r.border_removed = Some(BorderRemoved {
            top: 4,
            ..BorderRemoved::default()
        });
        r.decode_scales = vec![1.0];
        assert_eq!(score_photo("a", &r, &truth(), &tol).failures.len(), 1);
        // A quarter-scale decode places the border to 4 px; a retry at a
        // finer scale is what counts.
        r.decode_scales = vec![0.25];
        assert!(score_photo("a", &r, &truth(), &tol).failures.is_empty());
        r.decode_scales = vec![0.25, 0.5];
        assert_eq!(score_photo("a", &r, &truth(), &tol).failures.len(), 1);
    }

    #[test]
    fn over_trim_may_exceed_the_grain_by_one_but_a_frame_left_in_may_not() {
        let tol = Tolerances::default();
        let at = |e, scale| border_error_allowed(e, Some(scale), &tol);
        // 3/8: grain 3, so 4 px over is allowed, 4 px short is not.
        assert!(at(4, 0.375) && at(-3, 0.375));
        assert!(!at(5, 0.375) && !at(-4, 0.375));
        // Full scale: ±2 both ways.
        assert!(at(2, 1.0) && at(-2, 1.0) && !at(3, 1.0) && !at(-3, 1.0));
        let short = PhotoScore {
            border_error: Some([-3, 0, 2, -1]),
            ..PhotoScore::default()
        };
        let s = summarise(&[short]);
        assert_eq!((s.border_left_in, s.border_left_in_max), (2, 3));
    }

    #[test]
    fn flags_must_match_the_truth() {
        let tol = Tolerances::default();
        let mut t = truth();
        t.expected_flag = Some("two_people".into());
        t.fixable = false;
        let mut r = record();
        r.crop = None;
        r.status = Some(Status::Fail);
        r.error = Some("two or more people in the photo; the registry needs one".into());
        assert!(score_photo("a", &r, &t, &tol).failures.is_empty());
        r.error = Some("the head is cut off at the top edge".into());
        assert_eq!(score_photo("a", &r, &t, &tol).failures.len(), 1);
        // A fail without a reason in the truth is a false flag.
        let mut r = record();
        r.status = Some(Status::Fail);
        r.checks
            .push(Check::new("backdrop_colour", Verdict::Fail, None, "grey"));
        let s = score_photo("a", &r, &truth(), &tol);
        assert!(s.failures.iter().any(|f| f.starts_with("false flag")));
        assert_eq!(summarise(&[s]).false_flags, 1);
    }

    #[test]
    fn stats_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&v);
        assert_eq!((s.n, s.max), (100, 100.0));
        assert!((s.mean - 50.5).abs() < 1e-9 && s.p90 == 90.0);
        assert_eq!(Stats::of(&[]).n, 0);
    }
}
