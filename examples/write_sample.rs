//! Writes one encoded synthetic portrait to the path given, so other
//! decoders (ImageMagick, libjpeg's djpeg, browsers) can be tried on it.

use gradphoto::EncodeSettings;
use gradphoto::stages::encode_to_window;
use gradphoto::testkit::synth;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sample.jpg".into());
    let img = synth::portrait(480, 640, 0.5, 42);
    let enc = encode_to_window(&img, &EncodeSettings::default())?;
    std::fs::write(&path, &enc.bytes)?;
    println!(
        "{path}: q{} {} {} bytes",
        enc.quality,
        enc.chroma,
        enc.bytes.len()
    );
    Ok(())
}
