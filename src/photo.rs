//! One photo through every stage, in memory: the library's main entry point
//! (`normalize_photo`), which the batch pipeline runs on its workers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::analysis::backdrop::{Backdrop, BackdropSettings, estimate_backdrop, judge_backdrop};
use crate::analysis::border::{BorderSettings, Borders, find_borders};
use crate::analysis::compose::{
    ComposeError, CompositionRule, CropPlan, judge_composition, plan_crop,
};
use crate::analysis::extend::{ExtendSettings, Extension, ExtensionPlan, plan_with_extension};
use crate::analysis::face::{FaceSettings, locate_with_faces};
use crate::analysis::matte::{HeadPlace, MatteSettings};
use crate::analysis::portrait::{PortraitSettings, judge_portrait};
use crate::analysis::subject::{Subject, SubjectSettings};
use crate::analysis::working_copy::WorkingCopy;
use crate::batch::manifest::{BorderRemoved, OutputGeometry, PhotoRecord, Status};
use crate::codec::decode::{
    DecodeLimits, DecodeScale, Decoded, ImageFormat, Reduce, Sniffed, decode, decode_reduced,
    jpeg_frame_size, sniff,
};
use crate::codec::encode::{EncodeSettings, encode_to_window};
use crate::codec::verify::{OutputRules, verify_jpeg, verify_written};
use crate::image::{Rect, RgbImage};
use crate::print::{Print, PrintSettings, cut_prints, plan_prints};
use crate::transform::extend::extend_canvas;
use crate::transform::orient::{Orientation, apply_orientation};
use crate::transform::recolour::recolour;
use crate::transform::resize::resize_crop;
use crate::verdict::{Check, Verdict, worst};

/// Every setting that decides what a photo becomes. Serialised into the
/// manifest, and its digest decides whether a rerun may reuse an output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    pub limits: DecodeLimits,
    pub border: BorderSettings,
    /// Longer side of the small working copy the backdrop and subject
    /// stages read (see [`WorkingCopy`]).
    pub work_size: u32,
    pub backdrop: BackdropSettings,
    pub subject: SubjectSettings,
    /// The face detector and pupils (`src/analysis/face/`).
    pub face: FaceSettings,
    pub composition: CompositionRule,
    /// Synthesised backdrop above or beside a tightly framed head.
    pub extend: ExtendSettings,
    /// `--recolour`: the backdrop replaced through a matte of the person.
    pub recolour: MatteSettings,
    pub portrait: PortraitSettings,
    pub encode: EncodeSettings,
    pub reduce: ReduceSettings,
    /// Paper prints besides (or, for the `print` command, instead of) the
    /// registry photo. Absent from the settings when off, so runs without
    /// prints keep their settings digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print: Option<PrintSettings>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: DecodeLimits::default(),
            border: BorderSettings::default(),
            work_size: WorkingCopy::DEFAULT_SIZE,
            backdrop: BackdropSettings::default(),
            subject: SubjectSettings::default(),
            face: FaceSettings::default(),
            composition: CompositionRule::default(),
            extend: ExtendSettings::default(),
            recolour: MatteSettings::default(),
            portrait: PortraitSettings::default(),
            encode: EncodeSettings::default(),
            reduce: ReduceSettings::default(),
            print: None,
        }
    }
}

impl Options {
    /// The hard rules the written file must meet, derived from the settings.
    pub fn output_rules(&self) -> OutputRules {
        OutputRules {
            width: self.composition.out_width,
            height: self.composition.out_height,
            min_bytes: self.encode.min_bytes,
            max_bytes: self.encode.max_bytes,
            ..OutputRules::default()
        }
    }
}

/// Wall time per stage for one photo (summed over a batch for the manifest).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageTimings(BTreeMap<&'static str, Duration>);

impl StageTimings {
    pub(crate) fn time<T>(&mut self, stage: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let value = f();
        *self.0.entry(stage).or_default() += start.elapsed();
        value
    }

    /// Books `d`, spent inside `from`'s time, to `to` instead.
    fn move_time(&mut self, from: &'static str, to: &'static str, d: Duration) {
        if let Some(f) = self.0.get_mut(from) {
            *f = f.saturating_sub(d);
        }
        *self.0.entry(to).or_default() += d;
    }

    pub fn add(&mut self, other: &StageTimings) {
        for (stage, d) in &other.0 {
            *self.0.entry(stage).or_default() += *d;
        }
    }

    pub fn as_seconds(&self) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_secs_f64()))
            .collect()
    }
}

