//! The batch's sheets as one PDF for an office printer: one page per
//! sheet, the page the paper's size (portrait or landscape as the sheet),
//! the sheet's own JPEG placed over the whole page (DCTDecode: the bytes
//! are embedded as they are, never decoded and encoded again). No text,
//! so no font: the labels are pixels of the sheets.
//!
//! Objects are written with `pdf-writer`. Its `Pdf` holds the whole
//! document in memory until `finish`, and a 500-photo batch is hundreds of
//! megabytes of sheets, so each object is made as a `Chunk` of its own and
//! written to the file at once, one sheet's JPEG in memory at a time; the
//! cross-reference table (a fixed-width list of those objects' offsets)
//! and the trailer are written here.

use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use pdf_writer::{Chunk, Content, Filter, Finish, Name, Rect, Ref};

use super::DPI;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sheet {path} is not a JPEG this run wrote: {why}")]
    BadSheet { path: PathBuf, why: String },
}

/// A PDF being written: objects go to `out` as they are made.
struct Writer<W: Write + Seek> {
    out: W,
    offsets: Vec<(i32, u64)>,
}

impl<W: Write + Seek> Writer<W> {
    fn put(&mut self, id: Ref, chunk: &Chunk) -> std::io::Result<()> {
        let at = self.out.stream_position()?;
        self.offsets.push((id.get(), at));
        self.out.write_all(chunk.as_bytes())
    }
}

/// Writes `sheets` (JPEG files, in page order) as the PDF `path`, through
/// a temporary file renamed over it, so a reader never sees half a file
/// and a link at `path` is replaced, not written through.
pub fn write_pdf(path: &Path, sheets: &[PathBuf]) -> Result<(), PdfError> {
    let io = |source| PdfError::Io {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(io)?;
    let written = write_to(BufWriter::new(file), sheets).and_then(|mut w| {
        w.flush().map_err(|source| PdfError::Io {
            path: temporary.clone(),
            source,
        })
    });
    let result = written.and_then(|_| std::fs::rename(&temporary, path).map_err(io));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn write_to<W: Write + Seek>(out: W, sheets: &[PathBuf]) -> Result<W, PdfError> {
    let catalog = Ref::new(1);
    let pages = Ref::new(2);
    let page_ids: Vec<Ref> = (0..sheets.len())
        .map(|i| Ref::new(3 + 3 * i as i32))
        .collect();
    let mut w = Writer {
        out,
        offsets: Vec::new(),
    };
    let at_file = |path: &Path| {
        let path = path.to_owned();
        move |source| PdfError::Io { path, source }
    };
    // The header pdf-writer writes; the second line marks the file binary.
    w.out
        .write_all(b"%PDF-1.7\n%\x80\x80\x80\x80\n\n")
        .map_err(at_file(Path::new("pdf")))?;
    for (i, sheet) in sheets.iter().enumerate() {
        let jpeg = std::fs::read(sheet).map_err(at_file(sheet))?;
        let (width, height) =
            crate::codec::decode::jpeg_frame_size(&jpeg).ok_or_else(|| PdfError::BadSheet {
                path: sheet.clone(),
                why: "no JPEG frame header".to_owned(),
            })?;
        let (width, height) = (i32::from(width), i32::from(height));
        // Points at the sheet's resolution: exactly the paper's size.
        let (pw, ph) = (
            width as f32 * 72.0 / DPI as f32,
            height as f32 * 72.0 / DPI as f32,
        );
        let (page, content, image) = (
            page_ids[i],
            Ref::new(4 + 3 * i as i32),
            Ref::new(5 + 3 * i as i32),
        );
        let name = Name(b"Sheet");

        let mut chunk = Chunk::new();
        let mut xobject = chunk.image_xobject(image, &jpeg);
        xobject.filter(Filter::DctDecode);
        xobject.width(width);
        xobject.height(height);
        xobject.color_space().device_rgb();
        xobject.bits_per_component(8);
        xobject.finish();
        w.put(image, &chunk).map_err(at_file(sheet))?;
        drop(jpeg);

        let mut draw = Content::new();
        draw.save_state();
        draw.transform([pw, 0.0, 0.0, ph, 0.0, 0.0]);
        draw.x_object(name);
        draw.restore_state();
        let draw = draw.finish();
        let mut chunk = Chunk::new();
        chunk.stream(content, &draw);
        w.put(content, &chunk).map_err(at_file(sheet))?;

        let mut chunk = Chunk::new();
        let mut p = chunk.page(page);
        p.media_box(Rect::new(0.0, 0.0, pw, ph));
        p.parent(pages);
        p.contents(content);
        p.resources().x_objects().pair(name, image);
        p.finish();
        w.put(page, &chunk).map_err(at_file(sheet))?;
    }
    let mut chunk = Chunk::new();
    chunk
        .pages(pages)
        .kids(page_ids.iter().copied())
        .count(page_ids.len() as i32);
    w.put(pages, &chunk).map_err(at_file(Path::new("pdf")))?;
    let mut chunk = Chunk::new();
    chunk
        .indirect(catalog)
        .start::<pdf_writer::writers::Catalog>()
        .pages(pages);
    w.put(catalog, &chunk).map_err(at_file(Path::new("pdf")))?;
    finish(w).map_err(at_file(Path::new("pdf")))
}

/// The cross-reference table and trailer (PDF 32000-1:2008, 7.5.4-7.5.5):
/// entry 0 heads the free list, then one 20-byte line per object in
/// number order.
fn finish<W: Write + Seek>(mut w: Writer<W>) -> std::io::Result<W> {
    w.offsets.sort();
    let size = w.offsets.last().map_or(0, |(id, _)| *id) + 1;
    let xref = w.out.stream_position()?;
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
    let mut next = 1;
    for (id, offset) in &w.offsets {
        // Numbers are dense by construction; a gap would be a free entry.
        while next < *id {
            table.push_str("0000000000 65535 f\r\n");
            next += 1;
        }
        table.push_str(&format!("{offset:010} 00000 n\r\n"));
        next += 1;
    }
    table.push_str(&format!(
        "trailer\n<<\n  /Size {size}\n  /Root 1 0 R\n>>\nstartxref\n{xref}\n%%EOF"
    ));
    w.out.write_all(table.as_bytes())?;
    Ok(w.out)
}
