//! Picture checks that only warn (SPEC §2): run on the final 480x640 photo,
//! with the crop plan saying where the head and eyes landed.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use crate::analysis::backdrop::Backdrop;
use crate::analysis::colour::{LabTable, ciede2000, delta_e76_squared, squared_bound};
use crate::analysis::compose::CropPlan;
use crate::analysis::rank::{from_order_key, order_key};
use crate::image::RgbImage;
use crate::verdict::{Check, Verdict};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortraitSettings {
    /// CIE76 distance from the backdrop within which a pixel is backdrop.
    pub backdrop_threshold: f64,
    /// Clothes closer than this CIEDE2000 to the backdrop warn: the
    /// registry's check rejects for too little contrast, and at about 12 the
    /// outline starts to dissolve after JPEG.
    pub clothing_min_delta_e: f64,
    /// Shoulder line tilt in degrees beyond which to warn.
    pub shoulders_max_deg: f64,
    /// Head-over-torso lean in degrees beyond which to warn.
    pub lean_max_deg: f64,
    /// Difference of mean L* between the face's halves, as a percentage of
    /// the brighter half's, beyond which to warn (a shadow across the face).
    /// Relative, so a missing fill light warns alike on every skin tone: a
    /// fixed L* difference is reached by the same shadow on light skin and
    /// missed on dark skin.
    pub face_light_max_pct: f64,
    /// Percentage of the face region clipped to white or black beyond which
    /// to warn.
    pub clipped_max_pct: f64,
    /// Edge strength (99th percentile of |Laplacian| of luminance, on a 2x
    /// reduced copy, around the head) below which the photo is too soft.
    pub sharpness_min: f64,
}

impl Default for PortraitSettings {
    fn default() -> Self {
        PortraitSettings {
            backdrop_threshold: 16.0,
            clothing_min_delta_e: 12.0,
            shoulders_max_deg: 5.0,
            lean_max_deg: 8.0,
            // A half darkened by a quarter measures 23-24% on dark and light
            // skin alike; evenly lit faces stay under 2%.
            face_light_max_pct: 18.0,
            clipped_max_pct: 5.0,
            sharpness_min: 12.0,
        }
    }
}

/// The working copy the checks look at: pixel (x, y) is the mean of the
/// `factor` x `factor` block of the picture at (x * factor, y * factor),
/// clipped at the edges, exactly as [`crate::analysis::working_copy::Work`] has it. Worked out
/// where a check looks rather than for the whole picture: the checks read
/// the torso, the face, the head and a few lines, a fraction of it, and
/// building the whole copy was the largest part of this stage.
struct Blocks<'a> {
    img: &'a RgbImage,
    factor: u32,
    width: usize,
    height: usize,
}

impl<'a> Blocks<'a> {
    /// Blocks as large as keep the longer side at most `max_side`.
    fn new(img: &'a RgbImage, max_side: u32) -> Self {
        let (w, h) = (img.width(), img.height());
        let factor = w.max(h).div_ceil(max_side.max(1)).max(1);
        Blocks {
            img,
            factor,
            width: w.div_ceil(factor) as usize,
            height: h.div_ceil(factor) as usize,
        }
    }

    /// Working pixel (x, y).
    fn at(&self, x: usize, y: usize) -> [f32; 3] {
        let f = self.factor as usize;
        let (w, h) = (self.img.width() as usize, self.img.height() as usize);
        let (x0, y0) = (x * f, y * f);
        let (x1, y1) = ((x0 + f).min(w), (y0 + f).min(h));
        let bytes = self.img.as_bytes();
        let mut s = [0u64; 3];
        if f == 2 && x1 - x0 == 2 && y1 - y0 == 2 {
            // Every block of a 480x640 output: two pixels of two rows, summed
            // without the general loop's bookkeeping, which cost several
            // times the sum.
            let top = (y0 * w + x0) * 3;
            let (a, b) = (&bytes[top..top + 6], &bytes[top + w * 3..top + w * 3 + 6]);
            for (c, sum) in s.iter_mut().enumerate() {
                let v =
                    u32::from(a[c]) + u32::from(a[c + 3]) + u32::from(b[c]) + u32::from(b[c + 3]);
                *sum = u64::from(v);
            }
        } else {
            for yy in y0..y1 {
                for p in bytes[(yy * w + x0) * 3..(yy * w + x1) * 3].chunks_exact(3) {
                    s[0] += u64::from(p[0]);
                    s[1] += u64::from(p[1]);
                    s[2] += u64::from(p[2]);
                }
            }
        }
        block_mean(s, (x1 - x0) * (y1 - y0))
    }