/// A photo after the stages: the record of what happened and, unless it
/// failed, the JPEG to write.
#[derive(Clone, Debug)]
pub struct Processed {
    pub record: PhotoRecord,
    pub jpeg: Option<Vec<u8>>,
    pub timings: StageTimings,
    /// With [`Options::print`]: one print per size of the order, cut from
    /// the same decode and the same subject as the registry photo.
    pub prints: Option<Vec<Print>>,
}

/// Runs every stage on one photo's bytes. `name` is only used to notice an
/// extension that lies about the content. Input, output and hashes are
/// left for the caller to fill in.
pub fn normalize_photo(name: &Path, bytes: &[u8], options: &Options) -> Processed {
    let registry_photo = options.print.as_ref().is_none_or(|p| p.registry_photo);
    if registry_photo && let Some(mut copied) = copy_if_compliant(name, bytes, options) {
        if options.print.is_some() {
            // Its bytes need no stages, its prints do: a 480x640 file is
            // quick to take through them again.
            let again = normalize_photo(name, bytes, &print_only(options));
            copied.prints = again.prints;
            copied.record.prints = again.record.prints;
            copied.record.checks.extend(
                again
                    .record
                    .checks
                    .into_iter()
                    .filter_map(crate::print::beside_registry),
            );
            copied.timings.add(&again.timings);
        }
        return copied;
    }
    let mut record = PhotoRecord::default();
    let mut timings = StageTimings::default();
    let staged = run_stages(name, bytes, options, &mut record, &mut timings)
        // Decoder messages can span lines; a manifest cell and a stderr
        // line must not.
        .map_err(|e| record.error = Some(e.split_whitespace().collect::<Vec<_>>().join(" ")))
        .ok();
    let (jpeg, prints) = staged.map_or((None, None), |s| (s.jpeg, s.prints));
    let made = if registry_photo {
        jpeg.is_some()
    } else {
        prints.is_some()
    };
    let verdict = worst(&record.checks);
    let status = match (made, verdict) {
        (false, _) | (_, Verdict::Fail) => Status::Fail,
        (true, Verdict::Warn) => Status::Warn,
        (true, Verdict::Pass) => Status::Ok,
    };
    if status == Status::Fail && record.error.is_none() {
        let failed: Vec<&str> = record
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.name.as_str())
            .collect();
        record.error = Some(format!("failed checks: {}", failed.join(", ")));
    }
    record.status = Some(status);
    Processed {
        record,
        jpeg: jpeg.filter(|_| status != Status::Fail),
        timings,
        prints: prints.filter(|_| status != Status::Fail),
    }
}

/// `options` for the prints alone (the `print` command).
fn print_only(options: &Options) -> Options {
    let mut only = options.clone();
    if let Some(p) = &mut only.print {
        p.registry_photo = false;
    }
    only
}

/// A photo that already is what `normalize` makes, as it stands: its own
/// bytes, unchanged, with a record that says so (`copied`). Encoding it
/// again could only lose (each pass at quality 100 still costs a little
/// and the file grows), so a 480x640 input is copied when
/// - its bytes pass every hard rule of SPEC §1 that the file carries
///   ([`verify_jpeg`]: a baseline, 3-component JPEG with a JFIF header at
///   300 dpi directly after SOI, no EXIF or any other metadata segment, no
///   ICC profile, quality at least 60, size in the window, nothing after
///   EOI, and it decodes), so there is no orientation to apply and its
///   colours are sRGB;
/// - it has no border, and no picture check fails on it as it stands
///   ([`judge_picture`], the `check` command's judgement): the head is
///   already where the composition rule puts it, so no crop is needed.
///
/// Any other photo, or one that fails any of it, goes through the stages.
fn copy_if_compliant(name: &Path, bytes: &[u8], options: &Options) -> Option<Processed> {
    let rules = options.output_rules();
    // From the header first: only a JPEG of the output's size in the size
    // window can be one, and every other photo must not pay for a look.
    let size = (
        u16::try_from(rules.width).ok()?,
        u16::try_from(rules.height).ok()?,
    );
    let fits = matches!(sniff(bytes), Sniffed::Supported(ImageFormat::Jpeg))
        && jpeg_frame_size(bytes) == Some(size)
        && (rules.min_bytes..=rules.max_bytes).contains(&bytes.len());
    if !fits {
        return None;
    }
    let mut timings = StageTimings::default();
    let file = timings.time("verify", || verify_jpeg(bytes, &rules));
    if !file.passed() {
        return None;
    }
    let decoded = timings
        .time("decode", || {
            decode(bytes, &options.limits, options.backdrop.reference)
        })
        .ok()?;
    if decoded.orientation != Orientation::Normal || decoded.format != ImageFormat::Jpeg {
        return None;
    }
    let mut record = PhotoRecord {
        jpeg_quality: file.quality,
        chroma: file.chroma.map(|c| c.to_string()),
        encode_attempts: Some(0),
        padding_bytes: Some(0),
        checks: file.checks,
        decode_scales: vec![1.0],
        ..PhotoRecord::default()
    };
    record_decoded(name, &decoded, &mut record);
    let (width, height) = (decoded.image.width(), decoded.image.height());
    timings.time("portrait", || {
        judge_picture(decoded.image, options, &mut record)
    });
    let status = match worst(&record.checks) {
        Verdict::Fail => return None,
        Verdict::Warn => Status::Warn,
        Verdict::Pass => Status::Ok,
    };
    record.crop = Some(Rect::full(width, height));
    record.scale = Some(1.0);
    record.status = Some(status);
    record.copied = true;
    Some(Processed {
        record,
        jpeg: Some(bytes.to_vec()),
        timings,
        prints: None,
    })
}

