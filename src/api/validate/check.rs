//! The field checks every record kind is built from: each takes the
//! field's path, records a violation under it when the value is wrong, and
//! returns the domain value when it is right. The bounds here are the ones
//! the proto documents; change both together.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use super::text::{self, Text, shown};
use crate::domain::currency::Currency;
use crate::domain::money::{Money, parse_decimal};
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;

/// Ids and keys: source ids, references, processor ids, SKUs, accounts.
pub const ID_MAX: usize = 255;
/// Short names: gateways, posting periods.
pub const NAME_MAX: usize = 63;
/// Free text: memos, descriptions.
pub const PROSE_MAX: usize = 1024;
/// Amount and rate strings, before they are parsed.
const NUMBER_MAX_CHARS: usize = 64;
/// Amounts are below 10^18 in major units, and so is a line's unit price x
/// quantity: more than any real figure (10^18 VND is about 40 trillion
/// USD), and small enough that whatever the rules add up of one record (at
/// most 10,000 items) stays far inside the 28 digits exact decimals hold,
/// and a sum over an order's records would need 10^10 of them to overflow.
pub const AMOUNT_DIGITS: u32 = 18;
/// Exchange rates are below 10^9 (no currency pair is near), so a
/// converted amount stays below 10^27.
const RATE_DIGITS: u32 = 9;
/// Units on one line: at most 10^9, so a record's lines (at most 10,000)
/// add up far inside an i64.
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Items of one repeated field (lines, tenders, references...).
pub const MAX_ITEMS: usize = 1000;
/// Lines of one journal entry: a payout's journal books one line per charge.
pub const MAX_JOURNAL_LINES: usize = 10_000;

/// The earliest time any record may carry: 2000-01-01T00:00:00Z. No source
/// Tally reads (Shopify 2006, Stripe 2011) holds older money, and it refuses
/// the defaults that slip through broken exports: the Unix epoch
/// (1970-01-01), year 1 (.NET's DateTime.MinValue, protobuf's minimum).
const EARLIEST_SECONDS: i64 = 946_684_800;
/// How far past now a time that already happened may be: clock skew, and
/// sources that stamp a local calendar date as midnight UTC (a day ahead
/// in New Zealand). An event time far in the future would also run every
/// lag of its order out at once, since lags run in event time.
const HAPPENED_LEAD: Duration = Duration::days(1);
/// How far ahead a scheduled time may be (funds available, a payout's
/// arrival): processors hold funds for weeks, reserves for months.
const SCHEDULED_LEAD: Duration = Duration::days(366);

/// Which times a timestamp field may hold.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// Something that happened: an event time, a source's update time.
    Happened,
    /// Something scheduled: when funds become available, a payout's arrival.
    Scheduled,
}

/// Whether a figure is below 10^18 in magnitude (see `AMOUNT_DIGITS`).
pub(super) fn below_amount_bound(v: Decimal) -> bool {
    v.abs() < Decimal::from(10u64.pow(AMOUNT_DIGITS))
}

/// Collects violations under a path prefix.
pub(super) struct Check<'a> {
    pub(super) out: &'a mut Vec<FieldViolation>,
    /// The clock, read once per request, for the time windows.
    pub(super) now: DateTime<Utc>,
}