    /// Working pixels `x0..x1` of row `y`, appended to `out`: [`Blocks::at`]
    /// along the row, with the usual 2x2 blocks summed two source rows at a
    /// time instead of one block's bookkeeping per pixel.
    fn span_into(&self, y: usize, x0: usize, x1: usize, out: &mut Vec<[f32; 3]>) {
        let f = self.factor as usize;
        let (w, h) = (self.img.width() as usize, self.img.height() as usize);
        let y0 = y * f;
        // Whole 2x2 blocks only: an odd width's last block is one pixel wide.
        let whole = x1.min(w / 2);
        if f != 2 || y0 + 2 > h || x0 >= whole {
            out.extend((x0..x1).map(|x| self.at(x, y)));
            return;
        }
        let bytes = self.img.as_bytes();
        out.reserve(x1 - x0);
        let row = |yy: usize| &bytes[(yy * w + x0 * 2) * 3..(yy * w + whole * 2) * 3];
        out.extend(
            row(y0)
                .chunks_exact(6)
                .zip(row(y0 + 1).chunks_exact(6))
                .map(|(a, b)| {
                    let sum = |c: usize| {
                        u64::from(
                            u32::from(a[c])
                                + u32::from(a[c + 3])
                                + u32::from(b[c])
                                + u32::from(b[c + 3]),
                        )
                    };
                    block_mean([sum(0), sum(1), sum(2)], 4)
                }),
        );
        out.extend((whole..x1).map(|x| self.at(x, y)));
    }
}

/// CIELAB of the working copy's pixels, converted a stretch of a row at a
/// time the first time a check reads into it, and kept. The checks read the
/// torso, the face and the lines below the chin, many pixels more than once;
/// converted one pixel at a time on every read, each conversion's divisions
/// waited on the last (this stage took twice as long), where
/// [`LabTable::lab_all`] converts a stretch in batches that overlap them,
/// with the very same values. The stretches are stored in the order they
/// are converted, not where they lie: a store for every working pixel was
/// 1.8 MB to clear per photo, for the third of it the checks read.
struct LabCache<'a> {
    blocks: &'a Blocks<'a>,
    table: LabTable,
    store: RefCell<Store>,
}

/// The converted stretches, and the working pixels of the stretch being
/// converted.
struct Store {
    /// Per stretch, where its values start in `lab`; `NOT_CONVERTED` until
    /// then.
    start: Vec<u32>,
    lab: Vec<[f64; 3]>,
    px: Vec<[f32; 3]>,
}

impl<'a> LabCache<'a> {
    /// Working pixels per stretch converted at once.
    const STRETCH: usize = 32;
    const NOT_CONVERTED: u32 = u32::MAX;

    fn new(blocks: &'a Blocks<'a>) -> Self {
        let stretches = blocks.width.div_ceil(Self::STRETCH) * blocks.height;
        LabCache {
            blocks,
            table: LabTable::new(),
            store: RefCell::new(Store {
                start: vec![Self::NOT_CONVERTED; stretches],
                // Room for every pixel at once: grown as the checks read,
                // its copies on each growth were a twelfth of the stage,
                // and the pages never written are never touched.
                lab: Vec::with_capacity(stretches * Self::STRETCH),
                px: Vec::with_capacity(Self::STRETCH),
            }),
        }
    }

    /// CIELAB of working pixel (x, y).
    fn at(&self, x: usize, y: usize) -> [f64; 3] {
        let width = self.blocks.width;
        let stretch = y * width.div_ceil(Self::STRETCH) + x / Self::STRETCH;
        let mut store = self.store.borrow_mut();
        let Store { start, lab, px } = &mut *store;
        if start[stretch] == Self::NOT_CONVERTED {
            let x0 = x / Self::STRETCH * Self::STRETCH;
            let x1 = (x0 + Self::STRETCH).min(width);
            px.clear();
            self.blocks.span_into(y, x0, x1, px);
            start[stretch] = lab.len() as u32;
            self.table.lab_extend(px, lab);
        }
        lab[start[stretch] as usize + x % Self::STRETCH]
    }
}

