//! The PNG decoder: the png crate, to 8-bit RGB with any alpha composited
//! onto the matte, reduced by a power of two as the rows arrive
//! ([`BoxShrink`]), since PNG has no cheap reduced decode.

use std::borrow::Cow;
use std::io::Cursor;

use super::exif::exif_orientation;
use super::profile::{Managed, Stored, Tag};
use super::{DecodeError, DecodeLimits, Decoded, ImageFormat, Reduce, check_limits};
use crate::image::RgbImage;

/// Width and height from a PNG's IHDR chunk, which the format puts first.
pub(crate) fn png_frame_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24).filter(|c| c.starts_with(b"IHDR"))?;
    let size = |at: usize| Some(u32::from_be_bytes(ihdr.get(at..at + 4)?.try_into().ok()?));
    Some((size(4)?, size(8)?))
}

pub(super) fn decode_png(
    bytes: &[u8],
    limits: &DecodeLimits,
    matte: [u8; 3],
    reduce: Reduce,
) -> Result<Decoded, DecodeError> {
    let png_err = |e: png::DecodingError| DecodeError::Png(e.to_string());
    // The byte limit bounds every allocation the png crate makes, including
    // huge ancillary chunks, which the pixel check alone would not catch.
    let byte_limit = usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: byte_limit });
    let header = decoder.read_header_info().map_err(png_err)?;
    let (width, height) = (header.width, header.height);
    check_limits(u64::from(width), u64::from(height), limits)?;
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png_err)?;
    let info = reader.info();
    let orientation = info
        .exif_metadata
        .as_deref()
        .and_then(exif_orientation)
        .unwrap_or_default();
    let progressive = info.interlaced;
    let colour = format!("{:?}", info.color_type).to_ascii_lowercase();
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (height, width)
    } else {
        (width, height)
    };
    let scale = reduce.scale_for(upright_w, upright_h).power_of_two_above();
    let (samples, _) = reader.output_color_type();
    if samples == png::ColorType::Indexed {
        return Err(DecodeError::Png("palette was not expanded".into()));
    }
    let managed = colour_tag(reader.info()).map(|tag| {
        let stored = match samples {
            png::ColorType::Grayscale => Stored::Grey,
            png::ColorType::GrayscaleAlpha => Stored::GreyAlpha,
            png::ColorType::Rgba => Stored::Rgba,
            _ => Stored::Rgb,
        };
        Managed::new(tag, stored)
    });
    let transform = managed.as_ref().and_then(|m| m.transform.as_ref());
    let mut colour_warning = managed.as_ref().and_then(|m| m.warning.clone());
    let mut shrink = BoxShrink::new(width, height, 8 / scale.numerator());
    let (mut rgb_row, mut srgb_row) = (Vec::new(), Vec::new());
    let mut take_row = |row: &[u8]| {
        // Converted before alpha meets the matte, which is sRGB already.
        let (row, samples) = match transform.map(|t| t.convert_row(row, &mut srgb_row)) {
            None => (row, samples),
            Some(Err(why)) => {
                colour_warning.get_or_insert(why);
                (row, samples)
            }
            Some(Ok(())) => {
                let alpha = matches!(
                    samples,
                    png::ColorType::Rgba | png::ColorType::GrayscaleAlpha
                );
                let as_rgb = if alpha {
                    png::ColorType::Rgba
                } else {
                    png::ColorType::Rgb
                };
                (&srgb_row[..], as_rgb)
            }
        };
        shrink.push(samples_to_rgb(row, samples, matte, &mut rgb_row));
    };
    if progressive {
        // Adam7 rows arrive pass by pass; only the whole frame is in order.
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| DecodeError::Png("image too large for this machine".into()))?;
        let mut frame = vec![0u8; size];
        let info = reader.next_frame(&mut frame).map_err(png_err)?;
        frame
            .chunks_exact(info.line_size)
            .take(height as usize)
            .for_each(take_row);
    } else {
        while let Some(row) = reader.next_row().map_err(png_err)? {
            take_row(row.data());
        }
    }
    let image = shrink
        .finish()
        .map_err(|e| DecodeError::Png(e.to_string()))?;
    Ok(Decoded {
        image,
        format: ImageFormat::Png,
        orientation,
        colour,
        progressive,
        full_width: width,
        full_height: height,
        scale,
        colour_profile: managed.map(|m| m.label),
        colour_warning,
    })
}

