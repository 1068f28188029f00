//! Amounts as spreadsheets print them: a symbol or code around the
//! number, thousands separators, a decimal comma, parentheses or a minus
//! for negatives. Most cells are plain ("-1234.50") and take a fast path
//! that allocates nothing; the general path reads the rest.

use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::money::parse_decimal;

/// Parses an amount as spreadsheets print it: a currency symbol or code,
/// thousands separators, a decimal comma, parentheses or a trailing minus
/// for negatives. Refuses more decimals than the currency has.
pub fn parse_amount(raw: &str, c: Currency) -> Result<Decimal, String> {
    match plain(raw.trim(), c) {
        Some(d) => Ok(d),
        None => parse_amount_general(raw, c),
    }
}

/// The shape nearly every export writes, "-1234.50": an optional minus,
/// at most 18 digits with one optional point, no more decimals than the
/// currency has. Read without allocating, to the same value the general
/// path gives (`normalize`d, a minus applied after, so "-0.00" is -0).
/// None for anything else, which the general path reads or refuses.
fn plain(s: &str, c: Currency) -> Option<Decimal> {
    let (negative, digits) = match s.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let (mut mantissa, mut scale, mut point) = (0i64, 0u32, false);
    for (i, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                // 18 digits at most: they always fit an i64.
                if mantissa >= 100_000_000_000_000_000 {
                    return None;
                }
                mantissa = mantissa * 10 + i64::from(b - b'0');
                scale += u32::from(point);
            }
            // Not first, not last: "5." and ".5" are the general path's.
            b'.' if !point && i > 0 && i + 1 < digits.len() => point = true,
            _ => return None,
        }
    }
    let d = Decimal::new(mantissa, scale).normalize();
    if d.scale() > c.exponent() {
        return None;
    }
    Some(if negative { -d } else { d })
}

/// Every shape `parse_amount` reads, and the reasons it refuses.
fn parse_amount_general(raw: &str, c: Currency) -> Result<Decimal, String> {
    let mut s = raw.trim();
    let mut negative = false;
    if let Some(inner) = s.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
        negative = true;
        s = inner.trim();
    }
    if let Some(inner) = s.strip_suffix('-') {
        negative = !negative;
        s = inner.trim();
    }
    if let Some(inner) = s.strip_prefix('-') {
        negative = !negative;
        s = inner.trim();
    }
    // Symbols and codes around the number: "$21.83", "21.83 USD", "€ 5".
    // Symbols are non-ASCII ('€', '£') or '$'; codes are capitals ("USD",
    // "US$"). Anything else around the digits is not an amount.
    let s = s.trim_matches(|ch: char| {
        !ch.is_ascii() || ch == '$' || ch.is_ascii_uppercase() || ch.is_whitespace()
    });
    if let Some(inner) = s.strip_prefix('-') {
        negative = !negative;
        return finish(inner, negative, raw, c);
    }
    finish(s, negative, raw, c)
}

fn finish(s: &str, negative: bool, raw: &str, c: Currency) -> Result<Decimal, String> {
    let cleaned = unseparate(s).ok_or_else(|| format!("'{raw}' is not an amount"))?;
    let d = parse_decimal(&cleaned, Some(c)).map_err(|e| match e {
        crate::domain::money::AmountError::TooPrecise { allowed, .. } => {
            format!("'{raw}' has more decimal places than {c} allows ({allowed})")
        }
        _ => format!("'{raw}' is not an amount"),
    })?;
    Ok(if negative { -d } else { d })
}

/// Drops thousands separators: the last of '.' or ',' followed by other
/// than exactly three digits is the decimal point.
fn unseparate(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let decimal = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(d.max(c)),
        (Some(d), None) => (s.matches('.').count() == 1).then_some(d),
        (None, Some(c)) => {
            let digits_after = s.len() - c - 1;
            (s.matches(',').count() == 1 && digits_after != 3).then_some(c)
        }
        (None, None) => None,
    };
    let mut out = String::with_capacity(s.len());
    // Digits since the last thousands separator: each group is three.
    let mut group: Option<usize> = None;
    for (i, ch) in s.char_indices() {
        match ch {
            '0'..='9' => {
                out.push(ch);
                group = group.map(|g| g + 1);
            }
            '.' | ',' if Some(i) == decimal => {
                if group.is_some_and(|g| g != 3) {
                    return None;
                }
                group = None;
                out.push('.');
            }
            '.' | ',' | ' ' | '\'' | '\u{a0}' if decimal.is_none_or(|d| i < d) => {
                if out.is_empty() || group.is_some_and(|g| g != 3) {
                    return None;
                }
                group = Some(0);
            }
            _ => return None,
        }
    }
    if decimal.is_none() && group.is_some_and(|g| g != 3) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn currencies() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec!["USD", "JPY", "KWD", "EUR"])
            .prop_map(|c| Currency::from_code(c).expect("a known currency"))
    }

    #[test]
    fn plain_shapes_take_the_fast_path() {
        let usd = Currency::from_code("USD").expect("USD");
        for (raw, want) in [
            ("12.30", "12.3"),
            ("-5.00", "-5"),
            ("0", "0"),
            ("007.5", "7.5"),
        ] {
            assert_eq!(
                plain(raw, usd).map(|d| d.to_string()),
                Some(want.into()),
                "{raw}"
            );
        }
        for other in [
            "1,000.00", "$5", "5.", ".5", "1.234", "--5", "", "-", "1.2.3",
        ] {
            assert_eq!(plain(other, usd), None, "{other}");
        }
    }

    proptest! {
        /// Where the fast path answers, it answers what the general path
        /// does, to the scale and the sign of a zero.
        #[test]
        fn fast_path_is_the_general_path(
            s in "-?[0-9]{0,21}(\\.[0-9]{0,5})?",
            c in currencies(),
        ) {
            if let Some(fast) = plain(&s, c) {
                let general = parse_amount_general(&s, c);
                prop_assert_eq!(Ok(fast), general.clone());
                prop_assert_eq!(fast.serialize(), general.map(|d| d.serialize()).unwrap_or_default());
            }
        }

        /// Plain amounts within the currency's decimals all take it.
        #[test]
        fn plain_amounts_are_fast(units in -10_i64.pow(15)..10_i64.pow(15), c in currencies()) {
            let d = Decimal::new(units, c.exponent());
            prop_assert_eq!(plain(&d.to_string(), c).map(|x| x.serialize()), Some(parse_amount_general(&d.to_string(), c).map(|x| x.serialize()).unwrap_or_default()));
        }
    }
}
