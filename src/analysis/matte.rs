//! An alpha matte of the person against the backdrop, for recolouring
//! (SPEC §2, "Backdrop recolouring"), computed on the 480x640 output.
//!
//! 1. The backdrop field: 8x8 blocks that look like backdrop (near the
//!    fitted plane, or the same colour darker, as in a shadow, and flat
//!    inside), reached from the top or side edges through such blocks; the
//!    rest filled in by pull-push interpolation, then bilinear per pixel.
//!    Light fall-off and a shadow behind the head are part of the field.
//! 2. Alpha from the colour difference to it: a pixel's difference from the
//!    backdrop projected on the difference between the person's nearby
//!    colour (confident person pixels, pull-push filled) and the backdrop,
//!    so a strand of hair over the backdrop gets its own coverage.
//! 3. Refined by a guided filter (He, Sun and Tang), guided by the picture,
//!    which smooths the noise out of the matte without blurring its edges.
//! 4. Confident person pixels keep alpha exactly 1: the person's own pixels
//!    are never changed.
//!
//! Separation is judged uncertain (the photo is then flagged, not
//! recoloured) when the person's torso or hair is matted as backdrop, or
//! when too little backdrop is seen to model it.

/// Side of the blocks the backdrop field is modelled on.
const BLOCK: usize = 8;
/// A refined alpha this close to 1 is the person: left exactly as it is.
const SNAP_PERSON: f32 = 0.97;

/// A matte and what it was made from.
#[derive(Clone, Debug)]
pub struct Matte {
    /// Coverage of the person, 0-1.
    pub alpha: Vec<f32>,
    /// The backdrop's colour behind each pixel.
    pub backdrop: Vec<[f32; 3]>,
}

/// Why a matte cannot be trusted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MatteError {
    #[error("too little plain backdrop to model it ({0:.0}% of the picture)")]
    NoBackdrop(f64),
    #[error(
        "{0:.1}% of the picture inside the person's outline has the backdrop's colour (clothes like the backdrop): recolouring would cut into the person"
    )]
    Pockets(f64),
    #[error(
        "the {0} cannot be told from the backdrop (only {1:.0}% separated): recolouring would cut into the person"
    )]
    Uncertain(&'static str, f64),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MatteSettings {
    /// Recolour at all (`--recolour`); off by default: see the README.
    pub enabled: bool,
    /// Guided filter radius (pixels) and regularisation (on a 0-1 scale).
    pub radius: usize,
    pub epsilon: f32,
    /// RGB distance from the backdrop beyond which a pixel is certainly
    /// the person.
    pub person_distance: f32,
    /// Least share of the torso and of the hair that must come out as the
    /// person for the separation to be trusted.
    pub min_separated: f64,
}

impl Default for MatteSettings {
    fn default() -> Self {
        MatteSettings {
            enabled: false,
            radius: 2,
            epsilon: 1e-3,
            person_distance: 60.0,
            min_separated: 0.9,
        }
    }
}

/// Where the person is in the picture, from the subject stage: the head's
/// centre column and its crown and eye rows, in the picture's pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadPlace {
    pub center_x: f64,
    pub crown_y: f64,
    pub eye_y: f64,
}

fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Pull-push interpolation: `known` cells keep their values, the others get
/// a smooth fill from them (coarser and coarser means, pushed back down).
fn pull_push(values: &mut [[f32; 3]], known: &mut [f32], w: usize, h: usize) {
    if w <= 1 && h <= 1 {
        return;
    }
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut cv = vec![[0f32; 3]; cw * ch];
    let mut ck = vec![0f32; cw * ch];
    for y in 0..h {
        for x in 0..w {
            let (i, j) = (y * w + x, (y / 2) * cw + x / 2);
            let k = known[i];
            ck[j] += k;
            for c in 0..3 {
                cv[j][c] += values[i][c] * k;
            }
        }
    }
    for j in 0..cw * ch {
        if ck[j] > 0.0 {
            cv[j] = cv[j].map(|v| v / ck[j]);
            ck[j] = ck[j].min(1.0);
        }
    }
    pull_push(&mut cv, &mut ck, cw, ch);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if known[i] < 1.0 {
                let k = known[i];
                let fill = cv[(y / 2) * cw + x / 2];
                for c in 0..3 {
                    values[i][c] = values[i][c] * k + fill[c] * (1.0 - k);
                }
                known[i] = 1.0;
            }
        }
    }
}

