//! The detector's faces turned into the subject the crop is planned from,
//! and the checks only a face can answer: how many faces, pupils level,
//! head turned.

use serde::{Deserialize, Serialize};

use super::{Face, FaceSettings, Faces, find_faces};
use crate::analysis::backdrop::Backdrop;
use crate::analysis::subject::{Subject, SubjectSettings, locate_subject_any_count};
use crate::analysis::working_copy::WorkingCopy;
use crate::image::RgbImage;
use crate::verdict::{Check, Verdict};

/// The subject stage with faces: the silhouette (crown, head, shoulders),
/// then the detector's faces, which decide how many people there are and
/// place the eye line, face width and centre. `img` is the image `copy`
/// was made from. The checks and the record are returned whether or not
/// the subject could be placed; the error says why not.
pub struct Located {
    pub subject: Result<Subject, String>,
    pub checks: Vec<Check>,
    pub record: Option<FaceRecord>,
    /// The silhouette's subject when no face was found: a head too small
    /// for any detector is better reported as too small.
    pub silhouette: Option<Subject>,
    /// Time the detector and the shape predictor took (part of the call's).
    pub face_time: std::time::Duration,
}

pub fn locate_with_faces(
    copy: &WorkingCopy,
    img: &RgbImage,
    backdrop: &Backdrop,
    subject_settings: &SubjectSettings,
    settings: &FaceSettings,
) -> Located {
    let mut face_time = std::time::Duration::ZERO;
    let failed = |why: String, checks, record, face_time| Located {
        subject: Err(why),
        checks,
        record,
        silhouette: None,
        face_time,
    };
    let mut subject = match locate_subject_any_count(copy, backdrop, subject_settings) {
        Ok(s) => s,
        Err(e) => return failed(e.to_string(), vec![], None, face_time),
    };
    let start = std::time::Instant::now();
    let faces = find_faces(copy, img, settings);
    face_time = start.elapsed();
    let faces = match faces {
        Ok(f) => f,
        Err(e) => return failed(e.to_string(), vec![], None, face_time),
    };
    let (checks, record) = match place_by_face(&mut subject, &faces, settings) {
        Ok(placed) => placed,
        Err(failed_with) => {
            let (check, record) = *failed_with;
            let why = check.reason.clone();
            let none = record.faces == 0;
            return Located {
                silhouette: none.then_some(subject),
                ..failed(why, vec![check], Some(record), face_time)
            };
        }
    };
    // Without a face, the silhouette's count of people stands, as before.
    let by_silhouette = record.faces == 0;
    let placed = if by_silhouette && subject.people > 1 {
        Err(crate::analysis::subject::SubjectError::TwoPeople.to_string())
    } else {
        subject
            .check_cut_off(subject_settings)
            .map(|()| subject)
            .map_err(|e| e.to_string())
    };
    Located {
        subject: placed,
        checks,
        record: Some(record),
        silhouette: None,
        face_time,
    }
}

/// What the manifest records about the face (`face` in a photo's record),
/// in the pixels of the image measured (the output's, once the crop is
/// known: see [`FaceRecord::to_output`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaceRecord {
    /// `detector`: eye line, face width and centre come from the detected
    /// face and pupils; `silhouette`: no face was found, and they are the
    /// silhouette's proportions (see `FaceSettings::no_face`).
    pub placed_by: String,
    /// Detections that scored as faces.
    pub faces: u32,
    /// The best detection's score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Pupil centres, the subject's right eye (image left) first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pupils: Option<[[f64; 2]; 2]>,
    /// Slope of the line through the pupils, degrees (positive: the image's
    /// right pupil is lower). Reported, never corrected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tilt_degrees: Option<f64>,
    /// Where the nose tip lies between the ears, -1 to 1 (0: facing the
    /// camera).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<f64>,
}

impl FaceRecord {
    /// The record with its positions moved into the output: `(x - x0) * s`.
    pub fn to_output(&self, x0: f64, y0: f64, scale: f64) -> FaceRecord {
        let map = |p: [f64; 2]| [(p[0] - x0) * scale, (p[1] - y0) * scale];
        FaceRecord {
            pupils: self.pupils.map(|[a, b]| [map(a), map(b)]),
            ..self.clone()
        }
    }
}

