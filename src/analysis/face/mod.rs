//! Faces and pupils, from models that ship inside the binary (see
//! `models/README.md` for where they come from and their licences):
//! - MediaPipe's BlazeFace front model finds the faces on the small working
//!   copy, each with a score, a box and six points (eyes, nose tip, mouth,
//!   both ears), run by tract ([`blazeface`]);
//! - dlib's 5-point shape predictor places the eye corners and the base of
//!   the nose inside the best face's box, on the image the copy was made
//!   from ([`shape`]): BlazeFace's eye points find the eye row within a few
//!   pixels but their tilt is off by several degrees, the corners' is not.

mod blazeface;
mod judge;
mod shape;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::analysis::working_copy::WorkingCopy;
use crate::image::RgbImage;

pub use judge::{FaceRecord, NoFace, locate_with_faces};
pub use shape::{DlibRect, ShapeModelError, ShapePredictor};

pub(crate) static DETECTOR_MODEL: &[u8] =
    include_bytes!("../../../models/face_detection_front_128x128_barracuda.onnx");
pub(crate) static SHAPE_MODEL: &[u8] =
    include_bytes!("../../../models/shape_predictor_5_face_landmarks.dat");

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum FaceError {
    #[error("face detector failed: {0}")]
    Model(String),
    #[error("landmark model failed to load: {0}")]
    Shape(#[from] ShapeModelError),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceSettings {
    /// Detections scoring below this are not faces. Real faces score
    /// 0.9-0.97, other things at most about 0.6.
    pub min_score: f64,
    /// A second detection scoring at least this is a second person.
    pub second_face_score: f64,
    /// Cheek-to-cheek width over the detector's box width (the box runs
    /// about ear to ear).
    pub face_width_per_box: f64,
    /// Pupils tilted more than this many degrees are warned about.
    pub max_tilt_degrees: f64,
    /// A nose tip further than this share of the way from the middle to an
    /// ear is a head turned sideways (warned: the notice asks for both ears
    /// to show alike).
    pub max_turn: f64,
    pub no_face: NoFace,
}

impl Default for FaceSettings {
    fn default() -> Self {
        FaceSettings {
            min_score: 0.75,
            second_face_score: 0.75,
            face_width_per_box: 0.89,
            max_tilt_degrees: 2.0,
            max_turn: 0.3,
            no_face: NoFace::default(),
        }
    }
}

/// One detection in the detector's input square (unit coordinates).
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub score: f32,
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// The subject's right eye, left eye, nose tip, mouth, right ear, left
    /// ear (the subject's right is the image's left).
    pub points: [[f32; 2]; 6],
}

/// A face in the pixels of the image it was found in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Face {
    pub score: f64,
    /// x, y, width, height of the detector's box.
    pub bbox: [f64; 4],
    /// The box in whole pixels the shape predictor was given ([`dlib_rect`]).
    /// What is measured from the box is measured from this one: tract's
    /// floating point differs in its last bits between CPUs (its kernels
    /// are chosen at run time), and whole pixels keep the output the same
    /// on every machine but where a box edge lies within that of a half.
    pub rect: DlibRect,
    /// Pupil centres (the middle of each eye's corners), the subject's right
    /// eye (image left) first.
    pub right_eye: [f64; 2],
    pub left_eye: [f64; 2],
    /// Base of the nose (the shape predictor's fifth point).
    pub nose: [f64; 2],
    /// The detector's nose tip and ears (subject's right first).
    pub nose_tip: [f64; 2],
    pub ears: [[f64; 2]; 2],
}

impl Face {
    /// Mid-pupil height.
    pub fn eye_line_y(&self) -> f64 {
        (self.right_eye[1] + self.left_eye[1]) / 2.0
    }

    /// Angle of the line through the pupils against the horizontal, in
    /// degrees; positive when the subject's left eye (image right) is lower.
    pub fn tilt_degrees(&self) -> f64 {
        let dx = self.left_eye[0] - self.right_eye[0];
        let dy = self.left_eye[1] - self.right_eye[1];
        dy.atan2(dx).to_degrees()
    }

    /// Horizontal centre of the face: midway between the pupils.
    pub fn center_x(&self) -> f64 {
        (self.right_eye[0] + self.left_eye[0]) / 2.0
    }

