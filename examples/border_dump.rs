//! Prints, for every photo given, what `find_borders` found and what the
//! search saw on the first lines of each side (median, uniformity,
//! deviation, ripple to the last bit): a before/after diff of this output
//! shows any change to the border stage's results or its sampling.
//! Usage: border_dump DIR... [LINES]

use gradphoto::BorderSettings;
use gradphoto::Options;
use gradphoto::stages::apply_orientation;
use gradphoto::stages::decode_reduced;
use gradphoto::stages::discover;
use gradphoto::stages::{find_borders, trace_side};

fn main() {
    let args: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let options = Options::default();
    let reduce = options.reduce.first_decode(&options.composition);
    let settings = BorderSettings::default();
    for path in discover(&args, None).photos {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(d) = decode_reduced(&bytes, &options.limits, options.backdrop.reference, reduce)
        else {
            continue;
        };
        let img = apply_orientation(d.image, d.orientation);
        println!("{} {:?}", path.display(), find_borders(&img, &settings));
        for side in ["top", "bottom", "left", "right"] {
            for (k, l) in trace_side(&img, &settings, side, 200)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                println!(
                    "  {side} {k} {:?} {} {:e} {:e}",
                    l.colour, l.uniform, l.deviation, l.ripple
                );
            }
        }
    }
}
