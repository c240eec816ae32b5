//! Where a photo's prints go on its sheets: as few sheets as the packer
//! can manage, each sheet turned portrait or landscape, whichever holds
//! more of what is left.
//!
//! Prints are never turned (a print is cut out and handed over; a turned
//! one would be easy to mount sideways), and every print keeps a gap
//! around it for its cut guides. Within a sheet, prints go on shelves,
//! tallest first, each print on the first shelf with room (first-fit
//! decreasing height), which for the sizes studios use packs the default
//! order onto two sheets of either paper, the fewest the 5-inch paper's
//! area allows.

use super::Paper;

/// Blank paper kept clear around the prints on the top, left and right,
/// in pixels at 300 dpi (2 mm): printers and labs crop a little.
pub const MARGIN: u32 = 24;
/// The bottom margin, which holds the label (5 mm).
pub const LABEL_MARGIN: u32 = 60;
/// Between two prints (2 mm): room for each one's cut guide and a blade.
pub const GAP: u32 = 24;

/// One print's place on a sheet: `item` indexes the sizes given to
/// [`lay_out`]; `x`, `y` are the print's top-left pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub item: usize,
    pub x: u32,
    pub y: u32,
}

/// A sheet: its pixel size (portrait or landscape) and what goes on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetLayout {
    pub width: u32,
    pub height: u32,
    pub placements: Vec<Placement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a {width}x{height} px print does not fit on {paper} paper with its margins")]
pub struct TooLarge {
    pub width: u32,
    pub height: u32,
    pub paper: &'static str,
}

/// Lays out prints of the given pixel sizes (one entry per print, the
/// count already expanded) on sheets of `paper`.
pub fn lay_out(sizes: &[(u32, u32)], paper: Paper) -> Result<Vec<SheetLayout>, TooLarge> {
    let (pw, ph) = paper.pixels();
    let orientations = [(pw, ph), (ph, pw)];
    for &(w, h) in sizes {
        if !orientations
            .iter()
            .any(|&(sw, sh)| usable(sw, sh).is_some_and(|(uw, uh)| w <= uw && h <= uh))
        {
            return Err(TooLarge {
                width: w,
                height: h,
                paper: paper.name(),
            });
        }
    }
    // Tallest first, then widest, then as given: deterministic.
    let mut left: Vec<usize> = (0..sizes.len()).collect();
    left.sort_by_key(|&i| {
        (
            std::cmp::Reverse(sizes[i].1),
            std::cmp::Reverse(sizes[i].0),
            i,
        )
    });
    let mut sheets = Vec::new();
    while !left.is_empty() {
        let best = orientations
            .iter()
            .map(|&(sw, sh)| shelve(sizes, &left, sw, sh))
            .max_by_key(|s| {
                // More paper used wins; portrait (first) on a tie.
                let area: u64 = s
                    .placements
                    .iter()
                    .map(|p| u64::from(sizes[p.item].0) * u64::from(sizes[p.item].1))
                    .sum();
                (area, std::cmp::Reverse(s.width))
            })
            .filter(|s| !s.placements.is_empty());
        let Some(sheet) = best else {
            break; // cannot happen: every size fits an empty sheet
        };
        left.retain(|i| !sheet.placements.iter().any(|p| p.item == *i));
        sheets.push(sheet);
    }
    Ok(sheets)
}

/// The area inside the margins.
fn usable(width: u32, height: u32) -> Option<(u32, u32)> {
    Some((
        width.checked_sub(2 * MARGIN)?,
        height.checked_sub(MARGIN + LABEL_MARGIN)?,
    ))
}

