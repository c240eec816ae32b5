//! The label in a sheet's margin, drawn into the sheet's pixels with GNU
//! Unifont (through the `unifont` crate): a bitmap font that covers the
//! whole Basic Multilingual Plane, so a Chinese name or a student number
//! in any script prints as written, with no font file to find at run time
//! and none to embed in the PDF (the text is pixels of the sheet's JPEG).
//!
//! Halfwidth glyphs are 8x16, fullwidth (CJK) 16x16; drawn at twice that,
//! the text is 32 px high, 2.7 mm at 300 dpi. A character Unifont has no
//! glyph for (outside the BMP: emoji, rare CJK extensions) and control
//! characters are drawn as U+FFFD, the replacement character; the manifest
//! keeps the label as text.

use crate::image::RgbImage;

/// Each font pixel becomes `SCALE` x `SCALE` sheet pixels.
pub const SCALE: u32 = 2;
/// Height of a line of text in sheet pixels.
pub const HEIGHT: u32 = 16 * SCALE;

fn glyph(c: char) -> &'static unifont::Glyph {
    let shown = if c.is_control() { '\u{FFFD}' } else { c };
    unifont::get_glyph(shown)
        .or_else(|| unifont::get_glyph('\u{FFFD}'))
        .or_else(|| unifont::get_glyph('?'))
        .unwrap_or(&BLANK)
}

static BLANK: unifont::Glyph = unifont::Glyph::Halfwidth([0; 16]);

/// Width of `text` in sheet pixels.
pub fn width(text: &str) -> u32 {
    text.chars()
        .map(|c| glyph(c).get_width() as u32 * SCALE)
        .sum()
}

/// `text`, shortened with "…" at the end until it is at most `max` pixels
/// wide.
pub fn fit(text: &str, max: u32) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let shown: String = chars.iter().chain(['…'].iter()).collect();
        if width(&shown) <= max {
            return shown;
        }
    }
    String::new()
}

/// Draws `text` with its top-left corner at (`x`, `y`) in `colour`,
/// clipped to the image. Returns the width drawn.
pub fn draw(img: &mut RgbImage, x: u32, y: u32, text: &str, colour: [u8; 3]) -> u32 {
    let mut pen = x;
    for c in text.chars() {
        let g = glyph(c);
        let gw = g.get_width();
        for gy in 0..16 {
            for gx in 0..gw {
                if !g.get_pixel(gx, gy) {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let px = pen + gx as u32 * SCALE + dx;
                        let py = y + gy as u32 * SCALE + dy;
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
        pen += gw as u32 * SCALE;
    }
    pen - x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(img: &RgbImage) -> usize {
        img.as_bytes().chunks(3).filter(|p| p[0] < 128).count()
    }

    #[test]
    fn latin_and_chinese_are_drawn_and_measured() {
        assert_eq!(width("2026001"), 7 * 8 * SCALE);
        assert_eq!(width("张三"), 2 * 16 * SCALE);
        let mut img = RgbImage::filled(200, HEIGHT, [255; 3]);
        let drawn = draw(&mut img, 0, 0, "张三", [0; 3]);
        assert_eq!(drawn, 64);
        // Both glyphs have ink, in their own halves.
        let left = img.crop(crate::image::Rect::new(0, 0, 32, HEIGHT));
        let right = img.crop(crate::image::Rect::new(32, 0, 32, HEIGHT));
        assert!(ink(&left) > 50 && ink(&right) > 50);
        // Two different names give different pixels.
        let mut other = RgbImage::filled(200, HEIGHT, [255; 3]);
        draw(&mut other, 0, 0, "李四", [0; 3]);
        assert_ne!(img, other);
    }

    #[test]
    fn characters_without_a_glyph_are_drawn_as_the_replacement_character() {
        let mut a = RgbImage::filled(40, HEIGHT, [255; 3]);
        let mut b = a.clone();
        draw(&mut a, 0, 0, "\u{1F600}", [0; 3]);
        draw(&mut b, 0, 0, "\u{FFFD}", [0; 3]);
        assert_eq!(a, b);
        assert!(ink(&a) > 0);
        let mut c = RgbImage::filled(40, HEIGHT, [255; 3]);
        draw(&mut c, 0, 0, "\u{1b}", [0; 3]);
        assert_eq!(c, b);
    }

    #[test]
    fn long_labels_are_shortened_to_fit() {
        let long = "一二三四五六七八九十";
        let short = fit(long, 5 * 32);
        assert!(short.ends_with('…') && width(&short) <= 160, "{short}");
        assert_eq!(fit("abc", 1000), "abc");
    }
}
