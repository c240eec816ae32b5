//! The sanity check on the exact bytes about to be written, and the audit of
//! any file on disk: every hard rule of SPEC §1 that can be judged from the
//! file alone, each reported as a named [`Check`] so an audit lists all
//! failures at once.
//!
//! Input may be hostile (the audit reads whatever a user points it at), so
//! the marker walker indexes only through bounds-checked accessors and
//! reports a broken structure as failed checks, never as a panic.
//!
//! # What counts as metadata
//!
//! Any APPn segment other than the single leading JFIF APP0 fails
//! `no_exif`: EXIF (APP1) is the rule's target, but XMP and IPTC carry the
//! same camera and owner details, and an ICC profile (APP2) is refused too:
//! SPEC requires sRGB, a JFIF file without a profile is read as sRGB by
//! every viewer, and an embedded profile could only say something else.
//! COM segments are allowed: size padding uses them and they carry no
//! metadata of ours.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::decode::{DecodeScale, decode_jpeg_strictly};
use crate::codec::encode::{Chroma, STD_LUMA_QT, ZIGZAG, scaled_table};
use crate::image::RgbImage;
use crate::verdict::{Check, Verdict};

/// What the written file must be (SPEC §1); defaults are the registry's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputRules {
    pub width: u32,
    pub height: u32,
    pub min_bytes: usize,
    pub max_bytes: usize,
    pub min_quality: u8,
    pub density_dpi: u16,
}

impl Default for OutputRules {
    fn default() -> Self {
        OutputRules {
            width: 480,
            height: 640,
            min_bytes: 30_720,
            max_bytes: 100_000,
            min_quality: 60,
            density_dpi: 300,
        }
    }
}

/// Largest side the audit decodes; beyond it `decodes` fails rather than
/// allocating whatever a hostile header asks for.
const MAX_DECODE_SIDE: usize = 16_384;
const MAX_DECODE_PIXELS: u64 = 100_000_000;

/// Everything learnt about one file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// One entry per rule, always in the same order and all present.
    pub checks: Vec<Check>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Quality estimated from the luminance quantisation table.
    pub quality: Option<u8>,
    /// `None` when the file is not 3-component 4:4:4 or 4:2:0.
    pub chroma: Option<Chroma>,
    /// Sampling factors as `HxV` per component, e.g. `2x2,1x1,1x1`.
    pub sampling: Option<String>,
    /// The decoded pixels, when the file decoded, so later stages need not
    /// decode again.
    #[serde(skip)]
    pub image: Option<RgbImage>,
}

impl VerifyReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// Judges `bytes` against `rules` and keeps the decoded pixels for checks
/// on the picture; never panics, whatever the bytes.
pub fn verify_jpeg(bytes: &[u8], rules: &OutputRules) -> VerifyReport {
    verify_at(bytes, rules, DecodeScale::FULL)
}

/// [`verify_jpeg`] for a file just encoded from pixels the caller holds,
/// which nobody needs back: the `decodes` check reads every bit of the
/// entropy-coded data (each Huffman code, every block, the scan's end) but
/// reconstructs the picture at 1/8 scale, from the DC coefficients alone.
/// What can fail in a decode is in that reading; the inverse DCT and the
/// colour conversion it skips turn any coefficients into pixels. `image`
/// is `None`.
pub fn verify_written(bytes: &[u8], rules: &OutputRules) -> VerifyReport {
    let mut report = verify_at(bytes, rules, DecodeScale::eighths(1));
    report.image = None;
    report
}

