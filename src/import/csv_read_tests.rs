//! Encodings, shapes, amounts and times as exports have them.
use super::*;

fn usd() -> Currency {
    Currency::from_code("USD").unwrap()
}

#[test]
fn amounts_as_spreadsheets_print_them() {
    let c = usd();
    for (raw, want) in [
        ("1,234.50", "1234.5"),
        ("$21.83", "21.83"),
        ("-$21.83", "-21.83"),
        ("(5.00)", "-5"),
        ("5.00-", "-5"),
        ("1.234,56", "1234.56"),
        ("12,5", "12.5"),
        ("1,000", "1000"),
        ("21.83 USD", "21.83"),
        ("0", "0"),
    ] {
        assert_eq!(parse_amount(raw, c).unwrap().to_string(), want, "{raw}");
    }
    for bad in ["abc", "1.2.3x", "1.234", ""] {
        assert!(parse_amount(bad, c).is_err(), "{bad}");
    }
    let jpy = Currency::from_code("JPY").unwrap();
    assert!(parse_amount("100.5", jpy).is_err());
    assert_eq!(parse_amount("1,500", jpy).unwrap().to_string(), "1500");
    let kwd = Currency::from_code("KWD").unwrap();
    assert_eq!(parse_amount("1.250", kwd).unwrap().to_string(), "1.25");
}

#[test]
fn times_in_every_export_shape() {
    let want = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    assert_eq!(
        parse_time("2026-07-01 07:33:09 +0200"),
        Some(want("2026-07-01T05:33:09Z"))
    );
    assert_eq!(
        parse_time("2026-09-01 14:03:22"),
        Some(want("2026-09-01T14:03:22Z"))
    );
    // A date alone (journals), on the fast path and refused where the
    // calendar has no such day.
    assert_eq!(parse_time("2026-09-01"), Some(want("2026-09-01T00:00:00Z")));
    assert_eq!(parse_time("2026-02-30"), None);
    assert_eq!(parse_time("2026-0x-01"), None);
    assert_eq!(
        parse_time("2026-09-01 14:03"),
        Some(want("2026-09-01T14:03:00Z"))
    );
    assert_eq!(
        parse_time("8/6/2026 12:00"),
        Some(want("2026-08-06T12:00:00Z"))
    );
    assert_eq!(parse_time("2026/6/12"), Some(want("2026-06-12T00:00:00Z")));
    assert_eq!(
        parse_time("2026-07-01T07:33:09-04:00"),
        Some(want("2026-07-01T11:33:09Z"))
    );
    assert_eq!(
        parse_time("2026-07-01 07:33:09 -0400"),
        Some(want("2026-07-01T11:33:09Z"))
    );
    assert_eq!(parse_time("2026-02-30 00:00:00"), None);
    assert_eq!(parse_time("2026-01-01 24:00:00 +0000"), None);
    assert_eq!(parse_time("yesterday"), None);
}

fn table(bytes: &[u8]) -> Result<Table, RowError> {
    let r = decode(Box::new(io::Cursor::new(bytes.to_vec()))).unwrap();
    Table::from_reader("t.csv".into(), r)
}

fn rows(t: &mut Table) -> Vec<Result<Vec<String>, String>> {
    let mut out = vec![];
    while let Some(r) = t.next_row() {
        out.push(
            r.map(|rec| rec.iter().map(String::from).collect())
                .map_err(|e| e.to_string()),
        );
    }
    out
}

#[test]
fn encodings_and_shapes() {
    let plain = "Id,Amount\r\na,\"1,000.00\"\r\nb,\"multi\nline\"\r\n";
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(plain.as_bytes());
    let mut utf16 = vec![0xFF, 0xFE];
    for u in plain.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    for bytes in [plain.as_bytes().to_vec(), bom, utf16] {
        let mut t = table(&bytes).unwrap();
        assert_eq!(t.headers.names, vec!["Id", "Amount"]);
        assert_eq!(t.headers.find("amount"), Some(1));
        let got = rows(&mut t);
        assert_eq!(
            got,
            vec![
                Ok(vec!["a".to_string(), "1,000.00".to_string()]),
                Ok(vec!["b".to_string(), "multi\nline".to_string()]),
            ]
        );
    }
}

#[test]
fn empty_cut_off_and_totals() {
    let e = table(b"").err().unwrap().to_string();
    assert!(e.contains("t.csv") && e.contains("empty"), "{e}");

    let mut t = table(b"Id,Amount,Currency\na,1,usd\nTotal,1,\nb,2").unwrap();
    let got = rows(&mut t);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].is_ok());
    let e = got[1].clone().unwrap_err();
    assert!(
        e.starts_with("t.csv:4:3: column 'Currency'") && e.contains("ends mid-row"),
        "{e}"
    );

    // A short row in the middle: reported, and the next row still read.
    let mut t = table(b"Id,Amount\na\nb,2\n").unwrap();
    let got = rows(&mut t);
    assert!(got[0].clone().unwrap_err().contains("1 of 2 columns"));
    assert!(got[1].is_ok());

    let mut t = table(b"Id,Amount\n\xff\xfe,1\nb,2\n").unwrap();
    let got = rows(&mut t);
    assert!(got[0].clone().unwrap_err().contains("not UTF-8"), "{got:?}");
    assert!(got[1].is_ok());
}
