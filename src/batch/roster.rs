//! The list of graduates (SPEC §4): reading the school's roster, checking
//! its ID-card numbers, matching photos to rows and naming the outputs.
//!
//! Rosters come out of spreadsheets. Saved on Chinese Windows they are GBK,
//! elsewhere UTF-8 (with or without a BOM), from Excel's "Unicode text"
//! UTF-16 with tabs; all are read. Columns are found by header name, in
//! Chinese or English, or named explicitly.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::batch::manifest::{
    DuplicateIdCard, InvalidId, MultiplePhotos, RosterFields, RosterRef, RosterSummary,
    UnmatchedPhoto,
};
use crate::batch::output::validate_file_name;
use crate::batch::path_text::path_text;

/// A column the roster can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// The photo's file name, when photos are not named by student number.
    File,
    StudentNo,
    IdCard,
    Name,
    /// The registry's image collection code (采集码).
    CollectionCode,
}

impl Field {
    const ALL: [Field; 5] = [
        Field::File,
        Field::StudentNo,
        Field::IdCard,
        Field::Name,
        Field::CollectionCode,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Field::File => "file",
            Field::StudentNo => "student_no",
            Field::IdCard => "id_card",
            Field::Name => "name",
            Field::CollectionCode => "collection_code",
        }
    }

    /// Header names recognised without `--roster-columns`, compared after
    /// [`header_key`] folding.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::File => &[
                "file",
                "filename",
                "photo",
                "photofile",
                "input",
                "文件名",
                "照片",
                "照片文件",
                "照片文件名",
                "照片名",
                "文件",
            ],
            Field::StudentNo => &[
                "studentno",
                "studentnumber",
                "studentid",
                "学号",
                "学生学号",
                "考生号",
            ],
            Field::IdCard => &[
                "idcard",
                "idcardno",
                "idno",
                "idnumber",
                "身份证号",
                "身份证号码",
                "身份证",
                "证件号码",
                "证件号",
            ],
            Field::Name => &["name", "fullname", "姓名", "学生姓名"],
            Field::CollectionCode => &[
                "collectioncode",
                "采集码",
                "图像采集码",
                "学信网采集码",
                "采集号",
            ],
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// Case, spaces, underscores and hyphens do not matter in header names.
fn header_key(header: &str) -> String {
    header
        .trim()
        .trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\u{3000}'))
        .flat_map(char::to_lowercase)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("cannot read roster {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("roster {0} is neither UTF-8 nor GBK/GB18030 text")]
    Encoding(PathBuf),
    #[error("roster {path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("roster {path} is empty: it needs a header row and at least one graduate")]
    Empty { path: PathBuf },
    #[error(
        "roster {path} has no {field} column (headers: {headers}); name it with --roster-columns {field}=HEADER"
    )]
    MissingColumn {
        path: PathBuf,
        field: &'static str,
        headers: String,
    },
    #[error("roster {path} has no column {header:?} for {field} (headers: {headers})")]
    NamedColumnMissing {
        path: PathBuf,
        header: String,
        field: &'static str,
        headers: String,
    },
    #[error(
        "--roster-columns: {0} (expected e.g. student_no=学号,id_card=身份证号,name=姓名,file=文件名,collection_code=采集码)"
    )]
    BadColumns(String),
}

/// `--roster-columns`: explicit header names per field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnNames(BTreeMap<Field, String>);

impl ColumnNames {
    /// Parses `field=Header,field=Header`.
    pub fn parse(spec: &str) -> Result<Self, RosterError> {
        let mut map = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, header)) = part.split_once('=') else {
                return Err(RosterError::BadColumns(format!("{part:?} has no '='")));
            };
            let field = Field::from_key(key.trim()).ok_or_else(|| {
                RosterError::BadColumns(format!("unknown field {:?}", key.trim()))
            })?;
            if header.trim().is_empty() {
                return Err(RosterError::BadColumns(format!("{part:?} names no header")));
            }
            map.insert(field, header.trim().to_owned());
        }
        Ok(ColumnNames(map))
    }
}

/// One graduate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RosterEntry {
    /// Line in the file (the header is line 1).
    pub line: usize,
    pub file: String,
    pub student_no: String,
    pub id_card: String,
    pub name: String,
    pub collection_code: String,
}