fn verify_at(bytes: &[u8], rules: &OutputRules, scale: DecodeScale) -> VerifyReport {
    let walk = walk(bytes);
    let mut checks = Vec::with_capacity(11);
    let mut report = VerifyReport::default();

    let signature = bytes.starts_with(&[0xFF, 0xD8]);
    checks.push(verdict(
        "jpeg_signature",
        signature,
        None,
        if signature {
            "starts with SOI (FF D8)".to_owned()
        } else {
            format!("does not start with SOI FF D8 ({})", sniff(bytes))
        },
    ));

    let ends = bytes.ends_with(&[0xFF, 0xD9]);
    let (eoi_ok, eoi_reason) = match (&walk.eoi, &walk.error) {
        (Some(_), _) if ends => (true, "the stream ends with EOI (FF D9)".to_owned()),
        (Some(at), _) => (
            false,
            format!("the stream's EOI is at offset {at} but the file does not end with FF D9"),
        ),
        (None, Some(e)) => (false, format!("no EOI closes the stream: {e}")),
        (None, None) => (false, "no EOI closes the stream".to_owned()),
    };
    checks.push(verdict("ends_with_eoi", eoi_ok, None, eoi_reason));

    let (after_ok, after_value, after_reason) = match walk.eoi {
        Some(at) => {
            let extra = bytes.len().saturating_sub(at + 2);
            if extra == 0 {
                (true, Some(0.0), "no bytes after EOI".to_owned())
            } else {
                (
                    false,
                    Some(extra as f64),
                    format!("{extra} bytes follow the EOI at offset {at}"),
                )
            }
        }
        None => (
            false,
            None,
            "without the stream's EOI its end cannot be confirmed".to_owned(),
        ),
    };
    checks.push(verdict(
        "nothing_after_eoi",
        after_ok,
        after_value,
        after_reason,
    ));

    checks.push(baseline_check(&walk));

    let frame = walk.frame.as_ref();
    let (comp_ok, comp_reason) = match frame {
        Some(f) if f.components.len() == 3 && f.precision == 8 => {
            (true, "3 components (YCbCr), 8-bit".to_owned())
        }
        Some(f) => (
            false,
            format!(
                "{} component(s) at {}-bit precision; 3 components at 8 bits are required",
                f.components.len(),
                f.precision
            ),
        ),
        None => (false, "no frame header to read components from".to_owned()),
    };
    checks.push(verdict("three_components", comp_ok, None, comp_reason));

    let (dim_ok, dim_reason) = match frame {
        Some(f) => {
            let (w, h) = (u32::from(f.width), u32::from(f.height));
            report.width = Some(w);
            report.height = Some(h);
            (
                w == rules.width && h == rules.height,
                format!("{w}x{h} pixels (required {}x{})", rules.width, rules.height),
            )
        }
        None => (false, "no frame header to read dimensions from".to_owned()),
    };
    checks.push(verdict("dimensions", dim_ok, None, dim_reason));

    let len = bytes.len();
    checks.push(verdict(
        "file_size",
        (rules.min_bytes..=rules.max_bytes).contains(&len),
        Some(len as f64),
        format!(
            "{len} bytes (window {}..={})",
            rules.min_bytes, rules.max_bytes
        ),
    ));

    checks.push(metadata_check(&walk, bytes));
    checks.push(density_check(&walk, bytes, rules.density_dpi));

    let quality_check = quality_check(&walk, rules.min_quality);
    report.quality = quality_check.value.map(|v| v as u8);
    checks.push(quality_check);

    if let Some(f) = frame {
        let s: Vec<String> = f
            .components
            .iter()
            .map(|c| format!("{}x{}", c.h, c.v))
            .collect();
        report.sampling = Some(s.join(","));
        report.chroma = chroma_of(f);
    }

    let (decoded, decode_reason) = decode(bytes, frame, scale);
    checks.push(verdict("decodes", decoded.is_some(), None, decode_reason));
    report.image = decoded;
    report.checks = checks;
    report
}

fn verdict(name: &str, ok: bool, value: Option<f64>, reason: String) -> Check {
    let v = if ok { Verdict::Pass } else { Verdict::Fail };
    Check::new(name, v, value, reason)
}

/// Names what a non-JPEG file most likely is, for the reason text.
fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        "the file is empty"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "it is a PNG"
    } else if bytes.get(4..8) == Some(b"ftyp") {
        "it is an ISO-BMFF file such as HEIC"
    } else if bytes.starts_with(b"GIF8") {
        "it is a GIF"
    } else if bytes.starts_with(b"BM") {
        "it may be a BMP"
    } else {
        "unknown format"
    }
}

#[derive(Debug, Clone)]
struct Component {
    h: u8,
    v: u8,
    tq: u8,
}

#[derive(Debug, Clone)]
struct Frame {
    marker: u8,
    precision: u8,
    height: u16,
    width: u16,
    components: Vec<Component>,
}

/// A marker segment: marker byte and the offset/length of its payload.
#[derive(Debug, Clone, Copy)]
struct Segment {
    marker: u8,
    /// Offset of the 0xFF that starts the marker.
    at: usize,
    payload_start: usize,
    payload_len: usize,
}