    /// Cheek-to-cheek width estimated from the box.
    pub fn width(&self, settings: &FaceSettings) -> f64 {
        (self.rect.right - self.rect.left) as f64 / DLIB_SIDE * settings.face_width_per_box
    }

    /// How far the head is turned: where the nose tip lies between the
    /// ears, -1 (at the subject's right ear) to 1 (at the left), 0 facing
    /// the camera.
    pub fn turn(&self) -> f64 {
        let [r, l] = self.ears;
        let span = l[0] - r[0];
        if span.abs() < 1e-9 {
            return 0.0;
        }
        2.0 * (self.nose_tip[0] - r[0]) / span - 1.0
    }
}

/// The faces found: the best one with its pupils, and how many others
/// scored as faces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faces {
    /// Every detection at or above `min_score`, best first, in image pixels;
    /// only the first has its pupils placed by the shape predictor (the
    /// others carry the detector's eye points).
    pub found: Vec<Face>,
    /// Time spent in the detector (letterbox and network) and in the
    /// shape predictor and pupils, for the speed probe.
    pub detect_time: std::time::Duration,
    pub landmarks_time: std::time::Duration,
}

fn shape_predictor() -> Result<&'static ShapePredictor, FaceError> {
    static MODEL: OnceLock<Result<ShapePredictor, ShapeModelError>> = OnceLock::new();
    MODEL
        .get_or_init(|| ShapePredictor::from_dlib(SHAPE_MODEL))
        .as_ref()
        .map_err(|e| FaceError::Shape(e.clone()))
}

/// Finds the faces in `img`, whose working copy is `copy`: detection on the
/// copy, pupils of the best face on `img` itself.
pub fn find_faces(
    copy: &WorkingCopy,
    img: &RgbImage,
    settings: &FaceSettings,
) -> Result<Faces, FaceError> {
    let start = std::time::Instant::now();
    let letterbox = Letterbox::of(copy);
    let detections = blazeface::detect(letterbox.input(copy), settings.min_score as f32)?;
    let mut found: Vec<Face> = detections
        .iter()
        .map(|d| letterbox.face(d, copy.work.factor))
        .collect();
    let detect_time = start.elapsed();
    if let Some(best) = found.first_mut() {
        place_pupils(best, img)?;
    }
    Ok(Faces {
        found,
        detect_time,
        landmarks_time: start.elapsed() - detect_time,
    })
}

/// dlib's box side over BlazeFace's.
const DLIB_SIDE: f64 = 0.95;

/// dlib's face box for a BlazeFace box: dlib's detector frames a face a
/// little smaller and higher (brows to chin rather than ear to ear).
/// Measured on the scikit-image astronaut: dlib's box is 0.95 of BlazeFace's
/// and its centre 0.09 of the width higher.
pub fn dlib_rect(bbox: [f64; 4]) -> DlibRect {
    let [x, y, w, h] = bbox;
    let side = DLIB_SIDE * w;
    let (cx, cy) = (x + w / 2.0, y + h / 2.0 - 0.09 * w);
    let left = (cx - side / 2.0).round() as i64;
    let top = (cy - side / 2.0).round() as i64;
    let span = side.round() as i64;
    DlibRect {
        left,
        top,
        right: left + span,
        bottom: top + span,
    }
}

fn place_pupils(face: &mut Face, img: &RgbImage) -> Result<(), FaceError> {
    let p = shape_predictor()?.predict(img, face.rect);
    let mid = |a: [f64; 2], b: [f64; 2]| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    // dlib's points: the subject's left eye's outer and inner corners, the
    // right eye's outer and inner corners, the base of the nose.
    if let [l_out, l_in, r_out, r_in, nose] = p[..] {
        face.left_eye = pupil(img, l_out, l_in).unwrap_or(mid(l_out, l_in));
        face.right_eye = pupil(img, r_out, r_in).unwrap_or(mid(r_out, r_in));
        face.nose = nose;
    }
    Ok(())
}