/// How much a JPEG may be reduced while decoding (see [`Reduce`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReduceSettings {
    /// Largest reduction: 1 decodes every photo at full size; 2, 4 or 8.
    pub max_factor: u32,
    /// The smallest share of the upright image's height (and width) the
    /// crop box is expected to take. The decode keeps enough pixels for the
    /// output at that share; a photo whose box turns out smaller is decoded
    /// again at a finer scale, never upscaled.
    pub min_box_share: f64,
}

impl Default for ReduceSettings {
    fn default() -> Self {
        ReduceSettings {
            max_factor: 8,
            // Heads are 24-40% of a studio portrait's height, so the box
            // takes 45-75% of it; half keeps second decodes rare.
            min_box_share: 0.5,
        }
    }
}

impl ReduceSettings {
    /// The first decode's bounds for a photo made by `rule`.
    pub fn first_decode(&self, rule: &CompositionRule) -> Reduce {
        let share = self.min_box_share.clamp(0.01, 1.0);
        Reduce {
            min_width: (f64::from(rule.out_width) / share).ceil() as u32,
            min_height: (f64::from(rule.out_height) / share).ceil() as u32,
            // A reduction by at most `max_factor` is a scale of at least
            // 1/max_factor, i.e. ceil(8/max_factor) eighths.
            min_scale: DecodeScale::eighths(8u32.div_ceil(self.max_factor.clamp(1, 8))),
        }
    }
}

/// What the analysis stages decided, on an image reduced by `factor`.
struct Analysis {
    trimmed: RgbImage,
    plan: CropPlan,
    backdrop: Backdrop,
    scale: DecodeScale,
    /// Where the subject is in `trimmed`, for the prints' own crops.
    subject: Subject,
    /// `trimmed`'s edges in the upright file's pixels.
    inner: Rect,
    axes: (Axis, Axis),
    /// The backdrop added around the picture, and the picture's size before:
    /// `trimmed`, `plan` and `subject` are then on the extended canvas.
    extension: Option<(ExtensionPlan, u32, u32)>,
}

/// What the stages made of a photo.
struct Staged {
    jpeg: Option<Vec<u8>>,
    prints: Option<Vec<Print>>,
}