#[derive(Debug, Default)]
struct Walk {
    segments: Vec<Segment>,
    frame: Option<Frame>,
    frames: usize,
    scans: usize,
    /// Offset of the FF of the EOI that ends the stream.
    eoi: Option<usize>,
    /// Why the walk stopped early, when it did.
    error: Option<String>,
    /// DQT tables by destination, natural order, as read.
    qt: [Option<[u16; 64]>; 4],
    dqt_16bit: bool,
    /// Fewest components in any scan: below the frame's count, some scan
    /// is non-interleaved.
    min_scan_components: Option<usize>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{}",
            sof_name(self.marker),
            self.width,
            self.height
        )
    }
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Walks the marker structure from SOI to the EOI that ends the stream,
/// skipping entropy-coded data the way a decoder does (stuffed `FF 00`,
/// restart markers and fill bytes stay inside the scan).
fn walk(bytes: &[u8]) -> Walk {
    let mut w = Walk::default();
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        w.error = Some("no SOI".to_owned());
        return w;
    }
    let mut pos = 2usize;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if bytes.get(pos) != Some(&0xFF) {
            w.error = Some(match bytes.get(pos) {
                None => format!("truncated at offset {pos}, expecting a marker"),
                Some(b) => format!("expected a marker at offset {pos}, found byte {b:#04x}"),
            });
            return w;
        }
        let at = pos;
        while bytes.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            w.error = Some(format!("truncated at offset {pos} inside a marker"));
            return w;
        };
        pos += 1;
        match marker {
            0xD9 => {
                if w.scans == 0 {
                    w.error = Some(format!("EOI at offset {at} before any scan"));
                    return w;
                }
                w.eoi = Some(pos - 2);
                return w;
            }
            0x00 => {
                w.error = Some(format!("invalid marker FF 00 at offset {at}"));
                return w;
            }
            0xD8 => {
                w.error = Some(format!("second SOI at offset {at}"));
                return w;
            }
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(len) = be16(bytes, pos) else {
            w.error = Some(format!(
                "truncated length of marker FF {marker:02X} at {at}"
            ));
            return w;
        };
        let len = usize::from(len);
        if len < 2 || pos + len > bytes.len() {
            w.error = Some(format!(
                "segment FF {marker:02X} at offset {at} claims {len} bytes, file has {}",
                bytes.len().saturating_sub(pos)
            ));
            return w;
        }
        let seg = Segment {
            marker,
            at,
            payload_start: pos + 2,
            payload_len: len - 2,
        };
        let payload = &bytes[seg.payload_start..seg.payload_start + seg.payload_len];
        w.segments.push(seg);
        pos += len;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                w.frames += 1;
                if w.frame.is_none() {
                    match parse_frame(marker, payload) {
                        Some(f) => w.frame = Some(f),
                        None => {
                            w.error = Some(format!("malformed frame header at offset {at}"));
                            return w;
                        }
                    }
                }
            }
            0xDB if !parse_dqt(payload, &mut w) => {
                w.error = Some(format!("malformed DQT at offset {at}"));
                return w;
            }
            0xDA => {
                w.scans += 1;
                let ns = usize::from(payload.first().copied().unwrap_or(0));
                w.min_scan_components = Some(w.min_scan_components.map_or(ns, |m| m.min(ns)));
                pos = skip_entropy(bytes, pos);
            }
            _ => {}
        }
    }
}

/// Returns the offset of the first marker after entropy-coded data that
/// starts at `pos` (or the file's end when the data runs off it).
fn skip_entropy(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(rest) = bytes.get(pos..) {
        let Some(ff) = position_of_ff(rest) else {
            return bytes.len();
        };
        pos += ff;
        match bytes.get(pos + 1) {
            // Stuffed zero or restart marker: still scan data.
            Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
            // A fill byte: let the next FF decide.
            Some(0xFF) => pos += 1,
            _ => return pos,
        }
    }
    pos
}

/// Where the first FF of `s` is. Scan data is almost all other bytes, so
/// stretches are ruled out with `contains`, which the library runs a word
/// at a time, before the one that has an FF is searched byte by byte.
fn position_of_ff(s: &[u8]) -> Option<usize> {
    const STRETCH: usize = 64;
    s.chunks(STRETCH)
        .enumerate()
        .find(|(_, chunk)| chunk.contains(&0xFF))
        .and_then(|(i, chunk)| Some(i * STRETCH + chunk.iter().position(|&b| b == 0xFF)?))
}

fn parse_frame(marker: u8, p: &[u8]) -> Option<Frame> {
    let precision = *p.first()?;
    let height = be16(p, 1)?;
    let width = be16(p, 3)?;
    let n = usize::from(*p.get(5)?);
    let mut components = Vec::with_capacity(n);
    for i in 0..n {
        let c = p.get(6 + 3 * i..9 + 3 * i)?;
        components.push(Component {
            h: c[1] >> 4,
            v: c[1] & 0x0F,
            tq: c[2],
        });
    }
    Some(Frame {
        marker,
        precision,
        height,
        width,
        components,
    })
}