/// What a PNG says about its colours, by the PNG rules: `iCCP` first, then
/// `sRGB`, then `cHRM`/`gAMA`. None for a PNG that says nothing.
fn colour_tag<'a>(info: &'a png::Info<'_>) -> Option<Tag<'a>> {
    if let Some(icc) = &info.icc_profile {
        return Some(Tag::Icc(Cow::Borrowed(icc)));
    }
    if info.srgb.is_some() {
        return Some(Tag::PngSrgb);
    }
    let xy = |(x, y): (png::ScaledFloat, png::ScaledFloat)| (x.into_value(), y.into_value());
    let chromaticities = info
        .chrm_chunk
        .map(|c| [xy(c.white), xy(c.red), xy(c.green), xy(c.blue)]);
    let gamma = info.gama_chunk.map(|g| g.into_value());
    (chromaticities.is_some() || gamma.is_some()).then_some(Tag::PngChromaticities {
        chromaticities,
        gamma,
    })
}

/// The rounded mean of each run of `K` RGB pixels of `sums`, each already
/// the sum of the band's rows: `count` samples per mean.
fn block_means<const K: usize>(sums: &[u16], count: u32, means: &mut [u8]) {
    // A whole band of whole blocks has a power-of-two count: a shift.
    let shift = count.is_power_of_two().then(|| count.trailing_zeros());
    for (block, mean) in sums.chunks_exact(3 * K).zip(means.chunks_exact_mut(3)) {
        for c in 0..3 {
            let sum: u32 = (0..K).map(|i| u32::from(block[3 * i + c])).sum::<u32>() + count / 2;
            mean[c] = match shift {
                Some(shift) => (sum >> shift) as u8,
                None => (sum / count) as u8,
            };
        }
    }
}

