//! The prints in a batch (`normalize --print`, `print`): each photo's
//! sheets made on its worker with its label, written by the writer next to
//! the photos (in `prints/` beside registry photos, or in the output
//! folder itself for `print`), and, once the batch is done, every sheet in
//! input order as one PDF.

use std::path::{Path, PathBuf};

use crate::batch::digest::sha256_hex;
use crate::batch::manifest::{ManifestError, PhotoRecord, Records, RosterFields};
use crate::batch::output::{WriteError, validate_file_name, write_file_atomically};
use crate::photo::Options;
use crate::print::pdf::{PdfError, write_pdf};
use crate::print::sheet::{Sheet, make_sheets};
use crate::print::{Print, PrintSettings, SheetFile};

/// The folder of sheets inside a registry output folder.
pub const PRINTS_FOLDER: &str = "prints";
/// The batch's PDF, in the sheets' folder.
pub const PDF_NAME: &str = "prints.pdf";

/// Where the sheets go: `out/prints/` beside registry photos (the folder
/// uploaded to the registry keeps only those), `out` for the `print`
/// command.
pub fn sheets_dir(out: &Path, settings: &PrintSettings) -> PathBuf {
    if settings.registry_photo {
        out.join(PRINTS_FOLDER)
    } else {
        out.to_owned()
    }
}

/// The text in a sheet's margin: the student number when a roster gives
/// one, else the input's file name without its extension (a name that is
/// not UTF-8 shows its undecodable bytes as U+FFFD).
pub fn label(input: &Path, roster: Option<&RosterFields>) -> String {
    match roster
        .map(|r| r.student_no.trim())
        .filter(|s| !s.is_empty())
    {
        Some(number) => number.to_owned(),
        None => input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// A photo's sheets, or why there are none.
pub fn sheets(
    prints: &[Print],
    label: &str,
    settings: &PrintSettings,
) -> Result<Vec<Sheet>, String> {
    make_sheets(prints, label, settings).map_err(|e| e.to_string())
}

/// `stem-1.jpg`, `stem-2.jpg`, ... for the photo whose output name (or,
/// for `print`, the name it would get) is `name`.
fn sheet_name(name: &str, n: usize) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    format!("{stem}-{n}.jpg")
}

/// Writes a photo's sheets; an existing file with exactly these bytes is
/// accepted as is, as for the photos.
pub fn write_sheets(
    dir: &Path,
    name: &str,
    sheets: &[Sheet],
    overwrite: bool,
) -> Result<Vec<SheetFile>, WriteError> {
    sheets
        .iter()
        .enumerate()
        .map(|(i, sheet)| {
            let file = sheet_name(name, i + 1);
            validate_file_name(&file).map_err(|e| WriteError::Io {
                path: dir.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
            })?;
            let path = dir.join(&file);
            match write_file_atomically(&path, &sheet.jpeg, overwrite) {
                Err(WriteError::Exists(p))
                    if std::fs::read(&p).is_ok_and(|existing| existing == sheet.jpeg) => {}
                other => other?,
            }
            Ok(SheetFile {
                file,
                bytes: sheet.jpeg.len() as u64,
                sha256: sha256_hex(&sheet.jpeg),
            })
        })
        .collect()
}

/// Whether the sheets an earlier run recorded are all still there,
/// unchanged (a photo resumes only then).
pub fn sheets_intact(out: &Path, options: &Options, record: &PhotoRecord) -> bool {
    let Some(settings) = &options.print else {
        return true;
    };
    let dir = sheets_dir(out, settings);
    record.prints.as_ref().is_some_and(|p| {
        !p.sheets.is_empty()
            && p.sheets.iter().all(|s| {
                let path = dir.join(&s.file);
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
                    && std::fs::read(&path).is_ok_and(|b| sha256_hex(&b) == s.sha256)
            })
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BatchPdfError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

/// Every sheet of the batch's records, in input order, as `dir/prints.pdf`.
/// Returns its path and page count; no PDF when there is no sheet.
pub fn write_batch_pdf(
    dir: &Path,
    records: &Records,
) -> Result<Option<(PathBuf, usize)>, BatchPdfError> {
    let mut pages = Vec::new();
    for record in records.iter() {
        if let Some(prints) = record?.prints {
            pages.extend(prints.sheets.iter().map(|s| dir.join(&s.file)));
        }
    }
    if pages.is_empty() {
        return Ok(None);
    }
    let path = dir.join(PDF_NAME);
    write_pdf(&path, &pages)?;
    Ok(Some((path, pages.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheets_are_named_after_the_photo_and_labelled_by_student_number() {
        assert_eq!(sheet_name("2026001.jpg", 2), "2026001-2.jpg");
        assert_eq!(sheet_name("noext", 1), "noext-1.jpg");
        let roster = RosterFields {
            student_no: "2026001".into(),
            ..RosterFields::default()
        };
        assert_eq!(label(Path::new("a/张三.jpg"), Some(&roster)), "2026001");
        assert_eq!(label(Path::new("a/张三.jpg"), None), "张三");
    }
}