fn parse_dqt(mut p: &[u8], w: &mut Walk) -> bool {
    while let Some(&pq_tq) = p.first() {
        let (pq, tq) = (pq_tq >> 4, usize::from(pq_tq & 0x0F));
        let size = if pq == 0 { 64 } else { 128 };
        let Some(vals) = p.get(1..1 + size) else {
            return false;
        };
        if pq > 1 || tq > 3 {
            return false;
        }
        let mut table = [0u16; 64];
        for (k, &n) in ZIGZAG.iter().enumerate() {
            table[n] = if pq == 0 {
                u16::from(vals[k])
            } else {
                u16::from_be_bytes([vals[2 * k], vals[2 * k + 1]])
            };
        }
        if pq == 1 {
            w.dqt_16bit = true;
        }
        w.qt[tq] = Some(table);
        p = &p[1 + size..];
    }
    true
}

fn sof_name(marker: u8) -> &'static str {
    match marker {
        0xC0 => "SOF0 baseline DCT",
        0xC1 => "SOF1 extended sequential DCT",
        0xC2 => "SOF2 progressive DCT",
        0xC3 => "SOF3 lossless",
        0xC5 => "SOF5 differential sequential",
        0xC6 => "SOF6 differential progressive",
        0xC7 => "SOF7 differential lossless",
        0xC9 => "SOF9 arithmetic extended sequential",
        0xCA => "SOF10 arithmetic progressive",
        0xCB => "SOF11 arithmetic lossless",
        0xCD => "SOF13 arithmetic differential sequential",
        0xCE => "SOF14 arithmetic differential progressive",
        0xCF => "SOF15 arithmetic differential lossless",
        _ => "unknown frame type",
    }
}

fn baseline_check(w: &Walk) -> Check {
    let Some(f) = &w.frame else {
        return verdict(
            "baseline",
            false,
            None,
            "no frame header (SOF) found".to_owned(),
        );
    };
    let arithmetic = w.segments.iter().any(|s| s.marker == 0xCC);
    let (ok, reason) = if f.marker != 0xC0 {
        (
            false,
            format!("frame is {}; only SOF0 is accepted", sof_name(f.marker)),
        )
    } else if w.frames > 1 {
        (false, format!("{} frame headers; one is allowed", w.frames))
    } else if arithmetic {
        (
            false,
            "DAC segment present: arithmetic coding is not baseline".to_owned(),
        )
    } else if w.dqt_16bit {
        (
            false,
            "16-bit quantisation table: baseline allows 8-bit only".to_owned(),
        )
    } else {
        (true, "SOF0 baseline DCT, Huffman coded".to_owned())
    };
    verdict("baseline", ok, None, reason)
}

fn is_jfif_app0(s: &Segment, bytes: &[u8]) -> bool {
    s.marker == 0xE0
        && bytes
            .get(s.payload_start..s.payload_start + 5)
            .is_some_and(|p| p == b"JFIF\0")
}

fn app_kind(s: &Segment, bytes_ident: &[u8]) -> String {
    let n = s.marker - 0xE0;
    let ident: String = bytes_ident
        .iter()
        .take_while(|&&b| b != 0)
        .take(24)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    match (n, ident.as_str()) {
        (1, "Exif") => "APP1 EXIF".to_owned(),
        (1, i) if i.starts_with("http://ns.adobe.com/xap") => "APP1 XMP".to_owned(),
        (2, "ICC_PROFILE") => "APP2 ICC profile".to_owned(),
        (13, _) => "APP13 IPTC/Photoshop".to_owned(),
        (14, "Adobe") => "APP14 Adobe".to_owned(),
        _ if ident.is_empty() => format!("APP{n}"),
        _ => format!("APP{n} \"{ident}\""),
    }
}

fn metadata_check(w: &Walk, bytes: &[u8]) -> Check {
    let mut found = Vec::new();
    for (i, s) in w.segments.iter().enumerate() {
        if !(0xE0..=0xEF).contains(&s.marker) {
            continue;
        }
        // The one JFIF header directly after SOI is required, not metadata.
        if i == 0 && s.at == 2 && is_jfif_app0(s, bytes) {
            continue;
        }
        let ident = bytes
            .get(s.payload_start..s.payload_start + s.payload_len)
            .unwrap_or(&[]);
        found.push(app_kind(s, ident));
    }
    if found.is_empty() && w.scans == 0 {
        // Metadata sits before the first scan; without reaching it, the
        // absence of EXIF is not established.
        let why = w.error.as_deref().unwrap_or("no scan");
        verdict(
            "no_exif",
            false,
            None,
            format!("headers could not be read to the first scan ({why}); metadata not ruled out"),
        )
    } else if found.is_empty() {
        verdict(
            "no_exif",
            true,
            Some(0.0),
            "no EXIF or other metadata segments".to_owned(),
        )
    } else {
        let n = found.len();
        verdict(
            "no_exif",
            false,
            Some(n as f64),
            format!("metadata present: {}", found.join(", ")),
        )
    }
}