/// Box means of `v` over `(2r+1)^2` windows clamped at the edges (summed
/// area table, so the cost does not grow with `r`).
fn box_mean(v: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut sat = vec![0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0f64;
        for x in 0..w {
            row += f64::from(v[y * w + x]);
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let mut out = vec![0f32; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = sat[y1 * (w + 1) + x1] - sat[y0 * (w + 1) + x1] - sat[y1 * (w + 1) + x0]
                + sat[y0 * (w + 1) + x0];
            out[y * w + x] = (s / ((x1 - x0) * (y1 - y0)) as f64) as f32;
        }
    }
    out
}

/// The guided filter of `p` with the grey guide `guide` (both 0-1).
pub fn guided_filter(guide: &[f32], p: &[f32], w: usize, h: usize, r: usize, eps: f32) -> Vec<f32> {
    let mean_i = box_mean(guide, w, h, r);
    let mean_p = box_mean(p, w, h, r);
    let ii: Vec<f32> = guide.iter().map(|v| v * v).collect();
    let ip: Vec<f32> = guide.iter().zip(p).map(|(a, b)| a * b).collect();
    let corr_i = box_mean(&ii, w, h, r);
    let corr_ip = box_mean(&ip, w, h, r);
    let mut a = vec![0f32; w * h];
    let mut b = vec![0f32; w * h];
    for k in 0..w * h {
        let var = corr_i[k] - mean_i[k] * mean_i[k];
        let cov = corr_ip[k] - mean_i[k] * mean_p[k];
        a[k] = cov / (var + eps);
        b[k] = mean_p[k] - a[k] * mean_i[k];
    }
    let (ma, mb) = (box_mean(&a, w, h, r), box_mean(&b, w, h, r));
    (0..w * h).map(|k| ma[k] * guide[k] + mb[k]).collect()
}

/// The plane-free test of a block: its colour is the backdrop model's, or
/// the same colour darker (a shadow), and it is flat inside.
fn looks_like_backdrop(mean: [f32; 3], spread: f32, model: [f32; 3], noise: f32) -> bool {
    if spread > 3.0 * noise + 6.0 {
        return false;
    }
    if dist(mean, model) <= 24.0 {
        return true;
    }
    let dot: f32 = (0..3).map(|c| mean[c] * model[c]).sum();
    let (nm, nb) = (
        (0..3).map(|c| mean[c] * mean[c]).sum::<f32>().sqrt(),
        (0..3).map(|c| model[c] * model[c]).sum::<f32>().sqrt(),
    );
    if nm == 0.0 || nb == 0.0 {
        return false;
    }
    let k = nm / nb;
    dot / (nm * nb) >= 0.998 && (0.45..=1.08).contains(&k)
}

/// The matte of the person in `rgb` (`width` x `height`, interleaved),
/// whose backdrop is modelled around `model` (the plane's colour at each
/// pixel) and `dominant` (its commonest colour: a shadow tilts a plane, and
/// the unshadowed backdrop is then far from it). `head` says where the
/// hair and the torso must be.
pub fn compute_matte(
    rgb: &[u8],
    width: usize,
    height: usize,
    model: impl Fn(usize, usize) -> [f32; 3],
    dominant: [f32; 3],
    head: HeadPlace,
    settings: &MatteSettings,
) -> Result<Matte, MatteError> {
    let (w, h) = (width, height);
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [rgb[i], rgb[i + 1], rgb[i + 2]].map(f32::from)
    };
    // 1. Blocks, their means and spreads.
    let (bw, bh) = (w.div_ceil(BLOCK), h.div_ceil(BLOCK));
    let mut means = vec![[0f32; 3]; bw * bh];
    let mut spreads = vec![0f32; bw * bh];
    for by in 0..bh {
        for bx in 0..bw {
            let (mut s, mut q, mut n) = ([0f32; 3], 0f32, 0f32);
            for y in by * BLOCK..((by + 1) * BLOCK).min(h) {
                for x in bx * BLOCK..((bx + 1) * BLOCK).min(w) {
                    let p = px(x, y);
                    for c in 0..3 {
                        s[c] += p[c];
                    }
                    q += p.iter().map(|v| v * v).sum::<f32>();
                    n += 1.0;
                }
            }
            let m = s.map(|v| v / n);
            let var = q / n - m.iter().map(|v| v * v).sum::<f32>();
            means[by * bw + bx] = m;
            spreads[by * bw + bx] = (var.max(0.0) / 3.0).sqrt();
        }
    }
    // Noise of the backdrop: the median spread of blocks near the model.
    let centre = |b: usize| ((b * BLOCK + BLOCK / 2).min(w - 1), b);
    let mut near: Vec<f32> = (0..bw * bh)
        .filter(|&j| {
            let (bx, by) = (j % bw, j / bw);
            let m = model(centre(bx).0, (by * BLOCK + BLOCK / 2).min(h - 1));
            dist(means[j], m) <= 24.0
        })
        .map(|j| spreads[j])
        .collect();
    near.sort_by(f32::total_cmp);
    let noise = near.get(near.len() / 2).copied().unwrap_or(4.0);
    let like: Vec<bool> = (0..bw * bh)
        .map(|j| {
            let (bx, by) = (j % bw, j / bw);
            let m = model(
                (bx * BLOCK + BLOCK / 2).min(w - 1),
                (by * BLOCK + BLOCK / 2).min(h - 1),
            );
            looks_like_backdrop(means[j], spreads[j], m, noise)
                || looks_like_backdrop(means[j], spreads[j], dominant, noise)
        })
        .collect();
    // Reached from the top or the sides (not the bottom, where the person
    // leaves the frame) through backdrop-like blocks.
    let mut reached = vec![false; bw * bh];
    let mut stack: Vec<usize> = (0..bw * bh)
        .filter(|&j| {
            let (bx, by) = (j % bw, j / bw);
            like[j] && (by == 0 || bx == 0 || bx == bw - 1)
        })
        .collect();
    while let Some(j) = stack.pop() {
        if reached[j] {
            continue;
        }
        reached[j] = true;
        let (bx, by) = (j % bw, j / bw);
        let mut push = |x: usize, y: usize| {
            let k = y * bw + x;
            if like[k] && !reached[k] {
                stack.push(k);
            }
        };
        if bx > 0 {
            push(bx - 1, by);
        }
        if bx + 1 < bw {
            push(bx + 1, by);
        }
        if by > 0 {
            push(bx, by - 1);
        }
        if by + 1 < bh {
            push(bx, by + 1);
        }
    }
    let seen = reached.iter().filter(|r| **r).count() as f64 / (bw * bh) as f64;
    if seen < 0.08 {
        return Err(MatteError::NoBackdrop(seen * 100.0));
    }
    // Blocks within `NEAR` blocks of the reached backdrop: the only place
    // the person's outline can be. Farther in is the person, whatever its
    // colour (white eyes or a pale shirt on a white backdrop).
    const NEAR: usize = 3;
    let mut near_backdrop = vec![false; bw * bh];
    for j in (0..bw * bh).filter(|&j| reached[j]) {
        let (bx, by) = (j % bw, j / bw);
        for y in by.saturating_sub(NEAR)..(by + NEAR + 1).min(bh) {
            for x in bx.saturating_sub(NEAR)..(bx + NEAR + 1).min(bw) {
                near_backdrop[y * bw + x] = true;
            }
        }
    }
    // Backdrop-looking blocks the backdrop does not reach: clothes of the
    // backdrop's colour inside the person's outline (a white shirt on
    // white). A few are noise; a patch means the person and the backdrop
    // cannot be told apart there.
    let pockets = (0..bw * bh).filter(|&j| like[j] && !reached[j]).count();
    if pockets * 100 > bw * bh {
        return Err(MatteError::Pockets(
            pockets as f64 * 100.0 / (bw * bh) as f64,
        ));
    }
    let mut field = means.clone();
    let mut known: Vec<f32> = reached.iter().map(|r| f32::from(u8::from(*r))).collect();
    pull_push(&mut field, &mut known, bw, bh);
    // Bilinear between block centres.
    let mut backdrop = vec![[0f32; 3]; w * h];
    for y in 0..h {
        let fy = ((y as f32 + 0.5) / BLOCK as f32 - 0.5).clamp(0.0, (bh - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(bh - 1);
        for x in 0..w {
            let fx = ((x as f32 + 0.5) / BLOCK as f32 - 0.5).clamp(0.0, (bw - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(bw - 1);
            let (a, b, c, d) = (
                field[y0 * bw + x0],
                field[y0 * bw + x1],
                field[y1 * bw + x0],
                field[y1 * bw + x1],
            );
            backdrop[y * w + x] = [0, 1, 2].map(|k| {
                (a[k] * (1.0 - tx) + b[k] * tx) * (1.0 - ty) + (c[k] * (1.0 - tx) + d[k] * tx) * ty
            });
        }
    }

    // 2. Alpha by projection on the person's nearby colour. The person's
    // colour is known where a pixel is far from the backdrop and so are
    // all its neighbours within `ERODE` px (soft edges and strands are
    // mixtures, not the person's colour); elsewhere it is filled in.
    const ERODE: usize = 3;
    let low = 3.0 * noise + 3.0;
    let far = settings.person_distance.max(low * 2.0);
    let inner = |x: usize, y: usize| !near_backdrop[(y / BLOCK) * bw + x / BLOCK];
    let mut diff = vec![0f32; w * h];
    let mut far_mask = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            diff[i] = dist(px(x, y), backdrop[i]);
            far_mask[i] = f32::from(u8::from(diff[i] >= far || inner(x, y)));
        }
    }
    let eroded = box_mean(&far_mask, w, h, ERODE);
    let seed: Vec<bool> = eroded.iter().map(|m| *m >= 1.0).collect();
    let mut fg_field = vec![[0f32; 3]; w * h];
    let mut fg_known = vec![0f32; w * h];
    for i in (0..w * h).filter(|&i| seed[i]) {
        fg_field[i] = px(i % w, i / w);
        fg_known[i] = 1.0;
    }
    pull_push(&mut fg_field, &mut fg_known, w, h);
    let mut alpha = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if seed[i] || inner(x, y) {
                alpha[i] = 1.0;
                continue;
            }
            if diff[i] <= low {
                continue;
            }
            let p = px(x, y);
            let (b, f) = (backdrop[i], fg_field[i]);
            let fb: [f32; 3] = [0, 1, 2].map(|c| f[c] - b[c]);
            let len2: f32 = fb.iter().map(|v| v * v).sum();
            let a = if len2 < (2.0 * low).powi(2) {
                // The person's colour here is close to the backdrop's:
                // no projection to trust; count it as the person.
                1.0
            } else {
                (0..3).map(|c| (p[c] - b[c]) * fb[c]).sum::<f32>() / len2
            };
            alpha[i] = a.clamp(0.0, 1.0);
        }
    }

    // 3. Guided filter, guided by the picture's grey.
    let guide: Vec<f32> = (0..w * h)
        .map(|i| {
            let p = px(i % w, i / w);
            (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0
        })
        .collect();
    let refined = guided_filter(&guide, &alpha, w, h, settings.radius, settings.epsilon);
    for i in 0..w * h {
        // 4. The person's own pixels stay exactly 1, plain backdrop 0.
        alpha[i] = if seed[i] || inner(i % w, i / w) || refined[i] >= SNAP_PERSON {
            1.0
        } else if diff[i] <= low && refined[i] < 0.1 {
            0.0
        } else {
            refined[i].clamp(0.0, 1.0)
        };
    }

    // Uncertainty: the torso (bottom centre) and the hair (between crown
    // and eyes, at the head's centre) must come out as the person.
    let share = |x0: f64, x1: f64, y0: f64, y1: f64| {
        let (x0, x1) = (x0.max(0.0) as usize, (x1.max(0.0) as usize).min(w));
        let (y0, y1) = (y0.max(0.0) as usize, (y1.max(0.0) as usize).min(h));
        let mut s = 0f64;
        let mut n = 0f64;
        for y in y0..y1 {
            for x in x0..x1 {
                s += f64::from(alpha[y * w + x]);
                n += 1.0;
            }
        }
        if n == 0.0 { 1.0 } else { s / n }
    };
    let (cx, fw) = (head.center_x, w as f64);
    let torso = share(cx - fw * 0.2, cx + fw * 0.2, h as f64 * 0.92, h as f64);
    if torso < settings.min_separated {
        return Err(MatteError::Uncertain("clothing", torso * 100.0));
    }
    let mid = (head.crown_y + head.eye_y) / 2.0;
    let gap = (head.eye_y - head.crown_y).max(4.0);
    let hair = share(cx - gap * 0.4, cx + gap * 0.4, mid - gap * 0.3, mid);
    if hair < settings.min_separated {
        return Err(MatteError::Uncertain("hair", hair * 100.0));
    }
    Ok(Matte { alpha, backdrop })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guided filter by its definition, window by window.
    fn naive_guided(g: &[f32], p: &[f32], w: usize, h: usize, r: usize, eps: f32) -> Vec<f32> {
        let window = |x: usize, y: usize| {
            let mut idx = Vec::new();
            for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                    idx.push(yy * w + xx);
                }
            }
            idx
        };
        let mut a = vec![0f32; w * h];
        let mut b = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let ix = window(x, y);
                let n = ix.len() as f32;
                let mi = ix.iter().map(|&k| g[k]).sum::<f32>() / n;
                let mp = ix.iter().map(|&k| p[k]).sum::<f32>() / n;
                let var = ix.iter().map(|&k| (g[k] - mi).powi(2)).sum::<f32>() / n;
                let cov = ix.iter().map(|&k| (g[k] - mi) * (p[k] - mp)).sum::<f32>() / n;
                a[y * w + x] = cov / (var + eps);
                b[y * w + x] = mp - a[y * w + x] * mi;
            }
        }
        (0..w * h)
            .map(|k| {
                let ix = window(k % w, k / w);
                let n = ix.len() as f32;
                let ma = ix.iter().map(|&j| a[j]).sum::<f32>() / n;
                let mb = ix.iter().map(|&j| b[j]).sum::<f32>() / n;
                ma * g[k] + mb
            })
            .collect()
    }

    #[test]
    fn guided_filter_matches_its_definition_and_keeps_edges() {
        let (w, h) = (23, 17);
        let mut s = 12345u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        // A step in the guide, a noisy step in the input.
        let g: Vec<f32> = (0..w * h)
            .map(|k| if k % w < 11 { 0.2 } else { 0.8 })
            .collect();
        let p: Vec<f32> = (0..w * h)
            .map(|k| if k % w < 11 { 0.0 } else { 1.0 } + (rnd() - 0.5) * 0.2)
            .collect();
        let fast = guided_filter(&g, &p, w, h, 2, 1e-3);
        let slow = naive_guided(&g, &p, w, h, 2, 1e-3);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        // The edge stays sharp: columns either side of it keep their sides.
        for y in 0..h {
            assert!(
                fast[y * w + 10] < 0.15 && fast[y * w + 11] > 0.85,
                "row {y}"
            );
        }
        // And the noise is smoothed away from it.
        let var = |v: &[f32]| {
            let side: Vec<f32> = (0..w * h).filter(|k| k % w < 8).map(|k| v[k]).collect();
            let m = side.iter().sum::<f32>() / side.len() as f32;
            side.iter().map(|x| (x - m).powi(2)).sum::<f32>() / side.len() as f32
        };
        assert!(var(&fast) < var(&p) * 0.5);
    }

    #[test]
    fn pull_push_fills_from_the_known_cells() {
        let (w, h) = (9, 5);
        let mut v = vec![[0f32; 3]; w * h];
        let mut k = vec![0f32; w * h];
        v[0] = [10.0, 20.0, 30.0];
        k[0] = 1.0;
        v[w * h - 1] = [10.0, 20.0, 30.0];
        k[w * h - 1] = 1.0;
        pull_push(&mut v, &mut k, w, h);
        assert!(v.iter().all(|c| *c == [10.0, 20.0, 30.0]), "{v:?}");
    }
}