/// The stages in order; fills `record` as it goes so a failure still shows
/// how far the photo got.
fn run_stages(
    name: &Path,
    bytes: &[u8],
    options: &Options,
    record: &mut PhotoRecord,
    timings: &mut StageTimings,
) -> Result<Staged, String> {
    let rule = &options.composition;
    let mut reduce = options.reduce.first_decode(rule);
    let before = record.clone();
    let (analysis, print_plans) = loop {
        let a = analyse(name, bytes, options, reduce, record, timings)?;
        let print_plans = options.print.as_ref().map(|p| {
            timings.time("print", || {
                plan_prints(a.trimmed.width(), a.trimmed.height(), &a.subject, rule, p)
            })
        });
        // Output pixels per decoded pixel the prints need: above 1 they
        // would be upscaled from this decode.
        let print_scale = match &print_plans {
            Some(Ok(plans)) => plans.iter().map(|p| p.plan.scale).fold(0.0, f64::max),
            _ => 0.0,
        };
        let registry_short = a.plan.scale > rule.max_upscale + 1e-9;
        let print_short = print_scale > 1.0 + 1e-9;
        // The box is smaller than the output at this scale but not in the
        // file: decode finer rather than upscale.
        if a.scale < DecodeScale::FULL && (registry_short || print_short) {
            let scales = std::mem::take(&mut record.decode_scales);
            *record = before.clone();
            record.decode_scales = scales;
            let numerator = f64::from(a.scale.numerator());
            let mut eighths = if registry_short {
                numerator * a.plan.scale / rule.max_upscale
            } else {
                0.0
            };
            eighths = eighths.max(numerator * print_scale);
            reduce.min_scale =
                DecodeScale::eighths((eighths.ceil() as u32).max(a.scale.numerator() + 1));
            continue;
        }
        break (a, print_plans);
    };
    let Analysis {
        trimmed,
        plan,
        backdrop,
        scale,
        inner,
        axes,
        extension,
        ..
    } = analysis;

    let prints = match print_plans {
        None => None,
        Some(Err((size, e))) => {
            // Without the registry photo the prints are the job: failing
            // them fails the photo. Beside it, a warning.
            let verdict = match options.print.as_ref().is_some_and(|p| p.registry_photo) {
                true => Verdict::Warn,
                false => Verdict::Fail,
            };
            record.checks.push(Check::new(
                "print_composition",
                verdict,
                None,
                format!("no {size} print: {e}"),
            ));
            None
        }
        Some(Ok(plans)) => {
            let to_file = |r: Rect| {
                let on_picture = extension
                    .as_ref()
                    .map_or(r, |(e, width, height)| e.on_picture(r, *width, *height));
                file_rect(on_picture, inner, axes)
            };
            let prints = timings.time("print", || {
                cut_prints(&trimmed, &plans, scale.as_f64(), &to_file)
            })?;
            record.checks.push(crate::print::resolution_check(&prints));
            record.prints = Some(crate::print::PrintsRecord::new(
                options
                    .print
                    .as_ref()
                    .map_or(crate::print::Paper::SixInch, |p| p.paper),
                &prints,
            ));
            Some(prints)
        }
    };
    if options.print.as_ref().is_some_and(|p| !p.registry_photo) {
        // The prints alone: the picture is judged as for the registry
        // photo, which is not encoded.
        let resized = timings
            .time("resize", || {
                resize_crop(&trimmed, plan.rect, rule.out_width, rule.out_height)
            })
            .map_err(|e| e.to_string())?;
        drop(trimmed);
        record.checks.extend(timings.time("portrait", || {
            judge_portrait(&resized, &plan, &backdrop, &options.portrait)
        }));
        return Ok(Staged { jpeg: None, prints });
    }

    let resized = timings
        .time("resize", || {
            resize_crop(&trimmed, plan.rect, rule.out_width, rule.out_height)
        })
        .map_err(|e| e.to_string())?;
    drop(trimmed);
    // Only a photo whose backdrop failed its checks pays for a matte.
    let (resized, backdrop) = if options.recolour.enabled && backdrop_off(&record.checks) {
        timings.time("recolour", || {
            recolour_output(resized, &plan, &backdrop, options, record)
        })?
    } else {
        (resized, backdrop)
    };
    record.checks.extend(timings.time("portrait", || {
        judge_portrait(&resized, &plan, &backdrop, &options.portrait)
    }));

    let encoded = timings
        .time("encode", || encode_to_window(&resized, &options.encode))
        .map_err(|e| e.to_string())?;
    record.jpeg_quality = Some(encoded.quality);
    record.chroma = Some(encoded.chroma.to_string());
    record.encode_attempts = Some(encoded.attempts);
    record.padding_bytes = Some(encoded.padding_bytes);

    let report = timings.time("verify", || {
        verify_written(&encoded.bytes, &options.output_rules())
    });
    record.checks.extend(report.checks);
    Ok(Staged {
        jpeg: Some(encoded.bytes),
        prints,
    })
}