impl RosterEntry {
    fn reference(&self) -> RosterRef {
        RosterRef {
            line: self.line,
            student_no: self.student_no.clone(),
            name: self.name.clone(),
        }
    }

    fn describe(&self) -> String {
        if self.name.is_empty() {
            format!("student {} (line {})", self.student_no, self.line)
        } else {
            format!(
                "student {} {} (line {})",
                self.student_no, self.name, self.line
            )
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    pub path: String,
    pub encoding: &'static str,
    /// Which fields the file has a column for.
    pub has: Vec<Field>,
    pub entries: Vec<RosterEntry>,
}

/// Bytes to text: UTF-8 (BOM optional) first, since GB18030 would also
/// accept many UTF-8 files as garbage; then UTF-16 by its BOM; then
/// GB18030, a superset of GBK.
fn decode_text(bytes: &[u8]) -> Option<(String, &'static str)> {
    let bytes_no_bom = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes_no_bom) {
        return Some((s.to_owned(), "utf-8"));
    }
    if let Some((encoding, _)) = encoding_rs::Encoding::for_bom(bytes)
        && encoding != encoding_rs::UTF_8
    {
        let (text, had_errors) = encoding.decode_with_bom_removal(bytes);
        return (!had_errors).then(|| (text.into_owned(), "utf-16"));
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|t| (t.into_owned(), "gb18030"))
}

impl Roster {
    pub fn read(path: &Path, columns: &ColumnNames) -> Result<Roster, RosterError> {
        let bytes = std::fs::read(path).map_err(|source| RosterError::Io {
            path: path.to_owned(),
            source,
        })?;
        Roster::parse(&bytes, path, columns)
    }

    /// Reads roster bytes; `path` only names the file in messages.
    pub fn parse(bytes: &[u8], path: &Path, columns: &ColumnNames) -> Result<Roster, RosterError> {
        let (text, encoding) =
            decode_text(bytes).ok_or_else(|| RosterError::Encoding(path.to_owned()))?;
        let first_line = text.lines().next().unwrap_or_default();
        // Excel's "Unicode text" export separates with tabs.
        let delimiter = if first_line.contains('\t') && !first_line.contains(',') {
            b'\t'
        } else {
            b','
        };
        let csv_error = |e: csv::Error| RosterError::Csv {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(csv_error)?
            .iter()
            .map(str::to_owned)
            .collect();
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(RosterError::Empty {
                path: path.to_owned(),
            });
        }
        let mut index: BTreeMap<Field, usize> = BTreeMap::new();
        for field in Field::ALL {
            let found = match columns.0.get(&field) {
                Some(name) => {
                    let wanted = header_key(name);
                    let at = headers.iter().position(|h| header_key(h) == wanted);
                    if at.is_none() {
                        return Err(RosterError::NamedColumnMissing {
                            path: path.to_owned(),
                            header: name.clone(),
                            field: field.key(),
                            headers: headers.join(", "),
                        });
                    }
                    at
                }
                None => headers
                    .iter()
                    .position(|h| field.aliases().contains(&header_key(h).as_str())),
            };
            if let Some(at) = found {
                index.insert(field, at);
            }
        }
        if !index.contains_key(&Field::StudentNo) {
            return Err(RosterError::MissingColumn {
                path: path.to_owned(),
                field: Field::StudentNo.key(),
                headers: headers.join(", "),
            });
        }
        let mut entries = Vec::new();
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(csv_error)?;
            let line = row.position().map_or(i + 2, |p| p.line() as usize);
            let get = |field: Field| {
                index
                    .get(&field)
                    .and_then(|&at| row.get(at))
                    .map(clean_cell)
                    .unwrap_or_default()
            };
            let entry = RosterEntry {
                line,
                file: get(Field::File),
                student_no: get(Field::StudentNo),
                id_card: get(Field::IdCard),
                name: get(Field::Name),
                collection_code: get(Field::CollectionCode),
            };
            // Spreadsheets end with rows that only look empty.
            let blank = entry.file.is_empty()
                && entry.student_no.is_empty()
                && entry.id_card.is_empty()
                && entry.name.is_empty();
            if !blank {
                entries.push(entry);
            }
        }
        if entries.is_empty() {
            return Err(RosterError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Roster {
            path: path.display().to_string(),
            encoding,
            has: index.keys().copied().collect(),
            entries,
        })
    }
}

/// Trims a cell, including the full-width space and the apostrophe Excel
/// users type to keep long numbers as text.
fn clean_cell(cell: &str) -> String {
    let t = cell.trim_matches(|c: char| c.is_whitespace() || c == '\u{3000}');
    t.strip_prefix('\'').unwrap_or(t).trim().to_owned()
}

/// Why an ID-card number is not valid (GB 11643-1999).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdCardError {
    #[error("no ID-card number")]
    Empty,
    #[error(
        "{0} looks like a number a spreadsheet rounded to scientific notation; format the column as text and export again"
    )]
    Rounded(String),
    #[error("has {0} characters; an ID-card number has 18")]
    Length(usize),
    #[error("must be 17 digits followed by a digit or X")]
    NotDigits,
    #[error("date of birth {0} is not a real date")]
    BadDate(String),
    #[error("check digit is {found}, the number's digits give {expected}")]
    CheckDigit { found: char, expected: char },
}

