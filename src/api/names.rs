//! Resource names: "merchants/{merchant}", ".../transactions/{order_id}",
//! ".../payouts/{payout_id}", ".../invoices/{invoice_id}",
//! ".../exceptions/{exception}".
//!
//! An id inside a name is escaped one way, here, both when a name is built
//! for output and when one is parsed (AIP-122): the unreserved characters
//! of RFC 3986 (`A-Z a-z 0-9 - . _ ~`) stand for themselves and every
//! other byte of the id's UTF-8 is percent-encoded, `/` and `%` included.
//! So any id ingest accepts ("po 1#A", "INV/2026/0001", "Ä-ÜBER-2") has
//! one name, and reading that name gives the id back. On input a character
//! other than `/` or `%` may also arrive unencoded ("Ä-ÜBER-2" as it is).
//!
//! A name is bounded before anything else is done with it, and quoted in
//! an error only through `shown` (40 characters, escaped).

use crate::api::validate::ID_MAX;
use crate::api::validate::text::{self, Text, shown};
use crate::error::{Error, Result};

/// The longest resource name read: a 255-character id of 4-byte
/// characters, every byte escaped, and its prefix fit with room to spare.
pub const NAME_MAX_BYTES: usize = 4096;

/// 1 to `max` bytes, each lowercase ASCII, a digit (with `digits`) or one
/// of `extra`: the one character-class check behind every id we accept.
pub fn lowercase_id(s: &str, max: usize, digits: bool, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || (digits && b.is_ascii_digit()) || extra.contains(&b))
}

/// 1-63 of [a-z0-9-], starting alphanumeric: safe in a resource name and a
/// distribution key.
pub fn valid_merchant(m: &str) -> bool {
    lowercase_id(m, 63, true, b"-") && !m.starts_with('-')
}