/// The SPEC §1 border rule and the §2 picture checks, on the photo as it
/// stands. Returns the image the checks measured (the photo scaled to the
/// output width), for the thumbnail.
pub(crate) fn judge_picture(
    upright: RgbImage,
    options: &Options,
    record: &mut PhotoRecord,
) -> RgbImage {
    let borders = find_borders(&upright, &options.border);
    record.border_removed = Some(BorderRemoved {
        top: borders.top,
        bottom: borders.bottom,
        left: borders.left,
        right: borders.right,
    });
    record.checks.push(border_check(&borders));
    let trimmed = if borders.is_none() {
        upright
    } else {
        upright.crop(borders.inner(upright.width(), upright.height()))
    };
    let view = match at_output_width(&trimmed, options.composition.out_width) {
        Ok(v) => v,
        Err(why) => {
            record
                .checks
                .push(Check::new("subject", Verdict::Fail, None, why));
            return trimmed;
        }
    };
    drop(trimmed);

    let copy = WorkingCopy::new(&view, options.work_size);
    let backdrop = match estimate_backdrop(&copy, &options.backdrop) {
        Ok(b) => b,
        Err(e) => {
            let reason = e.to_string();
            record
                .checks
                .push(Check::new("backdrop_colour", Verdict::Fail, None, reason));
            return view;
        }
    };
    record.backdrop_rgb = Some(backdrop.rgb);
    record.backdrop_delta_e = Some(backdrop.delta_e);
    record
        .checks
        .extend(judge_backdrop(&backdrop, &options.backdrop));

    let located = locate_with_faces(&copy, &view, &backdrop, &options.subject, &options.face);
    record.checks.extend(located.checks);
    // The view is the whole photo at the output's width: its pixels are
    // the output's.
    record.face = located.record;
    let subject = match located.subject {
        Ok(s) => s,
        Err(why) => {
            record
                .checks
                .push(Check::new("subject", Verdict::Fail, None, why));
            return view;
        }
    };
    record.checks.push(Check::new(
        "subject",
        Verdict::Pass,
        Some(1.0),
        "one person, head and shoulders",
    ));
    // The crop is the whole photo: judge the head where it already is.
    let plan = CropPlan {
        rect: Rect::full(view.width(), view.height()),
        scale: 1.0,
        crown_y: f64::from(subject.crown_y),
        eye_line_y: f64::from(subject.eye_line_y),
        face_width: f64::from(subject.face_width),
        center_x: f64::from(subject.center_x),
        head: subject.head,
    };
    record.geometry = Some(OutputGeometry {
        crown_y: plan.crown_y,
        eye_line_y: plan.eye_line_y,
        face_width: plan.face_width,
        head: plan.head,
    });
    record
        .checks
        .extend(judge_composition(&plan, &options.composition));
    record
        .checks
        .extend(judge_portrait(&view, &plan, &backdrop, &options.portrait));
    view
}

/// Whether the backdrop's colour or evenness did not pass.
fn backdrop_off(checks: &[Check]) -> bool {
    checks.iter().any(|c| {
        matches!(c.name.as_str(), "backdrop_colour" | "backdrop_evenness")
            && c.verdict != Verdict::Pass
    })
}

/// The output with its backdrop recoloured, and the backdrop measured
/// again on it, which replaces the input's in the record and the checks.
/// Uncertain separation fails the photo with the reason.
fn recolour_output(
    resized: RgbImage,
    plan: &CropPlan,
    before: &Backdrop,
    options: &Options,
    record: &mut PhotoRecord,
) -> Result<(RgbImage, Backdrop), String> {
    let head = HeadPlace {
        center_x: plan.center_x,
        crown_y: plan.crown_y,
        eye_y: plan.eye_line_y,
    };
    let reference = options.backdrop.reference;
    let (out, _) = recolour(&resized, reference, head, &options.recolour).map_err(|e| {
        let reason = format!("backdrop not recoloured: {e}");
        record
            .checks
            .push(Check::new("recolour", Verdict::Fail, None, reason.clone()));
        reason
    })?;
    let after = estimate_backdrop(
        &WorkingCopy::new(&out, options.work_size),
        &options.backdrop,
    )
    .map_err(|e| format!("backdrop not recoloured: {e}"))?;
    record
        .checks
        .retain(|c| !matches!(c.name.as_str(), "backdrop_colour" | "backdrop_evenness"));
    record
        .checks
        .extend(judge_backdrop(&after, &options.backdrop));
    record.checks.push(Check::new(
        "recolour",
        Verdict::Pass,
        Some(before.delta_e),
        format!(
            "backdrop sRGB {},{},{} replaced by {},{},{} through a matte of the person",
            before.rgb[0], before.rgb[1], before.rgb[2], reference[0], reference[1], reference[2]
        ),
    ));
    record.backdrop_recoloured = Some(before.rgb);
    record.backdrop_rgb = Some(after.rgb);
    record.backdrop_delta_e = Some(after.delta_e);
    Ok((out, after))
}

fn border_check(b: &Borders) -> Check {
    if b.is_none() {
        return Check::new(
            "no_border",
            Verdict::Pass,
            Some(0.0),
            "no frame along any edge",
        );
    }
    let sides: Vec<String> = [
        ("top", b.top),
        ("bottom", b.bottom),
        ("left", b.left),
        ("right", b.right),
    ]
    .iter()
    .filter(|(_, px)| *px > 0)
    .map(|(side, px)| format!("{side} {px} px"))
    .collect();
    let widest = b.top.max(b.bottom).max(b.left).max(b.right);
    Check::new(
        "no_border",
        Verdict::Fail,
        Some(f64::from(widest)),
        format!("a uniform frame along the edge: {}", sides.join(", ")),
    )
}

