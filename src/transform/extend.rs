//! Synthesised backdrop around the picture (see
//! [`crate::analysis::extend`]): the fitted backdrop plane continued past
//! the edge, plus the real backdrop's own texture (noise, grain, JPEG
//! artefacts) taken from the band of pure backdrop along that edge.
//!
//! The texture is the band's residual from the plane, mirrored at the edge
//! (so the first synthesised row continues the last real one with nothing
//! to see at the join) and, further out, mirrored back and forth, each pass
//! after the first shifted along the edge by a pseudo-random amount so that
//! no column (row) repeats the same few values into stripes. Colour,
//! gradient, noise level, noise correlation between channels and between
//! neighbouring pixels are the real backdrop's, by construction.

use crate::analysis::extend::ExtensionPlan;
use crate::image::RgbImage;

/// Mixes a pass number into a shift along the edge (SplitMix64's
/// finaliser): deterministic, so the same input gives the same bytes.
fn shift_for(pass: u32, len: u32) -> u32 {
    if pass == 0 || len == 0 {
        return 0;
    }
    let mut z = u64::from(pass).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(len)) as u32
}

/// Depth into a band of `band` lines, for the `k`-th synthesised line out
/// from the edge (0 next to it), and which pass of the band it is.
fn mirrored(k: u32, band: u32) -> (u32, u32) {
    let pass = k / band;
    let r = k % band;
    (
        if pass.is_multiple_of(2) {
            r
        } else {
            band - 1 - r
        },
        pass,
    )
}