/// Checks an 18-digit mainland ID-card number: length, digits, date of
/// birth, and the ISO 7064 MOD 11-2 check digit (`X` stands for 10).
pub fn validate_id_card(id: &str) -> Result<(), IdCardError> {
    if id.is_empty() {
        return Err(IdCardError::Empty);
    }
    if id.contains(['E', 'e']) && id.contains('+') {
        return Err(IdCardError::Rounded(id.to_owned()));
    }
    let chars: Vec<char> = id.chars().collect();
    if chars.len() != 18 {
        return Err(IdCardError::Length(chars.len()));
    }
    let digits: Vec<u32> = chars[..17].iter().filter_map(|c| c.to_digit(10)).collect();
    let last = chars[17].to_ascii_uppercase();
    if digits.len() != 17 || !(last.is_ascii_digit() || last == 'X') {
        return Err(IdCardError::NotDigits);
    }
    let number = |range: std::ops::Range<usize>| digits[range].iter().fold(0, |n, d| n * 10 + d);
    let (year, month, day) = (number(6..10), number(10..12), number(12..14));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if !(1800..=2099).contains(&year) || day == 0 || day > month_days {
        return Err(IdCardError::BadDate(format!(
            "{year:04}-{month:02}-{day:02}"
        )));
    }
    // Weight of position i is 2^(17-i) mod 11.
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    let expected = b"10X98765432"[(sum % 11) as usize] as char;
    if last != expected {
        return Err(IdCardError::CheckDigit {
            found: chars[17],
            expected,
        });
    }
    Ok(())
}

/// A value substituted into a name must not be able to leave the output
/// folder or hide the file, whatever the template around it.
fn safe_value(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("no {what} to name the output by"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{what} {value:?} contains control characters; refused"
        ));
    }
    let escapes =
        value.contains(['/', '\\', ':']) || value.contains("..") || value.starts_with('.');
    if escapes {
        return Err(format!(
            "{what} {value:?} could leave the output folder; refused"
        ));
    }
    Ok(())
}

/// A placeholder in `--name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    /// The student number with a roster, else the input file's stem.
    Id,
    Stem,
    Field(Field),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// `--name`: how outputs are named, e.g. `{id_card}.jpg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    source: String,
    parts: Vec<Part>,
}

impl Default for NameTemplate {
    fn default() -> Self {
        NameTemplate {
            source: "{id}.jpg".to_owned(),
            parts: vec![Part::Value(Placeholder::Id), Part::Text(".jpg".to_owned())],
        }
    }
}

impl fmt::Display for NameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "--name {0:?}: unknown placeholder {{{1}}} (use {{id}}, {{stem}}, {{student_no}}, {{id_card}}, {{name}}, {{collection_code}})"
    )]
    Unknown(String, String),
    #[error("--name {0:?}: a '{{' is not closed")]
    Unclosed(String),
    #[error("--name {0:?} must end in .jpg or .jpeg")]
    Extension(String),
    #[error("--name {0:?} has no placeholder, so every photo would get the same name")]
    Constant(String),
    #[error("--name {0:?} uses {{{1}}}, which needs --roster with that column")]
    NeedsRoster(String, &'static str),
}

