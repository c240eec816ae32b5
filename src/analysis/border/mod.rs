//! Frames added by scanning or exporting (SPEC §3): found per side and
//! measured in pixels, so they can be removed before anything else looks at
//! the picture.
//!
//! A frame is told from the picture by its inner edge, not by its colour: a
//! band of lines, each uniform along its length, that ends at a straight
//! step where the colour changes along most of the line at once. Backdrop
//! headroom is just as uniform, but where it ends (at the crown) only a few
//! pixels of the line change; a white shirt touching the bottom edge never
//! spans the whole line with a straight top. Double frames (white, a thin
//! dark rule, maybe white again) are several uniform bands in a row, and the
//! outermost-to-innermost run of steps is removed as one frame.

use serde::{Deserialize, Serialize};

use crate::image::{Rect, RgbImage};

mod lines;

use lines::{Along, Planes, WINDOW, close, distance, median, median_near, near_and_deviation};

/// Tuning of the frame search. Defaults are chosen for 8-bit photos that
/// went through JPEG at ordinary qualities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BorderSettings {
    /// Largest frame looked for, as a fraction of the side. SPEC asks for a
    /// quarter of the photo; exports that shrink a framed photo (or frame
    /// a small one) leave frames of up to a third, and the search stops at
    /// the first line that is not uniform anyway.
    pub max_fraction: f64,
    /// A pixel belongs to a line's colour when no channel differs from the
    /// line's median by more than this. Covers sensor noise and the ringing
    /// JPEG leaves next to a sharp frame edge.
    pub uniform_tolerance: u8,
    /// Share of a line's pixels that must be within `uniform_tolerance` for
    /// the line to count as part of a frame.
    pub uniform_fraction: f64,
    /// A pixel of the picture differs from the frame when some channel is
    /// further than this from the frame colour.
    pub step_tolerance: u8,
    /// Share of the line just inside the frame that must differ from it: the
    /// straight-edge test that keeps backdrop headroom and shirts untouched.
    pub step_fraction: f64,
    /// The same, for a side continuing a frame seen on another side, when
    /// the change is sudden (see `Scanner::scan`).
    pub matched_step_fraction: f64,
    /// Samples taken along each line (evenly spaced, each the mean of a few
    /// neighbouring pixels); frames run the whole length, so sampling along
    /// the line loses nothing.
    pub samples_per_line: u32,
    /// A band whose flattest line deviates from its median by at most this
    /// (mean over the line, levels) is flat like a drawn frame, and its end
    /// is looked for with the fine tolerance too.
    pub flat_deviation: f64,
    /// Step tolerance against a flat band, plus four times its deviation.
    pub fine_step_tolerance: u8,
    /// Two lines whose median colours both differ by more than this (some
    /// channel, levels) from every flat line of the band end it.
    pub fine_median_shift: u8,
    /// A line just inside a frame that is at least this share frame colour
    /// is removed with the frame (rounding outward at reduced scale).
    pub partial_share: f64,
    /// Mean neighbour-to-neighbour difference (levels) from which a flat
    /// line may be an ordered dither (see `Scanner::dithered`).
    pub dither_ripple: f64,
    /// A band none of whose lines deviates from its median by less than
    /// this (levels) is texture, not a frame, however uniform its lines
    /// look to the coarse tolerance (a dithered dark suit).
    pub frame_deviation: f64,
    /// How much more ripple than the flat band the lines after it need to
    /// count as the picture's texture (see `Scanner::textured`).
    pub texture_ripple: f64,
    /// Tolerance of the texture test against a flat band, plus four times
    /// its deviation: a drawn frame has no noise to allow for.
    pub texture_tolerance: u8,
}

impl Default for BorderSettings {
    fn default() -> Self {
        BorderSettings {
            max_fraction: 0.4,
            uniform_tolerance: 32,
            uniform_fraction: 0.85,
            step_tolerance: 40,
            step_fraction: 0.5,
            matched_step_fraction: 0.1,
            samples_per_line: 256,
            flat_deviation: 1.5,
            fine_step_tolerance: 8,
            fine_median_shift: 4,
            partial_share: 0.08,
            dither_ripple: 2.0,
            frame_deviation: 8.0,
            texture_ripple: 0.5,
            texture_tolerance: 2,
        }
    }
}

/// Pixels of frame found on each side (0 where there is none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Borders {
    pub top: u32,
    pub bottom: u32,
    pub left: u32,
    pub right: u32,
}

impl Borders {
    /// The picture inside the frame. Never empty: `find_borders` guarantees
    /// at least one pixel is left, and this clamps defensively for hand-made
    /// values.
    pub fn inner(&self, width: u32, height: u32) -> Rect {
        let x = self.left.min(width.saturating_sub(1));
        let y = self.top.min(height.saturating_sub(1));
        let w = width
            .saturating_sub(self.left.saturating_add(self.right))
            .max(1);
        let h = height
            .saturating_sub(self.top.saturating_add(self.bottom))
            .max(1);
        Rect::new(x, y, w.min(width - x), h.min(height - y))
    }

