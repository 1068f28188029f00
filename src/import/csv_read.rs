//! Reading CSV files as people have them: UTF-8 with or without a byte
//! order mark, UTF-16 from Excel, CRLF, quoted fields, a trailing totals
//! row, a file cut off mid-row. Rows are read one at a time (constant
//! memory) and columns are found by name, never by position.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::RowError;
pub use super::amount::parse_amount;
use crate::domain::currency::Currency;
use crate::domain::money::Money;

/// Opens `path` and undoes its encoding: the reader yields UTF-8 bytes
/// whatever the file was written in.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    decode(Box::new(File::open(path)?))
}

/// Looks at the first bytes for a byte order mark and returns a reader of
/// UTF-8 without it. No mark: UTF-8 (the csv reader refuses invalid bytes
/// per field, with their position).
pub fn decode(inner: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut r = BufReader::with_capacity(1 << 16, inner);
    let mut head = [0u8; 3];
    let n = read_up_to(&mut r, &mut head)?;
    let head = &head[..n];
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(Box::new(r));
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        let big_endian = head[0] == 0xFE;
        let rest = io::Cursor::new(head[2..].to_vec()).chain(r);
        return Ok(Box::new(Utf16Reader::new(rest, big_endian)));
    }
    Ok(Box::new(io::Cursor::new(head.to_vec()).chain(r)))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// UTF-16 to UTF-8, streaming: what Excel's "Unicode text" and some
/// Windows exports write.
struct Utf16Reader<R> {
    inner: R,
    big_endian: bool,
    out: Vec<u8>,
    pos: usize,
    pending: Option<u8>,
}

impl<R: Read> Utf16Reader<R> {
    fn new(inner: R, big_endian: bool) -> Self {
        Utf16Reader {
            inner,
            big_endian,
            out: vec![],
            pos: 0,
            pending: None,
        }
    }

