//! A sheet's pixels and its JPEG: the prints where the layout puts them,
//! a thin cut guide around each, and the label in the bottom margin.

use super::layout::{LABEL_MARGIN, MARGIN, TooLarge, lay_out};
use super::{DPI, Print, PrintSettings, label};
use crate::codec::encode::{Chroma, encode_once};
use crate::image::{Rect, RgbImage};

const PAPER: [u8; 3] = [255, 255, 255];
/// Mid grey: visible on the white paper and on the light-blue backdrop.
const GUIDE: [u8; 3] = [128, 128, 128];
const INK: [u8; 3] = [0, 0, 0];

/// One sheet, ready to write.
#[derive(Clone, Debug)]
pub struct Sheet {
    /// Baseline JPEG, JFIF at [`DPI`], sRGB pixels.
    pub jpeg: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error("cannot encode a sheet: {0}")]
    Encode(String),
}

/// Lays out every print of the order (`prints`, one per size, each
/// repeated by its count) on the fewest sheets and renders them, each
/// labelled `label` and its number.
pub fn make_sheets(
    prints: &[Print],
    label: &str,
    settings: &PrintSettings,
) -> Result<Vec<Sheet>, SheetError> {
    let items: Vec<usize> = prints
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::repeat_n(i, p.line.count as usize))
        .collect();
    let sizes: Vec<(u32, u32)> = items
        .iter()
        .map(|&i| (prints[i].image.width(), prints[i].image.height()))
        .collect();
    let layouts = lay_out(&sizes, settings.paper)?;
    let total = layouts.len();
    layouts
        .iter()
        .enumerate()
        .map(|(n, layout)| {
            let mut img = RgbImage::filled(layout.width, layout.height, PAPER);
            for p in &layout.placements {
                let print = &prints[items[p.item]].image;
                let at = Rect::new(p.x, p.y, print.width(), print.height());
                blit(&mut img, print, at);
                guide(&mut img, at);
            }
            let text = label::fit(
                &format!("{label}  {}/{total}", n + 1),
                layout.width - 2 * MARGIN,
            );
            let y = layout.height - LABEL_MARGIN + (LABEL_MARGIN - label::HEIGHT) / 2;
            label::draw(&mut img, MARGIN, y, &text, INK);
            // 4:2:0: colour at 150 dpi is what camera files give labs and is
            // invisible in a print (cut guides and label are grey and
            // black, which carry no colour); encoding a 6-inch sheet took
            // 22 ms against 52 ms at 4:4:4 (same run, interleaved), and
            // encoding is most of a photo's print work.
            let jpeg = encode_once(&img, settings.sheet_quality, Chroma::Sub420, DPI as u16)
                .map_err(|e| SheetError::Encode(e.to_string()))?;
            Ok(Sheet { jpeg })
        })
        .collect()
}

fn blit(sheet: &mut RgbImage, print: &RgbImage, at: Rect) {
    let row_bytes = print.width() as usize * 3;
    let x0 = at.x as usize * 3;
    let stride = sheet.width() as usize * 3;
    let dst = sheet.as_bytes_mut();
    for y in 0..print.height() {
        let start = (at.y + y) as usize * stride + x0;
        dst[start..start + row_bytes].copy_from_slice(print.row(y));
    }
}

/// A one-pixel line just outside `at` on every side: cut along it and the
/// line goes with the offcut, the print keeps all its pixels.
fn guide(sheet: &mut RgbImage, at: Rect) {
    let (w, h) = (sheet.width(), sheet.height());
    let (left, top) = (at.x.saturating_sub(1), at.y.saturating_sub(1));
    let (right, bottom) = ((at.right()).min(w - 1), (at.bottom()).min(h - 1));
    for x in left..=right {
        sheet.put_pixel(x, top, GUIDE);
        sheet.put_pixel(x, bottom, GUIDE);
    }
    for y in top..=bottom {
        sheet.put_pixel(left, y, GUIDE);
        sheet.put_pixel(right, y, GUIDE);
    }
}