/// The image scaled (same factor both ways) to `width` pixels wide, so the
/// composition rule's pixel ranges apply to it whatever its size.
fn at_output_width(img: &RgbImage, width: u32) -> Result<RgbImage, String> {
    if img.width() == width {
        return Ok(img.clone());
    }
    let height = (f64::from(img.height()) * f64::from(width) / f64::from(img.width()))
        .round()
        .max(1.0) as u32;
    resize_crop(img, Rect::full(img.width(), img.height()), width, height)
        .map_err(|e| format!("cannot scale the photo to measure it: {e}"))
}

/// Records what decoding learnt about the file. A name whose extension lies
/// about the content is processed by its real type and flagged with a
/// warning, so that somebody renames the source.
pub fn record_decoded(name: &Path, decoded: &Decoded, record: &mut PhotoRecord) {
    let format = decoded.format.name();
    record.detected_type = Some(format.to_owned());
    let extension = name
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    record.extension_mismatch = !decoded.format.matches_extension(&extension);
    if record.extension_mismatch {
        record.checks.push(Check::new(
            "file_type",
            Verdict::Warn,
            None,
            format!("the file is named .{extension} but its content is {format}"),
        ));
    }
    record.colour = Some(decoded.colour.clone());
    record.progressive = Some(decoded.progressive);
    record.original_width = Some(decoded.full_width);
    record.original_height = Some(decoded.full_height);
    record.orientation = Some(decoded.orientation.exif_value());
    record.colour_profile = decoded.colour_profile.clone();
    if let Some(why) = &decoded.colour_warning {
        record.checks.push(Check::new(
            "colour_profile",
            Verdict::Warn,
            None,
            why.clone(),
        ));
    }
}

/// One upright axis of a reduced decode against the file's pixels. A
/// reduced decode is aligned with the stored image's first row and column
/// and rounds its size up, so its last pixel stands for fewer file pixels;
/// where orientation reverses an axis, that short pixel comes first.
#[derive(Clone, Copy, Debug)]
struct Axis {
    full: u32,
    decoded: u32,
    eighths: u32,
    reversed: bool,
}

impl Axis {
    /// File position of the edge before decoded pixel `v`, times the scale's
    /// numerator (exact).
    fn scaled(self, v: u32) -> u64 {
        let m = u64::from(self.eighths);
        let v = u64::from(v.min(self.decoded));
        let pos = if self.reversed {
            (u64::from(self.full) * m).saturating_sub((u64::from(self.decoded) - v) * 8)
        } else {
            v * 8
        };
        pos.min(u64::from(self.full) * m)
    }

    fn ceil(self, v: u32) -> u32 {
        self.scaled(v).div_ceil(u64::from(self.eighths)) as u32
    }

    fn floor(self, v: u32) -> u32 {
        (self.scaled(v) / u64::from(self.eighths)) as u32
    }

    fn nearest(self, v: u32) -> u32 {
        let m = u64::from(self.eighths);
        ((self.scaled(v) + m / 2) / m) as u32
    }
}

/// The upright x and y axes of `decoded` (before orientation is applied).
fn upright_axes(decoded: &Decoded) -> (Axis, Axis) {
    use crate::transform::orient::Orientation::*;
    let o = decoded.orientation;
    let stored = |full: u32, decoded_len: u32, reversed: bool| Axis {
        full,
        decoded: decoded_len,
        eighths: decoded.scale.numerator(),
        reversed,
    };
    let (w, h) = (decoded.image.width(), decoded.image.height());
    let (sx, sy) = (decoded.full_width, decoded.full_height);
    // Which stored axis each upright axis reads, and whether backwards
    // (see `apply_orientation`).
    let x_reversed = matches!(o, MirrorHorizontal | Rotate180 | Rotate90 | Transverse);
    let y_reversed = matches!(o, MirrorVertical | Rotate180 | Rotate270 | Transverse);
    if o.swaps_axes() {
        (stored(sy, h, x_reversed), stored(sx, w, y_reversed))
    } else {
        (stored(sx, w, x_reversed), stored(sy, h, y_reversed))
    }
}