impl NameTemplate {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(TemplateError::Unclosed(source.to_owned()));
            };
            let key = &rest[open + 1..open + close];
            let placeholder = match key {
                "id" => Placeholder::Id,
                "stem" => Placeholder::Stem,
                other => Field::from_key(other)
                    .filter(|f| *f != Field::File)
                    .map(Placeholder::Field)
                    .ok_or_else(|| TemplateError::Unknown(source.to_owned(), other.to_owned()))?,
            };
            parts.push(Part::Value(placeholder));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let lower = source.to_ascii_lowercase();
        if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg")) {
            return Err(TemplateError::Extension(source.to_owned()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Value(_))) {
            return Err(TemplateError::Constant(source.to_owned()));
        }
        Ok(NameTemplate {
            source: source.to_owned(),
            parts,
        })
    }

    /// Refuses, before any photo is read, a template that asks for a column
    /// the roster (or its absence) cannot supply.
    pub fn check_against(&self, roster: Option<&Roster>) -> Result<(), TemplateError> {
        for part in &self.parts {
            if let Part::Value(Placeholder::Field(field)) = part
                && !roster.is_some_and(|r| r.has.contains(field))
            {
                return Err(TemplateError::NeedsRoster(self.source.clone(), field.key()));
            }
        }
        Ok(())
    }

    fn uses(&self, field: Field) -> bool {
        self.parts.contains(&Part::Value(Placeholder::Field(field)))
    }

    /// The name for one photo: `stem` is the input's file stem, `entry` its
    /// roster row.
    fn render(&self, stem: &str, entry: Option<&RosterEntry>) -> Result<String, String> {
        let mut name = String::new();
        for part in &self.parts {
            let (what, value) = match (part, entry) {
                (Part::Text(t), _) => {
                    name.push_str(t);
                    continue;
                }
                (Part::Value(Placeholder::Stem), _) | (Part::Value(Placeholder::Id), None) => {
                    ("file name", stem)
                }
                (Part::Value(Placeholder::Id), Some(e)) => {
                    ("student number", e.student_no.as_str())
                }
                (Part::Value(Placeholder::Field(f)), Some(e)) => match f {
                    Field::StudentNo => ("student number", e.student_no.as_str()),
                    Field::IdCard => {
                        validate_id_card(&e.id_card)
                            .map_err(|err| format!("ID-card number {:?}: {err}", e.id_card))?;
                        ("ID-card number", e.id_card.as_str())
                    }
                    Field::Name => ("name", e.name.as_str()),
                    Field::CollectionCode => ("collection code", e.collection_code.as_str()),
                    Field::File => ("file name", e.file.as_str()),
                },
                (Part::Value(Placeholder::Field(f)), None) => {
                    return Err(format!("--name needs {{{}}} from a roster", f.key()));
                }
            };
            safe_value(what, value)?;
            name.push_str(value);
        }
        validate_file_name(&name).map_err(|e| e.to_string())?;
        Ok(name)
    }
}

/// Output names for a batch, with the roster's view of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Assignment {
    /// Per photo, in the order given: its output name, or why it gets none.
    pub names: Vec<Result<String, String>>,
    /// Per photo: the roster row it matched, if exactly one.
    pub fields: Vec<Option<RosterFields>>,
    pub summary: Option<RosterSummary>,
}

fn stem_of(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().trim().to_owned())
        .unwrap_or_default()
}

/// A photo's file stem, for its output name and to match it to the
/// roster; refused when it is not UTF-8: any name made from it would differ
/// from the file's (a lossy `latin1_\u{FFFD}`), and could clash.
fn photo_stem(path: &Path) -> Result<String, String> {
    let stem = path.file_stem().unwrap_or_default();
    match stem.to_str() {
        Some(s) => Ok(s.trim().to_owned()),
        None => Err(format!(
            "the file name {} is not valid UTF-8 (its bytes are kept as \\xHH in the manifest), so no output name can be made from it without changing it: rename the file in UTF-8 (for instance with convmv -f GBK -t UTF-8, or the encoding it was written in)",
            path_text(Path::new(path.file_name().unwrap_or_default()))
        )),
    }
}