/// The mean of `n` pixels summing to `sum`, divided as the working copy
/// divides it, so it is the very same `f32`. Converted through `i64`: exact
/// for any sum an image can have, and one instruction where `u64` takes
/// several.
fn block_mean(sum: [u64; 3], n: usize) -> [f32; 3] {
    let n = n as i64 as f64;
    let mean = |v: u64| (v as i64 as f64 / n) as f32;
    [mean(sum[0]), mean(sum[1]), mean(sum[2])]
}

/// A region of the working copy, clamped to it, in working pixels.
fn region(
    work: &Blocks,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
) -> Option<(usize, usize, usize, usize)> {
    let f = f64::from(work.factor);
    let cx = |v: f64| ((v / f).round().max(0.0) as usize).min(work.width);
    let cy = |v: f64| ((v / f).round().max(0.0) as usize).min(work.height);
    let (a, b, c, d) = (cx(x0), cy(y0), cx(x1), cy(y1));
    (c > a && d > b).then_some((a, b, c, d))
}

fn pass_or_warn(name: &str, bad: bool, value: f64, reason: String) -> Check {
    Check::new(
        name,
        if bad { Verdict::Warn } else { Verdict::Pass },
        Some(value),
        reason,
    )
}

/// The element at `rank` in ascending order (`f64::total_cmp`'s): a
/// selection, not a sort (the same value a sort would put there, in linear
/// time).
fn ranked(v: &[f64], rank: usize) -> f64 {
    let mut keys: Vec<u64> = v.iter().map(|&x| order_key(x)).collect();
    ranked_key(&mut keys, rank)
}

/// [`ranked`] of the values whose [`order_key`]s are `keys` (reordered).
/// The checks that rank many values (the torso's colour, the head's edges)
/// keep the keys as they go, rather than the values and a copy of keys.
/// Quickselect, not [`crate::analysis::rank::nth_smallest`]: these few thousand
/// values bunch into few of its buckets (251 M against 291 M instructions
/// for the stage on 20 photos).
fn ranked_key(keys: &mut [u64], rank: usize) -> f64 {
    from_order_key(*keys.select_nth_unstable(rank).1)
}

fn median(v: &[f64]) -> f64 {
    ranked(v, v.len() / 2)
}