    pub fn is_none(&self) -> bool {
        self.top == 0 && self.bottom == 0 && self.left == 0 && self.right == 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

/// What the search found on one side.
#[derive(Clone, Copy, Debug, Default)]
struct Scan {
    width: u32,
    /// The frame's outermost colour.
    colour: Option<[u8; 3]>,
    /// A thin rule that ended the frame: its width and colour.
    rule: Option<(u32, [u8; 3])>,
    /// Colours of the first two lines just inside the frame, where uniform:
    /// at reduced scale the first may be a frame colour smeared into what
    /// follows.
    after: [Option<[u8; 3]>; 2],
}

/// One line parallel to a side: its median colour, how uniform it is, and
/// how flat (mean deviation from the median, largest channel).
#[derive(Clone, Copy, Default)]
struct Line {
    colour: [u8; 3],
    uniform: bool,
    deviation: f64,
    /// Mean difference between neighbouring pixels inside a sample's
    /// window (largest channel): noise shows in it and in `deviation`
    /// alike, an ordered dither only here, as its pattern averages out
    /// within the window.
    ripple: f64,
}

/// Lines before the one tested that the fine step test compares it with.
const FINE_LOOKBACK: u32 = 6;

/// The lines of one side sampled over one span, and what they showed.
#[derive(Default)]
struct Sampled {
    span: Option<(u32, u32)>,
    /// Start of each sample's window along the line, and its length.
    starts: Vec<u32>,
    win: u32,
    /// Samples of lines `0..lines.len()`, `starts.len()` per line and
    /// channel (see [`Planes`]).
    samples: Vec<u8>,
    lines: Vec<Line>,
}

/// The lines of each side, sampled once each and kept while the frame is
/// searched: the step tests look at a line up to three times, and the later
/// passes look at a side again, often over the same span.
struct Scanner<'a> {
    img: &'a RgbImage,
    s: &'a BorderSettings,
    side: Side,
    /// The side being searched.
    cur: Sampled,
    /// The other sides, as last sampled.
    kept: [Sampled; 4],
}

impl<'a> Scanner<'a> {
    fn new(img: &'a RgbImage, s: &'a BorderSettings) -> Self {
        Scanner {
            img,
            s,
            side: Side::Top,
            cur: Sampled::default(),
            kept: Default::default(),
        }
    }

    /// Starts on `side`, sampling lines over `span` along them.
    fn reset(&mut self, side: Side, span: (u32, u32)) {
        std::mem::swap(&mut self.cur, &mut self.kept[self.side as usize]);
        self.side = side;
        std::mem::swap(&mut self.cur, &mut self.kept[side as usize]);
        if self.cur.span == Some(span) {
            return;
        }
        let cur = &mut self.cur;
        cur.span = Some(span);
        cur.samples.clear();
        cur.lines.clear();
        cur.starts.clear();
        let len = span.1.saturating_sub(span.0);
        let win = WINDOW.min(len);
        cur.win = win.max(1);
        if win == 0 {
            return;
        }
        let n = (len / win).min(self.s.samples_per_line.max(1));
        // Evenly spaced windows from one end of the span to the other.
        let room = u64::from(len - win);
        let last = u64::from(n.saturating_sub(1).max(1));
        cur.starts
            .extend((0..u64::from(n)).map(|k| span.0 + (k * room / last) as u32));
    }

    /// Room for the lines a scan up to line `limit` may read (the step
    /// tests look a few lines past it), so the buffers do not grow line by
    /// line on a side that is uniform all the way.
    fn reserve(&mut self, limit: u32) {
        let lines = (limit.saturating_add(WINDOW + 2)).min(self.depth()) as usize;
        let cur = &mut self.cur;
        cur.lines.reserve(lines.saturating_sub(cur.lines.len()));
        let bytes = lines * 3 * cur.starts.len();
        cur.samples.reserve(bytes.saturating_sub(cur.samples.len()));
    }

    fn depth(&self) -> u32 {
        match self.side {
            Side::Top | Side::Bottom => self.img.height(),
            Side::Left | Side::Right => self.img.width(),
        }
    }

    /// Samples of line `i` (counted inward from the side); empty past the
    /// far edge or for an empty span.
    fn line_samples(&mut self, i: u32) -> Planes<'_> {
        let n = self.cur.starts.len();
        if i >= self.depth() || n == 0 {
            return [&[]; 3];
        }
        while self.cur.lines.len() <= i as usize {
            let k = self.cur.lines.len() as u32;
            let ripple = self.sample(k);
            let line = self.stats(k, ripple);
            self.cur.lines.push(line);
        }
        self.planes(i)
    }

