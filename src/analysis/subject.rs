//! Where the person is: the silhouette against the backdrop, measured on a
//! small working copy (this runs on every photo) and mapped back.
//!
//! Face width and eye line cannot be seen in a silhouette, so they are
//! estimated from it by fixed proportions (settings): the face is a share of
//! the head silhouette's width (hair and ears widen the silhouette), the eye
//! line a share of the way from crown to chin.

use serde::{Deserialize, Serialize};

use crate::analysis::backdrop::Backdrop;
use crate::analysis::colour::{delta_e76_squared, squared_bound};
use crate::analysis::rank::{from_order_key, nth_smallest, order_key};
use crate::analysis::working_copy::WorkingCopy;
use crate::image::Rect;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectSettings {
    /// CIE76 distance from the backdrop (after removing its gradient) beyond
    /// which a pixel belongs to the subject.
    pub threshold: f64,
    /// The subject grows from pixels beyond `threshold` over pixels beyond
    /// this many times the backdrop's median residual (its noise)...
    pub weak_noise_factor: f64,
    /// ...but never below this CIE76 distance.
    pub weak_min: f64,
    /// Face width (cheek to cheek) over the head silhouette's widest width.
    pub face_ratio: f64,
    /// Eye line as a share of crown-to-chin, measured from the crown.
    pub eye_fraction: f64,
    /// Crown-to-chin over crown-to-taper (where the jaw has narrowed to
    /// near the neck's width, a little above the chin).
    pub taper_to_chin: f64,
    /// Crown-to-chin over silhouette width, when no neck is visible (long
    /// hair, a high collar) to find the chin by.
    pub chin_ratio: f64,
    /// A second blob at least this share of the subject's area is a second
    /// person.
    pub second_person_share: f64,
    /// A rise in the top profile, after a dip of at least this share of the
    /// head's width, back to head height is a second head.
    pub second_head_dip: f64,
    /// ...or of at least this share, when the rise is at least
    /// `second_head_apart` of the head's width away from the crown.
    pub second_head_shallow_dip: f64,
    pub second_head_apart: f64,
    /// Accept a subject whose hair touches the top edge (the crown margin is
    /// then unknown); off by default, such photos are flagged.
    pub allow_cut_off: bool,
}

impl Default for SubjectSettings {
    fn default() -> Self {
        SubjectSettings {
            threshold: 14.0,
            weak_noise_factor: 4.0,
            weak_min: 4.0,
            face_ratio: 0.89,
            eye_fraction: 0.52,
            taper_to_chin: 1.10,
            chin_ratio: 1.18,
            second_person_share: 0.35,
            second_head_dip: 0.2,
            second_head_shallow_dip: 0.06,
            second_head_apart: 0.3,
            allow_cut_off: false,
        }
    }
}

/// The subject, in pixel coordinates of the image passed in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Top of the hair.
    pub crown_y: u32,
    /// Estimated chin.
    pub chin_y: u32,
    /// The head silhouette: widest width, crown to chin.
    pub head: Rect,
    /// Estimated cheek-to-cheek width.
    pub face_width: u32,
    pub eye_line_y: u32,
    /// Horizontal centre of the head.
    pub center_x: u32,
    /// Row where the shoulders spread out, when seen.
    pub shoulder_y: Option<u32>,
    pub touches_top: bool,
    pub people: u32,
    /// Share of the image the subject covers.
    pub area_share: f64,
    /// Whether a neck was seen (the chin is then measured, not assumed).
    pub neck_seen: bool,
}

