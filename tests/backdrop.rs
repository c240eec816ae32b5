//! Tightly framed heads get synthesised backdrop above them; `--recolour`
//! replaces a backdrop of the wrong colour (issue #25), through the whole
//! pipeline on generated photos.

use std::path::Path;

use gradphoto::testkit::synth::{FileSpec, PortraitSpec, make_photo};
use gradphoto::{Options, normalize_photo};

fn photo(spec: &PortraitSpec) -> Vec<u8> {
    make_photo(spec, &FileSpec::jpeg(92)).expect("photo").0
}

#[test]
fn a_tight_head_is_placed_at_the_aim_on_extended_backdrop() {
    // Crown 3% of the height below the top, head a third of it: no crop
    // inside the photo gives the crown its 50 px.
    let spec = PortraitSpec {
        headroom: 0.03,
        head_height: 0.34,
        ..PortraitSpec::default()
    };
    let bytes = photo(&spec);
    let done = normalize_photo(Path::new("tight.jpg"), &bytes, &Options::default());
    let r = &done.record;
    assert!(done.jpeg.is_some(), "{r:?}");
    let ext = r.backdrop_extended.expect("extended");
    assert!(ext.top > 0 && ext.left == 0 && ext.right == 0, "{ext:?}");
    let g = r.geometry.as_ref().expect("geometry");
    assert!((g.crown_y - 80.0).abs() <= 6.0, "{g:?}");
    assert!((g.eye_line_y - 250.0).abs() <= 25.0, "{g:?}");

    let mut off = Options::default();
    off.extend.enabled = false;
    let without = normalize_photo(Path::new("tight.jpg"), &bytes, &off);
    assert!(without.jpeg.is_none(), "{:?}", without.record);
    assert!(without.record.backdrop_extended.is_none());
}

#[test]
fn recolour_turns_a_white_backdrop_blue_only_when_asked() {
    let spec = PortraitSpec {
        backdrop: [246, 246, 244],
        backdrop_gradient: 0.0,
        shirt: [170, 190, 220],
        ..PortraitSpec::default()
    };
    let bytes = photo(&spec);
    let plain = normalize_photo(Path::new("white.jpg"), &bytes, &Options::default());
    assert!(plain.jpeg.is_none(), "white fails without --recolour");
    assert!(plain.record.backdrop_recoloured.is_none());

    let mut options = Options::default();
    options.recolour.enabled = true;
    let done = normalize_photo(Path::new("white.jpg"), &bytes, &options);
    let r = &done.record;
    assert!(done.jpeg.is_some(), "{r:?}");
    let before = r.backdrop_recoloured.expect("recoloured");
    assert!(before.iter().all(|c| *c >= 235), "{before:?}");
    assert!(r.backdrop_delta_e.expect("measured") < 3.0, "{r:?}");
    let colour = r
        .checks
        .iter()
        .find(|c| c.name == "backdrop_colour")
        .expect("check");
    assert_eq!(
        colour.verdict,
        gradphoto::manifest::Verdict::Pass,
        "{colour:?}"
    );
}

#[test]
fn a_photo_already_blue_is_not_recoloured() {
    let bytes = photo(&PortraitSpec::default());
    let mut options = Options::default();
    let plain = normalize_photo(Path::new("blue.jpg"), &bytes, &options);
    options.recolour.enabled = true;
    let done = normalize_photo(Path::new("blue.jpg"), &bytes, &options);
    assert!(done.record.backdrop_recoloured.is_none());
    assert_eq!(plain.jpeg, done.jpeg);
}
