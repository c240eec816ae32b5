//! Paper prints (issue 27): sheets of exact size and resolution, every
//! print framed by the composition rule (measured against the synthetic
//! portraits' truth, and on the prints' own pixels), the registry photo
//! unchanged by `--print`, the dpi warning for a small source, and the PDF
//! as poppler (Debian's poppler-utils: pdfinfo, pdftoppm) reads it.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{crown_row, inspect_jpeg, run, scratch};
use gradphoto::manifest::{Manifest, Status, Verdict};
use gradphoto::prints::{Paper, PrintSettings, parse_order, print_rule};
use gradphoto::testkit::synth::{
    FileSpec, PortraitSpec, RandomOptions, SplitMix64, Truth, make_photo, random_spec,
};
use gradphoto::{CompositionRule, Options, normalize_photo};

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Varied portraits: sizes from 2 to 24 MP, a phone file turned by EXIF,
/// a landscape frame, a scanned border.
fn portraits() -> Vec<(String, Vec<u8>, Truth)> {
    let mut rng = SplitMix64::new(2027);
    let mut out = Vec::new();
    for i in 0..4 {
        let spec = random_spec(&mut rng, RandomOptions::default());
        let (bytes, truth) = make_photo(&spec, &FileSpec::jpeg(90)).expect("photo");
        out.push((format!("random{i}.jpg"), bytes, truth));
    }
    let upright = PortraitSpec {
        width: 1500,
        height: 2000,
        ..PortraitSpec::default()
    };
    let (bytes, truth) = make_photo(&upright, &FileSpec::phone(92, 6)).expect("phone");
    out.push(("phone.jpg".into(), bytes, truth));
    let landscape = PortraitSpec {
        width: 2400,
        height: 1600,
        head_height: 0.3,
        ..PortraitSpec::default()
    };
    let (bytes, truth) = make_photo(&landscape, &FileSpec::jpeg(90)).expect("landscape");
    out.push(("landscape.jpg".into(), bytes, truth));
    out
}

