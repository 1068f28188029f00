//! API bodies: a Stripe object or list, a Shopify REST or webhook body, or
//! a file of many (the documentation examples). JSON is read whole (API
//! pages are small); every money object found anywhere in it is read, and
//! each one that cannot be is an error naming its path.

use std::io::Read;

use serde_json::Value;

use super::{Format, Item, Parsed, RowError, shopify, stripe};

pub fn read(
    file: &str,
    mut r: impl Read,
    named: Option<Format>,
) -> Result<(Format, Vec<Item>), RowError> {
    let mut text = String::new();
    r.read_to_string(&mut text)
        .map_err(|e| RowError::file(file, format!("cannot read as UTF-8 text: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        RowError::at(
            file,
            e.line() as u64,
            e.column(),
            "",
            format!("not JSON: {e}"),
        )
    })?;
    let format = named.unwrap_or_else(|| {
        if text.contains("\"object\"") && !text.contains("\"admin_graphql_api_id\"") {
            Format::StripeJson
        } else {
            Format::ShopifyJson
        }
    });
    let mut out = vec![];
    walk(file, format, "$", None, &v, &mut out);
    Ok((format, out))
}

fn walk(file: &str, format: Format, path: &str, key: Option<&str>, v: &Value, out: &mut Vec<Item>) {
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