    fn fill(&mut self) -> io::Result<bool> {
        let mut raw = vec![0u8; 1 << 15];
        let mut start = 0;
        if let Some(b) = self.pending.take() {
            raw[0] = b;
            start = 1;
        }
        let n = self.inner.read(&mut raw[start..])?;
        if n == 0 {
            // A dangling half unit is a cut-off file: its replacement
            // character makes the row fail where it is, not silently.
            if start == 1 {
                self.out = "\u{FFFD}".as_bytes().to_vec();
                self.pos = 0;
                return Ok(true);
            }
            return Ok(false);
        }
        let len = start + n;
        let even = len - len % 2;
        if len % 2 == 1 {
            self.pending = Some(raw[len - 1]);
        }
        let units = raw[..even].chunks_exact(2).map(|c| {
            if self.big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        let mut s = String::with_capacity(even);
        // A surrogate pair split across reads decodes as two replacement
        // characters; 32 KiB reads make that a rarity inside a text field.
        for c in char::decode_utf16(units) {
            s.push(c.unwrap_or('\u{FFFD}'));
        }
        self.out = s.into_bytes();
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.out.len() {
            if !self.fill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// FNV-1a: column names are short and looked up a dozen times a row, where
/// the default hasher's DoS resistance buys nothing and costs a third of
/// the lookup.
#[derive(Default)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Column names as found, and where each is: lookups ignore case, spaces
/// around the name and a BOM a tool left on the first one.
#[derive(Debug, Clone)]
pub struct Headers {
    pub names: Vec<String>,
    index: FnvMap<String, usize>,
    /// Each list of names a parser asked for, by the list's address, and
    /// which of them the file has: parsers ask for the same few dozen
    /// lists on every row, and comparing addresses costs a fraction of
    /// hashing each name again. Only `'static` lists are kept, so one
    /// address is always one list.
    resolved: RefCell<Vec<((usize, usize), Present)>>,
}

/// Where the columns of one list of names are, in the list's order.
#[derive(Debug, Clone, Copy)]
struct Present {
    at: [u32; Present::MAX],
    len: u8,
}

impl Present {
    /// No list of names is longer (the longest, Stripe's order metadata
    /// columns, has six).
    const MAX: usize = 8;

    fn iter(self) -> impl Iterator<Item = usize> {
        (0..usize::from(self.len)).map(move |k| self.at[k] as usize)
    }
}

pub fn normalise(name: &str) -> String {
    name.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
        .to_ascii_lowercase()
}

impl Headers {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Headers {
        let names: Vec<String> = names.into_iter().map(|n| n.trim().to_string()).collect();
        let mut index = FnvMap::default();
        for (i, n) in names.iter().enumerate() {
            // The first of two same-named columns wins, as in a spreadsheet lookup.
            index.entry(normalise(n)).or_insert(i);
        }
        Headers {
            names,
            index,
            resolved: RefCell::default(),
        }
    }

    /// Which of `names` the file has, where, in the list's order.
    fn present(&self, names: &'static [&'static str]) -> Present {
        let key = (names.as_ptr() as usize, names.len());
        if let Some((_, p)) = self.resolved.borrow().iter().find(|(k, _)| *k == key) {
            return *p;
        }
        debug_assert!(names.len() <= Present::MAX, "{names:?}");
        let mut p = Present {
            at: [0; Present::MAX],
            len: 0,
        };
        for i in names.iter().filter_map(|n| self.find(n)).take(Present::MAX) {
            p.at[usize::from(p.len)] = i as u32;
            p.len += 1;
        }
        self.resolved.borrow_mut().push((key, p));
        p
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        // Callers name columns in lowercase already: look up without
        // allocating, which matters at a million rows.
        if let Some(i) = self.index.get(name) {
            return Some(*i);
        }
        // Only a name normalising to something else can be found under
        // its normal form: a miss on "lineitem discount" allocates nothing.
        let normal = name.bytes().all(|b| !b.is_ascii_uppercase()) && name.trim() == name;
        if normal {
            return None;
        }
        self.index.get(&normalise(name)).copied()
    }

    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    pub fn has_all(&self, names: &[&str]) -> bool {
        names.iter().all(|n| self.has(n))
    }
}

/// A CSV file read row by row.
pub struct Table {
    pub file: String,
    pub headers: Headers,
    reader: csv::Reader<Box<dyn Read + Send>>,
    /// One row of look-ahead: a short row is "cut off" only if it is last.
    next: Option<Result<csv::StringRecord, csv::Error>>,
    /// A row given back once read (`recycle`): its buffers take the next
    /// row, one allocation fewer per row.
    spare: Option<csv::StringRecord>,
}

/// One row: its fields by column name, and errors that say where.
pub struct Row<'a> {
    pub file: &'a str,
    pub line: u64,
    pub headers: &'a Headers,
    pub fields: &'a csv::StringRecord,
}

impl Table {
    pub fn open(path: &Path) -> Result<Table, RowError> {
        let file = path.display().to_string();
        let reader = open(path).map_err(|e| RowError::file(&file, format!("cannot open: {e}")))?;
        Table::from_reader(file, reader)
    }

    /// Reads the header row. An empty file has no columns and is refused.
    pub fn from_reader(file: String, reader: Box<dyn Read + Send>) -> Result<Table, RowError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(reader);
        let headers = match reader.headers() {
            Ok(h) if h.iter().any(|f| !f.trim().is_empty()) => Headers::new(h.iter()),
            Ok(_) => return Err(RowError::file(&file, "the file is empty: no header row")),
            Err(e) => return Err(csv_error(&file, &e)),
        };
        let mut t = Table {
            file,
            headers,
            reader,
            next: None,
            spare: None,
        };
        t.next = t.read_one();
        Ok(t)
    }

    fn read_one(&mut self) -> Option<Result<csv::StringRecord, csv::Error>> {
        let mut rec = self.spare.take().unwrap_or_default();
        match self.reader.read_record(&mut rec) {
            Ok(true) => Some(Ok(rec)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Bytes read so far, for progress.
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next row, or why it cannot be read; None at the end. Blank rows
    /// and a totals row are skipped. After an error the rows after it are
    /// still read.
    pub fn next_row(&mut self) -> Option<Result<csv::StringRecord, RowError>> {
        loop {
            let current = self.next.take()?;
            self.next = self.read_one();
            let rec = match current {
                Ok(r) => r,
                Err(e) => return Some(Err(csv_error(&self.file, &e))),
            };
            if rec.iter().all(|f| f.trim().is_empty()) || is_totals(&rec) {
                continue;
            }
            let (have, want) = (rec.len(), self.headers.names.len());
            if have < want {
                let line = rec.position().map_or(0, |p| p.line());
                let name = self.headers.names.get(have).cloned().unwrap_or_default();
                let why = if self.next.is_none() {
                    format!(
                        "the file ends mid-row: {have} of {want} columns (cut off while being written or copied?)"
                    )
                } else {
                    format!("the row has {have} of {want} columns")
                };
                return Some(Err(RowError::at(&self.file, line, have + 1, &name, why)));
            }
            return Some(Ok(rec));
        }
    }

    /// Hands a row back for its buffers to be reused.
    pub fn recycle(&mut self, rec: csv::StringRecord) {
        self.spare = Some(rec);
    }

    pub fn row<'a>(&'a self, rec: &'a csv::StringRecord) -> Row<'a> {
        Row {
            file: &self.file,
            line: rec.position().map_or(0, |p| p.line()),
            headers: &self.headers,
            fields: rec,
        }
    }
}

/// A spreadsheet's summary line: "Total", "Totals", "Grand total" in the
/// first non-empty cell.
fn is_totals(rec: &csv::StringRecord) -> bool {
    rec.iter()
        .find(|f| !f.trim().is_empty())
        .map(|f| {
            let f = f.trim();
            ["total", "totals", "grand total", "total:"]
                .iter()
                .any(|t| f.eq_ignore_ascii_case(t))
        })
        .unwrap_or(false)
}

fn csv_error(file: &str, e: &csv::Error) -> RowError {
    let (line, field) = match e.kind() {
        csv::ErrorKind::Utf8 { pos, err } => {
            (pos.as_ref().map_or(0, |p| p.line()), err.field() + 1)
        }
        _ => (e.position().map_or(0, |p| p.line()), 0),
    };
    let why = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => {
            "not UTF-8 text (save the file as UTF-8 or UTF-16 with a byte order mark)".to_string()
        }
        _ => e.to_string(),
    };
    RowError::at(file, line, field, "", why)
}

impl<'a> Row<'a> {
    pub fn err(&self, column: &str, why: impl Into<String>) -> RowError {
        let idx = self.headers.find(column);
        let name = idx
            .and_then(|i| self.headers.names.get(i))
            .map_or(column, String::as_str);
        RowError::at(self.file, self.line, idx.map_or(0, |i| i + 1), name, why)
    }

    /// The trimmed value of the first of `names` present and non-empty.
    pub fn get(&self, names: &'static [&'static str]) -> Option<&'a str> {
        let fields = self.fields;
        self.headers
            .present(names)
            .iter()
            .find_map(|i| fields.get(i).map(str::trim).filter(|v| !v.is_empty()))
    }

    /// As `get`, required: an error names the first of `names`.
    pub fn req(&self, names: &'static [&'static str]) -> Result<&'a str, RowError> {
        self.get(names)
            .ok_or_else(|| self.err(names[0], "a value is required here"))
    }

