//! `report.html`: one self-contained page a teaching secretary can open
//! and read, for `normalize` and `check` alike.
//!
//! Everything is inside the file: thumbnails are small JPEGs made by our
//! own resize and encode stages, embedded as data URIs; the style and the
//! filter script are inline; a Content-Security-Policy forbids any load
//! from outside, so the page behaves the same offline and leaks nothing.
//! A cohort is 4,500 photos, so thumbnails are kept to a few KB and cards
//! off screen are neither laid out nor painted (`content-visibility`); and
//! the page is written as it is made, a few dozen cards at a time, from
//! records read one by one, so making it needs the same memory for 45
//! photos as for 4,500.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::batch::manifest::{PhotoRecord, RecordSource, RosterSummary, RunHeader, Status};
use crate::batch::output::write_atomically_with;
use crate::batch::path_text::text_path;
use crate::codec::decode::decode;
use crate::codec::encode::{Chroma, encode_once};
use crate::image::{Rect, RgbImage};
use crate::photo::Options;
use crate::transform::orient::apply_orientation;
use crate::transform::resize::resize_crop;
use crate::verdict::Verdict;

pub const FILE_NAME: &str = "report.html";

/// Thumbnail width in pixels: a 480x640 photo becomes 120x160, about
/// 3-5 KB at the quality below.
pub const THUMB_WIDTH: u32 = 120;
const THUMB_QUALITY: u8 = 70;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A small JPEG of `img`, `THUMB_WIDTH` wide; `None` when the image is
/// degenerate.
pub fn thumbnail(img: &RgbImage) -> Option<Vec<u8>> {
    let height = (f64::from(img.height()) * f64::from(THUMB_WIDTH) / f64::from(img.width()))
        .round()
        .clamp(1.0, f64::from(THUMB_WIDTH) * 3.0) as u32;
    let small = resize_crop(
        img,
        Rect::full(img.width(), img.height()),
        THUMB_WIDTH,
        height,
    )
    .ok()?;
    encode_once(&small, THUMB_QUALITY, Chroma::Sub420, 72).ok()
}

/// Makes the thumbnail of a record, `None` when it has no picture.
pub type ThumbnailFn<'a> = dyn Fn(&PhotoRecord) -> Option<Vec<u8>> + Sync + 'a;

/// The thumbnail of a `normalize` record, read back from disk: the output
/// when one was written, else the input (so a failure shows what was
/// wrong). A file that cannot be read or decoded gets none.
pub fn thumbnail_from_files(r: &PhotoRecord, out_dir: &Path, options: &Options) -> Option<Vec<u8>> {
    let path = match &r.output {
        Some(name) => out_dir.join(name),
        None => text_path(&r.input),
    };
    let bytes = std::fs::read(path).ok()?;
    let decoded = decode(&bytes, &options.limits, options.backdrop.reference).ok()?;
    let upright = apply_orientation(decoded.image, decoded.orientation);
    thumbnail(&upright)
}

/// Writes the page into `dir` (replacing an earlier report), making the
/// thumbnails on `jobs` threads.
pub fn write_report(
    dir: &Path,
    source: &dyn RecordSource,
    thumbnails: &ThumbnailFn<'_>,
    jobs: usize,
) -> Result<PathBuf, ReportError> {
    let path = dir.join(FILE_NAME);
    write_atomically_with(&path, true, |w| render_to(w, source, thumbnails, jobs)).map_err(
        |e| ReportError::Write {
            path: path.clone(),
            source: e.into_io(),
        },
    )?;
    Ok(path)
}

/// Text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A number from the recorded settings, e.g. `["backdrop", "colour_pass"]`.
fn setting(run: &RunHeader, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(&run.settings, |v, k| v.get(k))?
        .as_f64()
}

/// The name a person knows the photo by: the output, else the input file.
fn photo_id(r: &PhotoRecord) -> String {
    r.output.clone().unwrap_or_else(|| {
        Path::new(&r.input)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| r.input.clone())
    })
}