/// One row of 8-bit grey, grey+alpha, RGB or RGBA samples as RGB, alpha
/// composited over `matte`. RGB rows are passed through; the others are
/// converted into `out`.
pub(super) fn samples_to_rgb<'a>(
    row: &'a [u8],
    colour: png::ColorType,
    matte: [u8; 3],
    out: &'a mut Vec<u8>,
) -> &'a [u8] {
    let over = |value: u8, alpha: u8, bg: u8| -> u8 {
        let a = u32::from(alpha);
        ((u32::from(value) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8
    };
    let (channels, grey) = match colour {
        // Indexed is expanded by the decoder (and refused before reading).
        png::ColorType::Rgb | png::ColorType::Indexed => return row,
        png::ColorType::Rgba => (4, false),
        png::ColorType::Grayscale => (1, true),
        png::ColorType::GrayscaleAlpha => (2, true),
    };
    let pixels = row.len() / channels;
    out.resize(pixels * 3, 0);
    for (rgb, p) in out.chunks_exact_mut(3).zip(row.chunks_exact(channels)) {
        let value = |c: usize| if grey { p[0] } else { p[c] };
        let alpha = if channels % 2 == 0 {
            p[channels - 1]
        } else {
            255
        };
        for c in 0..3 {
            rgb[c] = match alpha {
                255 => value(c),
                0 => matte[c],
                a => over(value(c), a, matte[c]),
            };
        }
    }
    out
}

/// Averages `factor` x `factor` blocks of RGB rows as they arrive (a
/// partial block at the right or bottom edge over the pixels it has), so a
/// large PNG is reduced the way libjpeg reduces a JPEG, to `ceil(len /
/// factor)`, without ever being held at full size.
pub(super) struct BoxShrink {
    width: usize,
    height: u32,
    factor: usize,
    /// Per input sample, the sum of the band's rows so far (at most 8 x 255).
    band: Vec<u16>,
    rows_in_band: usize,
    out: Vec<u8>,
}

impl BoxShrink {
    pub(super) fn new(width: u32, height: u32, factor: u32) -> BoxShrink {
        let (width, factor) = (width as usize, factor.max(1) as usize);
        let out_len = width.div_ceil(factor) * (height as usize).div_ceil(factor) * 3;
        BoxShrink {
            width,
            height,
            factor,
            band: if factor > 1 {
                vec![0; width * 3]
            } else {
                Vec::new()
            },
            rows_in_band: 0,
            out: Vec::with_capacity(out_len),
        }
    }

    /// Takes the next row, `width` RGB pixels (a short row is padded with
    /// black, as a truncated row would otherwise shift the image).
    pub(super) fn push(&mut self, row: &[u8]) {
        let row = &row[..row.len().min(self.width * 3)];
        if self.factor == 1 {
            self.out.extend_from_slice(row);
            self.out
                .resize(self.out.len() + self.width * 3 - row.len(), 0);
            return;
        }
        for (sum, &v) in self.band.iter_mut().zip(row) {
            *sum += u16::from(v);
        }
        self.rows_in_band += 1;
        if self.rows_in_band == self.factor {
            self.flush_band();
        }
    }

    fn flush_band(&mut self) {
        let rows = self.rows_in_band as u32;
        let block_len = self.factor * 3;
        let whole = self.band.len() / block_len * block_len;
        let (body, tail) = self.band.split_at(whole);
        let start = self.out.len();
        self.out.resize(start + whole / self.factor, 0);
        let means = &mut self.out[start..];
        let count = rows * self.factor as u32;
        // The factor as a constant lets each block's sum unroll.
        match self.factor {
            2 => block_means::<2>(body, count, means),
            4 => block_means::<4>(body, count, means),
            _ => block_means::<8>(body, count, means),
        }
        if !tail.is_empty() {
            let count = rows * (tail.len() / 3) as u32;
            let mut sums = [0u32; 3];
            for pixel in tail.chunks_exact(3) {
                for c in 0..3 {
                    sums[c] += u32::from(pixel[c]);
                }
            }
            self.out
                .extend(sums.map(|sum| ((sum + count / 2) / count) as u8));
        }
        self.band.fill(0);
        self.rows_in_band = 0;
    }

    pub(super) fn finish(mut self) -> Result<RgbImage, crate::image::BufferSizeError> {
        if self.rows_in_band > 0 {
            self.flush_band();
        }
        let factor = self.factor as u32;
        RgbImage::new(
            (self.width as u32).div_ceil(factor),
            self.height.div_ceil(factor),
            self.out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode::{DecodeScale, decode, decode_reduced};

    fn png_bytes(w: u32, h: u32, colour: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut enc = png::Encoder::new(&mut bytes, w, h);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
        bytes
    }

    /// An Adam7-interlaced 8-bit RGBA PNG, written by hand: the png crate
    /// only writes progressive-free files. Stored (uncompressed) deflate.
    fn interlaced_rgba_png(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
        const PASSES: [(u32, u32, u32, u32); 7] = [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ];
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in PASSES {
            if x0 >= w {
                continue;
            }
            for y in (y0..h).step_by(dy as usize) {
                raw.push(0); // filter: none
                for x in (x0..w).step_by(dx as usize) {
                    let i = ((y * w + x) * 4) as usize;
                    raw.extend_from_slice(&rgba[i..i + 4]);
                }
            }
        }
        let mut zlib = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            zlib.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            zlib.extend_from_slice(&len.to_le_bytes());
            zlib.extend_from_slice(&(!len).to_le_bytes());
            zlib.extend_from_slice(block);
        }
        let (a, b) = raw.iter().fold((1u32, 0u32), |(a, b), &v| {
            let a = (a + u32::from(v)) % 65_521;
            (a, (b + a) % 65_521)
        });
        zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let crc = |bytes: &[u8]| {
            !bytes.iter().fold(!0u32, |crc, &v| {
                (0..8).fold(crc ^ u32::from(v), |c, _| {
                    if c & 1 == 1 {
                        (c >> 1) ^ 0xEDB8_8320
                    } else {
                        c >> 1
                    }
                })
            })
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 1]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, body) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &zlib), (b"IEND", &[])] {
            png.extend_from_slice(&(body.len() as u32).to_be_bytes());
            let start = png.len();
            png.extend_from_slice(kind);
            png.extend_from_slice(body);
            let sum = crc(&png[start..]);
            png.extend_from_slice(&sum.to_be_bytes());
        }
        png
    }

    #[test]
    fn reduced_png_is_the_rounded_mean_of_each_block() {
        // Odd sizes leave partial blocks on the right and at the bottom;
        // varied alpha goes through the compositing first.
        let (w, h) = (37u32, 29u32);
        let rgba: Vec<u8> = (0..w * h * 4).map(|i| (i * 97 % 251) as u8).collect();
        let matte = [100, 197, 255];
        let limits = DecodeLimits::default();
        let plain = png_bytes(w, h, png::ColorType::Rgba, &rgba);
        let full = decode(&plain, &limits, matte).unwrap();
        let interlaced = interlaced_rgba_png(w, h, &rgba);
        let full_interlaced = decode(&interlaced, &limits, matte).unwrap();
        assert!(full_interlaced.progressive);
        assert_eq!(full_interlaced.image, full.image);
        for (bytes, interlaced) in [(plain, false), (interlaced, true)] {
            for (eighths, factor) in [(4, 2u32), (2, 4), (1, 8)] {
                let reduce = Reduce {
                    min_width: 0,
                    min_height: 0,
                    min_scale: DecodeScale::eighths(eighths),
                };
                let small = decode_reduced(&bytes, &limits, matte, reduce).unwrap();
                assert_eq!(small.scale, DecodeScale::eighths(eighths));
                assert_eq!((small.full_width, small.full_height), (w, h));
                let img = &small.image;
                assert_eq!(
                    (img.width(), img.height()),
                    (w.div_ceil(factor), h.div_ceil(factor))
                );
                for (y, x, c) in (0..img.height()).flat_map(|y| {
                    (0..img.width()).flat_map(move |x| (0..3).map(move |c| (y, x, c)))
                }) {
                    let xs = x * factor..((x + 1) * factor).min(w);
                    let ys = y * factor..((y + 1) * factor).min(h);
                    let count = xs.len() as u32 * ys.len() as u32;
                    let sum: u32 = ys
                        .flat_map(|yy| xs.clone().map(move |xx| (xx, yy)))
                        .map(|(xx, yy)| u32::from(full.image.pixel(xx, yy)[c]))
                        .sum();
                    assert_eq!(
                        u32::from(img.pixel(x, y)[c]),
                        (sum + count / 2) / count,
                        "factor {factor} interlaced {interlaced} at {x},{y} channel {c}"
                    );
                }
            }
        }
    }

    #[test]
    fn png_scale_is_a_power_of_two_that_keeps_the_minimum_size() {
        let (w, h) = (40u32, 24u32);
        let grey: Vec<u8> = (0..w * h).map(|i| (i % 256) as u8).collect();
        let bytes = png_bytes(w, h, png::ColorType::Grayscale, &grey);
        let reduce = Reduce {
            min_width: 12,
            min_height: 0,
            min_scale: DecodeScale::eighths(1),
        };
        // 3/8 would keep 15 columns, but only a power of two averages whole pixels.
        let d = decode_reduced(&bytes, &DecodeLimits::default(), [0; 3], reduce).unwrap();
        assert_eq!(d.scale, DecodeScale::eighths(4));
        assert_eq!((d.image.width(), d.image.height()), (20, 12));
        assert_eq!(d.image.pixel(0, 0), [21, 21, 21]);
    }

    #[test]
    fn png_alpha_is_composited_onto_the_matte() {
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, 2, 1);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| e.to_string()).unwrap();
            w.write_image_data(&[255, 0, 0, 255, 255, 0, 0, 0])
                .map_err(|e| e.to_string())
                .unwrap();
        }
        let d = decode(&bytes, &DecodeLimits::default(), [100, 197, 255]).unwrap();
        assert_eq!(d.format, ImageFormat::Png);
        assert_eq!(d.image.pixel(0, 0), [255, 0, 0]);
        assert_eq!(d.image.pixel(1, 0), [100, 197, 255]);
    }
}