    /// The column `name` of the first of `names` present, for errors.
    pub fn which(&self, names: &[&'static str]) -> &'static str {
        names
            .iter()
            .copied()
            .find(|n| self.headers.has(n))
            .unwrap_or(names[0])
    }

    pub fn currency(&self, names: &'static [&'static str]) -> Result<Currency, RowError> {
        let v = self.req(names)?;
        Currency::parse_lenient(v).ok_or_else(|| {
            self.err(
                self.which(names),
                format!("'{v}' is not an ISO 4217 currency"),
            )
        })
    }

    /// An amount in major units ("1,234.50", "$21.83", "(5.00)").
    pub fn amount(
        &self,
        names: &'static [&'static str],
        c: Currency,
    ) -> Result<Option<Money>, RowError> {
        let Some(v) = self.get(names) else {
            return Ok(None);
        };
        parse_amount(v, c)
            .map(|d| Some(Money::new(d, c)))
            .map_err(|why| self.err(self.which(names), why))
    }

    pub fn amount_req(
        &self,
        names: &'static [&'static str],
        c: Currency,
    ) -> Result<Money, RowError> {
        self.amount(names, c)?
            .ok_or_else(|| self.err(names[0], "an amount is required here"))
    }

    pub fn time(&self, names: &'static [&'static str]) -> Result<Option<DateTime<Utc>>, RowError> {
        let Some(v) = self.get(names) else {
            return Ok(None);
        };
        parse_time(v).map(Some).ok_or_else(|| {
            self.err(
                self.which(names),
                format!("'{v}' is not a date or time this reader knows (2026-09-01 14:03:22, 2026-07-01 07:33:09 +0200, 8/6/2026 12:00, 2026/6/12)"),
            )
        })
    }

    pub fn time_req(&self, names: &'static [&'static str]) -> Result<DateTime<Utc>, RowError> {
        self.time(names)?
            .ok_or_else(|| self.err(names[0], "a date is required here"))
    }
}

/// The date and time formats exports use; a time without an offset is
/// UTC (Stripe's `_utc` columns; the caller prefers those).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(t) = fast_time(s.as_bytes()) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S %z",
        "%Y-%m-%d %H:%M %z",
        "%Y/%m/%d %H:%M:%S %z",
    ] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    // Shopify's "2026-07-01 07:33:09 -0400 EDT"-style tail: drop the name.
    if let Some((head, tail)) = s.rsplit_once(' ')
        && tail.chars().all(|c| c.is_ascii_alphabetic())
        && tail.len() <= 5
        && let Some(t) = parse_time(head)
    {
        return Some(t);
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for f in ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        }
    }
    None
}

/// "YYYY-MM-DD HH:MM:SS" with an optional " +HHMM", or "YYYY-MM-DD", the
/// shapes of nearly every row, read without chrono's format machinery (a
/// tenth of the time).
fn fast_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut n = 0u32;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    };
    if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        // A date alone (a journal's): midnight UTC, as the formats below read it.
        let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        return Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?));
    }
    if !(b.len() == 19 || b.len() == 25) || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let t = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?;
    let mut utc = Utc.from_utc_datetime(&t);
    if b.len() == 25 {
        let sign = match (b[19], b[20]) {
            (b' ', b'+') => 1,
            (b' ', b'-') => -1,
            _ => return None,
        };
        let offset = i64::from(num(21..23)? * 3600 + num(23..25)? * 60);
        utc -= chrono::Duration::seconds(sign * offset);
    }
    Some(utc)
}

#[cfg(test)]
#[path = "csv_read_tests.rs"]
mod tests;