impl Check<'_> {
    pub(super) fn fail(&mut self, path: &str, description: impl Into<String>) {
        self.out.push(FieldViolation::new(path, description));
    }

    fn text(
        &mut self,
        path: &str,
        value: &str,
        kind: Text,
        required: bool,
        max: usize,
    ) -> Option<String> {
        if value.is_empty() {
            if required {
                self.fail(path, "required");
            }
            return None;
        }
        match text::check(value, kind, max) {
            Ok(()) => Some(value.to_string()),
            Err(why) => {
                self.fail(path, why);
                None
            }
        }
    }

    /// An id or key (see `Text::Id`); `None` when empty or refused.
    pub(super) fn id(
        &mut self,
        path: &str,
        value: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        self.text(path, value, Text::Id, required, max)
    }

    /// Free text (see `Text::Prose`); empty when empty or refused.
    pub(super) fn prose(&mut self, path: &str, value: &str, max: usize) -> String {
        self.text(path, value, Text::Prose, false, max)
            .unwrap_or_default()
    }

    /// At most `max` items in a repeated field; the rest is not read.
    pub(super) fn items<'v, T>(&mut self, path: &str, items: &'v [T], max: usize) -> &'v [T] {
        if items.len() > max {
            self.fail(path, format!("at most {max} items, got {}", items.len()));
            return &[];
        }
        items
    }

    pub(super) fn currency(&mut self, path: &str, code: &str) -> Option<Currency> {
        if code.is_empty() {
            self.fail(path, "required");
            return None;
        }
        let c = Currency::parse_lenient(code);
        if c.is_none() {
            self.fail(
                path,
                format!("unknown ISO 4217 currency code {}", shown(code)),
            );
        }
        c
    }

    /// A decimal string: refused unquoted when it is not even printable
    /// ASCII of a sane length, else as `parse_decimal` explains.
    fn number(&mut self, path: &str, s: &str, currency: Option<Currency>) -> Option<Decimal> {
        if s.len() > NUMBER_MAX_CHARS || !s.bytes().all(|b| b.is_ascii_graphic()) {
            self.fail(
                path,
                format!(
                    "{} is not a decimal number (digits, an optional '-' and one '.', \
                     at most {NUMBER_MAX_CHARS} characters)",
                    shown(s)
                ),
            );
            return None;
        }
        match parse_decimal(s, currency) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(path, e.to_string());
                None
            }
        }
    }

    /// An amount: within the currency's minor unit, below 10^18, and not
    /// negative when `non_negative`.
    pub(super) fn amount(
        &mut self,
        path: &str,
        s: &str,
        currency: Option<Currency>,
        non_negative: bool,
    ) -> Option<Decimal> {
        let v = self.number(path, s, currency)?;
        if non_negative && v.is_sign_negative() && !v.is_zero() {
            self.fail(path, format!("'{s}' must not be negative"));
            return None;
        }
        if !below_amount_bound(v) {
            self.fail(
                path,
                format!("'{s}' is too large: at most {AMOUNT_DIGITS} digits before the point"),
            );
            return None;
        }
        Some(v)
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
        let amount = self.amount(
            &format!("{path}.amount"),
            &m.amount,
            Some(currency),
            non_negative,
        )?;
        Some(Money::new(amount, currency))
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
        let r = self.number(path, s, None)?;
        if r <= Decimal::ZERO {
            self.fail(path, "an exchange rate must be greater than zero");
            return None;
        }
        if r >= Decimal::from(10u64.pow(RATE_DIGITS)) {
            self.fail(
                path,
                format!("'{s}' is too large: at most {RATE_DIGITS} digits before the point"),
            );
            return None;
        }
        Some(r)
    }

    pub(super) fn timestamp(
        &mut self,
        path: &str,
        t: Option<&prost_types::Timestamp>,
        required: bool,
        when: When,
    ) -> Option<DateTime<Utc>> {
        let Some(t) = t else {
            if required {
                self.fail(path, "required");
            }
            return None;
        };
        let (latest, what) = match when {
            When::Happened => (self.now + HAPPENED_LEAD, "now + 1 day"),
            When::Scheduled => (self.now + SCHEDULED_LEAD, "now + 366 days"),
        };
        let earliest = DateTime::from_timestamp(EARLIEST_SECONDS, 0).unwrap_or_default();
        let parsed = (0..1_000_000_000)
            .contains(&t.nanos)
            .then(|| DateTime::from_timestamp(t.seconds, t.nanos as u32))
            .flatten();
        match parsed {
            Some(dt) if (earliest..=latest).contains(&dt) => Some(dt),
            Some(dt) => {
                self.fail(
                    path,
                    format!(
                        "{} is outside 2000-01-01T00:00:00Z to {what} ({})",
                        dt.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        latest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                );
                None
            }
            None => {
                self.fail(
                    path,
                    "not a valid timestamp (nanos 0-999999999, seconds from 2000-01-01)",
                );
                None
            }
        }
    }

    /// Units on a line: `min` to 10^9.
    pub(super) fn quantity(&mut self, path: &str, q: i64, min: i64) -> i64 {
        if q < min {
            self.fail(path, format!("must be at least {min}"));
        } else if q > MAX_QUANTITY {
            self.fail(path, format!("at most {MAX_QUANTITY} units"));
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
