//! Writes the synthetic portrait the format fixtures are made from
//! (scripts/make-format-fixtures.sh) as an sRGB PNG with no colour chunks.

use gradphoto::testkit::synth;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "source.png".into());
    let (w, h) = (120, 160);
    let img = synth::portrait(w, h, 0.5, 24);
    let mut bytes = Vec::new();
    let mut enc = png::Encoder::new(&mut bytes, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(img.as_bytes())?;
    writer.finish()?;
    std::fs::write(&path, &bytes)?;
    Ok(())
}