/// 1-128 of [A-Za-z0-9._~-], at least one a letter or digit: an order id
/// must fit in a resource name without escaping, and "." or ".." would be
/// a path segment that URL handling rewrites.
pub fn valid_order_id(o: &str) -> bool {
    !o.is_empty()
        && o.len() <= 128
        && o.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
        && o.bytes().any(|b| b.is_ascii_alphanumeric())
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// An id as a name's last segment. An id of dots alone is escaped whole,
/// since "." and ".." are path segments URL handling rewrites.
pub fn escape_id(id: &str) -> String {
    let all_dots = id.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if unreserved(b) && !(all_dots && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The id a name's segment stands for: `%XX` decoded (either case of
/// hex), anything else but `/` and `%` taken as it is; `None` for a raw
/// `/`, a `%` not followed by two hex digits, or bytes that are not UTF-8.
pub fn unescape_id(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => return None,
            b'%' => {
                let hex = segment.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A name is read only when it is at most `NAME_MAX_BYTES`: past that it
/// is refused by its length alone, unquoted.
fn bounded(field: &str, name: &str) -> Result<()> {
    if name.len() > NAME_MAX_BYTES {
        return Err(Error::invalid(
            field,
            format!(
                "at most {NAME_MAX_BYTES} bytes for a resource name, got {}",
                name.len()
            ),
        ));
    }
    Ok(())
}

pub fn parse_parent(field: &str, name: &str) -> Result<String> {
    bounded(field, name)?;
    match name.strip_prefix("merchants/") {
        Some(m) if valid_merchant(m) => Ok(m.to_string()),
        _ => Err(Error::invalid(
            field,
            format!(
                "{} is not a merchant name: expected merchants/{{merchant}} with {{merchant}} 1-63 of [a-z0-9-]",
                shown(name)
            ),
        )),
    }
}

/// Splits "merchants/{m}/{collection}/{id}": the merchant and the id,
/// unescaped and held to the rules of the ids ingest accepts (`Text::Id`,
/// at most 255 characters).
pub fn parse_child(field: &str, name: &str, collection: &str) -> Result<(String, String)> {
    bounded(field, name)?;
    let bad = |why: &str| {
        Error::invalid(
            field,
            format!(
                "{} is not a {collection} name{why}: expected merchants/{{merchant}}/{collection}/{{id}}, \
                 the id percent-encoded outside A-Z a-z 0-9 - . _ ~",
                shown(name)
            ),
        )
    };
    let rest = name.strip_prefix("merchants/").ok_or_else(|| bad(""))?;
    let (m, rest) = rest.split_once('/').ok_or_else(|| bad(""))?;
    let segment = rest
        .strip_prefix(collection)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(|| bad(""))?;
    if !valid_merchant(m) {
        return Err(bad(" (the merchant is 1-63 of [a-z0-9-])"));
    }
    let id = unescape_id(segment)
        .ok_or_else(|| bad(" (a raw '/', a '%' not followed by two hex digits, or not UTF-8)"))?;
    if id.is_empty() {
        return Err(bad(" (no id)"));
    }
    if let Err(why) = text::check(&id, Text::Id, ID_MAX) {
        return Err(bad(&format!(" (its id: {why})")));
    }
    Ok((m.to_string(), id))
}

/// Splits "merchants/{m}/transactions/{order_id}".
pub fn parse_transaction(field: &str, name: &str) -> Result<(String, String)> {
    let (m, o) = parse_child(field, name, "transactions")?;
    if !valid_order_id(&o) {
        return Err(Error::invalid(
            field,
            format!(
                "{} is not a transaction name: expected merchants/{{merchant}}/transactions/{{order_id}}, \
                 the order id 1-128 of [A-Za-z0-9._~-]",
                shown(name)
            ),
        ));
    }
    Ok((m, o))
}

/// "merchants/{m}/{collection}/{id}", the id escaped.
pub fn child_name(merchant: &str, collection: &str, id: &str) -> String {
    format!("merchants/{merchant}/{collection}/{}", escape_id(id))
}

pub fn transaction_name(merchant: &str, order_id: &str) -> String {
    child_name(merchant, "transactions", order_id)
}

pub fn payout_name(merchant: &str, payout_id: &str) -> String {
    child_name(merchant, "payouts", payout_id)
}

pub fn invoice_name(merchant: &str, invoice_id: &str) -> String {
    child_name(merchant, "invoices", invoice_id)
}

pub fn exception_name(merchant: &str, id: &uuid::Uuid) -> String {
    format!("merchants/{merchant}/exceptions/{id}")
}

/// Splits "merchants/{m}/exceptions/{uuid}".
pub fn parse_exception(field: &str, name: &str) -> Result<(String, uuid::Uuid)> {
    let (merchant, id) = parse_child(field, name, "exceptions")?;
    let id = uuid::Uuid::parse_str(&id).map_err(|_| {
        Error::invalid(
            field,
            format!(
                "{} is not an exception name: expected merchants/{{merchant}}/exceptions/{{uuid}}",
                shown(name)
            ),
        )
    })?;
    Ok((merchant, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(parse_parent("parent", "merchants/acme").unwrap(), "acme");
        assert!(parse_parent("parent", "merchants/").is_err());
        assert!(parse_parent("parent", "merchants/Acme").is_err());
        assert!(parse_parent("parent", "acme").is_err());
        assert_eq!(
            parse_transaction("name", "merchants/acme/transactions/1001").unwrap(),
            ("acme".to_string(), "1001".to_string())
        );
        assert!(parse_transaction("name", "merchants/acme/transactions/").is_err());
        assert!(parse_transaction("name", "merchants/acme/orders/1").is_err());
        assert!(parse_transaction("name", "merchants/acme/transactions/a/b").is_err());
        assert!(parse_transaction("name", "merchants/acme/transactions/..").is_err());
        assert!(parse_transaction("name", "merchants/acme/transactions/1\0").is_err());
        assert!(parse_parent("parent", "merchants/acme\u{200B}").is_err());
    }

    #[test]
    fn ids_round_trip_through_names() {
        for id in [
            "po 1#A",
            "INV/2026/0001",
            "Ä-ÜBER-2",
            "100%",
            "a?b=c&d",
            "..",
            ".",
            "po_1",
        ] {
            let name = payout_name("acme", id);
            assert!(
                name["merchants/acme/payouts/".len()..]
                    .bytes()
                    .all(unreserved_or_percent),
                "{name}"
            );
            assert_eq!(
                parse_child("name", &name, "payouts").unwrap(),
                ("acme".to_string(), id.to_string()),
                "{name}"
            );
        }
        assert_eq!(
            payout_name("acme", "po 1#A"),
            "merchants/acme/payouts/po%201%23A"
        );
        assert_eq!(
            invoice_name("acme", "INV/2026/0001"),
            "merchants/acme/invoices/INV%2F2026%2F0001"
        );
        assert_eq!(
            invoice_name("acme", "Ä-ÜBER-2"),
            "merchants/acme/invoices/%C3%84-%C3%9CBER-2"
        );
        // Unencoded (but for '/' and '%') and lowercase hex read the same.
        assert_eq!(
            parse_child("name", "merchants/acme/invoices/Ä-ÜBER-2", "invoices")
                .unwrap()
                .1,
            "Ä-ÜBER-2"
        );
        assert_eq!(
            parse_child("name", "merchants/acme/invoices/inv%2f1", "invoices")
                .unwrap()
                .1,
            "inv/1"
        );
    }

    fn unreserved_or_percent(b: u8) -> bool {
        unreserved(b) || b == b'%' || b.is_ascii_hexdigit()
    }

    #[test]
    fn escaped_names_are_held_to_the_id_rules() {
        for bad in [
            "merchants/acme/payouts/a/b",
            "merchants/acme/payouts/a%2",
            "merchants/acme/payouts/a%zz",
            "merchants/acme/payouts/%FF",
            "merchants/acme/payouts/a%00b",
            "merchants/acme/payouts/a%E2%80%AEb",
            "merchants/acme/payouts/%1B%5B31m",
            "merchants/acme/payouts/%20a",
            "merchants/acme/payouts/",
        ] {
            assert!(parse_child("name", bad, "payouts").is_err(), "{bad}");
        }
        let long = format!("merchants/acme/payouts/{}", "x".repeat(256));
        assert!(parse_child("name", &long, "payouts").is_err());
    }

    #[test]
    fn a_hostile_name_is_quoted_short_and_escaped() {
        let name = format!("merchants/\0{}", "x".repeat(1 << 20));
        for r in [
            parse_parent("parent", &name).map(|_| ()),
            parse_child("name", &name, "payouts").map(|_| ()),
            parse_exception(
                "name",
                &format!("merchants/acme/exceptions/\0{}", "x".repeat(3000)),
            )
            .map(|_| ()),
        ] {
            let Err(Error::InvalidArgument { violations, .. }) = r else {
                panic!("accepted");
            };
            let d = &violations[0].description;
            assert!(d.len() < 300 && !d.contains('\0'), "{d}");
        }
    }
}
