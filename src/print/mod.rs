//! Paper prints (SPEC §7): the sizes a studio order asks for, each framed
//! by the registry's composition rule at its own aspect ratio and cut from
//! the decoded source, laid out on photo paper with cut guides and the
//! graduate's label, as one JPEG per sheet and one PDF of the batch.
//!
//! - `mod.rs`: the size table, the order and paper settings, the print
//!   rule derived from the registry's, and the print stage itself;
//! - `layout.rs`: where the prints go on the fewest sheets;
//! - `sheet.rs`: a sheet's pixels (prints, cut guides, label) and its JPEG;
//! - `label.rs`: the label's text drawn into pixels (GNU Unifont);
//! - `pdf.rs`: the batch's sheets as one PDF.

pub(crate) mod label;
pub(crate) mod layout;
pub(crate) mod pdf;
pub(crate) mod sheet;

use serde::{Deserialize, Serialize};

use crate::analysis::compose::{ComposeError, CompositionRule, CropPlan, plan_crop};
use crate::analysis::subject::Subject;
use crate::image::{Rect, RgbImage};
use crate::transform::resize::resize_crop;
use crate::verdict::{Check, Verdict};

/// Prints and sheets are made at this resolution, and their JPEGs say so.
pub const DPI: u32 = 300;

/// The studio sizes a print order can name, in millimetres, width x
/// height. Source: the sizes Chinese photo studios use, as the common
/// Chinese references on 照片尺寸 tabulate them (checked 8 Dec 2026 on
/// several: 一寸 25x35, 小一寸 22x32, 大一寸 33x48 (also the passport
/// size), 二寸 35x49, 大二寸 35x53; 小二寸 is given as 35x45 by most and as
/// 35x49 by some, which is 二寸: we follow the majority, which is also the
/// ICAO/visa 35x45). No national standard fixes these names; a school
/// whose notice gives other millimetres names them with `WxH` instead.
pub const PRINT_SIZES: [(&str, u32, u32); 6] = [
    ("一寸", 25, 35),
    ("小一寸", 22, 32),
    ("大一寸", 33, 48),
    ("小二寸", 35, 45),
    ("二寸", 35, 49),
    ("大二寸", 35, 53),
];

/// Photo paper, by the trade's inch names: 5-inch is 3.5 x 5 in (89 x 127
/// mm), 6-inch is 4 x 6 in (102 x 152 mm, "4R"). Held in inches so the
/// sheet's pixels at 300 dpi and the PDF's points are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Paper {
    #[serde(rename = "5in")]
    FiveInch,
    #[serde(rename = "6in")]
    SixInch,
}

impl Paper {
    /// Width and height in tenths of an inch, portrait.
    fn tenths(self) -> (u32, u32) {
        match self {
            Paper::FiveInch => (35, 50),
            Paper::SixInch => (40, 60),
        }
    }

    /// Pixels at [`DPI`], portrait.
    pub fn pixels(self) -> (u32, u32) {
        let (w, h) = self.tenths();
        (w * DPI / 10, h * DPI / 10)
    }

    /// PDF points (1/72 in), portrait.
    pub fn points(self) -> (f32, f32) {
        let (w, h) = self.tenths();
        (w as f32 * 7.2, h as f32 * 7.2)
    }

    pub fn name(self) -> &'static str {
        match self {
            Paper::FiveInch => "5in",
            Paper::SixInch => "6in",
        }
    }

    pub fn parse(text: &str) -> Result<Paper, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "5" | "5in" | "5-inch" | "5寸" | "3r" => Ok(Paper::FiveInch),
            "6" | "6in" | "6-inch" | "6寸" | "4r" => Ok(Paper::SixInch),
            _ => Err(format!(
                "unknown paper {text:?}: 5in (3.5x5 in, 89x127 mm) or 6in (4x6 in, 102x152 mm)"
            )),
        }
    }
}

/// One line of a print order: a size and how many prints of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintLine {
    /// The table's name, or `WxH` for millimetres given by hand.
    pub name: String,
    pub width_mm: u32,
    pub height_mm: u32,
    pub count: u32,
}