fn density_check(w: &Walk, bytes: &[u8], dpi: u16) -> Check {
    let first = w
        .segments
        .first()
        .filter(|s| s.at == 2 && is_jfif_app0(s, bytes));
    let Some(s) = first else {
        return verdict(
            "jfif_density",
            false,
            None,
            "no JFIF APP0 header directly after SOI".to_owned(),
        );
    };
    let p = bytes
        .get(s.payload_start..s.payload_start + s.payload_len)
        .unwrap_or(&[]);
    let (Some(&units), Some(x), Some(y)) = (p.get(7), be16(p, 8), be16(p, 10)) else {
        return verdict(
            "jfif_density",
            false,
            None,
            "JFIF header too short for a density".to_owned(),
        );
    };
    let unit = match units {
        0 => "aspect ratio only",
        1 => "dpi",
        2 => "dots per cm",
        _ => "unknown unit",
    };
    verdict(
        "jfif_density",
        units == 1 && x == dpi && y == dpi,
        Some(f64::from(x)),
        format!("density {x}x{y} {unit} (required {dpi}x{dpi} dpi)"),
    )
}

/// Estimates the IJG quality whose scaled Annex K luminance table is closest
/// to the file's, so files from libjpeg-style encoders report their exact
/// setting and others a fair equivalent.
pub fn estimate_quality(luma_table: &[u16; 64]) -> (u8, f64) {
    let mut best = (0u8, f64::INFINITY);
    for q in 1..=100u8 {
        let t = scaled_table(&STD_LUMA_QT, q);
        let err: f64 = t
            .iter()
            .zip(luma_table)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
            .sum::<f64>()
            / 64.0;
        // Ties go to the lower quality: the audit must not flatter a file.
        if err < best.1 {
            best = (q, err);
        }
    }
    best
}

fn quality_check(w: &Walk, min_quality: u8) -> Check {
    let tq = w
        .frame
        .as_ref()
        .and_then(|f| f.components.first())
        .map_or(0, |c| usize::from(c.tq));
    let Some(table) = w.qt.get(tq).copied().flatten() else {
        return verdict(
            "quality",
            false,
            None,
            "no luminance quantisation table found".to_owned(),
        );
    };
    let (q, err) = estimate_quality(&table);
    let how = if err == 0.0 {
        "matches the IJG table exactly".to_owned()
    } else {
        format!("closest IJG table, mean deviation {err:.1}")
    };
    verdict(
        "quality",
        q >= min_quality,
        Some(f64::from(q)),
        format!("estimated quality {q} ({how}; minimum {min_quality})"),
    )
}

fn chroma_of(f: &Frame) -> Option<Chroma> {
    let [y, cb, cr] = f.components.as_slice() else {
        return None;
    };
    if (cb.h, cb.v, cr.h, cr.v) != (1, 1, 1, 1) {
        return None;
    }
    match (y.h, y.v) {
        (1, 1) => Some(Chroma::Full444),
        (2, 2) => Some(Chroma::Sub420),
        _ => None,
    }
}