/// `clothing_contrast`, `shoulders_level`, `leaning`, `face_light`,
/// `exposure`, `sharpness`: each passes or warns, never fails.
pub fn judge_portrait(
    out: &RgbImage,
    plan: &CropPlan,
    backdrop: &Backdrop,
    settings: &PortraitSettings,
) -> Vec<Check> {
    let work = Blocks::new(out, 320);
    let lab_cache = LabCache::new(&work);
    let lab = |x: usize, y: usize| lab_cache.at(x, y);
    let (w, h) = (work.width, work.height);
    let f = f64::from(work.factor);
    let bg_bound = squared_bound(settings.backdrop_threshold);
    let is_bg = |x: usize, y: usize| delta_e76_squared(lab(x, y), backdrop.lab) <= bg_bound;
    let fw = plan.face_width.max(1.0);
    let cx = plan.center_x;
    let chin = f64::from(plan.head.y + plan.head.height);
    let out_h = f64::from(out.height());
    let mut checks = Vec::new();

    // Clothing: the torso below the chin, in the middle.
    let torso_top = (chin + 0.25 * fw).max(out_h * 0.75);
    match region(&work, cx - 0.7 * fw, torso_top, cx + 0.7 * fw, out_h) {
        Some((x0, y0, x1, y1)) => {
            let n = (x1 - x0) * (y1 - y0);
            let mut ch: [Vec<u64>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
            for y in y0..y1 {
                for x in x0..x1 {
                    let l = lab(x, y);
                    for (k, c) in ch.iter_mut().enumerate() {
                        c.push(order_key(l[k]));
                    }
                }
            }
            let dominant = ch.map(|mut c| {
                let mid = c.len() / 2;
                ranked_key(&mut c, mid)
            });
            let d = ciede2000(dominant, backdrop.lab);
            checks.push(pass_or_warn(
                "clothing_contrast",
                d < settings.clothing_min_delta_e,
                d,
                format!(
                    "clothes differ from the backdrop by ΔE2000 {d:.1} (warn below {})",
                    settings.clothing_min_delta_e
                ),
            ));
        }
        None => checks.push(Check::new(
            "clothing_contrast",
            Verdict::Pass,
            None,
            "no torso visible below the chin to judge",
        )),
    }

    // Shoulders: first subject row below the chin on each side, outside the
    // hair, compared left to right.
    let shoulder_row = |xa: f64, xb: f64| -> Option<f64> {
        let (x0, y0, x1, _) = region(&work, xa, chin, xb, out_h)?;
        let rows: Vec<f64> = (x0..x1)
            .filter_map(|x| (y0..h).find(|&y| !is_bg(x, y)).map(|y| y as f64 * f))
            .collect();
        (rows.len() * 2 >= x1 - x0 && !rows.is_empty()).then(|| median(&rows))
    };
    let left = shoulder_row(cx - 1.0 * fw, cx - 0.7 * fw);
    let right = shoulder_row(cx + 0.7 * fw, cx + 1.0 * fw);
    checks.push(match (left, right) {
        (Some(l), Some(r)) => {
            let deg = (r - l).atan2(1.7 * fw).to_degrees().abs();
            pass_or_warn(
                "shoulders_level",
                deg > settings.shoulders_max_deg,
                deg,
                format!(
                    "shoulder line tilts {deg:.1}° (warn above {}°)",
                    settings.shoulders_max_deg
                ),
            )
        }
        _ => Check::new(
            "shoulders_level",
            Verdict::Pass,
            None,
            "shoulders not visible on both sides",
        ),
    });

    // Leaning: head centre against the middle of the body low in the frame.
    let lean = (|| {
        let y = h.checked_sub(2)?;
        let x = ((cx / f) as usize).min(w - 1);
        if is_bg(x, y) {
            return None;
        }
        let mut l = x;
        while l > 0 && !is_bg(l - 1, y) {
            l -= 1;
        }
        let mut r = x;
        while r + 1 < w && !is_bg(r + 1, y) {
            r += 1;
        }
        // A body cut by a side of the frame says nothing about its centre.
        if l == 0 || r + 1 == w {
            return None;
        }
        let body = (l + r + 1) as f64 * f / 2.0;
        let dy = y as f64 * f - plan.eye_line_y;
        (dy > 1.0).then(|| (body - cx).atan2(dy).to_degrees().abs())
    })();
    checks.push(match lean {
        Some(deg) => pass_or_warn(
            "leaning",
            deg > settings.lean_max_deg,
            deg,
            format!(
                "head is {deg:.1}° off the body's axis (warn above {}°)",
                settings.lean_max_deg
            ),
        ),
        None => Check::new("leaning", Verdict::Pass, None, "body axis not measurable"),
    });

    // Face light: left half against right half, between eyes and mouth.
    let ey = plan.eye_line_y;
    let face = region(
        &work,
        cx - 0.35 * fw,
        ey - 0.1 * fw,
        cx + 0.35 * fw,
        ey + 0.45 * fw,
    );
    match face {
        Some((x0, y0, x1, y1)) if x1 - x0 >= 2 => {
            let mid = (x0 + x1) / 2;
            let mean = |xa: usize, xb: usize| {
                let mut s = 0.0;
                let mut n = 0.0;
                for y in y0..y1 {
                    for x in xa..xb {
                        s += lab(x, y)[0];
                        n += 1.0;
                    }
                }
                s / n
            };
            let (left, right) = (mean(x0, mid), mean(mid, x1));
            let pct = 100.0 * (left - right).abs() / left.max(right).max(1.0);
            checks.push(pass_or_warn(
                "face_light",
                pct > settings.face_light_max_pct,
                pct,
                format!(
                    "face halves differ by {pct:.0}% in L* ({left:.0} and {right:.0}; warn above {}%)",
                    settings.face_light_max_pct
                ),
            ));
        }
        _ => checks.push(Check::new(
            "face_light",
            Verdict::Pass,
            None,
            "face region not measurable",
        )),
    }

    // Exposure, on full-resolution pixels of the face: a box average would
    // hide clipping.
    let fx0 = (cx - 0.35 * fw).max(0.0) as u32;
    let fx1 = ((cx + 0.35 * fw).max(0.0) as u32).min(out.width());
    let fy0 = (ey - 0.1 * fw).max(0.0) as u32;
    let fy1 = ((ey + 0.45 * fw).max(0.0) as u32).min(out.height());
    let mut clipped = 0u64;
    let mut total = 0u64;
    if fx0 < fx1 {
        for y in fy0..fy1 {
            for p in out.row(y)[fx0 as usize * 3..fx1 as usize * 3].chunks_exact(3) {
                if p.iter().all(|&c| c >= 250) || p.iter().all(|&c| c <= 5) {
                    clipped += 1;
                }
                total += 1;
            }
        }
    }
    let pct = if total == 0 {
        0.0
    } else {
        clipped as f64 * 100.0 / total as f64
    };
    checks.push(pass_or_warn(
        "exposure",
        pct > settings.clipped_max_pct,
        pct,
        format!(
            "{pct:.1}% of the face is clipped to white or black (warn above {}%)",
            settings.clipped_max_pct
        ),
    ));

    // Sharpness: strong edges around the head (hairline, eyes, outline).
    let hb = plan.head;
    let pad = 0.1 * f64::from(hb.width);
    let sharp = region(
        &work,
        f64::from(hb.x) - pad,
        f64::from(hb.y) - pad,
        f64::from(hb.x + hb.width) + pad,
        f64::from(hb.y + hb.height) + pad,
    )
    .and_then(|(x0, y0, x1, y1)| {
        let (xs, xe) = (x0.max(1), x1.min(w - 1));
        let (ys, ye) = (y0.max(1), y1.min(h - 1));
        if xs >= xe || ys >= ye {
            return None;
        }
        // Every pixel's luma once, with the ring around the region the
        // Laplacian also reads, rather than five times over.
        let gw = xe - xs + 2;
        let mut px = Vec::with_capacity(gw * (ye - ys + 2));
        for y in ys - 1..ye + 1 {
            work.span_into(y, xs - 1, xe + 1, &mut px);
        }
        let grid: Vec<f64> = px
            .iter()
            .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .collect();
        let luma = |x: usize, y: usize| grid[(y + 1 - ys) * gw + x + 1 - xs];
        let mut v = Vec::with_capacity((xe - xs) * (ye - ys));
        for y in ys..ye {
            for x in xs..xe {
                let lap = 4.0 * luma(x, y)
                    - luma(x - 1, y)
                    - luma(x + 1, y)
                    - luma(x, y - 1)
                    - luma(x, y + 1);
                v.push(order_key(lap.abs()));
            }
        }
        if v.len() < 16 {
            return None;
        }
        let rank = (v.len() - 1) * 99 / 100;
        Some(ranked_key(&mut v, rank))
    });
    checks.push(match sharp {
        Some(s) => pass_or_warn(
            "sharpness",
            s < settings.sharpness_min,
            s,
            format!(
                "edge strength {s:.1} (warn below {})",
                settings.sharpness_min
            ),
        ),
        None => Check::new(
            "sharpness",
            Verdict::Pass,
            None,
            "head region too small to judge",
        ),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backdrop::{BackdropSettings, estimate_backdrop};
    use crate::analysis::compose::{CompositionRule, plan_crop};
    use crate::analysis::subject::tests::{BLUE, find};
    use crate::analysis::working_copy::WorkingCopy;
    use crate::testkit::synth::{Sitter, Sitting};
    use crate::testkit::testimg::blur;

    /// Paints a 480x640 output-like portrait and judges it.
    fn judge(sc: Sitting, post: impl Fn(RgbImage) -> RgbImage) -> Vec<Check> {
        let img = post(sc.render().expect("renders").0);
        let b = estimate_backdrop(&WorkingCopy::of(&img), &BackdropSettings::default())
            .expect("backdrop");
        let s = find(&img).expect("subject");
        let plan = plan_crop(480, 640, &s, &CompositionRule::default()).expect("plan");
        judge_portrait(&img, &plan, &b, &PortraitSettings::default())
    }

    #[test]
    fn blocks_are_the_working_copy_pixels() {
        // Odd sizes leave partial blocks at the right and bottom edges.
        for (w, h, max_side) in [
            (480, 640, 320),
            (31, 45, 23),
            (31, 45, 10),
            (45, 31, 16),
            (7, 5, 320),
        ] {
            let data = (0..w * h * 3).map(|i| (i * 97 % 251) as u8).collect();
            let img = RgbImage::new(w, h, data).unwrap();
            let work = crate::analysis::working_copy::Work::new(&img, max_side);
            let blocks = Blocks::new(&img, max_side);
            assert_eq!((blocks.width, blocks.height), (work.width, work.height));
            assert_eq!(blocks.factor, work.factor);
            for y in 0..work.height {
                for x in 0..work.width {
                    assert_eq!(blocks.at(x, y), work.at(x, y), "{w}x{h} at ({x}, {y})");
                }
                for (x0, x1) in [(0, work.width), (work.width / 2, work.width), (1, 2)] {
                    let want: Vec<_> = (x0..x1).map(|x| work.at(x, y)).collect();
                    let mut span = Vec::new();
                    blocks.span_into(y, x0, x1, &mut span);
                    assert_eq!(span, want, "{w}x{h} row {y}, {x0}..{x1}");
                }
            }
        }
    }

    #[test]
    fn ranks_follow_the_total_order() {
        let v = [
            3.5,
            -0.0,
            0.0,
            -2.25,
            f64::INFINITY,
            -1e300,
            1e-310,
            -1e-310,
            7.0,
            -2.25,
            f64::NEG_INFINITY,
        ];
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        for (rank, want) in sorted.iter().enumerate() {
            assert_eq!(ranked(&v, rank).to_bits(), want.to_bits(), "rank {rank}");
        }
    }

    fn verdict(checks: &[Check], name: &str) -> Verdict {
        checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.verdict)
            .expect(name)
    }

    fn good() -> Sitting {
        Sitting::new(480, 640, BLUE).with(Sitter::new(240.0, 80.0, 235.0))
    }

    #[test]
    fn a_good_portrait_passes_everything() {
        let c = judge(good(), |i| i);
        assert!(c.iter().all(|c| c.verdict == Verdict::Pass), "{c:#?}");
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn clothes_like_the_backdrop_warn() {
        let mut p = good();
        p.spec.clothing = [110, 200, 250];
        p.spec.shirt = [110, 200, 250];
        let c = judge(p, |i| i);
        assert_eq!(verdict(&c, "clothing_contrast"), Verdict::Warn, "{c:#?}");
    }

    #[test]
    fn tilted_shoulders_warn() {
        let mut p = good();
        p.sitters[0].tilt = 120.0;
        let c = judge(p, |i| i);
        assert_eq!(verdict(&c, "shoulders_level"), Verdict::Warn, "{c:#?}");
    }

    /// `p` judged with one half of the subject, face included, lit to
    /// `keep` of its sRGB values.
    fn shadowed(mut p: Sitting, keep: f64) -> Vec<Check> {
        p.spec.uneven_light = 1.0 - keep;
        judge(p, |i| i)
    }

    #[test]
    fn shadow_across_the_face_warns() {
        let c = shadowed(good(), 0.5);
        assert_eq!(verdict(&c, "face_light"), Verdict::Warn, "{c:#?}");
    }

    #[test]
    fn the_same_shadow_warns_on_dark_and_light_skin() {
        // A half darkened by a quarter is about 10 L* darker on dark skin
        // and 17 on light: the old fixed 12 L* missed the dark one.
        for skin in [[137, 93, 77], [224, 180, 150]] {
            let mut p = good();
            p.spec.skin = skin;
            let c = shadowed(p.clone(), 0.75);
            assert_eq!(verdict(&c, "face_light"), Verdict::Warn, "{skin:?}: {c:#?}");
            let even = judge(p, |i| i);
            assert_eq!(
                verdict(&even, "face_light"),
                Verdict::Pass,
                "{skin:?}: {even:#?}"
            );
        }
    }

    #[test]
    fn blown_face_warns() {
        let mut p = good();
        p.spec.skin = [255, 255, 255];
        let c = judge(p, |i| i);
        assert_eq!(verdict(&c, "exposure"), Verdict::Warn, "{c:#?}");
    }

    #[test]
    fn soft_focus_warns() {
        let c = judge(good(), |i| blur(&i, 4, 3));
        assert_eq!(verdict(&c, "sharpness"), Verdict::Warn, "{c:#?}");
    }
}
