//! Prints what the border stage sees near one side of a photo, decoded as
//! the pipeline's first pass decodes it: per line inward, the median colour
//! the share of the line within the uniform tolerance of it, and how rough
//! it is: the mean deviation of 4-pixel means from the median (what the
//! border stage calls a line's deviation) and of single pixels from it.
//! Usage: border_probe FILE SIDE(top|bottom|left|right) [LINES] [FIRST]

use gradphoto::BorderSettings;
use gradphoto::DecodeLimits;
use gradphoto::ReduceSettings;
use gradphoto::stages::apply_orientation;
use gradphoto::stages::{Reduce, decode_reduced};
use gradphoto::stages::{find_borders, trace_side};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(side)) = (args.get(1), args.get(2)) else {
        return Err("usage: border_probe FILE SIDE [LINES]".into());
    };
    let lines: u32 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(40);
    let first_arg: Option<u32> = args.get(4).map(|s| s.parse()).transpose()?;
    let bytes = std::fs::read(file)?;
    let reduce: Reduce = ReduceSettings::default().first_decode(&Default::default());
    let d = decode_reduced(&bytes, &DecodeLimits::default(), [100, 197, 255], reduce)?;
    println!("scale {}/8", d.scale.numerator());
    let img = apply_orientation(d.image, d.orientation);
    let b = find_borders(&img, &BorderSettings::default());
    println!("{}x{} found {b:?}", img.width(), img.height());
    let (w, h) = (img.width(), img.height());
    let px = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        let p = &img.as_bytes()[i..i + 3];
        [p[0], p[1], p[2]]
    };
    let depth = if side == "top" || side == "bottom" {
        h
    } else {
        w
    };
    let first = match side.as_str() {
        "top" => b.top,
        "bottom" => b.bottom,
        "left" => b.left,
        _ => b.right,
    };
    let settings = BorderSettings::default();
    let trace = trace_side(&img, &settings, side, first_arg.unwrap_or(first) + lines)
        .ok_or("SIDE is one of top, bottom, left, right")?;
    let from = first_arg.unwrap_or(first.saturating_sub(lines / 2));
    for k in from..(from + lines).min(depth) {
        let line: Vec<[u8; 3]> = match side.as_str() {
            "top" => (0..w).map(|x| px(x, k)).collect(),
            "bottom" => (0..w).map(|x| px(x, h - 1 - k)).collect(),
            "left" => (0..h).map(|y| px(k, y)).collect(),
            _ => (0..h).map(|y| px(w - 1 - k, y)).collect(),
        };
        let med: Vec<u8> = (0..3)
            .map(|c| {
                let mut v: Vec<u8> = line.iter().map(|p| p[c]).collect();
                v.sort_unstable();
                v[v.len() / 2]
            })
            .collect();
        let near = line
            .iter()
            .filter(|p| (0..3).all(|c| p[c].abs_diff(med[c]) <= 32))
            .count();
        let off = |p: [u8; 3]| (0..3).map(|c| p[c].abs_diff(med[c])).max().unwrap_or(0);
        let means: Vec<[u8; 3]> = line
            .chunks_exact(4)
            .map(|q| [0, 1, 2].map(|c| (q.iter().map(|p| u32::from(p[c])).sum::<u32>() / 4) as u8))
            .collect();
        let mean_off = |v: &[[u8; 3]]| {
            v.iter().map(|p| f64::from(off(*p))).sum::<f64>() / v.len().max(1) as f64
        };
        let seen = trace
            .get(k as usize)
            .map(|l| {
                format!(
                    " | search: {:?} uniform {} dev {:.2} ripple {:.2}",
                    l.colour, l.uniform, l.deviation, l.ripple
                )
            })
            .unwrap_or_default();
        println!(
            "{k:5} median {med:?} uniform {:.2} dev4 {:.2} dev1 {:.2}{seen}",
            near as f64 / line.len() as f64,
            mean_off(&means),
            mean_off(&line)
        );
    }
    Ok(())
}
