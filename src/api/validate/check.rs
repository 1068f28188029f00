//! The field checks every record kind is built from: each takes the
//! field's path, records a violation under it when the value is wrong, and
//! returns the domain value when it is right.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::money::{Money, parse_decimal};
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;

/// Collects violations under a path prefix.
pub(super) struct Check<'a> {
    pub(super) out: &'a mut Vec<FieldViolation>,
}

impl Check<'_> {
    pub(super) fn fail(&mut self, path: &str, description: impl Into<String>) {
        self.out.push(FieldViolation::new(path, description));
    }

    pub(super) fn text(
        &mut self,
        path: &str,
        value: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        if value.is_empty() {
            if required {
                self.fail(path, "required");
            }
            return None;
        }
        if value.chars().count() > max {
            self.fail(path, format!("at most {max} characters"));
            return None;
        }
        if value.chars().any(char::is_control) {
            self.fail(path, "must not contain control characters");
            return None;
        }
        Some(value.to_string())
    }

    pub(super) fn currency(&mut self, path: &str, code: &str) -> Option<Currency> {
        if code.is_empty() {
            self.fail(path, "required");
            return None;
        }
        let c = Currency::parse_lenient(code);
        if c.is_none() {
            self.fail(path, format!("unknown ISO 4217 currency code '{code}'"));
        }
        c
    }

    pub(super) fn money(
        &mut self,
        path: &str,
        m: Option<&pb::Money>,
        required: bool,
        non_negative: bool,
    ) -> Option<Money> {
        let Some(m) = m else {
            if required {
                self.fail(path, "required");
            }
            return None;
        };
        let currency = self.currency(&format!("{path}.currency_code"), &m.currency_code)?;
        match Money::parse(&m.amount, currency) {
            Ok(v) if non_negative && v.amount.is_sign_negative() && !v.amount.is_zero() => {
                self.fail(
                    &format!("{path}.amount"),
                    format!("'{}' must not be negative", m.amount),
                );
                None
            }
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&format!("{path}.amount"), e.to_string());
                None
            }
        }
    }

    /// A money field that may be left unset: `None` means absent, and a
    /// present-but-bad value still records a violation.
    pub(super) fn optional_money(
        &mut self,
        path: &str,
        m: Option<&pb::Money>,
        non_negative: bool,
    ) -> Option<Money> {
        self.money(path, m, false, non_negative)
    }

    pub(super) fn rate(&mut self, path: &str, s: &str) -> Option<Decimal> {
        if s.is_empty() {
            return None;
        }
        match parse_decimal(s, None) {
            Ok(r) if r > Decimal::ZERO => Some(r),
            Ok(_) => {
                self.fail(path, "an exchange rate must be greater than zero");
                None
            }
            Err(e) => {
                self.fail(path, e.to_string());
                None
            }
        }
    }

    pub(super) fn timestamp(
        &mut self,
        path: &str,
        t: Option<&prost_types::Timestamp>,
        required: bool,
    ) -> Option<DateTime<Utc>> {
        let Some(t) = t else {
            if required {
                self.fail(path, "required");
            }
            return None;
        };
        // The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
        let in_range = (-62_135_596_800..=253_402_300_799).contains(&t.seconds)
            && (0..1_000_000_000).contains(&t.nanos);
        match in_range
            .then(|| DateTime::from_timestamp(t.seconds, t.nanos as u32))
            .flatten()
        {
            Some(dt) => Some(dt),
            None => {
                self.fail(
                    path,
                    "not a valid timestamp (seconds within years 1-9999, nanos 0-999999999)",
                );
                None
            }
        }
    }

    pub(super) fn quantity(&mut self, path: &str, q: i64, min: i64) -> i64 {
        if q < min {
            self.fail(path, format!("must be at least {min}"));
        }
        q
    }

    /// A required enum: UNSPECIFIED or a value the proto does not define is
    /// a violation; the mapping itself lives in `convert`.
    pub(super) fn required<P, T>(&mut self, path: &str, v: i32) -> Option<T>
    where
        P: TryFrom<i32>,
        T: TryFrom<P>,
    {
        let r = P::try_from(v).ok().and_then(|p| T::try_from(p).ok());
        if r.is_none() {
            self.fail(
                path,
                if v == 0 {
                    "required".to_string()
                } else {
                    format!("unknown value {v}")
                },
            );
        }
        r
    }
}