/// The picture with `plan.added` pixels of synthesised backdrop on its
/// sides and top. The picture's own pixels are copied unchanged.
pub fn extend_canvas(img: &RgbImage, plan: &ExtensionPlan) -> RgbImage {
    let a = plan.added;
    let (w, h) = (img.width(), img.height());
    let (nw, nh) = (w + a.left + a.right, h + a.top);
    let stride = nw as usize * 3;
    let mut out = vec![0u8; stride * nh as usize];
    for y in 0..h {
        let o = (y + a.top) as usize * stride + a.left as usize * 3;
        out[o..o + w as usize * 3].copy_from_slice(img.row(y));
    }
    let plane = &plan.plane;
    // Picture coordinates (may be negative) of canvas pixel (x, y).
    let at = |x: u32, y: u32| {
        (
            f64::from(x) - f64::from(a.left),
            f64::from(y) - f64::from(a.top),
        )
    };
    let idx = |x: u32, y: u32| y as usize * stride + x as usize * 3;
    // One synthesised pixel: the plane at `dst`, plus the residual of the
    // real (or already synthesised) pixel at `src`.
    let fill = |out: &mut Vec<u8>, dst: (u32, u32), src: (u32, u32)| {
        let (sx, sy) = at(src.0, src.1);
        let (dx, dy) = at(dst.0, dst.1);
        let model_src = plane.at(sx, sy);
        let model_dst = plane.at(dx, dy);
        let (si, di) = (idx(src.0, src.1), idx(dst.0, dst.1));
        for ch in 0..3 {
            let v = model_dst[ch] + (f64::from(out[si + ch]) - model_src[ch]);
            out[di + ch] = v.round().clamp(0.0, 255.0) as u8;
        }
    };
    // Sides first, over the picture's rows; then the top, over the whole
    // new width, its band taking in the synthesised side columns.
    for (count, band, right) in [
        (a.left, plan.band_left, false),
        (a.right, plan.band_right, true),
    ] {
        if count == 0 {
            continue;
        }
        let band = band.clamp(1, w);
        for k in 0..count {
            let (depth, pass) = mirrored(k, band);
            let shift = shift_for(pass, h);
            let (dst_x, src_x) = if right {
                (a.left + w + k, a.left + w - 1 - depth)
            } else {
                (a.left - 1 - k, a.left + depth)
            };
            for y in 0..h {
                let src_y = (y + shift) % h + a.top;
                fill(&mut out, (dst_x, y + a.top), (src_x, src_y));
            }
        }
    }
    if a.top > 0 {
        let band = plan.band_top.clamp(1, h);
        for k in 0..a.top {
            let (depth, pass) = mirrored(k, band);
            let shift = shift_for(pass, nw);
            let (dst_y, src_y) = (a.top - 1 - k, a.top + depth);
            for x in 0..nw {
                fill(&mut out, (x, dst_y), ((x + shift) % nw, src_y));
            }
        }
    }
    RgbImage::new(nw, nh, out).expect("the buffer is sized for nw x nh")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::backdrop_model::BackdropPlane;
    use crate::analysis::colour::{ciede2000, srgb_to_lab};
    use crate::analysis::extend::Extension;
    use crate::testkit::synth::{Sitter, Sitting};

    /// Mean colour and per-channel standard deviation of rows `rows`.
    fn stats(
        img: &RgbImage,
        rows: std::ops::Range<u32>,
        cols: std::ops::Range<u32>,
    ) -> ([f64; 3], [f64; 3]) {
        let mut s = [0.0; 3];
        let mut q = [0.0; 3];
        let mut n = 0.0;
        for y in rows {
            for x in cols.clone() {
                let p = img.pixel(x, y);
                for c in 0..3 {
                    s[c] += f64::from(p[c]);
                    q[c] += f64::from(p[c]).powi(2);
                }
                n += 1.0;
            }
        }
        let mean = s.map(|v| v / n);
        let sd = [0, 1, 2].map(|c| (q[c] / n - mean[c] * mean[c]).max(0.0).sqrt());
        (mean, sd)
    }

    fn lab(c: [f64; 3]) -> [f64; 3] {
        srgb_to_lab(c.map(|v| v.round().clamp(0.0, 255.0) as u8))
    }

    /// A tall portrait with a light fall-off and visible noise; its top
    /// `cut` rows removed, then put back by extension: the synthesised rows
    /// must match the real ones they replace in colour, gradient and noise,
    /// and the join must not show.
    #[test]
    fn synthesised_backdrop_matches_the_real_one_and_the_join_does_not_show() {
        let mut sc = Sitting::new(600, 900, [90, 180, 230]).with(Sitter::new(300.0, 260.0, 220.0));
        sc.spec.backdrop_gradient = 0.05;
        sc.spec.noise = 6.0;
        let (full, _) = sc.render().expect("renders");
        let cut = 200;
        let picture = full.crop(crate::image::Rect::new(0, cut, 600, 900 - cut));
        let copy = crate::analysis::working_copy::WorkingCopy::of(&picture);
        let b = crate::analysis::backdrop::estimate_backdrop(
            &copy,
            &crate::analysis::backdrop::BackdropSettings::default(),
        )
        .expect("backdrop");
        let plan = ExtensionPlan {
            added: Extension {
                top: cut,
                left: 0,
                right: 0,
            },
            plane: BackdropPlane::fit(&copy, &b),
            band_top: 40,
            band_left: 0,
            band_right: 0,
        };
        let ext = extend_canvas(&picture, &plan);
        assert_eq!((ext.width(), ext.height()), (600, 900));
        // The picture itself is untouched.
        assert_eq!(ext.row(cut + 5), full.row(cut + 5));
        // Colour in bands of 40 rows, synthesised against real.
        for y0 in (0..cut).step_by(40) {
            let (m_syn, sd_syn) = stats(&ext, y0..y0 + 40, 0..600);
            let (m_real, sd_real) = stats(&full, y0..y0 + 40, 0..600);
            let de = ciede2000(lab(m_syn), lab(m_real));
            assert!(
                de < 1.0,
                "rows {y0}..: ΔE2000 {de:.2} ({m_syn:?} vs {m_real:?})"
            );
            for c in 0..3 {
                let ratio = sd_syn[c] / sd_real[c].max(0.1);
                assert!(
                    (0.8..1.25).contains(&ratio),
                    "rows {y0}.. channel {c}: noise {ratio:.2}x"
                );
            }
        }
        // The join: the step between the row means either side of it is no
        // bigger than between any two neighbouring real rows.
        let row_mean = |img: &RgbImage, y: u32| stats(img, y..y + 1, 0..600).0;
        let step = |img: &RgbImage, y: u32| {
            let (a, b) = (row_mean(img, y), row_mean(img, y + 1));
            (0..3).map(|c| (a[c] - b[c]).abs()).fold(0.0, f64::max)
        };
        let biggest_real = (cut + 1..cut + 60)
            .map(|y| step(&ext, y))
            .fold(0.0, f64::max);
        let at_join = step(&ext, cut - 1);
        assert!(
            at_join <= biggest_real.max(0.5),
            "join step {at_join:.2}, real steps up to {biggest_real:.2}"
        );
        // No stripes: the synthesised columns do not repeat with the band.
        let col = |y: u32| (0..600).map(|x| ext.pixel(x, y)).collect::<Vec<_>>();
        assert_ne!(col(cut - 1 - 80), col(cut - 1));
    }

    #[test]
    fn side_extension_continues_the_plane() {
        // A flat-plus-gradient backdrop alone (no person): extended on both
        // sides and the top, every synthesised pixel is the plane's colour
        // plus a residual from the picture.
        let img = RgbImage::new(
            40,
            30,
            (0..30)
                .flat_map(|y| (0..40).flat_map(move |x| [100 + x as u8, 150 + y as u8, 200]))
                .collect(),
        )
        .expect("image");
        let plane = BackdropPlane {
            coef: [[100.0, 1.0, 0.0], [150.0, 0.0, 1.0], [200.0, 0.0, 0.0]],
        };
        let plan = ExtensionPlan {
            added: Extension {
                top: 10,
                left: 5,
                right: 7,
            },
            plane,
            band_top: 8,
            band_left: 4,
            band_right: 4,
        };
        let ext = extend_canvas(&img, &plan);
        assert_eq!((ext.width(), ext.height()), (52, 40));
        for y in 0..40 {
            for x in 0..52 {
                let want = plane.rgb_at(f64::from(x) - 5.0, f64::from(y) - 10.0);
                assert_eq!(ext.pixel(x, y), want, "at {x},{y}");
            }
        }
    }

    #[test]
    fn mirrored_bands_continue_at_the_edge() {
        assert_eq!(mirrored(0, 4), (0, 0));
        assert_eq!(mirrored(3, 4), (3, 0));
        assert_eq!(mirrored(4, 4), (3, 1));
        assert_eq!(mirrored(7, 4), (0, 1));
        assert_eq!(mirrored(8, 4), (0, 2));
        assert_eq!(shift_for(0, 100), 0);
        assert!(shift_for(1, 100) < 100);
    }
}