/// What to do when the detector finds no face on a photo whose silhouette
/// is a person.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoFace {
    /// The photo fails (`faces` check): the registry checks the eyes, and
    /// a photo whose face cannot be found cannot be placed by them.
    #[default]
    Fail,
    /// Place the crop by the silhouette's proportions, as before faces were
    /// detected, and warn (`faces` check). For drawn test portraits, whose
    /// faces no detector of real faces finds.
    Silhouette,
}

/// The checks about faces and the record, for a photo placed by its face.
pub type Placed = (Vec<Check>, FaceRecord);
/// The failed check and the record, for a photo that cannot be.
pub type Refused = (Check, FaceRecord);

/// The subject with its eye line, face width and centre taken from the
/// best face, the checks about faces, and the record; or why the photo
/// cannot be placed (no face, a second face).
pub fn place_by_face(
    subject: &mut Subject,
    faces: &Faces,
    settings: &FaceSettings,
) -> Result<Placed, Box<Refused>> {
    let count = faces.found.len() as u32;
    let second = faces
        .found
        .get(1)
        .filter(|f| f.score >= settings.second_face_score);
    let Some(face) = faces.found.first() else {
        let record = FaceRecord {
            placed_by: "silhouette".to_owned(),
            ..FaceRecord::default()
        };
        let reason = "no face found";
        return match settings.no_face {
            NoFace::Fail => Err(Box::new((
                Check::new("faces", Verdict::Fail, Some(0.0), reason),
                record,
            ))),
            NoFace::Silhouette => Ok((
                vec![Check::new(
                    "faces",
                    Verdict::Warn,
                    Some(0.0),
                    format!(
                        "{reason}: eye line and face width estimated from the head's silhouette"
                    ),
                )],
                record,
            )),
        };
    };
    let mut record = FaceRecord {
        placed_by: "detector".to_owned(),
        faces: count,
        score: Some(face.score),
        pupils: Some([face.right_eye, face.left_eye]),
        tilt_degrees: Some(face.tilt_degrees()),
        turn: Some(face.turn()),
    };
    if let Some(s) = second {
        record.faces = count;
        return Err(Box::new((
            Check::new(
                "faces",
                Verdict::Fail,
                Some(f64::from(count)),
                format!(
                    "{count} faces (a second scores {:.2}); the registry needs one person",
                    s.score
                ),
            ),
            record,
        )));
    }
    apply(subject, face, settings);
    let mut checks = vec![Check::new(
        "faces",
        Verdict::Pass,
        Some(1.0),
        format!("one face (score {:.2})", face.score),
    )];
    checks.push(tilt_check(face.tilt_degrees(), settings));
    checks.push(turn_check(face.turn(), settings));
    Ok((checks, record))
}

fn apply(subject: &mut Subject, face: &Face, settings: &FaceSettings) {
    let round = |v: f64| v.round().max(0.0) as u32;
    subject.eye_line_y = round(face.eye_line_y());
    subject.face_width = round(face.width(settings)).max(1);
    subject.center_x = round(face.center_x());
    // The silhouette's crown is the top of the hair; only when it is below
    // the face's box (a silhouette that lost the hair against a backdrop of
    // its colour) is the box's top the better bound.
    let box_top = face.rect.top.max(0) as u32;
    if subject.crown_y > box_top {
        subject.crown_y = box_top;
    }
}

