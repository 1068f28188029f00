//! Resource names: "merchants/{merchant}", ".../transactions/{order_id}",
//! ".../exceptions/{exception}".

use crate::api::validate::text::shown;
use crate::error::{Error, Result};

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

pub fn parse_parent(field: &str, name: &str) -> Result<String> {
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

/// Splits "merchants/{m}/transactions/{order_id}".
pub fn parse_transaction(field: &str, name: &str) -> Result<(String, String)> {
    let bad = || {
        Error::invalid(
            field,
            format!(
                "{} is not a transaction name: expected merchants/{{merchant}}/transactions/{{order_id}}",
                shown(name)
            ),
        )
    };
    let rest = name.strip_prefix("merchants/").ok_or_else(bad)?;
    let (m, rest) = rest.split_once('/').ok_or_else(bad)?;
    let o = rest.strip_prefix("transactions/").ok_or_else(bad)?;
    if !valid_merchant(m) || !valid_order_id(o) {
        return Err(bad());
    }
    Ok((m.to_string(), o.to_string()))
}

pub fn transaction_name(merchant: &str, order_id: &str) -> String {
    format!("merchants/{merchant}/transactions/{order_id}")
}

pub fn exception_name(merchant: &str, id: &uuid::Uuid) -> String {
    format!("merchants/{merchant}/exceptions/{id}")
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
    fn a_hostile_name_is_quoted_short_and_escaped() {
        let name = format!("merchants/\0{}", "x".repeat(1 << 20));
        let Err(Error::InvalidArgument { violations, .. }) = parse_parent("parent", &name) else {
            panic!("accepted");
        };
        let d = &violations[0].description;
        assert!(d.len() < 200 && !d.contains('\0'), "{d}");
    }
}
