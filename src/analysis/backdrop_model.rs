//! A backdrop as a smooth field rather than one colour: each sRGB channel a
//! plane over the picture, `c(x, y) = a + b·x + c·y`, fitted to backdrop
//! pixels of the working copy. A studio light's fall-off across a paper or
//! cloth backdrop is close to linear over a portrait's frame, so a plane is
//! what lets synthesised backdrop (canvas extension) continue the real one,
//! and what a pixel is compared with to tell backdrop from person.

use crate::analysis::backdrop::Backdrop;
use crate::analysis::colour::{LabTable, delta_e76_squared, squared_bound};
use crate::analysis::working_copy::WorkingCopy;

/// Per channel `[a, b, c]` of `a + b·x + c·y`, with `x`, `y` in pixels of
/// the image the working copy was made from (pixel centres at integers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackdropPlane {
    pub coef: [[f64; 3]; 3],
}

/// CIE76 radius of the first fit's members around the backdrop's mean:
/// the backdrop estimate's own cluster radius.
const FIRST_RADIUS: f64 = 18.0;
/// ...and of the refit's around the first plane: with the fall-off
/// removed, backdrop pixels of the box-filtered copy lie within a few ΔE.
const REFIT_RADIUS: f64 = 8.0;

impl BackdropPlane {
    /// A flat field of one colour.
    pub fn flat(rgb: [f64; 3]) -> Self {
        BackdropPlane {
            coef: rgb.map(|v| [v, 0.0, 0.0]),
        }
    }

    /// The modelled colour at `(x, y)`, unclamped (the plane is
    /// extrapolated beyond the picture when the canvas is extended).
    #[inline]
    pub fn at(&self, x: f64, y: f64) -> [f64; 3] {
        self.coef.map(|[a, b, c]| a + b * x + c * y)
    }

    /// The modelled colour at `(x, y)` as 8-bit sRGB.
    #[cfg(test)]
    pub fn rgb_at(&self, x: f64, y: f64) -> [u8; 3] {
        self.at(x, y).map(|v| v.round().clamp(0.0, 255.0) as u8)
    }

    /// Fits the plane to the working copy's backdrop pixels in the upper
    /// 60% of the picture (where a head-and-shoulders portrait shows its
    /// backdrop): first those near the backdrop's mean colour, then, once
    /// the fall-off is known, those near the first plane. Falls back to the
    /// flat mean when too few pixels qualify for a stable fit.
    pub fn fit(copy: &WorkingCopy, backdrop: &Backdrop) -> Self {
        let work = &copy.work;
        let (w, h) = (work.width, work.height);
        let (sw, sh) = copy.source_size();
        let f = f64::from(work.factor);
        // Centre of working pixel `i`'s block, clipped at the far edge.
        let centre = |i: usize, len: u32| {
            let start = i as f64 * f;
            let end = (start + f).min(f64::from(len));
            (start + end) / 2.0 - 0.5
        };
        let xs: Vec<f64> = (0..w).map(|x| centre(x, sw)).collect();
        let ys: Vec<f64> = (0..h).map(|y| centre(y, sh)).collect();
        let upper = (h * 60 / 100).max(1);
        let lt = LabTable::new();
        let mut plane = Self::flat(backdrop.rgb.map(f64::from));
        let first = squared_bound(FIRST_RADIUS);
        let refit = squared_bound(REFIT_RADIUS);
        for pass in 0..2 {
            let mut normal = [[0.0f64; 3]; 3];
            let mut rhs = [[0.0f64; 3]; 3];
            let mut n = 0usize;
            for (y, &cy) in ys.iter().enumerate().take(upper) {
                for (x, &cx) in xs.iter().enumerate() {
                    let i = y * w + x;
                    let near = if pass == 0 {
                        delta_e76_squared(copy.lab[i], backdrop.lab) <= first
                    } else {
                        let m = plane.at(cx, cy).map(|v| v.clamp(0.0, 255.0) as f32);
                        delta_e76_squared(copy.lab[i], lt.lab_f(m)) <= refit
                    };
                    if !near {
                        continue;
                    }
                    let basis = [1.0, cx, cy];
                    let px = work.px[i];
                    for r in 0..3 {
                        for c in 0..3 {
                            normal[r][c] += basis[r] * basis[c];
                        }
                        for ch in 0..3 {
                            rhs[ch][r] += basis[r] * f64::from(px[ch]);
                        }
                    }
                    n += 1;
                }
            }
            if n < 16 {
                break;
            }
            let solved: Option<Vec<[f64; 3]>> = rhs.iter().map(|b| solve3(normal, *b)).collect();
            match solved {
                Some(s) => plane.coef = [s[0], s[1], s[2]],
                None => break,
            }
        }
        plane
    }
}

/// Solves the 3x3 system `m · v = b` by Cramer's rule; `None` when `m` is
/// (nearly) singular, as when every member lies on one row or column.
fn solve3(m: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(m);
    let scale = m[0][0] * m[1][1] * m[2][2];
    if !d.is_finite() || d.abs() <= 1e-9 * scale.abs().max(1e-300) {
        return None;
    }
    let mut out = [0.0; 3];
    for (col, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for row in 0..3 {
            mc[row][col] = b[row];
        }
        *o = det(mc) / d;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backdrop::{BackdropSettings, estimate_backdrop};
    use crate::testkit::synth::{Sitter, Sitting};

    #[test]
    fn solves_a_known_system() {
        let m = [[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]];
        let v = solve3(m, [4.0, 10.0, 14.0]).expect("regular");
        for (got, want) in v.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-9, "{v:?}");
        }
        assert!(
            solve3(
                [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]],
                [1.0; 3]
            )
            .is_none()
        );
    }

    #[test]
    fn fits_the_fall_off_of_a_gradient_backdrop() {
        // The generator's backdrop is `colour · (1 + g·(1 - 2t))` down the
        // picture: a plane in y.
        let mut sc = Sitting::new(360, 480, [100, 197, 255]).with(Sitter::new(180.0, 80.0, 150.0));
        sc.spec.backdrop_gradient = 0.06;
        sc.spec.backdrop = [90, 170, 220];
        let (img, _) = sc.render().expect("renders");
        let copy = WorkingCopy::of(&img);
        let b = estimate_backdrop(&copy, &BackdropSettings::default()).expect("backdrop");
        let plane = BackdropPlane::fit(&copy, &b);
        for (x, y) in [(5.0, 5.0), (350.0, 10.0), (10.0, 250.0), (350.0, 280.0)] {
            let t = (y + 0.5) / 480.0;
            let want = [90.0, 170.0, 220.0].map(|c: f64| c * (1.0 + 0.06 * (1.0 - 2.0 * t)));
            let got = plane.at(x, y);
            for ch in 0..3 {
                assert!(
                    (got[ch] - want[ch]).abs() < 1.5,
                    "at {x},{y}: {got:?} vs {want:?}"
                );
            }
        }
    }
}