    /// Samples of line `i` as far as sampled; empty past that.
    fn planes(&self, i: u32) -> Planes<'_> {
        let n = self.cur.starts.len();
        let range = i as usize * 3 * n..(i as usize + 1) * 3 * n;
        let Some(line) = self.cur.samples.get(range) else {
            return [&[]; 3];
        };
        let (r, gb) = line.split_at(n);
        let (g, b) = gb.split_at(n);
        [r, g, b]
    }

    fn line(&mut self, i: u32) -> Option<Line> {
        if self.line_samples(i)[0].is_empty() {
            return None;
        }
        Some(self.cur.lines[i as usize])
    }

    /// Appends the samples of line `k`, reading the image's rows directly;
    /// returns the line's ripple (see [`Line`]).
    fn sample(&mut self, k: u32) -> f64 {
        let (w, h) = (self.img.width() as usize, self.img.height() as usize);
        let win = self.cur.win as usize;
        let k = k as usize;
        // Offset of the line's first pixel and the step between pixels along
        // it, in bytes.
        let (origin, step, next) = match self.side {
            Side::Top => (k * w * 3, 3, w as isize * 3),
            Side::Bottom => ((h - 1 - k) * w * 3, 3, -(w as isize) * 3),
            Side::Left => (k * 3, w * 3, 3),
            Side::Right => ((w - 1 - k) * 3, w * 3, -3),
        };
        let n = self.cur.starts.len();
        let at = self.cur.samples.len();
        self.cur.samples.resize(at + 3 * n, 0);
        let line = Along {
            bytes: self.img.as_bytes(),
            origin,
            step,
            win,
            next,
        };
        let ripple = line.sample(&self.cur.starts, &mut self.cur.samples[at..]);
        let pairs = n * win.saturating_sub(1);
        f64::from(ripple) / pairs.max(1) as f64
    }

    fn stats(&self, k: u32, ripple: f64) -> Line {
        let n = self.cur.starts.len();
        let px = self.planes(k);
        let outer = k
            .checked_sub(1)
            .and_then(|j| self.cur.lines.get(j as usize));
        let colour = outer.map_or_else(|| median(px), |o| median_near(px, o.colour));
        let (near, dev) = near_and_deviation(px, colour, self.s.uniform_tolerance);
        Line {
            colour,
            uniform: near as f64 >= self.s.uniform_fraction * n as f64,
            deviation: f64::from(dev) / n.max(1) as f64,
            ripple,
        }
    }

    /// Share of line `i` further than `tol` from `colour`.
    fn differing(&mut self, i: u32, colour: [u8; 3], tol: u8) -> f64 {
        let px = self.line_samples(i);
        let n = px[0].len();
        if n == 0 {
            return 0.0;
        }
        let far = n - near_and_deviation(px, colour, tol).0 as usize;
        far as f64 / n as f64
    }

    /// How much of the frame's colour line `i` holds, as a share of a pixel:
    /// the least-squares fit of line `i` as a mix of `frame` and line `i + 1`
    /// at the same positions. A reduced decode averages the frame's last
    /// original pixels into the picture's first.
    fn frame_share(&mut self, i: u32, frame: [u8; 3]) -> f64 {
        self.line_samples(i);
        self.line_samples(i + 1);
        let (p, q) = (self.planes(i), self.planes(i + 1));
        let n = p[0].len();
        let (mut num, mut den) = (0.0, 0.0);
        for j in 0..n.min(q[0].len()) {
            for c in 0..3 {
                let (a, b) = (p[c][j], q[c][j]);
                let d = f64::from(frame[c]) - f64::from(b);
                num += (f64::from(a) - f64::from(b)) * d;
                den += d * d;
            }
        }
        // Where frame and picture are nearly alike the mix cannot be told.
        if den < 3.0 * 20.0 * 20.0 * n as f64 {
            0.0
        } else {
            num / den
        }
    }

    /// Frame width on `side`, looking at lines over `span` only (the part not
    /// covered by frames on the neighbouring sides).
    ///
    /// Two step tests: the coarse one (`step_tolerance`) for frames that
    /// went through noise and ringing; and, while the band is flat as only
    /// a drawn frame is, a fine one against its flattest line, which tells
    /// a black frame from a dark suit or a white frame from white clothes
    /// that differ from it by a few levels over the whole line. Only for the
    /// outermost band or one of a frame colour seen elsewhere: past a step,
    /// a dithered backdrop is just as flat, and its dither changing phase
    /// would pass for a step.
    ///
    /// `matching`: the colour of a frame found on another side. A band of
    /// that colour may end where the picture touches it with something of
    /// its own colour over most of the line (a black frame on a dark suit),
    /// so there a sudden change over a smaller share of the line, out of a
    /// band that was all one colour, is a step too.
    fn scan(
        &mut self,
        side: Side,
        span: (u32, u32),
        step_fraction: f64,
        matching: Option<[u8; 3]>,
    ) -> Scan {
        self.reset(side, span);
        let depth = self.depth();
        // "A quarter of the side" may mean the side before or after framing;
        // two lines of slack keep a frame of exactly a quarter findable. The
        // content behind it is needed to see the step, hence `< depth`.
        let limit = ((f64::from(depth) * self.s.max_fraction).floor() as u32 + 2)
            .min(depth.saturating_sub(1));
        self.reserve(limit);
        let coarse = self.s.step_tolerance;
        let mut best = 0;
        // First and last line (exclusive) of the rule, and its colour.
        let mut rule: Option<(u32, u32, [u8; 3])> = None;
        let mut after = [None; 2];
        let mut band: Option<[u8; 3]> = None;
        // The flattest line of the band since the last step: the frame's
        // true colour, away from the ringing at its edges.
        let mut flat: Option<Line> = None;
        let mut outer: Option<[u8; 3]> = None;
        let mut prev_differing = 0.0;
        // Colour of the frame just outside the last step.
        let mut edge = None;
        let mut band_start = 0;
        let mut i = 0;
        while i <= limit {
            let Some(line) = self.line(i) else {
                break;
            };
            if let Some(colour) = band {
                // Lines 0..i are all uniform: is line i (or, past a blurred
                // edge, one of the next two) a straight step away from them?
                let differing = self.differing(i, colour, coarse);
                let matched = matching.is_some_and(|m| close(m, colour, self.s.uniform_tolerance));
                let mut step = differing >= step_fraction
                    || (matched
                        && differing >= self.s.matched_step_fraction
                        && prev_differing <= 0.02)
                    || ((band_start == 0 || matched) && self.fine_step(i, band_start, matched));
                prev_differing = differing;
                if !step && !line.uniform {
                    for j in 1..=2 {
                        if i + j < depth && self.differing(i + j, colour, coarse) >= step_fraction {
                            step = true;
                            break;
                        }
                    }
                }
                // A band with no flat line is texture (the coarse tolerance
                // takes a dithered suit for one colour): nothing from here
                // on is frame. A thin band may be a rule smeared over the
                // lines either side of it.
                let thin_band = i - band_start <= (depth / 100).max(3);
                if step && !thin_band && flat.is_none_or(|f| f.deviation > self.s.frame_deviation) {
                    break;
                }
                if step {
                    // Two steps close together: a thin rule between them,
                    // unless that "rule" is only the frame's own edge
                    // ringing.
                    let thin = best > 0 && i - best <= (depth / 100).max(3);
                    if thin && outer.is_some_and(|o| !close(o, colour, self.s.uniform_tolerance)) {
                        // Thin bands in a row are one rule smeared at
                        // reduced scale (lines half rule, half frame or
                        // picture); its colour is the one furthest from the
                        // frame's.
                        rule = match (rule, outer) {
                            (Some((start, end, c)), Some(o)) if end == best => {
                                let far = if distance(colour, o) > distance(c, o) {
                                    colour
                                } else {
                                    c
                                };
                                Some((start, i, far))
                            }
                            _ => Some((best, i, colour)),
                        };
                    }
                    best = i;
                    let next = self.line(i + 1).filter(|l| l.uniform).map(|l| l.colour);
                    after = [line.uniform.then_some(line.colour), next];
                    edge = Some(flat.map_or(colour, |f| f.colour));
                    flat = None;
                    band_start = i;
                }
            }
            if !line.uniform {
                break;
            }
            outer.get_or_insert(line.colour);
            band = Some(line.colour);
            if flat.is_none_or(|f| line.deviation <= f.deviation) {
                flat = Some(line);
            }
            i += 1;
        }
        // Round outward: a line that still holds a visible share of the
        // frame (an edge between pixels, averaged by a reduced decode or
        // smeared by resampling) goes with the frame.
        if let Some(frame) = edge {
            for _ in 0..1 {
                if best + 1 < depth
                    && best < limit + 2
                    && self.frame_share(best, frame) >= self.s.partial_share
                {
                    best += 1;
                } else {
                    break;
                }
            }
        }
        // At reduced scale the frame's last pixels and the picture's first
        // average into a line between the two, which ends in two steps like
        // a rule. A rule has a colour of its own (a dark line in a light
        // frame); that line's is a mix of the colours either side of it.
        let rule = rule.filter(|&(_, end, c)| {
            let inside = self.line(end).map(|l| l.colour);
            !matches!((outer, inside), (Some(o), Some(p)) if is_mix(c, o, p))
        });
        Scan {
            width: best,
            colour: outer.filter(|_| best > 0),
            rule: rule.map(|(start, end, c)| (end - start, c)),
            after,
        }
    }

    /// The fine test: lines `i` and `i + 1` (a dither cycle's worth in a
    /// dithered band) all unlike each of the last few flat lines of the
    /// band that started at `band_start`; `matched`: the band has the colour
    /// of a frame found on another side. An ordered dither makes a flat
    /// frame's lines alternate between a few colours, each flat on its own;
    /// a real edge differs from all of them and stays.
    fn fine_step(&mut self, i: u32, band_start: u32, matched: bool) -> bool {
        // The first lines after a step may be its blurred edge (JPEG
        // chroma), flat along the line but no frame; the last ones before
        // the edge may ring, and are passed over as not flat. The outermost
        // band has no step before it, and a thin frame at reduced scale
        // may be a single line.
        let (from, needed) = if band_start == 0 {
            (i.saturating_sub(FINE_LOOKBACK), 1)
        } else {
            (i.saturating_sub(FINE_LOOKBACK).max(band_start + 2), 2)
        };
        // On the stack: this runs for every line of an outermost band,
        // hundreds on a side.
        let mut kept = [Line::default(); FINE_LOOKBACK as usize];
        let mut count = 0;
        let flat = (from..i)
            .map(|k| self.cur.lines[k as usize])
            .filter(|r| r.deviation <= self.s.flat_deviation);
        for (slot, line) in kept.iter_mut().zip(flat) {
            *slot = line;
            count += 1;
        }
        let refs = &kept[..count];
        if refs.len() < needed {
            return false;
        }
        // A dithered band's lines cycle through the dither's rows, and
        // where a gradient moves the colour across a palette entry one of
        // them changes phase: a real edge stays changed for a whole cycle.
        // The rows whose pixels happen to be alike are flat and smooth and
        // show no dither; the band's other lines do.
        let dithered = (from..i).any(|k| self.dithered(&self.cur.lines[k as usize]));
        let last = if dithered { i + WINDOW - 1 } else { i + 1 };
        let per_sample = refs.iter().all(|r| {
            let tol = self.tolerance(self.s.fine_step_tolerance, r.deviation);
            (i..=last).all(|k| self.differing(k, r.colour, tol) >= self.s.step_fraction)
        });
        // A median over a whole line barely moves with noise, so a shift of
        // a few levels that stays is an edge even where single samples
        // cannot tell (a black frame on a near-black suit). Only for a band
        // of a frame colour seen on another side: a dithered backdrop's
        // lines shift their medians by as much.
        let shifted = matched
            && (i..=last).all(|k| {
                self.line(k).is_some_and(|l| {
                    refs.iter()
                        .all(|r| !close(l.colour, r.colour, self.s.fine_median_shift))
                })
            });
        per_sample || shifted || self.textured(from, i, last, refs)
    }

    /// Whether lines `i..=last` are the picture's texture ending a drawn
    /// frame: a frame is flat to the last level and smooth from pixel to
    /// pixel, while the picture behind it, however close in colour (a black
    /// suit, white clothes), has sensor noise. Lines clearly rougher than
    /// every line of the band since `from` that differ from each of its
    /// flat lines (`refs`) by a few levels over most of their length, and
    /// stay so, are an edge. A crown rising into the headroom is rough only
    /// where it is; a dithered backdrop is rough all along. The band's last
    /// two lines are not asked to be smooth: an edge rings and blurs into
    /// them.
    fn textured(&mut self, from: u32, i: u32, last: u32, refs: &[Line]) -> bool {
        let smooth = (from..i.saturating_sub(2).max(from + 1))
            .map(|k| self.cur.lines[k as usize].ripple)
            .fold(0.0, f64::max);
        (i..=last).all(|k| {
            self.line(k)
                .is_some_and(|l| l.ripple >= smooth + self.s.texture_ripple)
                && refs.iter().all(|r| {
                    let tol = self.tolerance(self.s.texture_tolerance, r.deviation);
                    self.differing(k, r.colour, tol) >= self.s.step_fraction
                })
        })
    }

    /// A line whose neighbouring pixels differ by far more than its samples
    /// (window means) do: a regular pattern that cancels over the window,
    /// as an ordered dither does. A frame drawn in a palette colour is one
    /// flat colour, and noise shows in both measures alike.
    fn dithered(&self, line: &Line) -> bool {
        line.ripple >= self.s.dither_ripple && line.deviation <= 0.2 * line.ripple
    }

    /// Step tolerance against a flat line: `base` plus a few times the
    /// line's own deviation, never looser than the coarse test.
    fn tolerance(&self, base: u8, deviation: f64) -> u8 {
        let t = f64::from(base) + 4.0 * deviation;
        t.min(f64::from(self.s.step_tolerance)) as u8
    }
}

