//! API bodies: a Stripe object or list, a Shopify REST or webhook body, or
//! a file of many (the documentation examples). Every money object found
//! anywhere in one is read, and each one that cannot be is an error naming
//! its path.
//!
//! A file is read as a stream on a thread of its own: a top-level array's
//! elements, a Stripe list's `data` and a Shopify list body's array
//! (`{"orders": [...]}`) one element at a time, so memory is bounded by the
//! largest element, not by the file. Anything else is one API object, read
//! whole. The format is told from the file's first 64 KiB.

use std::fmt;
use std::io::Read;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{Format, Item, Parsed, RowError, shopify, stripe};

/// Items parsed ahead of the reader, at most.
const AHEAD: usize = 1024;
/// How much of a file its format is told from.
const SNIFF: u64 = 64 * 1024;
/// The one key of a Shopify REST list body.
const SHOPIFY_LISTS: [&str; 6] = [
    "orders",
    "transactions",
    "refunds",
    "fulfillments",
    "payouts",
    "balance_transactions",
];
/// Why parsing stopped early: the reader was dropped.
const GONE: &str = "the reader stopped";

/// The file's format and its items, parsed on a thread as they are taken.
pub fn read(
    file: &str,
    mut r: impl Read + Send + 'static,
    named: Option<Format>,
) -> Result<(Format, Receiver<Item>), RowError> {
    let mut head = Vec::new();
    (&mut r)
        .take(SNIFF)
        .read_to_end(&mut head)
        .map_err(|e| RowError::file(file, format!("cannot read: {e}")))?;
    let format = named.unwrap_or_else(|| detect(&String::from_utf8_lossy(&head)));
    let (tx, rx) = sync_channel(AHEAD);
    let sink = Sink {
        file: file.to_string(),
        format,
        tx,
    };
    let input = std::io::BufReader::new(std::io::Cursor::new(head).chain(r));
    std::thread::Builder::new()
        .name("json-reader".into())
        .spawn(move || sink.run(input))
        .map_err(|e| RowError::file(file, format!("cannot start its reader: {e}")))?;
    Ok((format, rx))
}

fn detect(head: &str) -> Format {
    if head.contains("\"object\"") && !head.contains("\"admin_graphql_api_id\"") {
        Format::StripeJson
    } else {
        Format::ShopifyJson
    }
}

/// Where parsed items go: the reader's queue.
struct Sink {
    file: String,
    format: Format,
    tx: SyncSender<Item>,
}

impl Sink {
    fn run(self, input: impl Read) {
        let mut de = serde_json::Deserializer::from_reader(input);
        let parsed = Top(&self).deserialize(&mut de).and_then(|()| de.end());
        if let Err(e) = parsed {
            let error = RowError::at(
                &self.file,
                e.line() as u64,
                e.column(),
                "",
                format!("not JSON: {e}"),
            );
            // A reader that is gone needs no error.
            let _ = self.tx.send(Item::Error(error));
        }
    }

    /// Walks one value and queues what it holds; false once the reader is
    /// gone.
    fn walk(&self, path: &str, key: Option<&str>, v: &Value) -> bool {
        let mut out = vec![];
        walk(&self.file, self.format, path, key, v, &mut out);
        out.into_iter().all(|i| self.tx.send(i).is_ok())
    }
}

/// The file's top value.
struct Top<'a>(&'a Sink);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let all = Elements {
            sink: self.0,
            path: "$".into(),
            key: None,
        };
        all.visit_seq(seq).map(|_| ())
    }

    /// One object: its list (a Stripe list's `data`, after `"object":
    /// "list"` as Stripe writes it; a Shopify list body's first key)
    /// streamed, the rest walked whole at its end, as one value.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest = Map::new();
        let (mut stripe_list, mut first) = (false, true);
        while let Some(k) = map.next_key::<String>()? {
            let list = (k == "data" && stripe_list) || (first && SHOPIFY_LISTS.contains(&&*k));
            first = false;
            if list {
                let elements = Elements {
                    sink: self.0,
                    path: format!("$.{k}"),
                    key: Some(k.clone()),
                };
                if let Some(v) = map.next_value_seed(elements)? {
                    rest.insert(k, v);
                }
            } else {
                let v: Value = map.next_value()?;
                stripe_list |= k == "object" && v == "list";
                rest.insert(k, v);
            }
        }
        if self.0.walk("$", None, &Value::Object(rest)) {
            Ok(())
        } else {
            Err(de::Error::custom(GONE))
        }
    }
}

/// An array walked element by element (`Ok(None)`); any other value is
/// kept for its object (`Ok(Some)`).
struct Elements<'a> {
    sink: &'a Sink,
    path: String,
    key: Option<String>,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = Option<Value>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let mut i = 0usize;
        while let Some(v) = seq.next_element::<Value>()? {
            // Elements of "orders": [...] are orders: the key goes down.
            if !self
                .sink
                .walk(&format!("{}[{i}]", self.path), self.key.as_deref(), &v)
            {
                return Err(de::Error::custom(GONE));
            }
            i += 1;
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }
}

pub(super) fn walk(
    file: &str,
    format: Format,
    path: &str,
    key: Option<&str>,
    v: &Value,
    out: &mut Vec<Item>,
) {
    let found = match (format, v) {
        (Format::StripeJson, Value::Object(_)) => stripe::from_json(file, path, v),
        (Format::ShopifyJson, Value::Object(_)) => {
            // A bare object or array names no resource: its fields do.
            let guessed = if v.get("kind").is_some() && v.get("order_id").is_some() {
                Some("transaction")
            } else if v.get("total_price").is_some() && v.get("line_items").is_some() {
                Some("order")
            } else {
                None
            };
            key.or(guessed)
                .and_then(|k| shopify::from_json(file, path, k, v))
        }
        _ => None,
    };
    match found {
        Some(Ok(record)) => {
            out.push(Item::Record(Parsed { line: 0, record }));
            return;
        }
        Some(Err(e)) => {
            out.push(Item::Error(e));
            return;
        }
        None => {}
    }
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                // A Stripe object's nested objects (an expanded balance
                // transaction, a charge's refunds list) are read when they
                // appear on their own; inside a parent they are its fields.
                walk(file, format, &format!("{path}.{k}"), Some(k), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                // Elements of "orders": [...] are orders: pass the key down.
                walk(file, format, &format!("{path}[{i}]"), key, child, out);
            }
        }
        _ => {}
    }
}
