//! Properties of the parsers over generated input: arbitrary bytes and
//! real-shaped rows mangled byte by byte never panic, and every problem
//! comes out as an error that says which file, and for a row, which line.

use proptest::prelude::*;

use super::generate::month;
use super::{FileReader, Item, Options};

const NAME: &str = "p.csv";

/// Reads `bytes` to the end; the number of records, and every error's
/// line after checking that it names the file.
fn read(bytes: Vec<u8>) -> Result<(usize, Vec<u64>), TestCaseError> {
    let reader = match FileReader::from_reader(
        NAME.into(),
        Box::new(std::io::Cursor::new(bytes)),
        &Options::default(),
    ) {
        Ok(r) => r,
        Err(e) => {
            prop_assert!(e.to_string().starts_with(NAME), "{e}");
            return Ok((0, vec![]));
        }
    };
    let (mut records, mut lines) = (0, vec![]);
    for item in reader {
        match item {
            Item::Record(_) => records += 1,
            Item::Error(e) => {
                prop_assert!(e.to_string().starts_with(NAME), "{e}");
                lines.push(e.line);
            }
        }
    }
    Ok((records, lines))
}

/// The first rows of each generated export: a header and real-shaped rows.
fn samples() -> Vec<String> {
    let dir = super::audit_tests::scratch("parse-props");
    let m = month(&dir, 120).expect("a month is written");
    let files = [&m.storefront, &m.processor, &m.ledger].map(|p| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        text.lines().take(8).collect::<Vec<_>>().join("\n") + "\n"
    });
    let _ = std::fs::remove_dir_all(&dir);
    files.to_vec()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        read(bytes)?;
    }

    #[test]
    fn mangled_rows_give_records_or_errors_on_their_lines(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let text = samples().swap_remove(which);
        let header_len = text.find('\n').unwrap_or(0) + 1;
        let rows = text.lines().count() as u64;
        let mut bytes = text.into_bytes();
        // Edits touch the rows only: the header keeps the format known.
        for (at, byte, op) in edits {
            let body = bytes.len() - header_len;
            if body == 0 {
                break;
            }
            let i = header_len + at.index(body);
            match op {
                0 => bytes[i] = byte,
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, byte),
            }
        }
        let (records, lines) = read(bytes)?;
        // An inserted newline or quote can add a line or merge several.
        for line in &lines {
            prop_assert!(*line <= rows + 6, "line {line} of {rows}");
        }
        prop_assert!(records + lines.len() > 0 || rows <= 1);
    }
}