impl PrintLine {
    /// Pixels at [`DPI`], rounded to the nearest.
    pub fn pixels(&self) -> (u32, u32) {
        let px = |mm: u32| ((f64::from(mm) * f64::from(DPI) / 25.4).round() as u32).max(1);
        (px(self.width_mm), px(self.height_mm))
    }
}

/// What `--print` and the `print` command make, and on what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrintSettings {
    pub paper: Paper,
    pub order: Vec<PrintLine>,
    /// JPEG quality of the sheets (4:2:0 chroma).
    pub sheet_quality: u8,
    /// The registry photo is made too (`normalize --print`); the `print`
    /// command makes only the prints.
    pub registry_photo: bool,
}

impl Default for PrintSettings {
    fn default() -> Self {
        PrintSettings {
            paper: Paper::SixInch,
            order: parse_order(DEFAULT_ORDER).unwrap_or_default(),
            sheet_quality: 92,
            registry_photo: true,
        }
    }
}

impl PrintSettings {
    /// Refuses, before any photo is read, a size that cannot go on the
    /// paper at all, and a sheet quality outside 1-100.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.sheet_quality) {
            return Err(format!("sheet quality {} is not 1-100", self.sheet_quality));
        }
        for line in &self.order {
            layout::lay_out(&[line.pixels()], self.paper).map_err(|e| {
                format!(
                    "{} ({}x{} mm): {e}",
                    line.name, line.width_mm, line.height_mm
                )
            })?;
        }
        Ok(())
    }
}

/// A studio's order for a graduate (the school's notice): 4 x 小二寸 and
/// 8 x 一寸.
pub const DEFAULT_ORDER: &str = "小二寸=4,一寸=8";

/// Parses `SIZE=COUNT,...`, where SIZE is a name from [`PRINT_SIZES`] or
/// `WxH` in millimetres (`35x45=4`).
pub fn parse_order(text: &str) -> Result<Vec<PrintLine>, String> {
    let mut order = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (size, count) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected SIZE=COUNT, such as 一寸=8 or 35x45=4"))?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|c| (1..=100).contains(c))
            .ok_or_else(|| format!("{part:?}: the count must be a whole number from 1 to 100"))?;
        let size = size.trim();
        let (name, w, h) = match PRINT_SIZES.iter().find(|(n, ..)| *n == size) {
            Some(&(n, w, h)) => (n.to_owned(), w, h),
            None => {
                let names: Vec<&str> = PRINT_SIZES.iter().map(|(n, ..)| *n).collect();
                let bad = || {
                    format!(
                        "{size:?} is not a size: use one of {} or WxH in millimetres (10 to 120)",
                        names.join(", ")
                    )
                };
                let (w, h) = size
                    .to_ascii_lowercase()
                    .trim_end_matches("mm")
                    .split_once(['x', '×'])
                    .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
                    .filter(|&(w, h): &(u32, u32)| {
                        (10..=120).contains(&w) && (10..=120).contains(&h)
                    })
                    .ok_or_else(bad)?;
                (format!("{w}x{h}"), w, h)
            }
        };
        match order.iter_mut().find(|l: &&mut PrintLine| l.name == name) {
            Some(line) => line.count += count,
            None => order.push(PrintLine {
                name,
                width_mm: w,
                height_mm: h,
                count,
            }),
        }
    }
    if order.is_empty() {
        return Err("the print order is empty".to_owned());
    }
    Ok(order)
}