/// Decode, orient, border, backdrop, subject and crop plan, on the photo
/// reduced as `reduce` allows. Sizes and positions in `record` are in the
/// file's own pixels, whatever the reduction.
fn analyse(
    name: &Path,
    bytes: &[u8],
    options: &Options,
    reduce: Reduce,
    record: &mut PhotoRecord,
    timings: &mut StageTimings,
) -> Result<Analysis, String> {
    let matte = options.backdrop.reference;
    let decoded = timings
        .time("decode", || {
            decode_reduced(bytes, &options.limits, matte, reduce)
        })
        .map_err(|e| e.to_string())?;
    let scale = decoded.scale;
    // Recorded now, so a photo that fails further on still says at what
    // scale it was measured.
    record.decode_scales.push(scale.as_f64());
    record_decoded(name, &decoded, record);
    let (xs, ys) = upright_axes(&decoded);
    let upright = timings.time("orient", || {
        apply_orientation(decoded.image, decoded.orientation)
    });

    let borders = timings.time("border", || find_borders(&upright, &options.border));
    let inner = borders.inner(upright.width(), upright.height());
    // The inner edge at reduced scale lies between file pixels; the nearest
    // one is the best estimate of what was removed (the border stage has
    // already rounded outward in its own pixels).
    record.border_removed = Some(BorderRemoved {
        top: ys.nearest(borders.top),
        bottom: ys.full - ys.nearest(inner.bottom()),
        left: xs.nearest(borders.left),
        right: xs.full - xs.nearest(inner.right()),
    });
    // At reduced scale the line along a frame's inner edge averages the
    // frame's last file pixels into the picture's first: what the border
    // stage leaves of it (under its rounding share) still shows as a faint
    // line once resized. The picture used from here on keeps clear of it.
    let inner = if scale < DecodeScale::FULL {
        clear_of_frame_edge(inner, &borders)
    } else {
        inner
    };
    let trimmed = if borders.is_none() {
        upright
    } else {
        timings.time("border", || upright.crop(inner))
    };

    let copy = timings.time("subject", || WorkingCopy::new(&trimmed, options.work_size));
    let backdrop = timings
        .time("subject", || estimate_backdrop(&copy, &options.backdrop))
        .map_err(|e| e.to_string())?;
    record.backdrop_rgb = Some(backdrop.rgb);
    record.backdrop_delta_e = Some(backdrop.delta_e);
    record
        .checks
        .extend(judge_backdrop(&backdrop, &options.backdrop));

    // Upscaling is judged against the file, not the reduced image: a box
    // smaller than the output here is redone at a finer scale.
    let rule = CompositionRule {
        max_upscale: options.composition.max_upscale / scale.as_f64(),
        ..options.composition.clone()
    };
    let (width, height) = (trimmed.width(), trimmed.height());
    let located = timings.time("subject", || {
        locate_with_faces(&copy, &trimmed, &backdrop, &options.subject, &options.face)
    });
    timings.move_time("subject", "face", located.face_time);
    record.checks.extend(located.checks);
    let face = located.record;
    record.face = face.clone();
    let (subject, plan, extension) = timings
        .time("subject", || match located.subject {
            Ok(subject) => {
                let planned = plan_crop(width, height, &subject, &rule);
                let (planned, ext) = plan_with_extension(
                    width,
                    height,
                    &copy,
                    &backdrop,
                    &subject,
                    &rule,
                    planned,
                    &options.extend,
                );
                planned
                    .map(|p| (subject, p, ext))
                    .map_err(|e| e.to_string())
            }
            // No face found: a head too small for the rule is too small for
            // the detector too, and better reported as that.
            Err(why) => Err(located
                .silhouette
                .and_then(|s| plan_crop(width, height, &s, &rule).err())
                .filter(|e| {
                    matches!(
                        e,
                        ComposeError::TooSmall { .. } | ComposeError::NeedsUpscale { .. }
                    )
                })
                .map_or(why, |e| e.to_string())),
        })
        .map_err(|why| backdrop_first(&record.checks, why))?;
    // The face was found on the picture; the box may lie on a canvas with
    // backdrop added before it.
    let (added_left, added_top) = extension
        .as_ref()
        .map_or((0, 0), |e| (e.added.left, e.added.top));
    record.face = face.map(|f| {
        f.to_output(
            f64::from(plan.rect.x) - f64::from(added_left),
            f64::from(plan.rect.y) - f64::from(added_top),
            plan.scale,
        )
    });
    // The crop recorded is the part of the box on the file's picture; what
    // it takes in beyond is synthesised backdrop, recorded apart.
    let on_picture = |r: Rect| {
        extension
            .as_ref()
            .map_or(r, |e| e.on_picture(r, width, height))
    };
    record.crop = Some(file_rect(on_picture(plan.rect), inner, (xs, ys)));
    let (trimmed, subject) = match &extension {
        Some(e) => {
            let in_file = |px: u32| (f64::from(px) / scale.as_f64()).round() as u32;
            record.backdrop_extended = Some(Extension {
                top: in_file(e.added.top),
                left: in_file(e.added.left),
                right: in_file(e.added.right),
            });
            let canvas = timings.time("extend", || extend_canvas(&trimmed, e));
            (canvas, subject.shifted(e.added.left, e.added.top))
        }
        None => (trimmed, subject),
    };
    record.scale = Some(plan.scale * scale.as_f64());
    record.geometry = Some(OutputGeometry {
        crown_y: plan.crown_y,
        eye_line_y: plan.eye_line_y,
        face_width: plan.face_width,
        head: plan.head,
    });
    record.checks.extend(judge_composition(&plan, &rule));
    Ok(Analysis {
        trimmed,
        plan,
        backdrop,
        scale,
        subject,
        inner,
        axes: (xs, ys),
        extension: extension.map(|e| (e, width, height)),
    })
}