fn write_inputs(dir: &Path, photos: &[(String, Vec<u8>, Truth)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes, _) in photos {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn manifest(dir: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Where a truth row or column lands in a print cut from `crop` (upright
/// file pixels) at `scale` print pixels per file pixel.
fn in_print(v: i64, origin: u32, scale: f64) -> f64 {
    (v as f64 - f64::from(origin)) * scale
}

#[test]
fn every_print_is_framed_by_the_composition_rule() {
    let settings_order = parse_order("小二寸=1,一寸=1,大一寸=1,大二寸=1,35x53=1").unwrap();
    let settings = PrintSettings {
        order: settings_order.clone(),
        registry_photo: false,
        ..PrintSettings::default()
    };
    let options = Options {
        print: Some(settings),
        ..Options::default()
    };
    let base = CompositionRule::default();
    for (name, bytes, truth) in portraits() {
        let done = normalize_photo(Path::new(&name), &bytes, &options);
        assert_ne!(
            done.record.status,
            Some(Status::Fail),
            "{name}: {:?}",
            done.record
        );
        assert!(done.jpeg.is_none(), "print alone encodes no registry photo");
        let prints = done.prints.expect("prints");
        let record = done.record.prints.expect("prints record");
        assert_eq!(prints.len(), 5);
        for (print, size) in prints.iter().zip(&record.sizes) {
            let (w, h) = (print.image.width(), print.image.height());
            assert_eq!((w, h), (size.width_px, size.height_px));
            let mm = |px: u32| f64::from(px) * 25.4 / 300.0;
            assert!((mm(w) - f64::from(size.width_mm)).abs() < 0.05, "{size:?}");
            assert!((mm(h) - f64::from(size.height_mm)).abs() < 0.05, "{size:?}");
            let line = settings_order.iter().find(|l| l.name == size.name).unwrap();
            let rule = print_rule(&base, line);
            let crop = size.crop;
            // Same factor both ways: never stretched.
            let (sx, sy) = (
                f64::from(w) / f64::from(crop.width),
                f64::from(h) / f64::from(crop.height),
            );
            assert!(
                (sx / sy - 1.0).abs() < 0.01,
                "{name} {}: {crop:?}",
                size.name
            );
            let crown = in_print(truth.crown_row, crop.y, sy);
            let eye = in_print(truth.eye_row, crop.y, sy);
            let face = f64::from(truth.face_width) * sx;
            let centre = in_print(truth.center_x, crop.x, sx);
            let inside = |v: f64, r: (f64, f64)| v >= r.0 - 2.0 && v <= r.1 + 2.0;
            let what = format!(
                "{name} {}: crown {crown:.1} eye {eye:.1} face {face:.1} centre {centre:.1} under {rule:?}",
                size.name
            );
            assert!(inside(crown, rule.crown_range), "{what}");
            assert!(inside(eye, rule.eye_range), "{what}");
            assert!(inside(face, rule.face_range), "{what}");
            assert!(
                (centre - f64::from(w) / 2.0).abs() <= rule.centre_tolerance + 3.0,
                "{what}"
            );
            // And on the print's own pixels: the hair starts where the
            // truth says.
            let seen = crown_row(w, h, print.image.as_bytes()).expect("a crown") as f64;
            assert!((seen - crown).abs() <= 3.0, "{what}: crown seen at {seen}");
            // 2 to 24 MP portraits have the pixels for 300 dpi.
            assert!(size.source_dpi >= 300.0, "{what}: {}", size.source_dpi);
        }
    }
}

#[test]
fn a_source_too_small_for_300_dpi_warns_with_the_dpi_it_prints_at() {
    let spec = PortraitSpec {
        width: 1200,
        height: 1600,
        head_height: 0.3,
        ..PortraitSpec::default()
    };
    let (bytes, _) = make_photo(&spec, &FileSpec::jpeg(92)).unwrap();
    let options = Options {
        print: Some(PrintSettings {
            // 80x106 mm is 945x1252 px at 300 dpi, more than the file has
            // around the head.
            order: parse_order("80x106=1").unwrap(),
            paper: Paper::SixInch,
            ..PrintSettings::default()
        }),
        ..Options::default()
    };
    let done = normalize_photo(Path::new("small.jpg"), &bytes, &options);
    assert!(done.jpeg.is_some(), "{:?}", done.record);
    let size = &done.record.prints.as_ref().unwrap().sizes[0];
    let dpi = 300.0 * f64::from(size.crop.width) / f64::from(size.width_px);
    assert!(dpi < 290.0, "{size:?}");
    assert!((size.source_dpi - dpi).abs() < 3.0, "{size:?} vs {dpi}");
    let check = done
        .record
        .checks
        .iter()
        .find(|c| c.name == "print_resolution")
        .unwrap();
    assert_eq!(check.verdict, Verdict::Warn, "{check:?}");
    assert!(
        check
            .reason
            .contains(&format!("{:.0} dpi", size.source_dpi)),
        "{check:?}"
    );
    assert_eq!(done.record.status, Some(Status::Warn));
}

/// The sheets of a `print` run, in manifest order.
fn sheets_of(out: &Path) -> Vec<PathBuf> {
    manifest(out)
        .photos
        .iter()
        .filter_map(|r| r.prints.as_ref())
        .flat_map(|p| p.sheets.iter().map(|s| out.join(&s.file)))
        .collect()
}

#[test]
fn sheets_are_exact_in_pixels_and_dpi_on_either_paper() {
    let root = scratch("print-sheets");
    let photos = portraits();
    write_inputs(&root.join("in"), &photos);
    for (paper, size) in [("5in", (1050, 1500)), ("6in", (1200, 1800))] {
        let out = root.join(paper);
        let o = run(&[
            os("print"),
            root.join("in").as_os_str(),
            os("--out"),
            out.as_os_str(),
            os("--paper"),
            os(paper),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let m = manifest(&out);
        assert_eq!(m.run.command, "print");
        assert_eq!(m.photos.len(), photos.len());
        for r in &m.photos {
            let p = r.prints.as_ref().expect("prints");
            // 4 x 小二寸 and 8 x 一寸 take two sheets of either paper.
            assert_eq!(p.sheets.len(), 2, "{}", r.input);
            assert!(r.output.is_none(), "no registry photo from print");
        }
        let sheets = sheets_of(&out);
        assert_eq!(sheets.len(), 2 * photos.len());
        for sheet in &sheets {
            let bytes = std::fs::read(sheet).unwrap();
            let f = inspect_jpeg(&bytes);
            let wh = (u32::from(f.width), u32::from(f.height));
            assert!(wh == size || wh == (size.1, size.0), "{sheet:?}: {wh:?}");
            assert_eq!(f.sof_markers, vec![0xC0], "baseline");
            assert_eq!(f.components, 3);
            assert_eq!(f.jfif_units, Some(1), "dots per inch");
            assert_eq!(f.jfif_density, Some((300, 300)));
            assert!(!f.has_exif);
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

fn poppler(tool: &str) -> Command {
    let path = Path::new("/usr/bin").join(tool);
    assert!(
        path.exists(),
        "the PDF test needs {tool} (apt-get install poppler-utils; scripts/test.sh does)"
    );
    Command::new(path)
}

#[test]
fn the_pdf_opens_in_poppler_and_its_pages_are_the_sheets() {
    let root = scratch("print-pdf");
    let out = root.join("out");
    let o = run(&[
        os("print"),
        common::fixtures().as_os_str(),
        os("--out"),
        out.as_os_str(),
    ]);
    // Three fixtures are unfit on purpose (exit status 1); the rest print.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sheets = sheets_of(&out);
    assert!(sheets.len() >= 16, "{sheets:?}");
    let pdf = out.join("prints.pdf");
    let info = poppler("pdfinfo")
        .args([os("-f"), os("1"), os("-l"), os("999"), pdf.as_os_str()])
        .output()
        .unwrap();
    assert!(
        info.status.success(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains(&format!("Pages:           {}", sheets.len())),
        "{info}"
    );
    // Page N's size is its sheet's paper, turned as the sheet is.
    for (n, sheet) in sheets.iter().enumerate() {
        let f = inspect_jpeg(&std::fs::read(sheet).unwrap());
        let (w, h) = (
            f.width as f64 * 72.0 / 300.0,
            f.height as f64 * 72.0 / 300.0,
        );
        let page = format!("Page {:>4} size:", n + 1);
        let line = info
            .lines()
            .find(|l| l.starts_with(&page))
            .unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[3..],
            [&*w.to_string(), "x", &*h.to_string(), "pts"],
            "{line}"
        );
    }
    // Rendered at 300 dpi, a page is its sheet, pixel for pixel (two JPEG
    // decoders may differ by a level or two).
    for page in [1, sheets.len()] {
        let prefix = root.join(format!("page{page}"));
        let r = poppler("pdftoppm")
            .args([
                os("-r"),
                os("300"),
                os("-f"),
                OsStr::new(&page.to_string()),
                os("-l"),
                OsStr::new(&page.to_string()),
                os("-singlefile"),
            ])
            .arg(pdf.as_os_str())
            .arg(&prefix)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let ppm = std::fs::read(prefix.with_extension("ppm")).unwrap();
        let (pw, ph, pixels) = parse_ppm(&ppm);
        let (sw, sh, sheet) =
            common::decode_independently(&std::fs::read(&sheets[page - 1]).unwrap());
        assert_eq!((pw, ph), (sw, sh), "page {page}");
        let diffs: Vec<u32> = pixels
            .iter()
            .zip(&sheet)
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        let off = diffs.iter().filter(|&&d| d > 16).count() as f64 / diffs.len() as f64;
        // Poppler's renderer (Splash) does not map an image 1:1 onto device
        // pixels even at the image's own resolution: here and there a
        // column or row is a blend of two neighbours, which shows along
        // sharp edges (cut guides, print edges, the label), about 2% of
        // the samples. Anything else (another sheet, a shifted, scaled or
        // recoloured page) is far off both bounds.
        assert!(
            mean < 2.5 && off < 0.03,
            "page {page}: mean {mean:.2}, {:.1}% off",
            off * 100.0
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// A binary PPM (P6, maxval 255): width, height, RGB.
fn parse_ppm(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    assert_eq!((fields[0].as_str(), fields[3].as_str()), ("P6", "255"));
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[i + 1..].to_vec())
}

#[test]
fn normalize_with_print_writes_the_same_registry_photos_and_the_prints_beside() {
    let root = scratch("print-normalize");
    let (plain, with) = (root.join("plain"), root.join("with"));
    let fixtures = common::fixtures();
    for (out, extra) in [(&plain, None), (&with, Some("--print"))] {
        let mut args = vec![
            os("normalize"),
            fixtures.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ];
        args.extend(extra.map(os));
        run(&args);
    }
    let (a, b) = (manifest(&plain), manifest(&with));
    assert_eq!(a.photos.len(), b.photos.len());
    assert!(
        a.run.settings.get("print").is_none(),
        "settings unchanged without --print"
    );
    let mut printed = 0;
    for (x, y) in a.photos.iter().zip(&b.photos) {
        assert_eq!(x.output_sha256, y.output_sha256, "{}", x.input);
        assert_eq!(x.crop, y.crop, "{}", x.input);
        assert_eq!(x.decode_scales, y.decode_scales, "one decode: {}", x.input);
        assert!(x.prints.is_none());
        if let Some(name) = &y.output {
            assert_eq!(
                std::fs::read(plain.join(name)).unwrap(),
                std::fs::read(with.join(name)).unwrap()
            );
            let p = y.prints.as_ref().expect("prints beside a photo written");
            for s in &p.sheets {
                assert!(with.join("prints").join(&s.file).is_file(), "{s:?}");
            }
            printed += 1;
        }
    }
    assert!(printed >= 9, "{printed}");
    assert!(with.join("prints/prints.pdf").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_roster_puts_the_student_number_on_the_sheet() {
    let root = scratch("print-roster");
    let photos = portraits();
    write_inputs(&root.join("in"), &photos[..1]);
    // A Chinese file name: without a roster the stem is the label.
    std::fs::rename(root.join("in/random0.jpg"), root.join("in/张三.jpg")).unwrap();
    let roster = root.join("roster.csv");
    std::fs::write(&roster, "学号,姓名,文件名\n2026000123,张三,张三\n").unwrap();
    let mut sheets = Vec::new();
    for with_roster in [false, true] {
        let out = root.join(format!("out{with_roster}"));
        let mut args: Vec<std::ffi::OsString> = vec![
            "print".into(),
            root.join("in").into_os_string(),
            "--out".into(),
            out.clone().into_os_string(),
        ];
        if with_roster {
            args.extend(["--roster".into(), roster.clone().into_os_string()]);
        }
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let o = run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let first = sheets_of(&out).remove(0);
        assert!(
            first
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(if with_roster { "2026000123" } else { "张三" }),
            "{first:?}"
        );
        sheets.push(common::decode_independently(&std::fs::read(first).unwrap()));
    }
    // Same prints, other label: the sheets differ only in the bottom margin.
    let (w, h, a) = &sheets[0];
    let (_, _, b) = &sheets[1];
    let row = (*w * 3) as usize;
    let margin = (*h - 60) as usize * row;
    assert_eq!(a[..margin].len(), b[..margin].len());
    let diff_above: u64 = a[..margin]
        .iter()
        .zip(&b[..margin])
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    let diff_margin: u64 = a[margin..]
        .iter()
        .zip(&b[margin..])
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    assert!(diff_margin > 1000, "labels differ");
    // JPEG blocks straddle the margin's edge; above it nothing else moves.
    assert!(
        diff_above < diff_margin / 4,
        "{diff_above} vs {diff_margin}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_rerun_keeps_photos_whose_sheets_are_intact_and_remakes_the_others() {
    let root = scratch("print-resume");
    let photos = portraits();
    write_inputs(&root.join("in"), &photos[..3]);
    let (input, out) = (root.join("in"), root.join("out"));
    let args = [
        os("normalize"),
        input.as_os_str(),
        os("--out"),
        out.as_os_str(),
        os("--print"),
    ];
    assert!(run(&args).status.success());
    let first = manifest(&out);
    let gone = &first.photos[1].prints.as_ref().unwrap().sheets[0].file;
    std::fs::remove_file(out.join("prints").join(gone)).unwrap();
    assert!(run(&args).status.success());
    let second = manifest(&out);
    let resumed: Vec<bool> = second.photos.iter().map(|r| r.resumed).collect();
    assert_eq!(resumed, [true, false, true]);
    for (a, b) in first.photos.iter().zip(&second.photos) {
        assert_eq!(a.prints, b.prints, "the same sheets, made again alike");
    }
    assert!(out.join("prints").join(gone).is_file());
    let pdf = std::fs::read(out.join("prints/prints.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-1.7") && pdf.ends_with(b"%%EOF"));
    std::fs::remove_dir_all(&root).unwrap();
}