/// Whether `c` lies on the way from `a` to `b` (clearly between them, and
/// within a few levels of the straight line), as pixels averaged over the
/// edge between two colours do.
fn is_mix(c: [u8; 3], a: [u8; 3], b: [u8; 3]) -> bool {
    let f = |v: [u8; 3]| v.map(f64::from);
    let (c, a, b) = (f(c), f(a), f(b));
    let den: f64 = (0..3).map(|k| (a[k] - b[k]).powi(2)).sum();
    if den < 40.0 * 40.0 {
        return false;
    }
    let t = (0..3).map(|k| (c[k] - b[k]) * (a[k] - b[k])).sum::<f64>() / den;
    (0.1..=0.9).contains(&t) && (0..3).all(|k| (c[k] - b[k] - t * (a[k] - b[k])).abs() <= 12.0)
}

/// What the frame search sees on the lines of one side, outermost first,
/// sampled along the whole line: for diagnosis (`examples/border_probe`).
#[derive(Clone, Copy, Debug)]
pub struct LineView {
    pub colour: [u8; 3],
    pub uniform: bool,
    pub deviation: f64,
    pub ripple: f64,
}

/// The first `lines` lines of `side` (`"top"`, `"bottom"`, `"left"` or
/// `"right"`) as the search sees them; `None` for another side name.
pub fn trace_side(
    img: &RgbImage,
    settings: &BorderSettings,
    side: &str,
    lines: u32,
) -> Option<Vec<LineView>> {
    let (side, len) = match side {
        "top" => (Side::Top, img.width()),
        "bottom" => (Side::Bottom, img.width()),
        "left" => (Side::Left, img.height()),
        "right" => (Side::Right, img.height()),
        _ => return None,
    };
    let mut sc = Scanner::new(img, settings);
    sc.reset(side, (0, len));
    Some(
        (0..lines)
            .map_while(|i| sc.line(i))
            .map(|l| LineView {
                colour: l.colour,
                uniform: l.uniform,
                deviation: l.deviation,
                ripple: l.ripple,
            })
            .collect(),
    )
}