/// A box in the trimmed picture (whose edges are `inner` in the upright
/// decode) in the upright file's pixels, rounded inward, so the box never
/// takes in a file pixel of a frame.
fn file_rect(rect: Rect, inner: Rect, (xs, ys): (Axis, Axis)) -> Rect {
    let (left, top) = (rect.x + inner.x, rect.y + inner.y);
    let (x0, y0) = (xs.ceil(left), ys.ceil(top));
    Rect::new(
        x0,
        y0,
        xs.floor(left + rect.width).saturating_sub(x0),
        ys.floor(top + rect.height).saturating_sub(y0),
    )
}

/// A backdrop that failed its checks is why a person could not be
/// measured against it (a flag or a shuttle behind the astronaut merges with
/// her hair at the top edge): the error says so first.
fn backdrop_first(checks: &[Check], why: String) -> String {
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail && c.name.starts_with("backdrop"))
        .map(|c| c.name.as_str())
        .collect();
    if failed.is_empty() {
        return why;
    }
    format!(
        "failed checks: {} (the person cannot be measured against this backdrop: {why})",
        failed.join(", ")
    )
}

/// `inner` less one line on each side where a frame was found, where the
/// picture is big enough to spare it.
fn clear_of_frame_edge(inner: Rect, borders: &Borders) -> Rect {
    let cut = |frame: u32| u32::from(frame > 0);
    let (left, right) = (cut(borders.left), cut(borders.right));
    let (top, bottom) = (cut(borders.top), cut(borders.bottom));
    if inner.width <= 2 + left + right || inner.height <= 2 + top + bottom {
        return inner;
    }
    Rect::new(
        inner.x + left,
        inner.y + top,
        inner.width - left - right,
        inner.height - top - bottom,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::synth::{FileSpec, PortraitSpec, make_photo};

    #[test]
    fn the_picture_keeps_clear_of_a_frame_edge_only_where_there_is_a_frame() {
        let inner = Rect::new(10, 20, 100, 200);
        let top_left = Borders {
            top: 20,
            left: 10,
            ..Borders::default()
        };
        assert_eq!(
            clear_of_frame_edge(inner, &top_left),
            Rect::new(11, 21, 99, 199)
        );
        let all = Borders {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1,
        };
        assert_eq!(clear_of_frame_edge(inner, &all), Rect::new(11, 21, 98, 198));
        // Nothing to spare: left as it is.
        let sliver = Rect::new(1, 1, 3, 3);
        assert_eq!(clear_of_frame_edge(sliver, &all), sliver);
    }

    #[test]
    fn a_photo_failing_after_a_reduced_decode_records_its_scale() {
        // 2400x3200 decodes at 1/2; two people fail it in the subject stage.
        let spec = PortraitSpec {
            width: 2400,
            height: 3200,
            second_person: true,
            ..PortraitSpec::default()
        };
        let (bytes, _) = make_photo(&spec, &FileSpec::jpeg(90)).expect("photo");
        let done = normalize_photo(Path::new("two.jpg"), &bytes, &Options::default());
        assert!(done.jpeg.is_none(), "{:?}", done.record);
        assert_eq!(done.record.decode_scales, vec![0.5], "{:?}", done.record);
    }

    #[test]
    fn a_reversed_axis_is_measured_from_the_short_pixel() {
        // 2718 file pixels at 3/8 decode to 1020 (8/3 * 1020 = 2720), the
        // last standing for 2/3 of a file pixel.
        let axis = |reversed| Axis {
            full: 2718,
            decoded: 1020,
            eighths: 3,
            reversed,
        };
        let (ahead, back) = (axis(false), axis(true));
        assert_eq!((ahead.ceil(68), ahead.floor(826)), (182, 2202));
        // Reversed, the short pixel comes first: every edge lies 2720 - 2718
        // = 2 file pixels nearer the start.
        assert_eq!((back.ceil(68), back.floor(826)), (180, 2200));
        assert_eq!((back.ceil(0), back.floor(1020)), (0, 2718));
        assert_eq!((ahead.ceil(0), ahead.floor(1020)), (0, 2718));
        assert_eq!((ahead.nearest(68), back.nearest(68)), (181, 179));
    }
}