/// Check names that did not pass, plus `error` for a photo that failed
/// before its checks ran.
fn flagged_checks(r: &PhotoRecord) -> Vec<&str> {
    let mut names: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| c.name.as_str())
        .collect();
    if r.error.is_some() && names.is_empty() {
        names.push("error");
    }
    names
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
header,section{padding:8px 16px}header h1{font-size:20px;margin:4px 0}\
.muted{color:#666}.counts{display:flex;gap:12px;flex-wrap:wrap}\
.counts div{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 12px}\
.counts b{font-size:22px;display:block}\
.grid{display:flex;gap:24px;flex-wrap:wrap}.grid>div{min-width:260px}\
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}\
.bar{display:inline-block;height:10px;background:#7aa7d8;vertical-align:middle}\
.sw{display:inline-block;width:18px;height:18px;border:1px solid #999;vertical-align:middle;margin-right:4px}\
.filters{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;z-index:1}\
.sheet{display:flex;flex-wrap:wrap;align-items:flex-start;gap:8px;padding:8px 16px}\
.card{width:180px;background:#fff;border:1px solid #ccc;border-radius:6px;padding:6px;\
content-visibility:auto;contain-intrinsic-size:180px 300px;font-size:12px}\
.card img{display:block;width:120px;margin:0 auto;background:#eee}\
.card.fail{border-color:#d33;border-width:2px}.card.warn{border-color:#e90;border-width:2px}\
.st{font-weight:bold;text-transform:uppercase}.fail .st{color:#c00}.warn .st{color:#b60}.ok .st{color:#070}\
.card ul{margin:4px 0;padding-left:16px}.id{font-weight:bold;word-break:break-all}\
details{margin:4px 0}";

/// Applies the filters, and reads them from the URL's `#status=…&check=…`
/// so a link (or a test) can open a filtered view.
const SCRIPT: &str = "\
const cards=Array.from(document.querySelectorAll('.card'));\
const fs=document.getElementById('f-status'),fc=document.getElementById('f-check'),\
fq=document.getElementById('f-q'),shown=document.getElementById('n-shown');\
function apply(){const s=fs.value,c=fc.value,q=fq.value.trim().toLowerCase();let n=0;\
for(const e of cards){const ok=(s===''||e.dataset.s===s)&&(c===''||e.dataset.c.includes(' '+c+' '))\
&&(q===''||e.dataset.q.includes(q));e.hidden=!ok;if(ok)n++}shown.textContent=n}\
for(const kv of location.hash.slice(1).split('&')){const [k,v]=kv.split('=').map(decodeURIComponent);\
if(k==='status')fs.value=v;if(k==='check')fc.value=v;if(k==='q')fq.value=v}\
fs.onchange=fc.onchange=apply;fq.oninput=apply;apply();";

/// What the page's tables need of the records, gathered in one pass so
/// that the cards can follow without the records being held.
#[derive(Default)]
struct Summary {
    photos: usize,
    /// Per check name: photos failing it, photos warned by it.
    tally: BTreeMap<String, (usize, usize)>,
    /// Photos that failed before any check ran.
    unreadable: usize,
    /// Check names that did not pass somewhere (with `error`), for the filter.
    flagged: BTreeSet<String>,
    /// Backdrop colour and its distance to the reference, where measured.
    measured: Vec<([u8; 3], f64)>,
    /// File sizes: the inputs for `check`, the outputs for `normalize`.
    sizes: Vec<u64>,
    dims: BTreeMap<(u32, u32), usize>,
}

impl Summary {
    fn add(&mut self, r: &PhotoRecord, is_check: bool) {
        self.photos += 1;
        for c in &r.checks {
            let t = self.tally.entry(c.name.clone()).or_default();
            match c.verdict {
                Verdict::Fail => t.0 += 1,
                Verdict::Warn => t.1 += 1,
                Verdict::Pass => {}
            }
        }
        let flagged = flagged_checks(r);
        self.unreadable += usize::from(flagged == ["error"]);
        self.flagged.extend(flagged.into_iter().map(str::to_owned));
        if let (Some(rgb), Some(delta_e)) = (r.backdrop_rgb, r.backdrop_delta_e) {
            self.measured.push((rgb, delta_e));
        }
        // `check` judges the files given; `normalize` the files it wrote.
        let size = if is_check {
            (r.input_bytes > 0).then_some(r.input_bytes)
        } else {
            r.output_bytes
        };
        self.sizes.extend(size);
        if let (Some(w), Some(hh)) = (r.original_width, r.original_height) {
            *self.dims.entry((w, hh)).or_default() += 1;
        }
    }
}

/// Cards made (thumbnails in parallel) and written per group of this many.
const CARDS_AT_ONCE: usize = 64;

/// The whole page, in memory, for tests.
#[cfg(test)]
pub fn render(source: &dyn RecordSource, thumbnails: &ThumbnailFn<'_>) -> std::io::Result<String> {
    let mut page = Vec::new();
    render_to(&mut page, source, thumbnails, 1)?;
    String::from_utf8(page).map_err(std::io::Error::other)
}

/// Writes the page to `out`, reading the records twice: once for the
/// tables at the top, once for the cards, failed then warned then ok.
fn render_to(
    out: &mut dyn std::io::Write,
    source: &dyn RecordSource,
    thumbnails: &ThumbnailFn<'_>,
    jobs: usize,
) -> std::io::Result<()> {
    let run = source.run();
    let c = &run.counts;
    let is_check = run.command == "check";
    let mut summary = Summary::default();
    for r in source.records() {
        let r = r.map_err(std::io::Error::other)?;
        summary.add(&r, is_check);
    }
    let mut h = String::with_capacity(CARDS_AT_ONCE * 6 * 1024);
    let title = if is_check {
        "gradphoto check"
    } else {
        "gradphoto normalize"
    };
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\
<style>{STYLE}</style></head><body><header><h1>{title}: {} photos</h1>\
<div class=\"muted\">gradphoto {} · started {} · finished {}</div>",
        c.inputs,
        esc(&run.version),
        esc(&run.started),
        esc(run.finished.as_deref().unwrap_or("(unfinished)")),
    );
    h.push_str("<div class=\"counts\">");
    let mut count = |id: &str, n: usize, label: &str| {
        let _ = write!(h, "<div><b id=\"n-{id}\">{n}</b>{label}</div>");
    };
    count("total", c.inputs, "photos");
    count("ok", c.ok, if is_check { "pass" } else { "ok" });
    count("warn", c.warn, "warnings to review");
    count("fail", c.fail, "fail");
    if is_check {
        count("fixable", c.fixable, "failures normalize can fix");
    } else {
        count("resumed", c.resumed, "kept from an earlier run");
    }
    h.push_str("</div></header><section class=\"grid\">");
    checks_table(&mut h, &summary);
    backdrop_summary(&mut h, run, &summary);
    size_summary(&mut h, run, &summary, is_check);
    h.push_str("</section>");
    if let Some(roster) = &run.roster {
        roster_section(&mut h, roster);
    }

    h.push_str(
        "<section class=\"filters\">Status <select id=\"f-status\"><option value=\"\">all</option>\
<option value=\"fail\">fail</option><option value=\"warn\">warn</option>\
<option value=\"ok\">ok</option></select> Check <select id=\"f-check\"><option value=\"\">any</option>",
    );
    for name in &summary.flagged {
        let _ = write!(h, "<option>{}</option>", esc(name));
    }
    h.push_str(
        "</select> Search <input id=\"f-q\" placeholder=\"id, name, student no.\"> \
<span id=\"n-shown\"></span> shown</section><main class=\"sheet\">",
    );
    out.write_all(h.as_bytes())?;
    h.clear();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .ok();
    let make = |group: &[PhotoRecord]| -> Vec<Option<Vec<u8>>> {
        let run = || group.par_iter().map(thumbnails).collect();
        match &pool {
            Some(pool) => pool.install(run),
            None => group.iter().map(thumbnails).collect(),
        }
    };
    for status in [Status::Fail, Status::Warn, Status::Ok] {
        let mut group = Vec::with_capacity(CARDS_AT_ONCE);
        let mut records = source.records();
        loop {
            let next = records.next().transpose().map_err(std::io::Error::other)?;
            let at_end = next.is_none();
            group.extend(
                next.filter(|r| r.status() == status)
                    .map(|r| r.into_owned()),
            );
            if group.len() < CARDS_AT_ONCE && !at_end {
                continue;
            }
            for (r, thumb) in group.iter().zip(make(&group)) {
                card(&mut h, r, thumb.as_deref());
            }
            out.write_all(h.as_bytes())?;
            h.clear();
            group.clear();
            if at_end {
                break;
            }
        }
    }
    let _ = write!(h, "</main><script>{SCRIPT}</script></body></html>");
    out.write_all(h.as_bytes())
}

fn card(h: &mut String, r: &PhotoRecord, thumb: Option<&[u8]>) {
    let status = r.status().name();
    let id = photo_id(r);
    let roster = r.roster.as_ref();
    let name = roster.map(|f| f.name.as_str()).unwrap_or_default();
    let flagged = flagged_checks(r);
    let extended = r.backdrop_extended.map(|e| {
        let sides: Vec<String> = [("top", e.top), ("left", e.left), ("right", e.right)]
            .iter()
            .filter(|(_, px)| *px > 0)
            .map(|(side, px)| format!("{side} {px} px"))
            .collect();
        format!("backdrop extended: {}", sides.join(", "))
    });
    let mut search = format!(
        "{id} {name} {} {} {}",
        roster.map(|f| f.student_no.as_str()).unwrap_or_default(),
        roster.map(|f| f.id_card.as_str()).unwrap_or_default(),
        r.input
    )
    .to_lowercase();
    if let Some(text) = &extended {
        // Found by typing "extended" in the filter box.
        search.push(' ');
        search.push_str(text);
    }
    let _ = write!(
        h,
        "<figure class=\"card {status}\" data-s=\"{status}\" data-c=\" {} \" data-q=\"{}\">",
        esc(&flagged.join(" ")),
        esc(&search)
    );
    match thumb {
        Some(jpeg) => {
            let _ = write!(
                h,
                "<img alt=\"\" decoding=\"async\" loading=\"lazy\" src=\"data:image/jpeg;base64,{}\">",
                base64(jpeg)
            );
        }
        None => h.push_str("<div class=\"muted\">(no picture)</div>"),
    }
    let _ = write!(h, "<figcaption><div class=\"id\">{}</div>", esc(&id));
    if let Some(f) = roster {
        let _ = write!(h, "<div>{} · {}</div>", esc(&f.name), esc(&f.student_no));
    }
    let _ = write!(h, "<div class=\"st\">{status}</div>");
    let reasons = r.reasons();
    if !reasons.is_empty() {
        h.push_str("<ul>");
        for reason in reasons {
            let _ = write!(h, "<li>{}</li>", esc(&reason));
        }
        h.push_str("</ul>");
    }
    if let Some(text) = &extended {
        let _ = write!(h, "<div class=\"ext\">{}</div>", esc(text));
    }
    if let Some(fix) = &r.fix {
        let _ = write!(h, "<div class=\"fix\">{}</div>", esc(fix));
    }
    if r.input != id {
        let _ = write!(h, "<div class=\"muted\">{}</div>", esc(&r.input));
    }
    h.push_str("</figcaption></figure>");
}

fn bar(h: &mut String, label: &str, n: usize, total: usize) {
    let width = (n * 120).checked_div(total).unwrap_or(0);
    let _ = write!(
        h,
        "<tr><td>{}</td><td>{n}</td><td><span class=\"bar\" style=\"width:{width}px\"></span></td></tr>",
        esc(label)
    );
}

fn checks_table(h: &mut String, summary: &Summary) {
    h.push_str("<div><h3>Checks not passed</h3><table id=\"checks\"><tr><th>check</th><th>fail</th><th>warn</th></tr>");
    for (name, (fail, warn)) in summary.tally.iter().filter(|(_, (f, w))| f + w > 0) {
        let _ = write!(
            h,
            "<tr data-check=\"{0}\"><td>{0}</td><td>{fail}</td><td>{warn}</td></tr>",
            esc(name)
        );
    }
    if summary.unreadable > 0 {
        let _ = write!(
            h,
            "<tr data-check=\"error\"><td>error (unreadable)</td><td>{}</td><td>0</td></tr>",
            summary.unreadable
        );
    }
    h.push_str("</table></div>");
}

fn backdrop_summary(h: &mut String, run: &RunHeader, summary: &Summary) {
    let pass = setting(run, &["backdrop", "colour_pass"]).unwrap_or(10.0);
    let warn = setting(run, &["backdrop", "colour_warn"]).unwrap_or(20.0);
    let measured = &summary.measured;
    let total = summary.photos;
    let _ = write!(
        h,
        "<div><h3>Backdrop colour</h3><table id=\"backdrop\"><tr><th>ΔE2000 to the reference</th><th>photos</th><th></th></tr>"
    );
    let within = |lo: f64, hi: f64| measured.iter().filter(|(_, d)| *d > lo && *d <= hi).count();
    bar(
        h,
        &format!("≤ {pass} (pass)"),
        within(f64::MIN, pass),
        total,
    );
    bar(
        h,
        &format!("{pass}–{warn} (warn)"),
        within(pass, warn),
        total,
    );
    bar(
        h,
        &format!("> {warn} (fail)"),
        within(warn, f64::MAX),
        total,
    );
    bar(h, "not measured", total - measured.len(), total);
    h.push_str("</table><div>Most common backdrops: ");
    // Colours rounded to steps of 16 so that one studio's backdrop with
    // noise and fall-off counts as one colour.
    let mut clusters: BTreeMap<[u8; 3], (usize, [u64; 3])> = BTreeMap::new();
    for (rgb, _) in measured {
        let key = rgb.map(|v| v / 16);
        let e = clusters.entry(key).or_default();
        e.0 += 1;
        for (sum, &v) in e.1.iter_mut().zip(rgb) {
            *sum += u64::from(v);
        }
    }
    let mut ranked: Vec<(usize, [u64; 3])> = clusters.into_values().collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (n, sum) in ranked.iter().take(10) {
        let [r, g, b] = sum.map(|s| s / *n as u64);
        let _ = write!(
            h,
            "<span title=\"sRGB {r},{g},{b}\"><span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span>{n}</span> "
        );
    }
    h.push_str("</div></div>");
}

fn size_summary(h: &mut String, run: &RunHeader, summary: &Summary, is_check: bool) {
    let min = setting(run, &["encode", "min_bytes"]).unwrap_or(30_720.0) as u64;
    let max = setting(run, &["encode", "max_bytes"]).unwrap_or(100_000.0) as u64;
    let sizes = &summary.sizes;
    let total = sizes.len();
    let what = if is_check {
        "File sizes"
    } else {
        "Output sizes"
    };
    let _ = write!(
        h,
        "<div><h3>{what}</h3><table id=\"sizes\"><tr><th>bytes</th><th>photos</th><th></th></tr>"
    );
    let mid = min + (max - min.min(max)) / 2;
    let band = |lo: u64, hi: u64| sizes.iter().filter(|&&s| s >= lo && s < hi).count();
    bar(h, &format!("< {min} (too small)"), band(0, min), total);
    bar(h, &format!("{min}–{mid}"), band(min, mid), total);
    bar(h, &format!("{mid}–{max}"), band(mid, max + 1), total);
    bar(
        h,
        &format!("> {max} (too large)"),
        band(max + 1, u64::MAX),
        total,
    );
    h.push_str("</table>");
    let mut dims: Vec<_> = summary.dims.iter().map(|(&k, &n)| (k, n)).collect();
    dims.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    h.push_str("<div>Pixel sizes: ");
    let shown: Vec<String> = dims
        .iter()
        .take(6)
        .map(|((w, hh), n)| format!("{w}×{hh} ({n})"))
        .collect();
    h.push_str(&esc(&shown.join(", ")));
    if dims.len() > 6 {
        let _ = write!(h, ", {} other sizes", dims.len() - 6);
    }
    h.push_str("</div></div>");
}

fn roster_section(h: &mut String, s: &RosterSummary) {
    let _ = write!(
        h,
        "<section id=\"roster\"><h3>Roster {} ({} rows, {})</h3><div class=\"counts\">",
        esc(&s.file),
        s.rows,
        esc(&s.encoding)
    );
    for (id, n, label) in [
        ("matched", s.matched, "graduates with one photo"),
        ("no-photo", s.no_photo.len(), "graduates with no photo"),
        (
            "multiple",
            s.multiple_photos.len(),
            "graduates with several photos",
        ),
        (
            "unmatched",
            s.unmatched_photos.len(),
            "photos matching nobody",
        ),
        (
            "invalid-ids",
            s.invalid_ids.len(),
            "invalid ID-card numbers",
        ),
        (
            "duplicate-ids",
            s.duplicate_id_cards.len(),
            "ID-card numbers on several rows",
        ),
    ] {
        let _ = write!(h, "<div><b id=\"r-{id}\">{n}</b>{label}</div>");
    }
    h.push_str("</div>");
    let list = |h: &mut String, title: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let _ = write!(
            h,
            "<details><summary>{} ({})</summary><ul>",
            esc(title),
            items.len()
        );
        for i in items {
            let _ = write!(h, "<li>{}</li>", esc(&i));
        }
        h.push_str("</ul></details>");
    };
    for (title, items) in s.mismatch_lists() {
        list(h, title, items);
    }
    h.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::manifest::Manifest;
    use crate::verdict::Check;
    use std::collections::HashMap;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    fn record(input: &str, status: Status, check: Option<(&str, Verdict)>) -> PhotoRecord {
        PhotoRecord {
            input: input.to_owned(),
            status: Some(status),
            checks: check
                .map(|(n, v)| vec![Check::new(n, v, None, "<b>bad</b> & worse")])
                .unwrap_or_default(),
            ..PhotoRecord::default()
        }
    }

    #[test]
    fn photos_with_backdrop_added_are_marked() {
        let mut m = Manifest::default();
        let mut tight = record("a/tight.jpg", Status::Ok, None);
        tight.backdrop_extended = Some(crate::analysis::extend::Extension {
            top: 120,
            left: 0,
            right: 7,
        });
        m.photos = vec![record("a/ok.jpg", Status::Ok, None), tight];
        m.run.counts = crate::batch::manifest::count(&m.photos, 0);
        let page = render(&m, &|_: &PhotoRecord| None).unwrap();
        assert_eq!(page.matches("<div class=\"ext\">").count(), 1, "{page}");
        assert!(page.contains("backdrop extended: top 120 px, right 7 px"));
    }

    #[test]
    fn page_is_self_contained_escaped_and_failures_come_first() {
        let mut m = Manifest::default();
        m.run.command = "check".into();
        m.photos = vec![
            record("a/ok.jpg", Status::Ok, None),
            record(
                "a/<x>.jpg",
                Status::Fail,
                Some(("no_border", Verdict::Fail)),
            ),
            record("a/w.jpg", Status::Warn, Some(("leaning", Verdict::Warn))),
        ];
        m.run.counts = crate::batch::manifest::count(&m.photos, 0);
        let img = RgbImage::filled(480, 640, [100, 197, 255]);
        let thumb = thumbnail(&img).unwrap();
        let thumbs = HashMap::from([("a/ok.jpg".to_owned(), thumb)]);
        let page = render(&m, &|r: &PhotoRecord| thumbs.get(&r.input).cloned()).unwrap();
        assert!(page.contains("<b id=\"n-fail\">1</b>"));
        assert!(page.contains("<b id=\"n-warn\">1</b>"));
        assert!(!page.contains("<x>"), "file names are escaped");
        assert!(page.contains("&lt;b&gt;bad&lt;/b&gt; &amp; worse"));
        let first_fail = page.find("data-s=\"fail\"").unwrap();
        let first_warn = page.find("data-s=\"warn\"").unwrap();
        let first_ok = page.find("data-s=\"ok\"").unwrap();
        assert!(first_fail < first_warn && first_warn < first_ok);
        assert!(page.contains("data-c=\" no_border \""));
        assert!(page.contains("<option>no_border</option>"));
        assert!(page.contains("src=\"data:image/jpeg;base64,/9j/"));
        for outside in ["http:", "https:", "src=\"/", "href="] {
            assert!(!page.contains(outside), "{outside}");
        }
    }

    #[test]
    fn thumbnails_are_small() {
        let mut img = RgbImage::filled(480, 640, [100, 197, 255]);
        // Detail everywhere, the worst case for size.
        for y in 0..640 {
            for x in 0..480 {
                let v = ((x * 7 + y * 13) % 256) as u8;
                img.put_pixel(x, y, [v, 255 - v, v / 2]);
            }
        }
        let t = thumbnail(&img).unwrap();
        assert!(t.len() < 12_000, "{} bytes", t.len());
        assert!(t.starts_with(&[0xFF, 0xD8]));
    }
}