fn tilt_check(tilt: f64, settings: &FaceSettings) -> Check {
    let verdict = if tilt.abs() > settings.max_tilt_degrees {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    Check::new(
        "pupils_level",
        verdict,
        Some(tilt),
        format!(
            "pupils tilted {:.1}° (warn above {:.1}°; the photo is never rotated)",
            tilt.abs(),
            settings.max_tilt_degrees
        ),
    )
}

fn turn_check(turn: f64, settings: &FaceSettings) -> Check {
    let verdict = if turn.abs() > settings.max_turn {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    let side = if turn > 0.0 { "left" } else { "right" };
    Check::new(
        "head_turned",
        verdict,
        Some(turn),
        format!(
            "nose {:.0}% of the way from the middle to the {side} ear (warn above {:.0}%)",
            turn.abs() * 100.0,
            settings.max_turn * 100.0
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Rect;

    fn face(score: f64, eyes: [[f64; 2]; 2], nose_x: f64) -> Face {
        Face {
            score,
            bbox: [100.0, 100.0, 200.0, 200.0],
            rect: super::super::dlib_rect([100.0, 100.0, 200.0, 200.0]),
            right_eye: eyes[0],
            left_eye: eyes[1],
            nose: [200.0, 220.0],
            nose_tip: [nose_x, 230.0],
            ears: [[100.0, 200.0], [300.0, 200.0]],
        }
    }

    fn subject() -> Subject {
        Subject {
            crown_y: 60,
            chin_y: 320,
            head: Rect::new(80, 60, 240, 260),
            face_width: 250,
            eye_line_y: 190,
            center_x: 205,
            shoulder_y: Some(380),
            touches_top: false,
            people: 1,
            area_share: 0.3,
            neck_seen: true,
        }
    }

    #[test]
    fn the_face_sets_eye_line_width_and_centre_and_the_silhouette_the_crown() {
        let mut s = subject();
        let f = Faces {
            found: vec![face(0.95, [[160.0, 170.0], [240.0, 174.0]], 200.0)],
            ..Faces::default()
        };
        let (checks, record) = place_by_face(&mut s, &f, &FaceSettings::default()).expect("one");
        assert_eq!((s.eye_line_y, s.center_x, s.crown_y), (172, 200, 60));
        // 190 px of dlib box, over 0.95, times 0.89.
        assert_eq!(s.face_width, 178);
        let tilt = checks
            .iter()
            .find(|c| c.name == "pupils_level")
            .expect("tilt");
        // atan(4 / 80) = 2.86 degrees: warned, above 2.
        assert_eq!(tilt.verdict, Verdict::Warn);
        assert!(
            (tilt.value.expect("value") - 2.862).abs() < 0.01,
            "{tilt:?}"
        );
        assert_eq!(record.faces, 1);
        let turned = checks
            .iter()
            .find(|c| c.name == "head_turned")
            .expect("turn");
        assert_eq!(turned.verdict, Verdict::Pass);
    }

    #[test]
    fn a_second_face_fails_and_a_missing_one_fails_or_warns_as_set() {
        let one = face(0.95, [[160.0, 170.0], [240.0, 170.0]], 260.0);
        let two = Faces {
            found: vec![
                one.clone(),
                face(0.9, [[400.0, 170.0], [480.0, 170.0]], 440.0),
            ],
            ..Faces::default()
        };
        let settings = FaceSettings::default();
        let (check, _) = *place_by_face(&mut subject(), &two, &settings).expect_err("two");
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.reason.contains("2 faces"), "{check:?}");
        // A weak second detection is not a second person.
        let weak = Faces {
            found: vec![one, face(0.6, [[400.0, 170.0], [480.0, 170.0]], 440.0)],
            ..Faces::default()
        };
        let (checks, _) = place_by_face(&mut subject(), &weak, &settings).expect("one");
        // The nose 60% of the way to the left ear: turned.
        let turned = checks
            .iter()
            .find(|c| c.name == "head_turned")
            .expect("turn");
        assert_eq!(turned.verdict, Verdict::Warn, "{turned:?}");
        let none = Faces::default();
        let (check, _) = *place_by_face(&mut subject(), &none, &settings).expect_err("none");
        assert_eq!(check.reason, "no face found");
        let fallback = FaceSettings {
            no_face: NoFace::Silhouette,
            ..settings
        };
        let mut s = subject();
        let (checks, record) = place_by_face(&mut s, &none, &fallback).expect("fallback");
        assert_eq!(s, subject());
        assert_eq!(checks[0].verdict, Verdict::Warn);
        assert_eq!(record.placed_by, "silhouette");
    }
}