/// First-fit decreasing height of `order` (already tallest first) on one
/// sheet; what does not fit is left for the next.
fn shelve(sizes: &[(u32, u32)], order: &[usize], width: u32, height: u32) -> SheetLayout {
    let mut sheet = SheetLayout {
        width,
        height,
        placements: Vec::new(),
    };
    let Some((uw, uh)) = usable(width, height) else {
        return sheet;
    };
    // (top, height, next free x) of each shelf, relative to the margins.
    let mut shelves: Vec<(u32, u32, u32)> = Vec::new();
    for &i in order {
        let (w, h) = sizes[i];
        let on_shelf = shelves
            .iter_mut()
            .find(|(_, sh, x)| h <= *sh && x + w <= uw);
        let (x, y) = match on_shelf {
            Some((top, _, x)) => {
                let at = (*x, *top);
                *x += w + GAP;
                at
            }
            None => {
                let top = shelves.last().map_or(0, |(t, sh, _)| t + sh + GAP);
                if top + h > uh || w > uw {
                    continue;
                }
                shelves.push((top, h, w + GAP));
                (0, top)
            }
        };
        sheet.placements.push(Placement {
            item: i,
            x: MARGIN + x,
            y: MARGIN + y,
        });
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::{DEFAULT_ORDER, parse_order};

    fn default_sizes() -> Vec<(u32, u32)> {
        parse_order(DEFAULT_ORDER)
            .unwrap()
            .iter()
            .flat_map(|l| std::iter::repeat_n(l.pixels(), l.count as usize))
            .collect()
    }

    /// No print outside its sheet's margins, none overlapping another or
    /// its gap, every print placed once.
    fn assert_sound(sizes: &[(u32, u32)], sheets: &[SheetLayout]) {
        let mut seen = vec![0; sizes.len()];
        for s in sheets {
            for (n, p) in s.placements.iter().enumerate() {
                seen[p.item] += 1;
                let (w, h) = sizes[p.item];
                assert!(p.x >= MARGIN && p.y >= MARGIN, "{p:?}");
                assert!(p.x + w + MARGIN <= s.width, "{p:?} on {s:?}");
                assert!(p.y + h + LABEL_MARGIN <= s.height, "{p:?} on {s:?}");
                for q in &s.placements[n + 1..] {
                    let (qw, qh) = sizes[q.item];
                    let apart = p.x + w + GAP <= q.x
                        || q.x + qw + GAP <= p.x
                        || p.y + h + GAP <= q.y
                        || q.y + qh + GAP <= p.y;
                    assert!(apart, "{p:?} and {q:?} overlap on {s:?}");
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn the_default_order_takes_two_sheets_of_either_paper() {
        let sizes = default_sizes();
        for paper in [Paper::FiveInch, Paper::SixInch] {
            let sheets = lay_out(&sizes, paper).unwrap();
            assert_sound(&sizes, &sheets);
            assert_eq!(sheets.len(), 2, "{paper:?}: {sheets:?}");
        }
        // Two is the fewest on 5-inch paper: the prints alone cover more
        // than one sheet's area inside its margins.
        let area: u32 = sizes.iter().map(|(w, h)| w * h).sum();
        let (uw, uh) = usable(1050, 1500).unwrap();
        assert!(area > uw * uh);
    }

    #[test]
    fn small_orders_share_a_sheet_and_large_ones_fill_several() {
        let one = parse_order("一寸=8").unwrap()[0].pixels();
        let sheets = lay_out(&[one; 8], Paper::FiveInch).unwrap();
        assert_eq!(sheets.len(), 1, "{sheets:?}");
        assert_sound(&[one; 8], &sheets);
        // Portrait holds 3 x 3 of them, landscape 4 x 2: nine on one
        // sheet, ten on two.
        let nine = lay_out(&[one; 9], Paper::FiveInch).unwrap();
        assert_eq!(nine.len(), 1);
        assert!(nine[0].width < nine[0].height);
        assert_eq!(lay_out(&[one; 10], Paper::FiveInch).unwrap().len(), 2);
        let many = vec![one; 40];
        let sheets = lay_out(&many, Paper::SixInch).unwrap();
        assert_sound(&many, &sheets);
        let per_sheet = sheets[0].placements.len();
        assert_eq!(sheets.len(), 40usize.div_ceil(per_sheet));
    }

    #[test]
    fn a_print_larger_than_the_paper_is_refused() {
        let big = parse_order("120x120=1").unwrap()[0].pixels();
        assert!(lay_out(&[big], Paper::SixInch).is_err());
    }
}