impl Subject {
    /// The same subject on a canvas with `left` columns and `top` rows
    /// added before the picture (backdrop extended around it).
    pub fn shifted(&self, left: u32, top: u32) -> Subject {
        Subject {
            crown_y: self.crown_y + top,
            chin_y: self.chin_y + top,
            eye_line_y: self.eye_line_y + top,
            center_x: self.center_x + left,
            head: Rect::new(
                self.head.x + left,
                self.head.y + top,
                self.head.width,
                self.head.height,
            ),
            shoulder_y: self.shoulder_y.map(|y| y + top),
            ..self.clone()
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SubjectError {
    #[error("image is too small ({width}x{height}) to find a person in")]
    TooSmall { width: u32, height: u32 },
    #[error("no person found against the backdrop")]
    NoSubject,
    #[error("two or more people in the photo; the registry needs one")]
    TwoPeople,
    #[error("the head is cut off at the top edge: no margin above the hair")]
    CutOffAtTop,
    #[error("the subject's head could not be measured (silhouette {0})")]
    NoHead(&'static str),
}

pub fn locate_subject(
    copy: &WorkingCopy,
    backdrop: &Backdrop,
    settings: &SubjectSettings,
) -> Result<Subject, SubjectError> {
    let subject = locate_subject_any_count(copy, backdrop, settings)?;
    if subject.people > 1 {
        return Err(SubjectError::TwoPeople);
    }
    Ok(subject)
}

impl Subject {
    /// The cut-off rule [`locate_subject_any_count`] leaves to its caller
    /// when the silhouette looked like two people.
    pub fn check_cut_off(&self, settings: &SubjectSettings) -> Result<(), SubjectError> {
        if self.touches_top && !settings.allow_cut_off {
            return Err(SubjectError::CutOffAtTop);
        }
        Ok(())
    }
}

/// [`locate_subject`], but a silhouette that looks like two people is
/// measured (the main one) rather than refused, with `people` saying how
/// many it saw: where a face detector has counted the faces, its count is
/// the one that decides (a backdrop with a second colour can look like a
/// second blob).
pub fn locate_subject_any_count(
    copy: &WorkingCopy,
    backdrop: &Backdrop,
    settings: &SubjectSettings,
) -> Result<Subject, SubjectError> {
    let (iw, ih) = copy.source_size();
    if iw < 16 || ih < 16 {
        return Err(SubjectError::TooSmall {
            width: iw,
            height: ih,
        });
    }
    let work = &copy.work;
    let (w, h) = (work.width, work.height);
    if w < 8 || h < 8 {
        return Err(SubjectError::TooSmall {
            width: iw,
            height: ih,
        });
    }
    let labs = &copy.lab;

    // Backdrop model: the estimate, then a plane through the pixels that
    // match it, so light fall-off towards the bottom is not mistaken for
    // the subject. The plane starts from pixels within the subject
    // threshold of the estimate: white clothes on a grey backdrop lie just
    // beyond it, and over the bottom third of the picture they would tilt
    // the plane into themselves. A linear fall-off is found just as well
    // from the pixels near the estimate. (Clothes nearer the backdrop's
    // colour, a blue shirt, still go into the first fit; taking them out
    // there too moves the silhouette's neck and the eye line estimated
    // from it.)
    // Distances are kept squared and compared with squared bounds (see
    // `squared_bound`): the same decisions and medians, without a square
    // root per pixel and pass.
    let threshold = squared_bound(settings.threshold);
    let initial: Vec<bool> = labs
        .iter()
        .map(|l| delta_e76_squared(*l, backdrop.lab) > threshold)
        .collect();
    let dist: Vec<f64> = match robust_plane(labs, initial, w, h, settings.weak_min) {
        Some(plane) => plane_distances(labs, &plane, w, h),
        None => labs
            .iter()
            .map(|l| delta_e76_squared(*l, backdrop.lab))
            .collect(),
    };
    // Hysteresis: a pixel clearly unlike the backdrop seeds the subject,
    // which then grows over pixels only a little unlike it, down to a few
    // times the backdrop's own noise. Skin on a grey backdrop of the same
    // lightness (a grayscale file) differs by only a few ΔE.
    let mut strong: Vec<bool> = dist.iter().map(|d| *d > threshold).collect();
    let mut quiet = Vec::with_capacity(dist.len());
    quiet.extend(
        dist.iter()
            .copied()
            .filter(|d| *d <= threshold)
            .map(order_key),
    );
    let noise = if quiet.is_empty() {
        settings.threshold
    } else {
        let mid = quiet.len() / 2;
        from_order_key(nth_smallest(&mut quiet, mid)).sqrt()
    };
    let low = (settings.weak_noise_factor * noise).clamp(settings.weak_min, settings.threshold);
    let low = squared_bound(low);
    let mut fg: Vec<bool> = dist.iter().map(|d| *d > low).collect();
    // The outermost working pixels of the top and sides may hold what the
    // border stage left of a frame's blurred edge (it is right to ±2 px),
    // which the low threshold would otherwise grow into a thin false
    // subject along the edge. The bottom is where the person stands.
    for i in (0..w).chain((0..h).flat_map(|y| [y * w, y * w + w - 1])) {
        fg[i] = false;
        strong[i] = false;
    }
    let Blobs {
        mut labels,
        mut areas,
        mut boxes,
    } = components(&fg, w);
    let mut seeded = vec![false; areas.len()];
    for (&l, &st) in labels.iter().zip(&strong) {
        if l != NONE && st {
            seeded[l as usize] = true;
        }
    }
    for (l, seeded) in seeded.iter().enumerate() {
        if !seeded {
            areas[l] = 0;
        }
    }
    let min_area = (w * h / 200).max(4);
    // The subject: the largest blob standing on the bottom edge (people are
    // cut off below the shoulders), else the largest blob.
    let mut on_bottom = vec![false; areas.len()];
    for x in 0..w {
        let l = labels[(h - 1) * w + x];
        if l != NONE {
            on_bottom[l as usize] = true;
        }
    }
    let pick = |bottom_only: bool| {
        let mut best: Option<usize> = None;
        for (l, a) in areas.iter().enumerate() {
            if *a >= min_area
                && (!bottom_only || on_bottom[l])
                && best.is_none_or(|b| *a > areas[b])
            {
                best = Some(l);
            }
        }
        best
    };
    let main = pick(true)
        .or_else(|| pick(false))
        .ok_or(SubjectError::NoSubject)?;
    merge_detached_head(&mut labels, &mut areas, &mut boxes, main, min_area, w);
    let main_area = areas[main];
    let mut people = 1 + areas
        .iter()
        .enumerate()
        .filter(|(l, a)| {
            *l != main && **a as f64 >= settings.second_person_share * main_area as f64
        })
        .count() as u32;
    fill_holes(&mut labels, main, w, h);
    let is_main = |x: usize, y: usize| labels[y * w + x] as usize == main;

    // Top profile: first subject row per column.
    let top: Vec<Option<usize>> = (0..w).map(|x| (0..h).find(|&y| is_main(x, y))).collect();
    let crown = top
        .iter()
        .flatten()
        .copied()
        .min()
        .ok_or(SubjectError::NoSubject)?;
    let crown_cols: Vec<usize> = (0..w)
        .filter(|&x| top[x].is_some_and(|t| t <= crown + 1))
        .collect();
    let mut hx = (crown_cols[0] + crown_cols[crown_cols.len() - 1]) / 2;

    // Run of subject pixels in row y that contains column x.
    let run = |x: usize, y: usize| -> Option<(usize, usize)> {
        if !is_main(x, y) {
            return None;
        }
        let mut l = x;
        while l > 0 && is_main(l - 1, y) {
            l -= 1;
        }
        let mut r = x;
        while r + 1 < w && is_main(r + 1, y) {
            r += 1;
        }
        Some((l, r + 1))
    };

    // Head: widen from the crown until the widest part (temples, ears) is
    // passed; re-centre as we go, the crown may be off-centre (a parting).
    let mut maxw = 0usize;
    let mut max_row = crown;
    let mut mids = Vec::new();
    // Hair lit at the crown can be as light as a grey backdrop, leaving a
    // notch between two bumps of the top: start where the middle column
    // meets the head.
    let mut y = (crown..h).find(|&y| is_main(hx, y)).unwrap_or(h);
    while y < h {
        let Some((l, r)) = run(hx, y) else { break };
        let wd = r - l;
        // Near the crown the width grows fast; a jump only means shoulders
        // once a head's worth of width has been seen.
        if maxw >= 4 && (y - crown) as f64 >= 0.5 * maxw as f64 && wd as f64 > 1.8 * maxw as f64 {
            break; // shoulders before the head was done: a very short head
        }
        if wd > maxw {
            maxw = wd;
            max_row = y;
        }
        mids.push((l + r) / 2);
        hx = (l + r) / 2;
        // Past the widest row and far enough down for it to be the temples,
        // not a widening near the crown; long hair that keeps widening is
        // cut off at twice the width.
        let depth = (y - crown) as f64;
        if (depth > 0.8 * maxw as f64 && wd < maxw) || depth > 2.0 * maxw as f64 {
            break;
        }
        y += 1;
    }
    if maxw < 2 {
        return Err(SubjectError::NoHead("too small"));
    }
    let centre_w = {
        let skip = mids.len() / 5;
        let m = &mids[skip..];
        m.iter().sum::<usize>() as f64 / m.len().max(1) as f64 + 0.5
    };
    hx = centre_w as usize;

    // Neck and shoulders below the widest row.
    let mut neck_w = maxw;
    let mut neck_row = None;
    let mut shoulder = None;
    let mut taper = None;
    for y in max_row..h {
        let Some((l, r)) = run(hx.min(w - 1), y) else {
            break;
        };
        let wd = r - l;
        if wd as f64 > 1.6 * maxw as f64 {
            shoulder = Some(y);
            break;
        }
        if wd < neck_w {
            neck_w = wd;
            neck_row = Some(y);
        }
    }
    let neck_seen = neck_row.is_some() && (neck_w as f64) < 0.8 * maxw as f64;
    if neck_seen {
        let limit = (neck_w as f64 * 1.15).ceil() as usize;
        taper = (max_row..h).find(|&y| run(hx.min(w - 1), y).is_some_and(|(l, r)| r - l <= limit));
    }
    let (lo, hi) = (1.0 * maxw as f64, 1.6 * maxw as f64);
    let head_len = match taper {
        // The jaw meets the neck a little above the chin.
        Some(t) => ((t - crown) as f64 * settings.taper_to_chin).clamp(lo, hi),
        None => settings.chin_ratio * maxw as f64,
    };

    // A second head: another top bump at head height, separated from the
    // crown by a dip in the top profile (two people standing close merge
    // into one blob, and their heads may touch, or be measured as one wide
    // head). Walk outward from the crown on each side: a single head only
    // falls away towards the shoulders, a second one rises again. When the
    // heads touch, `maxw` spans both, so a dip that is shallow against it
    // still means a second head if the bump is a head's width away (a
    // notch in one head's hair is close to its crown).
    let near_head_level = crown as f64 + 0.6 * head_len;
    let crown_x = (crown_cols[0] + crown_cols[crown_cols.len() - 1]) / 2;
    // The boxes are those of the blobs before the holes were filled: a blob
    // inside a hole is all gone into `main` (it is connected, and nothing
    // of it could reach the edge), so it has no pixels left to rest with,
    // and the filled pixels lie inside `main`'s own box.
    let top = with_resting_blobs(&labels, &areas, &boxes, main, min_area, top);
    let deep = settings.second_head_dip * maxw as f64;
    let shallow = settings.second_head_shallow_dip * maxw as f64;
    let apart = settings.second_head_apart * maxw as f64;
    for side in [-1i32, 1] {
        let cols: Vec<usize> = if side < 0 {
            (0..=crown_x).rev().collect()
        } else {
            (crown_x..w).collect()
        };
        let mut lowest_between = crown;
        for x in cols {
            let Some(t) = top[x] else {
                lowest_between = h;
                continue;
            };
            lowest_between = lowest_between.max(t);
            let dip = lowest_between as f64 - t as f64;
            if (t as f64) < near_head_level
                && (dip > deep || (dip > shallow && x.abs_diff(crown_x) as f64 >= apart))
            {
                people = people.max(2);
                break;
            }
        }
    }
    let touches_top = crown <= 1;
    // Two people are refused before a cut-off head (by the caller that
    // counts them), as they always were.
    if touches_top && !settings.allow_cut_off && people <= 1 {
        return Err(SubjectError::CutOffAtTop);
    }

    // Back to input pixels: a working pixel stands for a factor-sized block;
    // edges are put at block centres.
    let f = f64::from(work.factor);
    let to_in =
        |v: f64, max: u32| (v * f).round().clamp(0.0, f64::from(max.saturating_sub(1))) as u32;
    let crown_y = if touches_top {
        0
    } else {
        to_in(crown as f64 + 0.5, ih)
    };
    let head_len_in = head_len * f;
    let chin_y = (f64::from(crown_y) + head_len_in)
        .round()
        .min(f64::from(ih - 1)) as u32;
    let head_w_in = maxw as f64 * f;
    let center_x = to_in(centre_w, iw);
    let head_x = (f64::from(center_x) - head_w_in / 2.0).round().max(0.0) as u32;
    let head_w = (head_w_in.round() as u32).clamp(1, iw - head_x);
    let head_h = (chin_y - crown_y).max(1).min(ih - crown_y);
    let eye_line_y = (f64::from(crown_y) + settings.eye_fraction * head_len_in)
        .round()
        .min(f64::from(ih - 1)) as u32;
    Ok(Subject {
        crown_y,
        chin_y,
        head: Rect::new(head_x, crown_y, head_w, head_h),
        face_width: (settings.face_ratio * head_w_in).round().max(1.0) as u32,
        eye_line_y,
        center_x,
        shoulder_y: shoulder.map(|s| to_in(s as f64 + 0.5, ih)),
        touches_top,
        people,
        area_share: main_area as f64 / (w * h) as f64,
        neck_seen,
    })
}

/// The planes are fitted and evaluated in coordinates normalised to 0..1
/// (`x / w`, `y / h`). Each of those passes runs three times per photo over
/// every pixel, and finding a pixel's column and row by dividing its index
/// was most of their cost: they go row by row instead, with the columns'
/// positions worked out once (the same values), in plain loops the compiler
/// can vectorise.
fn column_positions(w: usize) -> Vec<f64> {
    (0..w).map(|x| x as f64 / w as f64).collect()
}

/// ΔE76 of each pixel from the plane's model of the backdrop there,
/// squared (see [`delta_e76_squared`]).
/// The model is `(p0 + p1 x) + p2 y` per channel, added in that order: its
/// column part is worked out once per column and its row part once per row,
/// the very same sums with two thirds fewer multiplications per pixel.
/// As an AVX2 build of the same code where the CPU has AVX2 (runtime
/// check): the same operations on each pixel, four pixels at a time, so the
/// very same distances.
fn plane_distances(labs: &[[f64; 3]], plane: &[[f64; 3]; 3], w: usize, h: usize) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { plane_distances_avx2(labs, plane, w, h) };
    }
    plane_distances_portable(labs, plane, w, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn plane_distances_avx2(
    labs: &[[f64; 3]],
    plane: &[[f64; 3]; 3],
    w: usize,
    h: usize,
) -> Vec<f64> {
    plane_distances_portable(labs, plane, w, h)
}

/// The distances written straight into the vector's room, by plain zipped
/// loops that inline into the AVX2 build: appending them by `extend` ran
/// in a library function built without AVX2, and zeroing the vector first
/// cost as much as the distances.
#[inline(always)]
fn plane_distances_portable(
    labs: &[[f64; 3]],
    plane: &[[f64; 3]; 3],
    w: usize,
    h: usize,
) -> Vec<f64> {
    let columns: Vec<[f64; 3]> = column_positions(w)
        .iter()
        .map(|&x| [0, 1, 2].map(|k| plane[k][0] + plane[k][1] * x))
        .collect();
    // No columns, no distances (as `extend` over the zip gave none).
    if w == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(labs.len());
    let room = &mut out.spare_capacity_mut()[..labs.len()];
    for (row, (labs, room)) in labs.chunks(w).zip(room.chunks_mut(w)).enumerate() {
        let y = row as f64 / h as f64;
        let across = [0, 1, 2].map(|k| plane[k][2] * y);
        for ((d, l), column) in room.iter_mut().zip(labs).zip(&columns) {
            let model = [0, 1, 2].map(|k| column[k] + across[k]);
            d.write(delta_e76_squared(*l, model));
        }
    }
    // SAFETY: every one of the first `labs.len()` slots was written: the
    // room is chunked as `labs` is, each row at most `w` long, and there
    // are `w` columns.
    unsafe { out.set_len(labs.len()) };
    out
}

/// The backdrop plane, refitted without the pixels the first fit leaves
/// far off: clothes only a little unlike the backdrop (white on a grey
/// backdrop) pass the first cut, and over the bottom of the picture they
/// tilt the plane until they disappear into it. The backdrop's own pixels
/// lie within a few times its noise of the plane; `floor` (ΔE) keeps a
/// noiseless backdrop from excluding its own gentle fall-off.
fn robust_plane(
    labs: &[[f64; 3]],
    mut excluded: Vec<bool>,
    w: usize,
    h: usize,
    floor: f64,
) -> Option<[[f64; 3]; 3]> {
    let mut plane = fit_plane(labs, &excluded, w, h)?;
    for _ in 0..2 {
        let dist = plane_distances(labs, &plane, w, h);
        // Collected into room for all: grown step by step from empty, the
        // copies of the growing vector cost more than the filtering.
        let mut kept = Vec::with_capacity(dist.len());
        kept.extend(
            dist.iter()
                .zip(&excluded)
                .filter(|(_, e)| !**e)
                .map(|(d, _)| order_key(*d)),
        );
        if kept.is_empty() {
            break;
        }
        let mid = kept.len() / 2;
        let median = from_order_key(nth_smallest(&mut kept, mid));
        // The median of the squares is the square of the median: squaring
        // keeps the order.
        let cut = squared_bound((3.0 * median.sqrt()).max(floor));
        for (e, d) in excluded.iter_mut().zip(&dist) {
            *e = *e || *d > cut;
        }
        match fit_plane(labs, &excluded, w, h) {
            Some(p) => plane = p,
            None => break,
        }
    }
    Some(plane)
}

/// The count of the pixels not in `fg`, the sums over them of
/// `a = (L, a, b, x)`, of `x a` and of `y a`, and those of `y` and `y^2`:
/// the normal equations of the three planes. Each sum adds its pixels in
/// order, four sums side by side, which an AVX2 build (runtime check) does
/// as one vector operation with the same values. (`x y` is accumulated as
/// `y x`, the same product.)
fn plane_sums(labs: &[[f64; 3]], fg: &[bool], w: usize, h: usize) -> PlaneSums {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been found to support AVX2.
        return unsafe { plane_sums_avx2(labs, fg, w, h) };
    }
    plane_sums_portable(labs, fg, w, h)
}

type PlaneSums = (usize, [[f64; 4]; 3], [f64; 2]);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn plane_sums_avx2(labs: &[[f64; 3]], fg: &[bool], w: usize, h: usize) -> PlaneSums {
    plane_sums_portable(labs, fg, w, h)
}

#[inline(always)]
fn plane_sums_portable(labs: &[[f64; 3]], fg: &[bool], w: usize, h: usize) -> PlaneSums {
    let mut sums = [[0.0f64; 4]; 3];
    let mut ys = [0.0f64; 2];
    let mut n = 0usize;
    let xs = column_positions(w);
    let rows = labs.chunks(w.max(1)).zip(fg.chunks(w.max(1)));
    for (row, (labs, fg)) in rows.enumerate() {
        let y = row as f64 / h as f64;
        for ((l, &x), _) in labs.iter().zip(&xs).zip(fg).filter(|(_, fg)| !**fg) {
            let a = [l[0], l[1], l[2], x];
            for c in 0..4 {
                sums[0][c] += a[c];
                sums[1][c] += x * a[c];
                sums[2][c] += y * a[c];
            }
            ys[0] += y;
            ys[1] += y * y;
            n += 1;
        }
    }
    (n, sums, ys)
}

/// Least-squares plane per Lab channel over backdrop pixels (in coordinates
/// normalised to 0..1); None when too few or degenerate.
fn fit_plane(labs: &[[f64; 3]], fg: &[bool], w: usize, h: usize) -> Option<[[f64; 3]; 3]> {
    let (n, [s, xs, ys], [sy, syy]) = plane_sums(labs, fg, w, h);
    if n < 16 {
        return None;
    }
    // The normal matrix of (1, x, y) is symmetric with the count in its
    // corner: only its five other distinct sums were accumulated. The mirror
    // images would add the very same products in the same order, the
    // products with 1 are the values themselves, and a sum of ones is exact
    // far beyond any image's pixel count, so this is the matrix a full
    // 3 x 3 accumulation gives.
    let m = [[n as f64, s[3], sy], [s[3], xs[3], ys[3]], [sy, ys[3], syy]];
    let rhs: [[f64; 3]; 3] = std::array::from_fn(|k| [s[k], xs[k], ys[k]]);
    let det = |a: &[[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-9 * (n as f64).powi(3) {
        return None;
    }
    let mut out = [[0.0; 3]; 3];
    for k in 0..3 {
        for c in 0..3 {
            let mut mc = m;
            for r in 0..3 {
                mc[r][c] = rhs[k][r];
            }
            out[k][c] = det(&mc) / d;
        }
    }
    Some(out)
}

/// Joins to `main` a blob that sits on top of it like a head on a neck: a
/// neck of the backdrop's own shade (skin on a grey backdrop of the same
/// lightness, in a grayscale file) leaves the head a separate blob, which
/// the person is then measured without. The blob must start above `main`,
/// end no further above it than its own height (a neck is shorter than a
/// head), and straddle the middle of `main`'s top. Repeated while one is
/// found: a face of the backdrop's shade at its edges can part from the
/// hair around it as well as from the neck.
fn merge_detached_head(
    labels: &mut [u32],
    areas: &mut [usize],
    boxes: &mut [[usize; 4]],
    main: usize,
    min_area: usize,
    w: usize,
) {
    loop {
        let top = boxes[main][2];
        let top_cols: Vec<usize> = (0..w)
            .filter(|&x| labels.get(top * w + x).is_some_and(|&l| l as usize == main))
            .collect();
        let (Some(first), Some(last)) = (top_cols.first(), top_cols.last()) else {
            return;
        };
        let mid = (first + last) / 2;
        let head = (0..areas.len())
            .filter(|&l| {
                let [x0, x1, y0, y1] = boxes[l];
                l != main
                    && areas[l] >= min_area
                    && y0 < top
                    && top.saturating_sub(y1) <= y1 - y0
                    && (x0..=x1).contains(&mid)
            })
            .max_by_key(|&l| areas[l]);
        let Some(head) = head else {
            return;
        };
        for l in labels.iter_mut().filter(|l| **l as usize == head) {
            *l = main as u32;
        }
        areas[main] += areas[head];
        areas[head] = 0;
        boxes[main] = box_union(boxes[main], boxes[head]);
    }
}

/// The top profile `top` of `main` with that of every other sizeable blob
/// resting on it (ending above `main` at some column, no further above it
/// than its own height): a second person's head can part from their
/// shoulders just as the first one's can (see [`merge_detached_head`]),
/// and is still a head rising beside the first.
fn with_resting_blobs(
    labels: &[u32],
    areas: &[usize],
    boxes: &[[usize; 4]],
    main: usize,
    min_area: usize,
    mut top: Vec<Option<usize>>,
) -> Vec<Option<usize>> {
    let w = top.len();
    let resting: Vec<bool> = (0..areas.len())
        .map(|l| {
            let [x0, x1, y0, y1] = boxes[l];
            l != main
                && areas[l] >= min_area
                && (x0..=x1.min(w - 1)).any(|x| top[x].is_some_and(|t| t > y1 && t - y1 <= y1 - y0))
        })
        .collect();
    // Most photos have none, and then the pass over every pixel is spared.
    if !resting.contains(&true) {
        return top;
    }
    for (y, row) in labels.chunks(w.max(1)).enumerate() {
        for (x, &l) in row.iter().enumerate() {
            if l != NONE && resting[l as usize] && top[x].is_none_or(|t| y < t) {
                top[x] = Some(y);
            }
        }
    }
    top
}

/// Gives `main` every pixel that backdrop reaching the image's edge cannot
/// get to: a face whose shading matches the backdrop somewhere inside the
/// hair and jaw line is still all subject. What is not `main` falls into
/// blobs of its own; those whose boxes stay clear of the edges are holes.
fn fill_holes(labels: &mut [u32], main: usize, w: usize, h: usize) {
    let main = main as u32;
    let others: Vec<bool> = labels.iter().map(|&l| l != main).collect();
    let rest = components(&others, w);
    let hole: Vec<bool> = rest
        .boxes
        .iter()
        .map(|&[x0, x1, y0, y1]| x0 > 0 && x1 + 1 < w && y0 > 0 && y1 + 1 < h)
        .collect();
    if !hole.contains(&true) {
        return;
    }
    for (l, &r) in labels.iter_mut().zip(&rest.labels) {
        if r != NONE && hole[r as usize] {
            *l = main;
        }
    }
}

/// The label of a pixel in no blob.
const NONE: u32 = u32::MAX;

/// The 4-connected blobs of a mask.
struct Blobs {
    /// Per pixel, its blob ([`NONE`] outside the mask).
    labels: Vec<u32>,
    /// Per blob: its pixel count...
    areas: Vec<usize>,
    /// ...and min x, max x, min y, max y of its pixels.
    boxes: Vec<[usize; 4]>,
}

/// 4-connected components of `mask`, numbered in the order of their first
/// pixels row by row (as a flood fill started from each unlabelled pixel
/// in turn numbers them). Found run by run rather than pixel by pixel: the
/// runs of set pixels of each row are joined to those of the row above
/// they overlap, each blob's earliest run standing for it, and then each
/// run is labelled at once. Flooding pixel by pixel, with four neighbours
/// to look at for each, was the largest cost of the subject stage's own.
fn components(mask: &[bool], w: usize) -> Blobs {
    let w = w.max(1);
    // Row, first column and end column of each run, row by row.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    let mut above = 0..0;
    for (y, row) in mask.chunks(w).enumerate() {
        let first = runs.len();
        let mut x = 0;
        while let Some(gap) = row[x..].iter().position(|&m| m) {
            let x0 = x + gap;
            let x1 = row[x0..].iter().position(|&m| !m).map_or(w, |n| x0 + n);
            parent.push(runs.len());
            runs.push((y, x0, x1));
            x = x1;
        }
        // Runs of both rows go left to right: the first run above that can
        // still meet this one never moves back.
        let mut a = above.start;
        for r in first..runs.len() {
            let (_, x0, x1) = runs[r];
            while a < above.end && runs[a].2 <= x0 {
                a += 1;
            }
            for b in (a..above.end).take_while(|&b| runs[b].1 < x1) {
                join(&mut parent, b, r);
            }
        }
        above = first..runs.len();
    }
    let mut labels = vec![NONE; mask.len()];
    let mut areas = Vec::new();
    let mut boxes: Vec<[usize; 4]> = Vec::new();
    let mut blob_of = vec![0u32; runs.len()];
    for (r, &(y, x0, x1)) in runs.iter().enumerate() {
        let root = root(&mut parent, r);
        let id = if root == r {
            areas.push(0);
            boxes.push([x0, x1 - 1, y, y]);
            (areas.len() - 1) as u32
        } else {
            blob_of[root]
        };
        blob_of[r] = id;
        areas[id as usize] += x1 - x0;
        let b = &mut boxes[id as usize];
        *b = box_union(*b, [x0, x1 - 1, y, y]);
        labels[y * w + x0..y * w + x1].fill(id);
    }
    Blobs {
        labels,
        areas,
        boxes,
    }
}

/// The smallest box (min x, max x, min y, max y) holding both.
fn box_union(a: [usize; 4], b: [usize; 4]) -> [usize; 4] {
    [
        a[0].min(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].max(b[3]),
    ]
}

/// The run standing for the blob of run `r`: the blob's earliest.
fn root(parent: &mut [usize], mut r: usize) -> usize {
    while parent[r] != r {
        parent[r] = parent[parent[r]];
        r = parent[r];
    }
    r
}

/// Joins the blobs of runs `a` and `b`, the earlier of their roots
/// standing for both: so a blob's root is always its earliest run.
fn join(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (root(parent, a), root(parent, b));
    parent[ra.max(rb)] = ra.min(rb);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analysis::backdrop::{BackdropSettings, estimate_backdrop};
    use crate::image::RgbImage;
    use crate::testkit::synth::{Sitter, Sitting, Truth};

    pub const BLUE: [u8; 3] = [100, 197, 255];

    pub fn find(img: &RgbImage) -> Result<Subject, SubjectError> {
        let copy = WorkingCopy::of(img);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        locate_subject(&copy, &b, &SubjectSettings::default())
    }

    /// The picture of `sitting`, and the truth about its first sitter.
    fn paint(sitting: &Sitting) -> (RgbImage, Truth) {
        let (img, truths) = sitting.render().expect("renders");
        (img, truths[0].clone())
    }

    fn check_truth(s: &Subject, t: &Truth, scale: f64) {
        check_placement(s, t, scale, 0.12);
        let err = |got: u32, want: i64| (f64::from(got) - want as f64).abs();
        let head = (t.chin_row - t.crown_row) as f64;
        assert!(
            err(s.eye_line_y, t.eye_row) <= 0.06 * head,
            "eye {} vs {}",
            s.eye_line_y,
            t.eye_row
        );
        assert!(
            err(s.chin_y, t.chin_row) <= 0.08 * head,
            "chin {} vs {}",
            s.chin_y,
            t.chin_row
        );
    }

    /// Crown, centre and width of the head (what places the crop), the
    /// face width to within `face_tol` of it; the chin is estimated from
    /// the neck, which grey-on-grey hides.
    fn check_placement(s: &Subject, t: &Truth, scale: f64, face_tol: f64) {
        let tol = (scale * 0.02).max(3.0);
        let err = |got: u32, want: i64| (f64::from(got) - want as f64).abs();
        assert_eq!(s.people, 1);
        assert!(
            err(s.crown_y, t.crown_row) <= tol,
            "crown {} vs {}",
            s.crown_y,
            t.crown_row
        );
        assert!(
            err(s.center_x, t.center_x) <= tol,
            "centre {} vs {}",
            s.center_x,
            t.center_x
        );
        // The face ratio is calibrated on the synthetic generator's heads
        // (tests/cohort_truth.rs), which these are.
        let face = f64::from(t.face_width);
        assert!(
            (f64::from(s.face_width) - face).abs() <= face_tol * face,
            "face {} vs {}",
            s.face_width,
            t.face_width
        );
    }

    /// A `w` x `h` working copy's Lab values, varying from pixel to pixel,
    /// and a foreground mask over it.
    fn varied_pixels(w: usize, h: usize) -> (Vec<[f64; 3]>, Vec<bool>) {
        let labs = (0..w * h)
            .map(|i| {
                let v = i as f64;
                [
                    50.0 + 20.0 * (v * 0.37).sin(),
                    30.0 * (v * 0.11).cos(),
                    40.0 * (v * 0.07).sin(),
                ]
            })
            .collect();
        let fg = (0..w * h).map(|i| i % 7 == 3 || i % 11 == 0).collect();
        (labs, fg)
    }

    #[test]
    fn plane_fit_is_the_full_normal_equations_solution() {
        let (w, h) = (37, 23);
        let (labs, fg) = varied_pixels(w, h);
        // The normal equations accumulated entry by entry, all nine of the
        // matrix, as the fit did before it summed four side by side.
        let mut m = [[0.0f64; 3]; 3];
        let mut rhs = [[0.0f64; 3]; 3];
        for (i, l) in labs.iter().enumerate().filter(|(i, _)| !fg[*i]) {
            let v = [1.0, (i % w) as f64 / w as f64, (i / w) as f64 / h as f64];
            for r in 0..3 {
                for c in 0..3 {
                    m[r][c] += v[r] * v[c];
                }
                for k in 0..3 {
                    rhs[k][r] += v[r] * l[k];
                }
            }
        }
        let det = |a: &[[f64; 3]; 3]| {
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
                - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        };
        let want: [[f64; 3]; 3] = std::array::from_fn(|k| {
            std::array::from_fn(|c| {
                let mut mc = m;
                (0..3).for_each(|r| mc[r][c] = rhs[k][r]);
                det(&mc) / det(&m)
            })
        });
        assert_eq!(fit_plane(&labs, &fg, w, h), Some(want));
    }

    #[test]
    fn vector_build_of_the_plane_sums_agrees() {
        let (w, h) = (37, 23);
        let (labs, fg) = varied_pixels(w, h);
        assert_eq!(
            plane_sums(&labs, &fg, w, h),
            plane_sums_portable(&labs, &fg, w, h)
        );
    }

    #[test]
    fn vector_build_of_the_plane_distances_agrees() {
        let (w, h) = (37, 23);
        let (labs, _) = varied_pixels(w, h);
        let plane = [
            [52.0, -3.5, 7.25],
            [1.5, 0.3, -2.0],
            [-20.0, 4.0, 1.0 / 3.0],
        ];
        let bits = |d: Vec<f64>| d.into_iter().map(f64::to_bits).collect::<Vec<_>>();
        let want: Vec<f64> = labs
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (x, y) = ((i % w) as f64 / w as f64, (i / w) as f64 / h as f64);
                let model = [0, 1, 2].map(|k| (plane[k][0] + plane[k][1] * x) + plane[k][2] * y);
                delta_e76_squared(*l, model)
            })
            .collect();
        assert_eq!(
            bits(plane_distances(&labs, &plane, w, h)),
            bits(want.clone())
        );
        assert_eq!(
            bits(plane_distances_portable(&labs, &plane, w, h)),
            bits(want)
        );
    }

    #[test]
    fn blobs_are_numbered_and_measured_as_a_flood_fill_does() {
        // Blobs of every shape the run joining must get right: a U whose
        // arms meet only at the bottom, a spiral, diagonal neighbours (not
        // joined), and runs touching the image's edges.
        let (w, h) = (41, 29);
        let mut rng = crate::testkit::synth::SplitMix64::new(0x9E37_79B9_7F4A_7C15);
        for density in [2, 5, 8] {
            let mask: Vec<bool> = (0..w * h).map(|_| rng.below(16) < density).collect();
            let got = components(&mask, w);
            let (labels, areas) = flood_fill(&mask, w);
            assert_eq!(got.labels, labels, "density {density}");
            assert_eq!(got.areas, areas, "density {density}");
            for (l, b) in got.boxes.iter().enumerate() {
                let pixels = (0..w * h).filter(|&i| labels[i] == l as u32);
                let (xs, ys): (Vec<usize>, Vec<usize>) = pixels.map(|i| (i % w, i / w)).unzip();
                let want = [
                    xs.iter().min(),
                    xs.iter().max(),
                    ys.iter().min(),
                    ys.iter().max(),
                ];
                assert_eq!(want.map(|v| v.copied()), b.map(Some), "blob {l}");
            }
        }
        let u = "#...#\n#.#.#\n#...#\n#####";
        let mask: Vec<bool> = u
            .lines()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        let blobs = components(&mask, 5);
        assert_eq!(blobs.areas, [11, 1]);
        assert_eq!(blobs.boxes, [[0, 4, 0, 3], [2, 2, 1, 1]]);
    }

    /// Labels and areas by a pixel-by-pixel flood fill from each unlabelled
    /// pixel in turn.
    fn flood_fill(mask: &[bool], w: usize) -> (Vec<u32>, Vec<usize>) {
        let mut labels = vec![NONE; mask.len()];
        let mut areas = Vec::new();
        for start in 0..mask.len() {
            if !mask[start] || labels[start] != NONE {
                continue;
            }
            let id = areas.len() as u32;
            labels[start] = id;
            let (mut stack, mut area) = (vec![start], 0);
            while let Some(i) = stack.pop() {
                area += 1;
                let (x, y) = (i % w, i / w);
                let near = [
                    (x > 0).then(|| i - 1),
                    (x + 1 < w).then(|| i + 1),
                    (y > 0).then(|| i - w),
                    (i + w < mask.len()).then(|| i + w),
                ];
                for j in near.into_iter().flatten() {
                    if mask[j] && labels[j] == NONE {
                        labels[j] = id;
                        stack.push(j);
                    }
                }
            }
            areas.push(area);
        }
        (labels, areas)
    }

    #[test]
    fn finds_a_centred_portrait() {
        let (img, t) = paint(&Sitting::new(480, 640, BLUE).with(Sitter::new(240.0, 90.0, 230.0)));
        let s = find(&img).expect("subject");
        check_truth(&s, &t, 640.0);
        assert!(s.neck_seen && s.shoulder_y.is_some(), "{s:?}");
        assert_eq!(s.people, 1);
    }

    #[test]
    fn finds_off_centre_and_landscape_subjects() {
        let (img, t) = paint(&Sitting::new(1000, 700, BLUE).with(Sitter::new(620.0, 200.0, 180.0)));
        let s = find(&img).expect("subject");
        check_truth(&s, &t, 1000.0);
    }

    #[test]
    fn gradient_backdrop_does_not_grow_the_subject() {
        // Light falling off from about the reference blue at the top to 50
        // levels less green and 60 less blue at the bottom.
        let mut sc = Sitting::new(480, 640, [80, 172, 225]).with(Sitter::new(240.0, 120.0, 200.0));
        sc.spec.backdrop_gradient = 0.145;
        let (img, t) = paint(&sc);
        let s = find(&img).expect("subject");
        check_truth(&s, &t, 640.0);
    }

    #[test]
    fn two_people_are_flagged() {
        let (img, _) = paint(
            &Sitting::new(800, 600, BLUE)
                .with(Sitter::new(250.0, 120.0, 150.0))
                .with(Sitter::new(560.0, 140.0, 150.0)),
        );
        assert_eq!(find(&img), Err(SubjectError::TwoPeople));
        // Standing close enough that the shoulders merge.
        let (img, _) = paint(
            &Sitting::new(700, 600, BLUE)
                .with(Sitter::new(240.0, 120.0, 150.0))
                .with(Sitter::new(470.0, 130.0, 150.0)),
        );
        assert_eq!(find(&img), Err(SubjectError::TwoPeople));
    }

    #[test]
    fn heads_that_touch_are_two_people() {
        // Hair is 1.12 faces wide, so these two heads overlap; the second
        // crown is a little lower, and the blob's widest row spans both.
        let (img, _) = paint(
            &Sitting::new(760, 640, BLUE)
                .with(Sitter::new(280.0, 110.0, 150.0))
                .with(Sitter::new(430.0, 135.0, 150.0)),
        );
        assert_eq!(find(&img), Err(SubjectError::TwoPeople));
    }

    #[test]
    fn a_head_apart_from_the_body_is_still_the_subject() {
        // A neck in the backdrop's own shade: the head is a blob of its own
        // above the body.
        let (mut img, t) =
            paint(&Sitting::new(480, 640, BLUE).with(Sitter::new(240.0, 90.0, 230.0)));
        part_neck(&mut img, &t, BLUE);
        let s = find(&img).expect("subject");
        check_truth(&s, &t, 640.0);
    }

    /// Paints the backdrop's shade over the neck of the sitter `t` tells
    /// of, so its head is a blob of its own.
    fn part_neck(img: &mut RgbImage, t: &Truth, shade: [u8; 3]) {
        let (cx, half) = (t.center_x as f64, 0.3 * f64::from(t.face_width));
        for y in (t.chin_row + 4) as u32..(t.shoulder_row + 8) as u32 {
            for x in (cx - half) as u32..(cx + half) as u32 {
                img.put_pixel(x, y, shade);
            }
        }
    }

    /// A `width` x `height` sitting on the reference backdrop in `skin`,
    /// `hair`, `clothing` and `shirt` colours.
    fn dressed(width: u32, height: u32, colours: [[u8; 3]; 4]) -> Sitting {
        let mut sc = Sitting::new(width, height, BLUE);
        [sc.spec.skin, sc.spec.hair, sc.spec.clothing, sc.spec.shirt] = colours;
        sc
    }

    /// `sc` as a grayscale file holds it (luma in every channel), and the
    /// truth about its sitters. The backdrop becomes a grey of about the
    /// lightness of skin, whose shading takes the face's edge and the neck
    /// into the backdrop's shade.
    fn in_grey(sc: &Sitting) -> (RgbImage, Vec<Truth>) {
        let (img, truths) = sc.render().expect("renders");
        let luma = crate::testkit::synth::gray(&img);
        let rgb = luma.iter().flat_map(|&v| [v, v, v]).collect();
        let grey = RgbImage::new(img.width(), img.height(), rgb).expect("same size");
        (grey, truths)
    }

    #[test]
    fn white_clothes_on_a_grey_backdrop_are_subject() {
        // Like cohort 00037, in these colours: the clothes are about one
        // subject threshold from the backdrop and fill the bottom 40%;
        // fitted into the backdrop's plane, they tilt it until they vanish
        // and leave a stray outline of the hair to measure.
        let colours = [
            [218, 176, 148],
            [31, 26, 26],
            [231, 236, 232],
            [234, 236, 236],
        ];
        let sc = dressed(480, 640, colours).with(Sitter::new(240.0, 100.0, 160.0));
        let (img, t) = in_grey(&sc);
        let s = find(&img).expect("subject");
        check_placement(&s, &t[0], 640.0, 0.12);
    }

    #[test]
    fn a_face_parted_from_hair_and_neck_is_one_head() {
        // Like cohort 00342, in these colours: the face's edge and the
        // neck are the backdrop's shade, so hair, face and body are three
        // blobs; the face sits on the body, the hair on the face.
        let colours = [
            [230, 180, 149],
            [70, 49, 34],
            [241, 234, 231],
            [238, 239, 234],
        ];
        let sc = dressed(480, 640, colours).with(Sitter::new(240.0, 90.0, 220.0));
        let (img, t) = in_grey(&sc);
        let s = find(&img).expect("subject");
        // The forehead is the backdrop's shade too: the head is measured
        // down to the hairline, where the hair is 0.85 of its widest, so
        // the face comes out 13% narrow.
        check_placement(&s, &t[0], 640.0, 0.15);
    }

    #[test]
    fn a_second_head_parted_from_its_shoulders_is_a_second_person() {
        // Like cohort 00000 of c31, in these colours: both necks in the
        // backdrop's shade; the first head is joined to the body, the
        // second is a blob beside it that must still count.
        let colours = [[228, 182, 153], [31, 28, 26], [34, 32, 39], [236, 235, 237]];
        let sc = dressed(700, 600, colours)
            .with(Sitter::new(230.0, 110.0, 150.0))
            .with(Sitter::new(470.0, 130.0, 140.0));
        let (img, _) = in_grey(&sc);
        assert_eq!(find(&img), Err(SubjectError::TwoPeople));
    }

    #[test]
    fn cut_off_at_top_is_flagged() {
        let (img, t) = paint(&Sitting::new(480, 640, BLUE).with(Sitter::new(240.0, -30.0, 260.0)));
        assert_eq!(t.expected_flag.as_deref(), Some("subject_cut_off"));
        assert_eq!(find(&img), Err(SubjectError::CutOffAtTop));
    }

    #[test]
    fn empty_backdrop_and_tiny_images() {
        let (img, none) = Sitting::new(300, 400, BLUE).render().expect("renders");
        assert!(none.is_empty());
        assert_eq!(find(&img), Err(SubjectError::NoSubject));
        let b = estimate_backdrop(&WorkingCopy::of(&img), &BackdropSettings::default())
            .expect("backdrop");
        let s = SubjectSettings::default();
        assert!(locate_subject(&WorkingCopy::of(&RgbImage::filled(1, 1, BLUE)), &b, &s).is_err());
        assert!(
            locate_subject(
                &WorkingCopy::of(&RgbImage::filled(10_000, 10, BLUE)),
                &b,
                &s
            )
            .is_err()
        );
    }
}