/// Finds the frame on each side of `img`.
///
/// Two passes: the first looks along whole lines; the second, only when the
/// first found something, looks again along the part of each line inside the
/// frames found on the neighbouring sides, so a wide frame on the left does
/// not hide the step at the top (and frames of different colours per side
/// are each judged on their own).
pub fn find_borders(img: &RgbImage, settings: &BorderSettings) -> Borders {
    let (w, h) = (img.width(), img.height());
    let mut sc = Scanner::new(img, settings);
    // Frames on the other sides can take up to half the line in the first
    // pass, so the step is only required on a lower share of it.
    let loose = settings.step_fraction * 0.8;
    let sides = [Side::Top, Side::Bottom, Side::Left, Side::Right];
    let scan_all = |sc: &mut Scanner, hspan, vspan, fraction| {
        sides.map(|side| {
            let span = if matches!(side, Side::Top | Side::Bottom) {
                hspan
            } else {
                vspan
            };
            sc.scan(side, span, fraction, None)
        })
    };
    let first = scan_all(&mut sc, (0, w), (0, h), loose);
    if first.iter().all(|s| s.width == 0) {
        return Borders::default();
    }
    let across = |a: u32, b: u32, len: u32| {
        if a + b < len { (a, len - b) } else { (0, len) }
    };
    let hspan = across(first[2].width, first[3].width, w);
    let vspan = across(first[0].width, first[1].width, h);
    let mut second = scan_all(&mut sc, hspan, vspan, settings.step_fraction);
    // Scanners and exports frame all sides alike: a side that showed no
    // frame is looked at again for one of the colour found elsewhere.
    if let Some(colour) = second.iter().find_map(|s| s.colour) {
        for (k, side) in sides.into_iter().enumerate() {
            if second[k].width == 0 {
                let span = if k < 2 { hspan } else { vspan };
                second[k] = sc.scan(side, span, settings.step_fraction, Some(colour));
            }
        }
    }
    // A double frame's rule has one width all round. Where it touches
    // picture of its own colour (a dark rule on a dark suit) its inner edge
    // shows no step, and the search stops at its outer edge with a band of
    // the rule's colour running on inside: that band is the rule, as wide as
    // on the sides where it was seen whole. At reduced scale the search may
    // also stop one smeared line into the rule, taking that line for a rule
    // of its own: the rest of the rule is added.
    let rules: Vec<(u32, [u8; 3])> = second.iter().filter_map(|s| s.rule).collect();
    for s in second.iter_mut().filter(|s| s.width > 0) {
        // A side whose outermost colour is the rule's has no frame outside
        // the rule there: what it found is the rule itself (a frame thinner
        // than its rule), and the band of that colour running on inside is
        // the picture.
        let seen = rules
            .iter()
            .filter(|(_, c)| {
                !s.colour
                    .is_some_and(|o| close(o, *c, settings.uniform_tolerance))
                    && s.after
                        .iter()
                        .flatten()
                        .any(|a| close(*a, *c, settings.uniform_tolerance))
            })
            .map(|(k, _)| *k)
            .max();
        let own = s.rule.map_or(0, |(k, _)| k);
        if let Some(k) = seen {
            s.width += k.saturating_sub(own);
        }
    }
    let mut b = Borders {
        top: second[0].width,
        bottom: second[1].width,
        left: second[2].width,
        right: second[3].width,
    };
    // Always leave a picture behind, however strange the input.
    if b.top + b.bottom >= h {
        b.top = 0;
        b.bottom = 0;
    }
    if b.left + b.right >= w {
        b.left = 0;
        b.right = 0;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::synth::{Sitter, Sitting};
    use crate::testkit::testimg::{Frame, add_frame, add_ringing, draw_rule};

    const BLUE: [u8; 3] = [100, 197, 255];

    fn paint(sc: &Sitting) -> RgbImage {
        sc.render().expect("renders").0
    }

    fn portrait(w: u32, h: u32) -> RgbImage {
        let face = f64::from(w) * 0.45;
        paint(&Sitting::new(w, h, BLUE).with(Sitter::new(
            f64::from(w) / 2.0,
            f64::from(h) * 0.14,
            face,
        )))
    }

    /// A 300x400 portrait in `clothes` (shirt and suit alike).
    fn dressed(p: Sitter, clothes: [u8; 3]) -> RgbImage {
        let mut sc = Sitting::new(300, 400, BLUE).with(p);
        sc.spec.clothing = clothes;
        sc.spec.shirt = clothes;
        paint(&sc)
    }

    /// Shoulders so wide the clothes fill the whole bottom rows.
    fn wide_shoulders(clothes: [u8; 3]) -> RgbImage {
        dressed(Sitter::new(150.0, 50.0, 130.0), clothes)
    }

    fn assert_within(got: Borders, want: Frame, tol: u32) {
        let pairs = [
            ("top", got.top, want.top),
            ("bottom", got.bottom, want.bottom),
            ("left", got.left, want.left),
            ("right", got.right, want.right),
        ];
        for (name, g, t) in pairs {
            assert!(
                g.abs_diff(t) <= tol,
                "{name}: found {g}, truth {t} (all: {got:?})"
            );
        }
    }

    #[test]
    fn clean_portrait_has_no_border() {
        let img = portrait(300, 400);
        assert!(find_borders(&img, &BorderSettings::default()).is_none());
    }

    #[test]
    fn white_frame_all_sides() {
        let base = portrait(300, 400);
        for (f, col) in [
            (
                Frame {
                    top: 20,
                    bottom: 20,
                    left: 15,
                    right: 15,
                },
                [255, 255, 255],
            ),
            (
                Frame {
                    top: 1,
                    bottom: 1,
                    left: 1,
                    right: 1,
                },
                [250, 250, 250],
            ),
            (
                Frame {
                    top: 3,
                    bottom: 7,
                    left: 2,
                    right: 9,
                },
                [210, 210, 210],
            ),
        ] {
            let img = add_frame(&base, f, col, 2.0, 1);
            let got = find_borders(&img, &BorderSettings::default());
            assert_within(got, f, 0);
        }
    }

    #[test]
    fn quarter_wide_frame() {
        let base = portrait(200, 260);
        // A quarter of the framed side on each of top and left.
        let f = Frame {
            top: 87,
            bottom: 0,
            left: 66,
            right: 0,
        };
        let img = add_frame(&base, f, [255, 255, 255], 2.0, 3);
        assert_eq!((img.width(), img.height()), (266, 347));
        assert_within(find_borders(&img, &BorderSettings::default()), f, 2);
    }

    #[test]
    fn black_border_two_sides() {
        let base = portrait(300, 400);
        let f = Frame {
            top: 0,
            bottom: 12,
            left: 0,
            right: 30,
        };
        let img = add_frame(&base, f, [0, 0, 0], 2.0, 2);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn three_sides_and_odd_colour() {
        let base = portrait(300, 400);
        let f = Frame {
            top: 40,
            bottom: 0,
            left: 8,
            right: 8,
        };
        let img = add_frame(&base, f, [180, 40, 60], 3.0, 4);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn noisy_ringing_border() {
        let base = portrait(300, 400);
        for (i, f) in [
            Frame {
                top: 16,
                bottom: 9,
                left: 5,
                right: 24,
            },
            Frame {
                top: 1,
                bottom: 2,
                left: 1,
                right: 3,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let mut img = add_frame(&base, f, [245, 245, 245], 5.0, 5 + i as u64);
            add_ringing(&mut img, f, 18.0, 9 + i as u64);
            let got = find_borders(&img, &BorderSettings::default());
            assert_within(got, f, 2);
        }
    }

    #[test]
    fn double_frame_white_with_dark_rule() {
        let base = portrait(300, 400);
        let f = Frame {
            top: 30,
            bottom: 30,
            left: 24,
            right: 24,
        };
        let mut img = add_frame(&base, f, [255, 255, 255], 2.0, 6);
        // Dark rule 2 px wide, 20 px in: white, rule, white again, picture.
        draw_rule(&mut img, f, 20, 2, [40, 40, 40]);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
        // And a rule hugging the picture.
        let mut img = add_frame(&base, f, [255, 255, 255], 2.0, 6);
        draw_rule(&mut img, f, 22, 2, [40, 40, 40]);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn dark_rule_against_a_dark_suit() {
        // The rule matches the suit it touches at the bottom, so its inner
        // edge shows no step there.
        let base = wide_shoulders([36, 36, 40]);
        let f = Frame {
            top: 30,
            bottom: 40,
            left: 24,
            right: 24,
        };
        let mut img = add_frame(&base, f, [255, 255, 255], 2.0, 6);
        // 3 px rule hugging the picture on every side.
        for y in 0..img.height() {
            for x in 0..img.width() {
                let in_frame = x < f.left || y < f.top || x >= 300 + f.left || y >= 400 + f.top;
                let near = x + 3 >= f.left
                    && y + 3 >= f.top
                    && x < 300 + f.left + 3
                    && y < 400 + f.top + 3;
                if in_frame && near {
                    img.put_pixel(x, y, [36, 36, 40]);
                }
            }
        }
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn black_frame_on_a_dark_suit() {
        // The suit covers 85% of the bottom row.
        let base = dressed(Sitter::new(150.0, 120.0, 50.0), [26, 28, 34]);
        let suit = (0..300).filter(|&x| base.pixel(x, 399)[2] < 80).count();
        assert!((250..=260).contains(&suit), "{suit} px of suit");
        let f = Frame {
            top: 12,
            bottom: 60,
            left: 0,
            right: 0,
        };
        let img = add_frame(&base, f, [10, 10, 10], 2.0, 7);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 1);
        // Alone at the bottom, with no frame elsewhere to match, the frame
        // is told from the suit by the suit's noise.
        let bottom_only = Frame { top: 0, ..f };
        let img = add_frame(&base, bottom_only, [10, 10, 10], 2.0, 7);
        assert_within(
            find_borders(&img, &BorderSettings::default()),
            bottom_only,
            1,
        );
    }

    #[test]
    fn thin_black_frame_next_to_a_near_black_suit() {
        // Nine levels apart at most (like 00405 of the cohort): no
        // sample differs by more than its noise, the line's median does.
        let base = wide_shoulders([22, 21, 27]);
        let f = Frame {
            top: 10,
            bottom: 4,
            left: 97,
            right: 65,
        };
        let img = add_frame(&base, f, [18, 18, 18], 2.0, 11);
        let s = BorderSettings::default();
        assert_within(find_borders(&img, &s), f, 1);
        // Neither the medians' shift nor the suit's texture: blind to it.
        let blind = BorderSettings {
            fine_median_shift: 255,
            texture_ripple: f64::INFINITY,
            ..s
        };
        assert_eq!(find_borders(&img, &blind).bottom, 0);
    }

    #[test]
    fn white_frame_on_white_clothes_of_nearly_its_colour() {
        // Like cohort 00155: a drawn frame a few levels from the clothes it
        // touches, all along the bottom; no sample differs by more than
        // the clothes' own noise, but the frame has none. (The suit is lit
        // 4% brighter than this colour in the middle, 1% darker at the
        // sides: along the bottom it averages a level below the frame.)
        let base = wide_shoulders([229, 229, 227]);
        let bottom: u32 = (0..300).map(|x| u32::from(base.pixel(x, 399)[1])).sum();
        assert!((bottom / 300).abs_diff(236) <= 3, "{}", bottom / 300);
        let f = Frame {
            top: 2,
            bottom: 70,
            left: 0,
            right: 0,
        };
        let img = add_frame(&base, f, [236, 236, 236], 0.5, 12);
        let s = BorderSettings::default();
        assert_within(find_borders(&img, &s), f, 1);
        let blind = BorderSettings {
            texture_ripple: f64::INFINITY,
            ..s
        };
        assert_eq!(find_borders(&img, &blind).bottom, 0);
    }

    #[test]
    fn two_line_frame_against_light_clothes() {
        // Like cohort 00103 at 2/8 scale: the frame is two lines deep, and
        // the clothes differ from it by less than the coarse tolerance.
        let base = wide_shoulders([238, 242, 232]);
        let f = Frame {
            top: 30,
            bottom: 2,
            left: 0,
            right: 0,
        };
        let img = add_frame(&base, f, [255, 255, 255], 0.0, 13);
        assert_within(find_borders(&img, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn dithered_dark_suit_is_not_a_frame() {
        // Like cohort 00159, a palette PNG: the suit's pixels scatter over
        // four palette levels, so even four-pixel means spread by a dozen
        // levels, yet stay within the coarse tolerance of the line's
        // colour. Its straight top edge against the backdrop would end a
        // frame; a band with no flat line is none.
        let mut img = flat_portrait();
        let mut rng = crate::testkit::synth::SplitMix64::new(14);
        for y in 250..400 {
            for x in 0..300 {
                let d = [-39.0, -13.0, 13.0, 39.0][(rng.next_u64() % 4) as usize];
                let px = [51.0, 42.0, 51.0].map(|c: f64| (c + d).clamp(0.0, 255.0) as u8);
                img.put_pixel(x, y, px);
            }
        }
        let s = BorderSettings::default();
        assert!(find_borders(&img, &s).is_none());
        let blind = BorderSettings {
            frame_deviation: f64::INFINITY,
            ..s
        };
        assert_eq!(find_borders(&img, &blind).bottom, 150);
    }

    /// A portrait on an even backdrop without noise, to paint palette
    /// dither on.
    fn flat_portrait() -> RgbImage {
        let mut sc = Sitting::new(300, 400, BLUE).with(Sitter::new(150.0, 200.0, 120.0));
        sc.spec.noise = 0.0;
        paint(&sc)
    }

    #[test]
    fn dithered_backdrop_inside_a_frame_is_not_more_frame() {
        // A palette PNG: below a black frame, the backdrop's rows alternate
        // between two flat colours, and the pair changes where the true
        // colour crosses a palette level; no step, though each new row is
        // flat and unlike the last few.
        let mut img = flat_portrait();
        for y in 0..180 {
            // Pairs 20 apart (within the coarse test), each value 10 or
            // more from both of the other pair.
            let pair = if y < 120 { [185, 205] } else { [195, 215] };
            let g = pair[(y % 2) as usize];
            let rgb = if y < 40 { [0, 0, 0] } else { [100, g, 255] };
            for x in 0..300 {
                img.put_pixel(x, y, rgb);
            }
        }
        assert_eq!(find_borders(&img, &BorderSettings::default()).top, 40);
    }

    #[test]
    fn dither_changing_phase_in_the_headroom_is_not_a_frame() {
        // Rows of a palette PNG's ordered dither: pixels alternate 40
        // levels apart, so each row's window means are flat, and the rows
        // cycle through four colours. Where the gradient moves the colour,
        // two rows take new colours before the cycle resumes.
        let mut img = flat_portrait();
        for y in 0..190 {
            let mean: u8 = match y {
                120 => 180,
                121 => 215,
                _ => [195, 205, 200, 205][(y % 4) as usize],
            };
            for x in 0..300 {
                let g = if x % 2 == 0 { mean - 20 } else { mean + 20 };
                img.put_pixel(x, y, [100, g, 255]);
            }
        }
        assert_eq!(find_borders(&img, &BorderSettings::default()).top, 0);
    }

    #[test]
    fn dither_with_smooth_rows_in_the_headroom_is_not_a_frame() {
        // Rows of a palette PNG whose every other row needs no dither (the
        // colour is a palette entry): those rows are flat and smooth, the
        // others alternate 40 levels from pixel to pixel. Where one of the
        // smooth rows takes another entry, the rows either side of it
        // differ from every smooth row of the band, as an edge's would.
        let mut img = flat_portrait();
        for y in 0..190 {
            for x in 0..300 {
                // Mostly alternating, as error diffusion leaves it: four-pixel
                // means that are not quite flat.
                let phase = usize::from((x % 2 == 0) ^ (x % 11 == 0));
                let g = match (y % 2, y) {
                    (1, 121) => [192, 212][phase],
                    (1, _) => 212,
                    _ => [171, 211][phase],
                };
                img.put_pixel(x, y, [100, g, 255]);
            }
        }
        assert_eq!(find_borders(&img, &BorderSettings::default()).top, 0);
    }

    #[test]
    fn a_line_mixing_frame_and_picture_is_not_a_rule() {
        // Cohort 00450 at 3/8 scale: the line between a grey frame and the
        // blue backdrop, which ended in two steps on the left and was taken
        // for a rule there (and added to the top).
        let (frame, picture) = ([200, 200, 200], [102, 196, 255]);
        assert!(is_mix([149, 196, 227], frame, picture));
        // A double frame's dark rule is not between its neighbours, nor is
        // a line of either colour itself.
        assert!(!is_mix([30, 30, 30], [255, 255, 255], picture));
        assert!(!is_mix(picture, frame, picture));
        assert!(!is_mix(frame, frame, picture));
    }

    #[test]
    fn white_shirt_touching_bottom_is_not_a_border() {
        let img = wide_shoulders([250, 250, 250]);
        let got = find_borders(&img, &BorderSettings::default());
        assert!(got.is_none(), "{got:?}");
        // With a white frame elsewhere the shirt still stays.
        let f = Frame {
            top: 10,
            bottom: 0,
            left: 10,
            right: 10,
        };
        let framed = add_frame(&img, f, [255, 255, 255], 2.0, 8);
        assert_within(find_borders(&framed, &BorderSettings::default()), f, 0);
    }

    #[test]
    fn bright_wall_and_plain_backdrop_are_not_borders() {
        for bg in [[250, 250, 250], [240, 240, 240], BLUE] {
            let img = paint(&Sitting::new(300, 400, bg).with(Sitter::new(150.0, 120.0, 120.0)));
            let got = find_borders(&img, &BorderSettings::default());
            assert!(got.is_none(), "{bg:?}: {got:?}");
        }
    }

    #[test]
    fn tiny_and_degenerate_images() {
        let s = BorderSettings::default();
        assert!(find_borders(&RgbImage::filled(1, 1, [0, 0, 0]), &s).is_none());
        assert!(find_borders(&RgbImage::filled(10_000, 10, [255, 255, 255]), &s).is_none());
        assert!(find_borders(&RgbImage::filled(2, 3, [9, 9, 9]), &s).is_none());
        let b = Borders {
            top: 9,
            bottom: 9,
            left: 0,
            right: 0,
        };
        assert!(b.inner(5, 5).fits_in(5, 5));
    }

    #[test]
    fn inner_rect() {
        let b = Borders {
            top: 1,
            bottom: 2,
            left: 3,
            right: 4,
        };
        assert_eq!(b.inner(20, 10), Rect::new(3, 1, 13, 7));
    }
}