/// Decodes with libjpeg-turbo's own code, warnings fatal
/// ([`decode_jpeg_strictly`]): the reference decoder, sharing no code with
/// our encoder or our decode stage, and correct on every baseline layout.
fn decode(bytes: &[u8], frame: Option<&Frame>, scale: DecodeScale) -> (Option<RgbImage>, String) {
    // The walk found no frame: libjpeg would only say so less clearly.
    let Some(f) = frame else {
        return (None, "no frame header to decode".to_owned());
    };
    let pixels = u64::from(f.width) * u64::from(f.height);
    if usize::from(f.width) > MAX_DECODE_SIDE
        || usize::from(f.height) > MAX_DECODE_SIDE
        || pixels > MAX_DECODE_PIXELS
    {
        return (
            None,
            format!("{f} is too large to decode safely (limit {MAX_DECODE_PIXELS} pixels)"),
        );
    }
    let img = match decode_jpeg_strictly(bytes, scale) {
        Ok(img) => img,
        Err(e) => return (None, format!("decoder error: {e}")),
    };
    let (w, h) = (img.width(), img.height());
    if (scale.of(u32::from(f.width)), scale.of(u32::from(f.height))) != (w, h) {
        return (
            None,
            format!(
                "decoded {w}x{h} at {scale} scale but the frame header says {}x{}",
                f.width, f.height
            ),
        );
    }
    let reason = if scale == DecodeScale::FULL {
        format!("decoded {w}x{h} RGB")
    } else {
        format!(
            "all {}x{} pixels' data decoded (reconstructed at {scale} scale, {w}x{h})",
            f.width, f.height
        )
    };
    (Some(img), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode::encode_once;
    use crate::testkit::synth;
    use jpeg_encoder::{ColorType, Encoder, PixelDensity, SamplingFactor};

    const NAMES: [&str; 11] = [
        "jpeg_signature",
        "ends_with_eoi",
        "nothing_after_eoi",
        "baseline",
        "three_components",
        "dimensions",
        "file_size",
        "no_exif",
        "jfif_density",
        "quality",
        "decodes",
    ];

    /// A small window so test files of any detail pass `file_size`.
    fn rules() -> OutputRules {
        OutputRules {
            min_bytes: 1,
            max_bytes: 10_000_000,
            ..OutputRules::default()
        }
    }

    fn good() -> Vec<u8> {
        encode_once(&synth::portrait(480, 640, 0.3, 4), 90, Chroma::Full444, 300).unwrap()
    }

    /// Encodes with jpeg-encoder directly, for files our encoder never makes.
    fn custom(w: u16, h: u16, tweak: impl FnOnce(&mut Encoder<&mut Vec<u8>>)) -> Vec<u8> {
        let img = synth::portrait(u32::from(w), u32::from(h), 0.3, 4);
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, 90);
        enc.set_density(PixelDensity::dpi(300));
        enc.set_sampling_factor(SamplingFactor::F_1_1);
        tweak(&mut enc);
        enc.encode(img.as_bytes(), w, h, ColorType::Rgb).unwrap();
        out
    }

    fn verdict_of(r: &VerifyReport, name: &str) -> Verdict {
        r.check(name).unwrap().verdict
    }

    fn failed(r: &VerifyReport) -> Vec<&str> {
        r.failures().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn good_file_passes_every_check() {
        let bytes = good();
        let r = verify_jpeg(&bytes, &rules());
        let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, NAMES);
        assert!(r.passed(), "{:#?}", r.checks);
        assert_eq!(r.quality, Some(90));
        assert_eq!(r.chroma, Some(Chroma::Full444));
        assert_eq!(r.sampling.as_deref(), Some("1x1,1x1,1x1"));
        let img = r.image.unwrap();
        assert_eq!((img.width(), img.height()), (480, 640));
    }

    #[test]
    fn default_window_judges_size() {
        let r = verify_jpeg(&good(), &OutputRules::default());
        let len = good().len();
        let expect = (30_720..=100_000).contains(&len);
        assert_eq!(verdict_of(&r, "file_size") == Verdict::Pass, expect);
        let tiny = encode_once(&synth::gradient(480, 640), 60, Chroma::Sub420, 300).unwrap();
        let r = verify_jpeg(&tiny, &OutputRules::default());
        assert_eq!(failed(&r), ["file_size"]);
    }

    #[test]
    fn subsampling_is_reported() {
        let img = synth::portrait(480, 640, 0.3, 4);
        let bytes = encode_once(&img, 90, Chroma::Sub420, 300).unwrap();
        let r = verify_jpeg(&bytes, &rules());
        assert!(r.passed());
        assert_eq!(r.chroma, Some(Chroma::Sub420));
        assert_eq!(r.sampling.as_deref(), Some("2x2,1x1,1x1"));
        let bytes = custom(480, 640, |e| e.set_sampling_factor(SamplingFactor::F_2_1));
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(r.chroma, None);
        assert_eq!(r.sampling.as_deref(), Some("2x1,1x1,1x1"));
    }

    #[test]
    fn non_interleaved_subsampled_scans_decode_like_interleaved_ones() {
        // jpeg-encoder writes one scan per component when it optimises its
        // Huffman tables, one interleaved scan otherwise; the coefficients
        // are the same, so the pixels must be (zune-jpeg 0.5.15, the
        // decoder verify used before, got this layout wrong).
        let layout = |optimised: bool| {
            custom(480, 640, |e| {
                e.set_sampling_factor(SamplingFactor::F_2_2);
                e.set_optimized_huffman_tables(optimised);
            })
        };
        let (separate, interleaved) = (layout(true), layout(false));
        let scans = |b: &[u8]| b.windows(2).filter(|w| w == &[0xFF, 0xDA]).count();
        assert_eq!((scans(&separate), scans(&interleaved)), (3, 1));
        let r = verify_jpeg(&separate, &rules());
        assert!(r.passed(), "{:#?}", r.checks);
        let reference = verify_jpeg(&interleaved, &rules()).image.unwrap();
        assert!(r.image.unwrap() == reference);
    }

    #[test]
    fn corrupt_entropy_data_fails_decodes() {
        // A marker where scan data should be: libjpeg would fill the rest
        // of the picture with grey and only warn.
        let mut bytes = good();
        let middle = bytes.len() / 2;
        bytes[middle..middle + 2].copy_from_slice(&[0xFF, 0xD0]);
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["decodes"]);
        assert!(r.check("decodes").unwrap().reason.contains("Corrupt"));
    }

    #[test]
    fn a_written_file_is_judged_as_a_full_decode_judges_it() {
        let good = good();
        let mut truncated = good.clone();
        truncated.truncate(good.len() * 2 / 3);
        for bytes in [good, truncated] {
            let full = verify_jpeg(&bytes, &rules());
            let written = verify_written(&bytes, &rules());
            assert!(written.image.is_none());
            for (w, f) in written.checks.iter().zip(&full.checks) {
                assert_eq!((&w.name, w.verdict), (&f.name, f.verdict));
                if w.name != "decodes" {
                    assert_eq!(w, f);
                }
            }
        }
    }

    #[test]
    fn progressive_is_not_baseline() {
        let bytes = custom(480, 640, |e| e.set_progressive(true));
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["baseline"]);
        assert!(r.check("baseline").unwrap().reason.contains("SOF2"));
        // It still decodes, so a later stage could re-encode it.
        assert!(r.image.is_some());
    }

    #[test]
    fn wrong_dimensions_fail() {
        let bytes = custom(640, 480, |_| {});
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["dimensions"]);
        assert!(r.check("dimensions").unwrap().reason.contains("640x480"));
    }

    #[test]
    fn exif_and_other_metadata_fail() {
        let bytes = custom(480, 640, |e| e.add_exif_metadata(b"II*\0fake").unwrap());
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["no_exif"]);
        assert!(r.check("no_exif").unwrap().reason.contains("APP1 EXIF"));

        let bytes = custom(480, 640, |e| e.add_icc_profile(&[0u8; 200]).unwrap());
        let r = verify_jpeg(&bytes, &rules());
        assert!(r.check("no_exif").unwrap().reason.contains("ICC"));

        let bytes = custom(480, 640, |e| {
            e.add_app_segment(13, b"Photoshop 3.0\0".to_vec()).unwrap()
        });
        assert_eq!(failed(&verify_jpeg(&bytes, &rules())), ["no_exif"]);
    }

    #[test]
    fn density_must_be_300_dpi() {
        let bytes = custom(480, 640, |e| e.set_density(PixelDensity::default()));
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["jfif_density"]);
        let bytes = custom(480, 640, |e| e.set_density(PixelDensity::dpi(72)));
        let r = verify_jpeg(&bytes, &rules());
        assert!(r.check("jfif_density").unwrap().reason.contains("72x72"));
    }

    #[test]
    fn trailing_bytes_fail() {
        let mut bytes = good();
        bytes.extend_from_slice(b"padding!");
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["ends_with_eoi", "nothing_after_eoi"]);
        assert_eq!(r.check("nothing_after_eoi").unwrap().value, Some(8.0));

        // Zero padding that happens to end in FF D9 still fails.
        let mut bytes = good();
        bytes.extend_from_slice(&[0, 0, 0, 0xFF, 0xD9]);
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["nothing_after_eoi"]);
    }

    #[test]
    fn truncated_file_fails() {
        let bytes = good();
        let cut = &bytes[..bytes.len() * 2 / 3];
        let r = verify_jpeg(cut, &rules());
        let f = failed(&r);
        assert!(f.contains(&"ends_with_eoi"), "{f:?}");
        assert!(f.contains(&"nothing_after_eoi"), "{f:?}");
        assert!(f.contains(&"decodes"), "{f:?}");
        // The header survived, so header checks still pass.
        assert_eq!(verdict_of(&r, "baseline"), Verdict::Pass);
        assert_eq!(verdict_of(&r, "dimensions"), Verdict::Pass);
    }

    #[test]
    fn png_is_not_a_jpeg() {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(r.checks.len(), NAMES.len());
        assert!(r.check("jpeg_signature").unwrap().reason.contains("PNG"));
        let passed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Pass)
            .map(|c| c.name.as_str())
            .collect();
        // Only the (generous) size window passes; the empty file fails it too.
        assert_eq!(passed, ["file_size"]);
        assert!(!verify_jpeg(&[], &rules()).passed());
    }

    #[test]
    fn low_quality_is_flagged() {
        let img = synth::portrait(480, 640, 0.3, 4);
        let bytes = encode_once(&img, 50, Chroma::Full444, 300).unwrap();
        let r = verify_jpeg(&bytes, &rules());
        assert_eq!(failed(&r), ["quality"]);
        assert_eq!(r.quality, Some(50));
        let bytes = encode_once(&img, 60, Chroma::Full444, 300).unwrap();
        assert!(verify_jpeg(&bytes, &rules()).passed());
    }

    #[test]
    fn quality_estimate_is_exact_for_ijg_tables() {
        for q in 1..=100u8 {
            assert_eq!(estimate_quality(&scaled_table(&STD_LUMA_QT, q)).0, q);
        }
    }

    #[test]
    fn arithmetic_and_extended_frames_are_named() {
        let mut bytes = good();
        let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        bytes[sof + 1] = 0xC1;
        let r = verify_jpeg(&bytes, &rules());
        assert!(r.check("baseline").unwrap().reason.contains("SOF1"));
        bytes[sof + 1] = 0xC9;
        let r = verify_jpeg(&bytes, &rules());
        assert!(
            r.check("baseline")
                .unwrap()
                .reason
                .contains("SOF9 arithmetic")
        );
    }

    #[test]
    fn entropy_data_ends_where_a_byte_walk_ends_it() {
        // The plain walk: every byte looked at in turn.
        fn byte_by_byte(bytes: &[u8], mut pos: usize) -> usize {
            while let Some(&b) = bytes.get(pos) {
                if b != 0xFF {
                    pos += 1;
                    continue;
                }
                match bytes.get(pos + 1) {
                    Some(0x00) | Some(0xD0..=0xD7) => pos += 2,
                    Some(0xFF) => pos += 1,
                    _ => return pos,
                }
            }
            pos
        }
        let mut rng = synth::SplitMix64::new(7);
        for i in 0..2000 {
            let len = (rng.next_u64() % 300) as usize;
            // Sparse or dense FFs, stuffing, restarts and markers anywhere,
            // also across the search's 64-byte stretches.
            let ff_every = 1 + i % 90;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next_u64();
                    if r.is_multiple_of(ff_every as u64) {
                        0xFF
                    } else {
                        [0x00, 0xD3, 0xD9, 0x12, 0xC4, 0x7F][(r >> 8) as usize % 6]
                    }
                })
                .collect();
            for start in [0, 1, len / 2, len.saturating_sub(1), len] {
                assert_eq!(
                    skip_entropy(&bytes, start),
                    byte_by_byte(&bytes, start),
                    "{bytes:02X?} from {start}"
                );
            }
        }
    }

    /// Thousands of damaged files: the walker and the checks never panic.
    #[test]
    fn hostile_mutations_never_panic() {
        let base = encode_once(&synth::portrait(48, 64, 0.5, 1), 80, Chroma::Sub420, 300).unwrap();
        let mut rng = synth::SplitMix64::new(2024);
        for i in 0..3000 {
            let mut b = base.clone();
            let n = b.len();
            match i % 6 {
                0 => b.truncate(rng.next_u64() as usize % n),
                1 => {
                    for _ in 0..1 + rng.next_u64() % 8 {
                        let at = rng.next_u64() as usize % n;
                        b[at] = rng.next_u64() as u8;
                    }
                }
                2 => {
                    // Lengths are what walkers trust most.
                    let at = 2 + rng.next_u64() as usize % 600.min(n - 2);
                    b[at] = 0xFF;
                    if at + 1 < n {
                        b[at + 1] = rng.next_u64() as u8;
                    }
                }
                3 => {
                    let at = rng.next_u64() as usize % n;
                    let len = rng.next_u64() as usize % 64;
                    b.splice(at..at, (0..len).map(|_| rng.next_u64() as u8));
                }
                4 => {
                    let at = rng.next_u64() as usize % n;
                    let end = (at + rng.next_u64() as usize % 200).min(n);
                    b.drain(at..end);
                }
                _ => {
                    b = (0..rng.next_u64() % 300)
                        .map(|_| rng.next_u64() as u8)
                        .collect();
                    if i % 12 == 5 {
                        b.splice(0..0, [0xFF, 0xD8]);
                    }
                }
            }
            let r = verify_jpeg(&b, &rules());
            assert_eq!(r.checks.len(), NAMES.len());
            // Whatever breaks a full decode breaks the entropy-only one.
            let verdicts =
                |r: &VerifyReport| r.checks.iter().map(|c| c.verdict).collect::<Vec<_>>();
            assert_eq!(
                verdicts(&verify_written(&b, &rules())),
                verdicts(&r),
                "mutation {i}"
            );
        }
    }
}
