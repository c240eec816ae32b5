//! Canvas extension for heads framed too tightly (SPEC §2): when the crop
//! the composition rule wants reaches above (or beside) the picture, and
//! that edge of the picture is backdrop along its whole length, the canvas
//! is extended there with synthesised backdrop (see
//! [`crate::transform::extend`]) so the crop can sit at the rule's aim
//! instead of its edge. The person is never extended: an edge the hair or
//! the shoulders reach is left as it is.
//!
//! Cheap first: only a photo whose plan is pinned against an edge and off
//! the aim there, or has no plan, pays for fitting the backdrop model.

use serde::{Deserialize, Serialize};

use crate::analysis::backdrop::Backdrop;
use crate::analysis::backdrop_model::BackdropPlane;
use crate::analysis::colour::{LabTable, delta_e76_squared, squared_bound};
use crate::analysis::compose::{ComposeError, CompositionRule, CropPlan, plan_crop};
use crate::analysis::subject::Subject;
use crate::analysis::working_copy::WorkingCopy;
use crate::image::Rect;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtendSettings {
    /// Extend at all; when off, a tight head is placed as close to the aim
    /// as the picture allows, or flagged.
    pub enabled: bool,
    /// Output pixels the crown (or the head's centre) may fall short of the
    /// aim, pinned against the edge, before the canvas is extended. 20 px
    /// leaves a crown at 60 px or more (the middle of the rule's 50-110)
    /// as the picture has it, extending only heads near the rule's edge.
    pub slack: f64,
    /// Most that may be added on a side, as a share of the picture's side.
    pub max_share: f64,
    /// CIE76 distance from the backdrop model beyond which a working-copy
    /// pixel is not backdrop (the person, or something else).
    pub edge_threshold: f64,
    /// Fewest rows (columns) of pure backdrop, in pixels of the picture,
    /// between the edge and the person: the synthesised backdrop repeats
    /// their texture, so a thinner band would show as stripes.
    pub min_band: u32,
}

impl Default for ExtendSettings {
    fn default() -> Self {
        ExtendSettings {
            enabled: true,
            slack: 20.0,
            max_share: 0.5,
            edge_threshold: 10.0,
            min_band: 6,
        }
    }
}

/// Pixels of synthesised backdrop added on each side (never at the bottom,
/// where the shoulders leave the frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub top: u32,
    pub left: u32,
    pub right: u32,
}

impl Extension {
    pub fn is_none(&self) -> bool {
        self.top == 0 && self.left == 0 && self.right == 0
    }
}

/// What the canvas stage needs: how much to add, the backdrop model to
/// continue, and how deep the pure-backdrop band along each extended edge
/// is (the texture the synthesised backdrop repeats), all in pixels of the
/// picture the plan was made on.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtensionPlan {
    pub added: Extension,
    pub plane: BackdropPlane,
    pub band_top: u32,
    pub band_left: u32,
    pub band_right: u32,
}

impl ExtensionPlan {
    /// The part of `rect` (in the extended canvas) that lies on the
    /// picture, in the picture's own pixels.
    pub fn on_picture(&self, rect: Rect, width: u32, height: u32) -> Rect {
        let x0 = rect.x.saturating_sub(self.added.left).min(width);
        let y0 = rect.y.saturating_sub(self.added.top).min(height);
        let x1 = rect.right().saturating_sub(self.added.left).min(width);
        let y1 = rect.bottom().saturating_sub(self.added.top).min(height);
        Rect::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
    }
}

/// Which edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge {
    Top,
    Left,
    Right,
}

/// Working-copy pixels of pure backdrop between `edge` and the first pixel
/// that is not, the least over the edge's whole length: 0 when something
/// touches the edge anywhere along it.
fn clear_depth(copy: &WorkingCopy, plane: &BackdropPlane, edge: Edge, threshold: f64) -> usize {
    let work = &copy.work;
    let (w, h) = (work.width, work.height);
    let f = f64::from(work.factor);
    let lt = LabTable::new();
    let bound = squared_bound(threshold);
    let is_backdrop = |x: usize, y: usize| {
        let centre = |i: usize| i as f64 * f + f / 2.0 - 0.5;
        let m = plane
            .at(centre(x), centre(y))
            .map(|v| v.clamp(0.0, 255.0) as f32);
        delta_e76_squared(copy.lab[y * w + x], lt.lab_f(m)) <= bound
    };
    let (along, across) = match edge {
        Edge::Top => (w, h),
        Edge::Left | Edge::Right => (h, w),
    };
    let mut least = across;
    for a in 0..along {
        let mut d = 0;
        while d < least {
            let (x, y) = match edge {
                Edge::Top => (a, d),
                Edge::Left => (d, a),
                Edge::Right => (w - 1 - d, a),
            };
            if !is_backdrop(x, y) {
                break;
            }
            d += 1;
        }
        least = least.min(d);
        if least == 0 {
            break;
        }
    }
    least
}

