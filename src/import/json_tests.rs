//! JSON read as a stream: what it yields is what the whole text holds, and
//! a list yields its first elements before the file ends.

use std::io::Read;

use super::*;

const CHARGE: &str = r##"{"object":"charge","id":"ch_1ZZZZ","amount":1250,"currency":"usd","created":1788000000,"metadata":{"order_id":"#4001"},"payment_intent":"pi_1ZZZZ"}"##;

/// Everything the reader yields, in a stable order to compare by.
fn streamed(text: &str) -> (Format, Vec<String>) {
    let r = FileReader::from_reader(
        "x.json".into(),
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        &Options::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let format = r.format;
    let mut items: Vec<String> = r.map(|i| format!("{i:?}")).collect();
    items.sort();
    (format, items)
}

/// What walking the whole text as one value finds (the reading before it
/// streamed).
fn whole(text: &str, format: Format) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut out = vec![];
    json::walk("x.json", format, "$", None, &v, &mut out);
    let mut items: Vec<String> = out.iter().map(|i| format!("{i:?}")).collect();
    items.sort();
    items
}

#[test]
fn streamed_json_yields_what_the_whole_text_holds() {
    let list = format!(
        r#"{{"object":"list","url":"/v1/charges","has_more":false,"data":[{CHARGE},{{"object":"charge","id":"ch_bad","amount":"ten","currency":"usd","created":1}}]}}"#
    );
    let orders = r##"{"orders":[{"id":1,"name":"#1001","total_price":"10.00","currency":"USD","line_items":[{"price":"10.00","quantity":1,"sku":"A"}],"created_at":"2026-09-01T10:00:00-04:00"}]}"##;
    let mut texts = vec![
        CHARGE.to_string(),
        list,
        format!("[{CHARGE}, {CHARGE}]"),
        orders.to_string(),
    ];
    // The documentation examples, as JSON files of every shape people have.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/fixtures"), root.join("../shared/fixtures")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let text = std::fs::read_to_string(&p).unwrap();
                if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                    texts.push(text);
                }
            }
        }
    }
    assert!(texts.len() > 6, "{}", texts.len());
    let mut records = 0;
    for text in &texts {
        let (format, items) = streamed(text);
        assert_eq!(
            items,
            whole(text, format),
            "{}",
            &text[..text.len().min(200)]
        );
        records += items.iter().filter(|i| i.starts_with("Record")).count();
    }
    assert!(records > 10, "{records}");
}

/// A list that never ends: `[` then the same charge again and again.
struct Endless {
    sent: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let next = if self.sent == 0 {
            format!("[{CHARGE}")
        } else {
            format!(",{CHARGE}")
        };
        self.sent += 1;
        let n = next.len().min(buf.len());
        buf[..n].copy_from_slice(&next.as_bytes()[..n]);
        // A short element read is completed by the next calls.
        if n < next.len() {
            return Err(std::io::Error::other("test buffer too small"));
        }
        Ok(n)
    }
}

#[test]
fn a_list_is_read_element_by_element_not_whole() {
    // Read whole, this file would never end; streamed, its first elements
    // come at once, and dropping the reader stops the thread.
    let r = FileReader::from_reader(
        "endless.json".into(),
        Box::new(Endless { sent: 0 }),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.format, Format::StripeJson);
    let first: Vec<Item> = r.take(1000).collect();
    assert_eq!(first.len(), 1000);
    assert!(first.iter().all(|i| matches!(i, Item::Record(_))));
}

#[test]
fn a_cut_off_file_keeps_what_came_before_and_says_where_it_ends() {
    let text = format!("[{CHARGE},{CHARGE},{{\"object\":\"char");
    let (_, items) = streamed(&text);
    assert_eq!(items.iter().filter(|i| i.starts_with("Record")).count(), 2);
    let errors: Vec<&String> = items.iter().filter(|i| i.starts_with("Error")).collect();
    assert_eq!(errors.len(), 1, "{items:?}");
    assert!(errors[0].contains("not JSON"), "{errors:?}");
}
