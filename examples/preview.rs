//! Decodes a JPEG or PNG exactly as stored (no EXIF orientation applied)
//! and writes a small RGB PNG, for eyeballing generated fixtures with tools
//! that only show PNG.
//!
//! `cargo run --release --example preview -- IN OUT.png [MAX_SIDE]`

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: preview IN OUT.png [MAX_SIDE]");
    }
    let max_side: u32 = args.get(3).map_or(Ok(500), |s| s.parse())?;
    let bytes = std::fs::read(&args[1]).with_context(|| format!("reading {}", args[1]))?;
    let (w, h, rgb) = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        let mut dec = png::Decoder::new(std::io::Cursor::new(&bytes));
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = dec.read_info()?;
        let mut buf = vec![0; reader.output_buffer_size().context("png too large")?];
        let info = reader.next_frame(&mut buf)?;
        buf.truncate(info.buffer_size());
        let ch = info.color_type.samples();
        let rgb: Vec<u8> = buf
            .chunks_exact(ch)
            .flat_map(|p| {
                if ch >= 3 {
                    [p[0], p[1], p[2]]
                } else {
                    [p[0]; 3]
                }
            })
            .collect();
        (info.width, info.height, rgb)
    } else {
        let opts = zune_core::options::DecoderOptions::default()
            .jpeg_set_out_colorspace(zune_core::colorspace::ColorSpace::RGB);
        let mut dec = zune_jpeg::JpegDecoder::new_with_options(std::io::Cursor::new(&bytes), opts);
        let rgb = dec.decode().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let info = dec.info().context("no info")?;
        (u32::from(info.width), u32::from(info.height), rgb)
    };
    let f = (w.max(h)).div_ceil(max_side).max(1);
    let (ow, oh) = (w / f, h / f);
    let mut out = Vec::with_capacity((ow * oh * 3) as usize);
    for y in 0..oh {
        for x in 0..ow {
            let i = (((y * f) * w + x * f) * 3) as usize;
            out.extend_from_slice(&rgb[i..i + 3]);
        }
    }
    let file = std::fs::File::create(&args[2])?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), ow, oh);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&out)?;
    Ok(())
}