/// The pupil between an eye's two corners: the centroid of the darkest
/// quarter of the pixels in a box around the corners' midpoint (the iris
/// and pupil, darker than the white of the eye and the skin), each weighted
/// by how much darker than that quarter's bound it is. The corners' own
/// midpoint is a few pixels off the pupil and tilts with how the corners
/// were placed: on the real faces of the tests it put the pupils' line
/// about a degree off, on drawn ones two or three.
fn pupil(img: &RgbImage, a: [f64; 2], b: [f64; 2]) -> Option<[f64; 2]> {
    let d = (a[0] - b[0]).hypot(a[1] - b[1]);
    if d < 8.0 {
        return None;
    }
    let first = darkest_centroid(img, [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0], d)?;
    // Once more around the first estimate: a box placed off the eye by the
    // corners takes in skin or brow on one side.
    darkest_centroid(img, first, d)
}

fn darkest_centroid(img: &RgbImage, c: [f64; 2], d: f64) -> Option<[f64; 2]> {
    let [cx, cy] = c;
    let (hw, hh) = (0.3 * d, 0.2 * d);
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let x0 = (cx - hw).round().max(0.0) as u32;
    let x1 = (cx + hw).round().min(w - 1.0) as u32;
    let y0 = (cy - hh).round().max(0.0) as u32;
    let y1 = (cy + hh).round().min(h - 1.0) as u32;
    let mut px = Vec::new();
    for y in y0..=y1 {
        for x in x0..=x1 {
            let [r, g, b] = img.pixel(x, y);
            px.push((u32::from(r) + u32::from(g) + u32::from(b), x, y));
        }
    }
    if px.len() < 16 {
        return None;
    }
    let mut levels: Vec<u32> = px.iter().map(|p| p.0).collect();
    let k = levels.len() / 4;
    let bound = *levels.select_nth_unstable(k).1;
    let (mut sw, mut sx, mut sy) = (0f64, 0f64, 0f64);
    for &(v, x, y) in &px {
        if v <= bound {
            let wgt = f64::from(bound - v + 1);
            sw += wgt;
            sx += wgt * f64::from(x);
            sy += wgt * f64::from(y);
        }
    }
    (sw > 0.0).then(|| [sx / sw, sy / sw])
}

/// Where the working copy sits in the detector's square input: scaled to
/// fit, centred, the rest padded black (as MediaPipe letterboxes).
struct Letterbox {
    /// Input pixels per working pixel.
    k: f64,
    ox: f64,
    oy: f64,
}

impl Letterbox {
    fn of(copy: &WorkingCopy) -> Letterbox {
        let (w, h) = (copy.work.width as f64, copy.work.height as f64);
        let n = blazeface::INPUT as f64;
        let k = n / w.max(h);
        Letterbox {
            k,
            ox: (n - w * k) / 2.0,
            oy: (n - h * k) / 2.0,
        }
    }

    /// The input, bilinear from the working copy, in [-1, 1].
    fn input(&self, copy: &WorkingCopy) -> Vec<f32> {
        let work = &copy.work;
        let n = blazeface::INPUT;
        let (w, h) = (work.width, work.height);
        let mut out = vec![-1f32; n * n * 3];
        for j in 0..n {
            let v = (j as f64 + 0.5 - self.oy) / self.k;
            if v < 0.0 || v >= h as f64 {
                continue;
            }
            let fy = (v - 0.5).clamp(0.0, (h - 1) as f64);
            let (y0, ty) = (fy.floor() as usize, (fy - fy.floor()) as f32);
            let y1 = (y0 + 1).min(h - 1);
            for i in 0..n {
                let u = (i as f64 + 0.5 - self.ox) / self.k;
                if u < 0.0 || u >= w as f64 {
                    continue;
                }
                let fx = (u - 0.5).clamp(0.0, (w - 1) as f64);
                let (x0, tx) = (fx.floor() as usize, (fx - fx.floor()) as f32);
                let x1 = (x0 + 1).min(w - 1);
                let (a, b) = (work.at(x0, y0), work.at(x1, y0));
                let (c, d) = (work.at(x0, y1), work.at(x1, y1));
                let px = &mut out[(j * n + i) * 3..(j * n + i) * 3 + 3];
                for ch in 0..3 {
                    let top = a[ch] + (b[ch] - a[ch]) * tx;
                    let bottom = c[ch] + (d[ch] - c[ch]) * tx;
                    px[ch] = (top + (bottom - top) * ty) / 127.5 - 1.0;
                }
            }
        }
        out
    }