/// Whether `plan` (or its absence) leaves the head off the rule's aim
/// against an edge the canvas might be extended at: (top, sides).
fn wants_room(
    planned: &Result<CropPlan, ComposeError>,
    width: u32,
    rule: &CompositionRule,
    slack: f64,
) -> (bool, bool) {
    match planned {
        Ok(p) => {
            let top = p.rect.y == 0 && p.crown_y < rule.crown_target - slack;
            let pinned_side = p.rect.x == 0 || p.rect.right() >= width;
            let side = pinned_side && (p.center_x - f64::from(rule.out_width) / 2.0).abs() > slack;
            (top, side)
        }
        Err(ComposeError::Unplaceable(_)) => (true, true),
        Err(_) => (false, false),
    }
}

/// How far `p` is from the rule's aim: crown, eye line and centre, in
/// output pixels (the face width is free to differ).
fn miss(p: &CropPlan, rule: &CompositionRule) -> f64 {
    (p.crown_y - rule.crown_target).abs()
        + (p.eye_line_y - rule.eye_target).abs()
        + (p.center_x - f64::from(rule.out_width) / 2.0).abs()
}

/// The crop with the canvas extended where that brings the head to the
/// rule's aim, or `planned` as it was. `width` x `height` is the picture
/// `copy` was made from and `subject` was found in.
#[allow(clippy::too_many_arguments)]
pub fn plan_with_extension(
    width: u32,
    height: u32,
    copy: &WorkingCopy,
    backdrop: &Backdrop,
    subject: &Subject,
    rule: &CompositionRule,
    planned: Result<CropPlan, ComposeError>,
    settings: &ExtendSettings,
) -> (Result<CropPlan, ComposeError>, Option<ExtensionPlan>) {
    if !settings.enabled || subject.touches_top || subject.face_width == 0 {
        return (planned, None);
    }
    let (want_top, want_side) = wants_room(&planned, width, rule, settings.slack);
    if !want_top && !want_side {
        return (planned, None);
    }
    let plane = BackdropPlane::fit(copy, backdrop);
    let f = copy.work.factor;
    // The band of pure backdrop along an edge, in picture pixels, less one
    // working pixel's worth: the box filter blurs a hair tip into its
    // neighbours, and the band must hold none of it.
    let band = |edge| {
        let d = clear_depth(copy, &plane, edge, settings.edge_threshold) as u32;
        let px = d.saturating_sub(1) * f;
        if d >= 2 && px >= settings.min_band {
            px
        } else {
            0
        }
    };
    // Generous amounts: enough for the largest box the face range allows
    // placed at the aim; the plan on the extended canvas then says how much
    // of it is used.
    let s_min = rule.face_range.0.max(1.0) / f64::from(subject.face_width);
    let box_w = f64::from(rule.out_width) / s_min;
    let cap = |len: u32| (f64::from(len) * settings.max_share.clamp(0.0, 4.0)).floor();
    let amount = |need: f64, len: u32| need.ceil().clamp(0.0, cap(len)) as u32;
    let band_top = if want_top { band(Edge::Top) } else { 0 };
    let (band_left, band_right) = if want_side {
        (band(Edge::Left), band(Edge::Right))
    } else {
        (0, 0)
    };
    let cx = f64::from(subject.center_x) + 0.5;
    let room = Extension {
        top: if band_top > 0 {
            amount(
                rule.crown_range.1 / s_min - f64::from(subject.crown_y),
                height,
            )
        } else {
            0
        },
        left: if band_left > 0 {
            amount(box_w / 2.0 - cx, width)
        } else {
            0
        },
        right: if band_right > 0 {
            amount(cx + box_w / 2.0 - f64::from(width), width)
        } else {
            0
        },
    };
    if room.is_none() {
        return (planned, None);
    }
    let shifted = subject.shifted(room.left, room.top);
    let (ew, eh) = (width + room.left + room.right, height + room.top);
    let Ok(mut plan) = plan_crop(ew, eh, &shifted, rule) else {
        return (planned, None);
    };
    if let Ok(p) = &planned
        && miss(&plan, rule) + 1e-9 >= miss(p, rule)
    {
        return (planned, None);
    }
    // Only what the box takes in is added.
    let added = Extension {
        top: room.top.saturating_sub(plan.rect.y),
        left: room.left.saturating_sub(plan.rect.x),
        right: plan.rect.right().saturating_sub(room.left + width),
    };
    plan.rect.x -= room.left - added.left;
    plan.rect.y -= room.top - added.top;
    if added.is_none() {
        // The wider canvas only let the plan shift within the picture.
        return (Ok(plan), None);
    }
    let ext = ExtensionPlan {
        added,
        plane,
        band_top,
        band_left,
        band_right,
    };
    (Ok(plan), Some(ext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backdrop::{BackdropSettings, estimate_backdrop};
    use crate::analysis::subject::{SubjectSettings, locate_subject};
    use crate::testkit::synth::{Sitter, Sitting};

    const BLUE: [u8; 3] = [100, 197, 255];

    fn plan_for(sc: &Sitting) -> (Result<CropPlan, ComposeError>, Option<ExtensionPlan>) {
        let (img, _) = sc.render().expect("renders");
        let copy = WorkingCopy::of(&img);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        let s = locate_subject(&copy, &b, &SubjectSettings::default()).expect("subject");
        let rule = CompositionRule::default();
        let planned = plan_crop(img.width(), img.height(), &s, &rule);
        plan_with_extension(
            img.width(),
            img.height(),
            &copy,
            &b,
            &s,
            &rule,
            planned,
            &ExtendSettings::default(),
        )
    }

    #[test]
    fn a_tight_head_gets_room_above_and_lands_at_the_aim() {
        // Crown 30 px below the top of an 900x1200 picture, face 300 wide:
        // no box inside the picture gives the crown 50 px.
        let sc = Sitting::new(900, 1200, BLUE).with(Sitter::new(450.0, 30.0, 300.0));
        let (plan, ext) = plan_for(&sc);
        let plan = plan.expect("a plan");
        let ext = ext.expect("extended");
        assert!(
            ext.added.top > 0 && ext.added.left == 0 && ext.added.right == 0,
            "{ext:?}"
        );
        assert!((plan.crown_y - 80.0).abs() < 8.0, "{plan:?}");
        assert!((plan.eye_line_y - 250.0).abs() < 30.0, "{plan:?}");
        assert!(ext.band_top >= 6, "{ext:?}");
    }

    #[test]
    fn hair_touching_the_top_is_never_extended_over() {
        let sc = Sitting::new(900, 1200, BLUE).with(Sitter::new(450.0, 1.0, 300.0));
        let (img, _) = sc.render().expect("renders");
        let copy = WorkingCopy::of(&img);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        let plane = BackdropPlane::fit(&copy, &b);
        assert_eq!(clear_depth(&copy, &plane, Edge::Top, 10.0), 0);
        // The same head 60 px lower leaves a band of backdrop above it.
        let sc = Sitting::new(900, 1200, BLUE).with(Sitter::new(450.0, 60.0, 300.0));
        let copy = WorkingCopy::of(&sc.render().expect("renders").0);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        let plane = BackdropPlane::fit(&copy, &b);
        let d = clear_depth(&copy, &plane, Edge::Top, 10.0);
        assert!((8..=12).contains(&d), "{d} working pixels (of 5 px each)");
    }

    #[test]
    fn shoulders_reaching_the_side_block_a_side_extension() {
        // Off to the left, shoulders running out of the left edge: too
        // close to the edge, and the left edge is not all backdrop.
        let sc = Sitting::new(1000, 1000, BLUE).with(Sitter::new(150.0, 200.0, 240.0));
        let (plan, ext) = plan_for(&sc);
        assert!(ext.is_none(), "{ext:?}");
        assert!(plan.is_err(), "{plan:?}");
    }

    #[test]
    fn a_head_off_to_the_side_with_backdrop_beside_it_is_centred() {
        // Small head near the right edge, high shoulders ending before the
        // edges of a wide picture: the right edge is backdrop all the way.
        let p = Sitter {
            shoulder_row: Some(560.0),
            ..Sitter::new(820.0, 200.0, 200.0)
        };
        let sc = Sitting::new(1000, 900, BLUE).with(p);
        let (img, _) = sc.render().expect("renders");
        let copy = WorkingCopy::of(&img);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        let plane = BackdropPlane::fit(&copy, &b);
        if clear_depth(&copy, &plane, Edge::Right, 10.0) < 2 {
            // The generator's shoulders reach the edge; nothing to test.
            return;
        }
        let (plan, ext) = plan_for(&sc);
        let plan = plan.expect("a plan");
        if let Some(e) = ext {
            assert!(e.added.right > 0 && e.added.left == 0, "{e:?}");
        }
        assert!((plan.center_x - 240.0).abs() <= 12.0, "{plan:?}");
    }

    #[test]
    fn a_well_framed_head_costs_no_model() {
        let sc = Sitting::new(1200, 1600, BLUE).with(Sitter::new(600.0, 250.0, 480.0));
        let (plan, ext) = plan_for(&sc);
        assert!(plan.is_ok() && ext.is_none());
        let rule = CompositionRule::default();
        assert_eq!(
            wants_room(&plan, 1200, &rule, 20.0),
            (false, false),
            "{plan:?}"
        );
    }
}