/// The registry's composition rule for a print of `width` x `height`
/// pixels: the registry photo's framing scaled so that its 3:4 frame fills
/// the print's width (or, for a print wider than 3:4, its height), top
/// edge on the print's top edge and centred across it. A print taller than
/// 3:4 (一寸 is 5:7) shows more of the shoulders below; a wider one more
/// backdrop beside. Crown, eye line, face width, centring tolerance and
/// safety margin all scale by the same factor, so the head has the same
/// size and place relative to that frame as in the registry photo.
///
/// Upscaling is not refused here: a source too small for the print at
/// [`DPI`] is printed anyway, with a warning saying the resolution it gets.
pub fn print_rule(base: &CompositionRule, line: &PrintLine) -> CompositionRule {
    let (width, height) = line.pixels();
    let g = gcd(line.width_mm, line.height_mm).max(1);
    let s = (f64::from(width) / f64::from(base.out_width.max(1)))
        .min(f64::from(height) / f64::from(base.out_height.max(1)));
    let range = |r: (f64, f64)| (r.0 * s, r.1 * s);
    CompositionRule {
        out_width: width,
        out_height: height,
        crown_target: base.crown_target * s,
        crown_range: range(base.crown_range),
        eye_target: base.eye_target * s,
        eye_range: range(base.eye_range),
        face_target: base.face_target * s,
        face_range: range(base.face_range),
        max_upscale: f64::MAX,
        centre_tolerance: base.centre_tolerance * s,
        safety_margin: base.safety_margin * s,
        // The box has the print's own aspect ratio, in millimetres.
        box_unit: Some((line.width_mm / g, line.height_mm / g)),
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One size of the order, framed in the decoded picture.
#[derive(Clone, Debug)]
pub struct PrintPlan {
    pub line: PrintLine,
    pub plan: CropPlan,
}

/// Frames every size of the order around `subject` in the `width` x
/// `height` picture the registry crop was planned in.
pub fn plan_prints(
    width: u32,
    height: u32,
    subject: &Subject,
    registry: &CompositionRule,
    settings: &PrintSettings,
) -> Result<Vec<PrintPlan>, (String, ComposeError)> {
    settings
        .order
        .iter()
        .map(|line| {
            let rule = print_rule(registry, line);
            plan_crop(width, height, subject, &rule)
                .map(|plan| PrintPlan {
                    line: line.clone(),
                    plan,
                })
                .map_err(|e| (line.name.clone(), e))
        })
        .collect()
}

/// One size's print, its pixels at [`DPI`].
#[derive(Clone, Debug)]
pub struct Print {
    pub line: PrintLine,
    pub image: RgbImage,
    /// The box cut from the upright picture, in the file's pixels.
    pub crop: Rect,
    /// The resolution the file's pixels give this print: [`DPI`] or more
    /// when the file had enough (it is then resampled down to [`DPI`]).
    pub source_dpi: f64,
    pub plan: CropPlan,
}

/// Cuts each planned print out of `picture` (the decoded, upright, trimmed
/// picture, `decode_scale` of the file's size) and resamples it to its
/// pixels at [`DPI`]. `to_file` maps a box in `picture` to the file's
/// pixels, for the record.
pub fn cut_prints(
    picture: &RgbImage,
    plans: &[PrintPlan],
    decode_scale: f64,
    to_file: &dyn Fn(Rect) -> Rect,
) -> Result<Vec<Print>, String> {
    plans
        .iter()
        .map(|p| {
            let (w, h) = p.line.pixels();
            let image = resize_crop(picture, p.plan.rect, w, h).map_err(|e| e.to_string())?;
            Ok(Print {
                line: p.line.clone(),
                image,
                crop: to_file(p.plan.rect),
                source_dpi: f64::from(DPI) / (p.plan.scale * decode_scale),
                plan: p.plan.clone(),
            })
        })
        .collect()
}

/// `print_resolution`: warns when the file has too few pixels for a print
/// at [`DPI`], saying the resolution it prints at.
pub fn resolution_check(prints: &[Print]) -> Check {
    let low: Vec<String> = prints
        .iter()
        .filter(|p| p.source_dpi < f64::from(DPI) - 0.5)
        .map(|p| format!("{} at {:.0} dpi", p.line.name, p.source_dpi))
        .collect();
    let lowest = prints.iter().map(|p| p.source_dpi).fold(f64::MAX, f64::min);
    let value = Some(lowest.min(f64::from(DPI)).round());
    if low.is_empty() {
        Check::new(
            "print_resolution",
            Verdict::Pass,
            value,
            format!("every print has the file's pixels for {DPI} dpi"),
        )
    } else {
        Check::new(
            "print_resolution",
            Verdict::Warn,
            value,
            format!(
                "the file has too few pixels for {DPI} dpi: {} (upscaled; reshoot or print smaller)",
                low.join(", ")
            ),
        )
    }
}

/// A print check of a prints-only pass, as it counts beside a registry
/// photo that is written anyway: a failed print is a warning there. Other
/// checks are the registry photo's own and are dropped.
pub fn beside_registry(mut check: Check) -> Option<Check> {
    if !check.name.starts_with("print_") {
        return None;
    }
    if check.verdict == Verdict::Fail {
        check.verdict = Verdict::Warn;
    }
    Some(check)
}

/// What the manifest says of a photo's prints (`prints`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrintsRecord {
    pub paper: String,
    pub sizes: Vec<PrintedSize>,
    /// The sheet files, in order, in the prints folder (filled in when
    /// they are written).
    #[serde(default)]
    pub sheets: Vec<SheetFile>,
}

/// One size of the order as printed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrintedSize {
    pub name: String,
    pub width_mm: u32,
    pub height_mm: u32,
    pub count: u32,
    pub width_px: u32,
    pub height_px: u32,
    /// The box cut from the upright file (as `crop` for the registry photo).
    pub crop: Rect,
    /// The file's pixels per inch of print: at least [`DPI`], or what the
    /// print gets when the file is too small.
    pub source_dpi: f64,
    /// Where crown and eye line fall in the print, in its pixels.
    pub crown_y: f64,
    pub eye_line_y: f64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SheetFile {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

impl PrintsRecord {
    pub fn new(paper: Paper, prints: &[Print]) -> Self {
        PrintsRecord {
            paper: paper.name().to_owned(),
            sizes: prints
                .iter()
                .map(|p| PrintedSize {
                    name: p.line.name.clone(),
                    width_mm: p.line.width_mm,
                    height_mm: p.line.height_mm,
                    count: p.line.count,
                    width_px: p.image.width(),
                    height_px: p.image.height(),
                    crop: p.crop,
                    source_dpi: (p.source_dpi * 10.0).round() / 10.0,
                    crown_y: p.plan.crown_y,
                    eye_line_y: p.plan.eye_line_y,
                })
                .collect(),
            sheets: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_and_print_pixels_at_300_dpi() {
        assert_eq!(Paper::FiveInch.pixels(), (1050, 1500));
        assert_eq!(Paper::SixInch.pixels(), (1200, 1800));
        assert_eq!(Paper::SixInch.points(), (288.0, 432.0));
        let order = parse_order(DEFAULT_ORDER).unwrap();
        assert_eq!(order.len(), 2);
        assert_eq!((order[0].pixels(), order[0].count), ((413, 531), 4));
        assert_eq!((order[1].pixels(), order[1].count), ((295, 413), 8));
    }

    #[test]
    fn orders_parse_names_and_millimetres_and_refuse_nonsense() {
        let o = parse_order("一寸=2, 33x48=1,一寸=1").unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!((o[0].name.as_str(), o[0].count), ("一寸", 3));
        assert_eq!((o[1].width_mm, o[1].height_mm), (33, 48));
        for bad in ["", "一寸", "一寸=0", "三寸=1", "5x500=1", "一寸=x"] {
            assert!(parse_order(bad).is_err(), "{bad}");
        }
        assert_eq!(Paper::parse("5"), Ok(Paper::FiveInch));
        let order = |text| PrintSettings {
            order: parse_order(text).unwrap(),
            ..PrintSettings::default()
        };
        assert!(order("100x120=1").validate().is_err());
        assert!(order("90x120=1").validate().is_ok());
        assert!(Paper::parse("A4").is_err());
    }

    #[test]
    fn the_print_rule_is_the_registry_rule_scaled_to_the_frame() {
        let base = CompositionRule::default();
        let line = |w, h| PrintLine {
            name: String::new(),
            width_mm: w,
            height_mm: h,
            count: 1,
        };
        // 一寸 is narrower than 3:4: the frame fills its width.
        let r = print_rule(&base, &line(25, 35));
        assert_eq!(
            (r.out_width, r.out_height, r.box_unit),
            (295, 413, Some((5, 7)))
        );
        let s = 295.0 / 480.0;
        assert!((r.eye_target - 250.0 * s).abs() < 1e-9);
        assert!((r.face_range.1 - 300.0 * s).abs() < 1e-9);
        // A wide print: the frame fills its height.
        let r = print_rule(&base, &line(50, 50));
        let s = 591.0 / 640.0;
        assert!(
            (r.crown_target - 80.0 * s).abs() < 1e-9 && (r.face_target - 240.0 * s).abs() < 1e-9
        );
    }
}