    /// A unit-square position in the input to the copy's source pixels.
    fn to_source(&self, p: [f32; 2], factor: u32) -> [f64; 2] {
        let n = blazeface::INPUT as f64;
        let f = f64::from(factor);
        [
            (f64::from(p[0]) * n - self.ox) / self.k * f,
            (f64::from(p[1]) * n - self.oy) / self.k * f,
        ]
    }

    fn face(&self, d: &Detection, factor: u32) -> Face {
        // tract's kernels differ per CPU in the last bits of a float, and
        // what is recorded must not: positions are snapped to quarter
        // pixels and the score to hundredths, far coarser than that noise
        // (scripts/qemu-check.sh compares records across CPUs).
        let snap = |v: f64| (v * 4.0).round() / 4.0;
        let [x, y] = self.to_source([d.bbox[0], d.bbox[1]], factor);
        let scale = blazeface::INPUT as f64 / self.k * f64::from(factor);
        let pt = |i: usize| self.to_source(d.points[i], factor).map(snap);
        let bbox = [
            x,
            y,
            f64::from(d.bbox[2]) * scale,
            f64::from(d.bbox[3]) * scale,
        ]
        .map(snap);
        Face {
            score: (f64::from(d.score) * 100.0).round() / 100.0,
            bbox,
            rect: dlib_rect(bbox),
            right_eye: pt(0),
            left_eye: pt(1),
            nose: pt(2),
            nose_tip: pt(2),
            ears: [pt(4), pt(5)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode::{DecodeLimits, decode};

    fn load(file: &str) -> RgbImage {
        let bytes = std::fs::read(format!("tests/faces/{file}")).expect("fixture");
        decode(&bytes, &DecodeLimits::default(), [100, 197, 255])
            .expect("decodes")
            .image
    }

    /// Our reader and evaluator against the Python `dlib` package's own
    /// points (tests/faces/landmarks.json, made by scripts/make-face-set.py),
    /// given dlib's own face box: dlib rounds its points to whole pixels.
    #[test]
    fn the_shape_predictor_puts_the_points_where_dlib_does() {
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string("tests/faces/landmarks.json").expect("reference"),
        )
        .expect("json");
        let model = shape_predictor().expect("model");
        assert_eq!(model.points(), 5);
        let cases = json.as_object().expect("object");
        assert_eq!(cases.len(), 3);
        for (file, case) in cases {
            let img = load(file);
            let n = |v: &serde_json::Value| v.as_i64().expect("integer");
            let r = &case["rect"];
            let rect = DlibRect {
                left: n(&r[0]),
                top: n(&r[1]),
                right: n(&r[2]),
                bottom: n(&r[3]),
            };
            let got = model.predict(&img, rect);
            for (k, want) in case["points"]
                .as_array()
                .expect("points")
                .iter()
                .enumerate()
            {
                let (wx, wy) = (n(&want[0]) as f64, n(&want[1]) as f64);
                let (gx, gy) = (got[k][0], got[k][1]);
                assert!(
                    (gx - wx).abs() <= 1.0 && (gy - wy).abs() <= 1.0,
                    "{file} point {k}: ours ({gx:.2}, {gy:.2}), dlib ({wx}, {wy})"
                );
            }
        }
    }

    /// The detector on the astronaut's face, cut from the original: one
    /// face, the pupils within 2 px of where they were marked by hand.
    #[test]
    fn the_astronauts_face_and_pupils_are_found() {
        let img = load("landmarks-astronaut.png");
        let copy = WorkingCopy::new(&img, WorkingCopy::DEFAULT_SIZE);
        let faces = find_faces(&copy, &img, &FaceSettings::default()).expect("runs");
        assert_eq!(faces.found.len(), 1, "{faces:?}");
        let f = &faces.found[0];
        assert!(f.score > 0.85, "{f:?}");
        // Marked on the original at (203.8, 101.3) and (246.3, 103.0); the
        // cut starts at (130, 20).
        let near = |p: [f64; 2], x: f64, y: f64| (p[0] - x).hypot(p[1] - y) < 2.0;
        assert!(near(f.right_eye, 73.8, 81.3), "{f:?}");
        assert!(near(f.left_eye, 116.3, 83.0), "{f:?}");
        assert!(
            (f.tilt_degrees() - 2.29).abs() < 1.0,
            "{}",
            f.tilt_degrees()
        );
        assert!(f.turn().abs() < 0.3, "{}", f.turn());
    }
}