/// File names compare without case: Windows and macOS do.
fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Matches photos to roster rows and names every photo. A photo matches a
/// row when its file stem equals the row's file name (stem) or its student
/// number. Nothing silently wins: a graduate with two photos, a photo that
/// fits two rows, and two photos that would get one name all fail, and are
/// listed.
pub fn assign_names(
    photos: &[PathBuf],
    roster: Option<&Roster>,
    template: &NameTemplate,
) -> Assignment {
    let stems: Vec<Result<String, String>> = photos.iter().map(|p| photo_stem(p)).collect();
    let (mut names, fields, summary) = match roster {
        None => (
            stems
                .iter()
                .map(|s| s.clone().and_then(|s| template.render(&s, None)))
                .collect(),
            vec![None; photos.len()],
            None,
        ),
        Some(roster) => match_roster(photos, &stems, roster, template),
    };
    refuse_shared_names(photos, &mut names);
    Assignment {
        names,
        fields,
        summary,
    }
}

type Matched = (
    Vec<Result<String, String>>,
    Vec<Option<RosterFields>>,
    Option<RosterSummary>,
);

fn match_roster(
    photos: &[PathBuf],
    stems: &[Result<String, String>],
    roster: &Roster,
    template: &NameTemplate,
) -> Matched {
    let entries = &roster.entries;
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let mut keys = vec![fold(&e.student_no)];
        if !e.file.is_empty() {
            keys.push(fold(&stem_of(Path::new(&e.file))));
        }
        keys.sort();
        keys.dedup();
        for k in keys.into_iter().filter(|k| !k.is_empty()) {
            by_key.entry(k).or_default().push(i);
        }
    }
    let mut summary = RosterSummary {
        file: roster.path.clone(),
        encoding: roster.encoding.to_owned(),
        rows: entries.len(),
        ..RosterSummary::default()
    };
    let mut row_of: Vec<Result<usize, String>> = Vec::with_capacity(photos.len());
    let mut photos_of: Vec<Vec<usize>> = vec![Vec::new(); entries.len()];
    for (p, stem) in stems.iter().enumerate() {
        let rows = match stem {
            Ok(stem) => by_key.get(&fold(stem)).map(Vec::as_slice).unwrap_or(&[]),
            Err(_) => &[],
        };
        let result = match (rows, stem) {
            (_, Err(why)) => Err(why.clone()),
            ([], Ok(stem)) => Err(format!(
                "matches nobody in the roster: no row has the file name or student number {stem:?}"
            )),
            ([row], _) => {
                photos_of[*row].push(p);
                Ok(*row)
            }
            (many, _) => Err(format!(
                "matches several roster rows: {}",
                many.iter()
                    .map(|&r| entries[r].describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if let Err(reason) = &result {
            summary.unmatched_photos.push(UnmatchedPhoto {
                photo: path_text(&photos[p]),
                reason: reason.clone(),
            });
        }
        row_of.push(result);
    }
    for (row, ps) in photos_of.iter().enumerate() {
        match ps.len() {
            0 => summary.no_photo.push(entries[row].reference()),
            1 => summary.matched += 1,
            _ => summary.multiple_photos.push(MultiplePhotos {
                graduate: entries[row].reference(),
                photos: ps.iter().map(|&p| path_text(&photos[p])).collect(),
            }),
        }
    }
    let id_problems: Vec<Option<String>> = entries
        .iter()
        .map(|e| {
            let checked = roster.has.contains(&Field::IdCard);
            checked
                .then(|| {
                    validate_id_card(&e.id_card)
                        .err()
                        .map(|err| err.to_string())
                })
                .flatten()
        })
        .collect();
    for (e, problem) in entries.iter().zip(&id_problems) {
        if let Some(reason) = problem {
            summary.invalid_ids.push(InvalidId {
                graduate: e.reference(),
                id_card: e.id_card.clone(),
                reason: reason.clone(),
            });
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for e in entries {
        *seen.entry(e.student_no.clone()).or_default() += 1;
    }
    summary.duplicate_student_nos = seen
        .into_iter()
        .filter(|(no, n)| *n > 1 && !no.is_empty())
        .map(|(no, _)| no)
        .collect();
    summary.duplicate_id_cards = duplicate_id_cards(entries);

    let mut names = Vec::with_capacity(photos.len());
    let mut fields = Vec::with_capacity(photos.len());
    for (p, row) in row_of.into_iter().enumerate() {
        let Ok(row) = row else {
            names.push(row.map(|_| String::new()));
            fields.push(None);
            continue;
        };
        let e = &entries[row];
        fields.push(Some(RosterFields {
            line: e.line,
            student_no: e.student_no.clone(),
            id_card: e.id_card.clone(),
            name: e.name.clone(),
            collection_code: e.collection_code.clone(),
            id_card_problem: id_problems[row].clone(),
        }));
        let others = &photos_of[row];
        if others.len() > 1 {
            let list: Vec<String> = others
                .iter()
                .filter(|&&o| o != p)
                .map(|&o| path_text(&photos[o]))
                .collect();
            names.push(Err(format!(
                "{} has {} photos (also {}); neither is used: keep one",
                e.describe(),
                others.len(),
                list.join(", ")
            )));
            continue;
        }
        if template.uses(Field::IdCard)
            && let Some(problem) = &id_problems[row]
        {
            names.push(Err(format!(
                "{}: ID-card number {:?} {problem}",
                e.describe(),
                e.id_card
            )));
            continue;
        }
        names.push(
            template
                .render(stems[p].as_deref().unwrap_or_default(), Some(e))
                .map_err(|why| format!("{}: {why}", e.describe())),
        );
    }
    (names, fields, Some(summary))
}

/// ID-card numbers on more than one row, each with its rows in file order.
/// Numbers compare as written, but for the check digit's case (`x` is `X`);
/// empty cells are not numbers.
fn duplicate_id_cards(entries: &[RosterEntry]) -> Vec<DuplicateIdCard> {
    let mut rows: BTreeMap<String, Vec<RosterRef>> = BTreeMap::new();
    for e in entries.iter().filter(|e| !e.id_card.is_empty()) {
        rows.entry(e.id_card.to_ascii_uppercase())
            .or_default()
            .push(e.reference());
    }
    rows.into_iter()
        .filter(|(_, graduates)| graduates.len() > 1)
        .map(|(id_card, graduates)| DuplicateIdCard { id_card, graduates })
        .collect()
}

/// A name two photos would share is refused for all of them.
fn refuse_shared_names(photos: &[PathBuf], names: &mut [Result<String, String>]) {
    let mut users: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Ok(n) = name {
            // Case-insensitive filesystems (Windows, macOS) would merge these.
            users.entry(fold(n)).or_default().push(i);
        }
    }
    for sharing in users.values().filter(|s| s.len() > 1) {
        for &i in sharing {
            let Ok(n) = &names[i] else { continue };
            let others: Vec<String> = sharing
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| path_text(&photos[j]))
                .collect();
            names[i] = Err(format!(
                "output name {n} is shared with {}: rename one of them",
                others.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published examples of valid numbers (GB 11643 and its commentaries).
    const VALID: [&str; 2] = ["11010519491231002X", "440524188001010014"];

    #[test]
    fn id_cards_are_validated() {
        for id in VALID {
            assert_eq!(validate_id_card(id), Ok(()), "{id}");
        }
        assert_eq!(validate_id_card("11010519491231002x"), Ok(()));
        assert_eq!(
            validate_id_card("110105194912310021"),
            Err(IdCardError::CheckDigit {
                found: '1',
                expected: 'X'
            })
        );
        assert_eq!(
            validate_id_card("11010519490230002X"),
            Err(IdCardError::BadDate("1949-02-30".into()))
        );
        assert!(matches!(
            validate_id_card("4.10101E+17"),
            Err(IdCardError::Rounded(_))
        ));
        assert_eq!(
            validate_id_card("1101051949123100"),
            Err(IdCardError::Length(16))
        );
        assert_eq!(
            validate_id_card("11010519491231/02X"),
            Err(IdCardError::NotDigits)
        );
        assert_eq!(validate_id_card(""), Err(IdCardError::Empty));
    }

    #[test]
    fn leap_days() {
        // 2000 is a leap year, 1900 is not; only the date is at issue here.
        assert!(!matches!(
            validate_id_card("110105200002290000"),
            Err(IdCardError::BadDate(_))
        ));
        assert!(matches!(
            validate_id_card("110105190002290000"),
            Err(IdCardError::BadDate(_))
        ));
    }

    fn parse(text: &[u8]) -> Result<Roster, RosterError> {
        Roster::parse(text, Path::new("r.csv"), &ColumnNames::default())
    }

    #[test]
    fn chinese_headers_in_gbk_are_read() {
        let text = "学号,姓名,身份证号,采集码\n2021001,张三,11010519491231002X,C001\n";
        let (gbk, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&gbk).is_err(), "really not UTF-8");
        let r = parse(&gbk).unwrap();
        assert_eq!(r.encoding, "gb18030");
        assert_eq!(r.entries[0].name, "张三");
        assert_eq!(r.entries[0].collection_code, "C001");
        assert_eq!(r.entries[0].line, 2);
        let utf8 = parse(format!("\u{feff}{text}").as_bytes()).unwrap();
        assert_eq!(utf8.encoding, "utf-8");
        assert_eq!(utf8.entries, r.entries);
    }

    #[test]
    fn english_headers_tabs_and_explicit_columns() {
        let r = parse(
            b"Student No\tFull Name\tID Card\n 2021002 \t'Li Si\t'440524188001010014\n\t\t\n",
        )
        .unwrap();
        assert_eq!(r.entries.len(), 1, "blank rows are dropped");
        assert_eq!(r.entries[0].student_no, "2021002");
        assert_eq!(r.entries[0].name, "Li Si");
        assert_eq!(r.entries[0].id_card, "440524188001010014");
        let cols = ColumnNames::parse("student_no=XH, file=照片").unwrap();
        let r = Roster::parse("XH,照片\n7,a.jpg\n".as_bytes(), Path::new("r"), &cols).unwrap();
        assert_eq!(r.entries[0].file, "a.jpg");
        assert!(matches!(
            parse(b"name\nx\n"),
            Err(RosterError::MissingColumn {
                field: "student_no",
                ..
            })
        ));
        assert!(ColumnNames::parse("sid=XH").is_err());
        assert!(ColumnNames::parse("student_no").is_err());
    }

    #[test]
    fn templates() {
        assert!(NameTemplate::parse("{id_card}.jpg").is_ok());
        assert!(matches!(
            NameTemplate::parse("{idcard}.jpg"),
            Err(TemplateError::Unknown(..))
        ));
        assert!(matches!(
            NameTemplate::parse("{id.jpg"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            NameTemplate::parse("{id}.png"),
            Err(TemplateError::Extension(_))
        ));
        assert!(matches!(
            NameTemplate::parse("photo.jpg"),
            Err(TemplateError::Constant(_))
        ));
        let t = NameTemplate::parse("{name}.jpg").unwrap();
        assert!(matches!(
            t.check_against(None),
            Err(TemplateError::NeedsRoster(_, "name"))
        ));
        assert_eq!(
            NameTemplate::default(),
            NameTemplate::parse("{id}.jpg").unwrap()
        );
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(|n| Path::new("in").join(n)).collect()
    }

    #[test]
    fn without_roster_names_come_from_files_and_clashes_fail() {
        let photos = paths(&["a.jpg", "A.png", "b.jpg"]);
        let a = assign_names(&photos, None, &NameTemplate::default());
        assert!(a.names[0].as_ref().is_err_and(|e| e.contains("shared")));
        assert!(a.names[1].is_err());
        assert_eq!(a.names[2], Ok("b.jpg".to_owned()));
        assert!(a.summary.is_none());
    }

    #[test]
    fn roster_matching_lists_every_mismatch() {
        let csv = "学号,姓名,身份证号,文件名\n\
                   1,甲,11010519491231002X,\n\
                   2,乙,440524188001010014,IMG_7.jpg\n\
                   3,丙,110105194912310021,\n\
                   4,丁,11010519491231002X,\n\
                   5,戊,../../etc/passwd,\n\
                   6,己,440524188001010014,\n";
        let roster = parse(csv.as_bytes()).unwrap();
        let t = NameTemplate::parse("{id_card}.jpg").unwrap();
        t.check_against(Some(&roster)).unwrap();
        let photos = paths(&[
            "1.jpg",
            "2.jpg",
            "IMG_7.png",
            "3.jpg",
            "5.jpg",
            "6.jpg",
            "99.jpg",
        ]);
        let a = assign_names(&photos, Some(&roster), &t);
        let s = a.summary.as_ref().unwrap();
        assert_eq!(a.names[0], Ok("11010519491231002X.jpg".to_owned()));
        // Two photos for student 2: neither wins.
        assert!(a.names[1].as_ref().is_err_and(|e| e.contains("2 photos")));
        assert!(a.names[2].is_err());
        assert_eq!(s.multiple_photos.len(), 1);
        assert_eq!(s.multiple_photos[0].graduate.student_no, "2");
        // Invalid check digit, and an id that tries to leave the folder.
        assert!(
            a.names[3]
                .as_ref()
                .is_err_and(|e| e.contains("check digit"))
        );
        assert!(a.names[4].as_ref().is_err_and(|e| e.contains("18")));
        let invalid: Vec<&str> = s
            .invalid_ids
            .iter()
            .map(|i| i.graduate.student_no.as_str())
            .collect();
        assert_eq!(invalid, ["3", "5"]);
        // Student 6 shares student 2's id card number, but 2 has no name
        // (two photos), so 6 keeps it.
        assert_eq!(a.names[5], Ok("440524188001010014.jpg".to_owned()));
        assert!(a.names[6].as_ref().is_err_and(|e| e.contains("nobody")));
        assert_eq!(s.unmatched_photos.len(), 1);
        let missing: Vec<&str> = s.no_photo.iter().map(|r| r.student_no.as_str()).collect();
        assert_eq!(missing, ["4"]);
        assert_eq!(s.matched, 4);
        assert_eq!(a.fields[0].as_ref().unwrap().name, "甲");
        assert!(a.fields[3].as_ref().unwrap().id_card_problem.is_some());
        assert!(a.fields[6].is_none());
        assert!(!s.is_clean());
        // Rows 1 and 4 share an ID card, and so do 2 and 6.
        let shared: Vec<(&str, Vec<&str>)> = s
            .duplicate_id_cards
            .iter()
            .map(|d| {
                let who = d.graduates.iter().map(|g| g.student_no.as_str());
                (d.id_card.as_str(), who.collect())
            })
            .collect();
        assert_eq!(
            shared,
            [
                ("11010519491231002X", vec!["1", "4"]),
                ("440524188001010014", vec!["2", "6"])
            ]
        );
    }

    #[test]
    fn values_that_escape_are_refused_for_every_field() {
        let roster =
            parse("学号,姓名,文件名\n../x,a,p1.jpg\n.hidden,b,p2.jpg\nok,c/d,p3.jpg\n".as_bytes())
                .unwrap();
        let photos = paths(&["p1.jpg", "p2.jpg", "p3.jpg"]);
        let by_no = assign_names(&photos, Some(&roster), &NameTemplate::default());
        assert!(by_no.names[0].as_ref().is_err_and(|e| e.contains("leave")));
        assert!(by_no.names[1].as_ref().is_err_and(|e| e.contains("leave")));
        assert_eq!(by_no.names[2], Ok("ok.jpg".to_owned()));
        let by_name = assign_names(
            &photos,
            Some(&roster),
            &NameTemplate::parse("{name}.jpg").unwrap(),
        );
        assert!(
            by_name.names[2]
                .as_ref()
                .is_err_and(|e| e.contains("leave"))
        );
    }

    #[test]
    fn shared_rendered_names_fail_both() {
        let roster = parse("学号,姓名\n1,张三\n2,张三\n".as_bytes()).unwrap();
        let photos = paths(&["1.jpg", "2.jpg"]);
        let a = assign_names(
            &photos,
            Some(&roster),
            &NameTemplate::parse("{name}.jpg").unwrap(),
        );
        assert!(
            a.names
                .iter()
                .all(|n| n.as_ref().is_err_and(|e| e.contains("shared")))
        );
    }
}
