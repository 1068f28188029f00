//! What every List call shares: page sizes, time windows, and opaque page
//! tokens (AIP-158). A token carries the last row's sort key (a [`PageKey`]),
//! a fingerprint of the list, merchant and filter it was issued for, and a
//! checksum of the whole: reusing it with another merchant or filter, or
//! altering it, is INVALID_ARGUMENT naming `page_token` rather than a page
//! that silently skips rows. The last page's `next_page_token` is empty:
//! every list asks for one row more than the page to know.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::api::names::parse_parent;
use crate::api::validate::fields;
use crate::api::validate::text::{self, Text};
use crate::error::{Error, Result};
use crate::storage::{Cursor, TimeWindow};

pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The range google.protobuf.Timestamp allows, 0001-01-01 to 9999-12-31:
/// filters and page tokens outside it are refused here rather than by
/// PostgreSQL (whose timestamptz ends elsewhere).
const PROTO_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
pub const MAX_PAGE_SIZE: usize = 1000;
/// The longest id a token may resume after (ids are at most 255 characters;
/// an exception's by-risk key is an amount and a UUID).
const KEY_ID_MAX: usize = 255;
/// The token format's version: tokens of another are refused.
const VERSION: &str = "2";

fn page_size_of(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

fn digest(salt: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..6])
}

fn fingerprint(scope: &str) -> String {
    digest("scope|", scope)
}

fn checksum(payload: &str) -> String {
    digest("tally page token|", payload)
}

/// The sort key a page resumes after, as a token holds it. `read` is the
/// caller's text (a token is theirs to forge): it refuses what no page of
/// this service ends on, before anything is bound to a statement.
pub trait PageKey: Sized {
    fn write(&self) -> String;
    fn read(s: &str) -> Option<Self>;
}

fn key_id(id: &str) -> Option<String> {
    (!id.is_empty() && text::check(id, Text::Id, KEY_ID_MAX).is_ok()).then(|| id.to_string())
}

/// A (time, id) key: ListTransactions, ListExceptions.
impl PageKey for Cursor {
    fn write(&self) -> String {
        format!("{}|{}", self.time.timestamp_micros(), self.id)
    }
    fn read(s: &str) -> Option<Cursor> {
        let (micros, id) = s.split_once('|')?;
        let time = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .filter(|t| PROTO_SECONDS.contains(&t.timestamp()))?;
        Some(Cursor {
            time,
            id: key_id(id)?,
        })
    }
}

/// An id: ListPayouts, ListHandoffContracts.
impl PageKey for String {
    fn write(&self) -> String {
        self.clone()
    }
    fn read(s: &str) -> Option<String> {
        key_id(s)
    }
}

/// An export sequence: ListJournalEntries.
impl PageKey for i64 {
    fn write(&self) -> String {
        self.to_string()
    }
    fn read(s: &str) -> Option<i64> {
        s.parse::<i64>().ok().filter(|n| *n >= 0)
    }
}

/// A (date, id) key: ListOpenInvoices. Dates of years 1 to 9999, as a
/// google.protobuf.Timestamp (PostgreSQL's dates reach 4713 BC, chrono's
/// further: neither is what a token this service issued holds).
impl PageKey for (NaiveDate, String) {
    fn write(&self) -> String {
        format!("{}|{}", self.0, self.1)
    }
    fn read(s: &str) -> Option<(NaiveDate, String)> {
        let (d, id) = s.split_once('|')?;
        let d = d
            .parse::<NaiveDate>()
            .ok()
            .filter(|d| (1..=9999).contains(&d.year()))?;
        Some((d, key_id(id)?))
    }
}

/// The token of a page that resumes after `key`, for `scope` (the list,
/// merchant and filter).
pub fn encode(key: &impl PageKey, scope: &str) -> String {
    let payload = format!("{VERSION}|{}|{}", fingerprint(scope), key.write());
    let sum = checksum(&payload);
    hex::encode(format!("{payload}|{sum}"))
}

/// What a page token resumes after; refused unless this service issued it,
/// unaltered, for `scope`.
pub fn decode<K: PageKey>(token: &str, scope: &str) -> Result<Option<K>> {
    if token.is_empty() {
        return Ok(None);
    }
    fields::token("page_token", token)?;
    let bad = || {
        Error::invalid(
            "page_token",
            "malformed page token; start again without one",
        )
    };
    let raw = hex::decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (payload, sum) = raw.rsplit_once('|').ok_or_else(bad)?;
    if sum != checksum(payload) {
        return Err(bad());
    }
    let mut parts = payload.splitn(3, '|');
    let (Some(VERSION), Some(fp), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if fp != fingerprint(scope) {
        return Err(Error::invalid(
            "page_token",
            "the page token was issued for another merchant or filter; \
             keep the request's other fields as they were, or start again without one",
        ));
    }
    K::read(key).map(Some).ok_or_else(bad)
}

/// A [start, end) window; either end may be open.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A [start, end) window from two optional timestamps.
pub fn time_range(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<TimeRange> {
    let conv = |field: &str, t: Option<&prost_types::Timestamp>| -> Result<Option<DateTime<Utc>>> {
        t.map(|t| {
            ((0..1_000_000_000).contains(&t.nanos) && PROTO_SECONDS.contains(&t.seconds))
                .then(|| DateTime::from_timestamp(t.seconds, t.nanos as u32))
                .flatten()
                .ok_or_else(|| {
                    Error::invalid(
                        field,
                        "not a valid timestamp (years 1-9999, nanos 0-999999999)",
                    )
                })
        })
        .transpose()
    };
    let (s, e) = (conv("start_time", start)?, conv("end_time", end)?);
    if let (Some(s), Some(e)) = (s, e)
        && e <= s
    {
        return Err(Error::invalid("end_time", "must be after start_time"));
    }
    Ok((s, e))
}

/// The fields every List request has, named alike (AIP-132).
pub trait ListRequest {
    /// The list's name, part of what its tokens are bound to.
    const LIST: &'static str;
    fn parent(&self) -> &str;
    fn page_size(&self) -> i32;
    fn page_token(&self) -> &str;
    /// The [start_time, end_time) filter of lists that have one.
    fn window(
        &self,
    ) -> (
        Option<&prost_types::Timestamp>,
        Option<&prost_types::Timestamp>,
    ) {
        (None, None)
    }
}

macro_rules! list_request {
    ($list:literal: $t:ty $(, $start:ident..$end:ident)?) => {
        impl ListRequest for $t {
            const LIST: &'static str = $list;
            fn parent(&self) -> &str {
                &self.parent
            }
            fn page_size(&self) -> i32 {
                self.page_size
            }
            fn page_token(&self) -> &str {
                &self.page_token
            }
            $(
                fn window(&self) -> (Option<&prost_types::Timestamp>, Option<&prost_types::Timestamp>) {
                    (self.$start.as_ref(), self.$end.as_ref())
                }
            )?
        }
    };
}

use crate::proto::tally::v1 as pb;
list_request!("transactions": pb::ListTransactionsRequest, start_time..end_time);
list_request!("exceptions": pb::ListExceptionsRequest, start_time..end_time);
list_request!("journal_entries": pb::ListJournalEntriesRequest, start_time..end_time);
list_request!("payouts": pb::ListPayoutsRequest);
list_request!("open_invoices": pb::ListOpenInvoicesRequest);
list_request!("handoff_contracts": pb::ListHandoffContractsRequest);

/// What every List request shares, checked once: the merchant, the page
/// size, the time window, and where the page starts.
pub struct ListScope {
    pub merchant: String,
    pub limit: usize,
    pub window: TimeWindow,
    list: &'static str,
    page_token: String,
}

impl ListScope {
    /// The merchant is checked against the caller's key here, for every
    /// List at once (`api::auth::tenant`).
    pub fn of<R: ListRequest>(request: &tonic::Request<R>) -> Result<ListScope> {
        let req = request.get_ref();
        let merchant = crate::api::auth::tenant(request, parse_parent("parent", req.parent())?)?;
        let limit = page_size_of(req.page_size())?;
        let (start, end) = req.window();
        let (start, end) = time_range(start, end)?;
        Ok(ListScope {
            merchant,
            limit,
            window: TimeWindow { start, end },
            list: R::LIST,
            page_token: req.page_token().to_string(),
        })
    }

    /// Where the page starts: the key in the page token, refused unless it
    /// was issued for this list, merchant and `filter` (every field of the
    /// request but the page size and token, the window included).
    pub fn resume<K: PageKey>(&self, filter: &impl std::fmt::Debug) -> Result<Resume<K>> {
        let scope = format!("{}|{}|{filter:?}", self.list, self.merchant);
        Ok(Resume {
            after: decode(&self.page_token, &scope)?,
            scope,
        })
    }
}

/// Where a page starts, and what the token of the next carries.
pub struct Resume<K> {
    pub after: Option<K>,
    scope: String,
}

impl<K: PageKey> Resume<K> {
    /// The next_page_token of a page: empty on the last.
    pub fn next_token(&self, next: Option<K>) -> String {
        next.map(|k| encode(&k, &self.scope)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as this service would seal it, whatever its payload holds.
    fn sealed(payload: &str) -> String {
        hex::encode(format!("{payload}|{}", checksum(payload)))
    }

    #[test]
    fn round_trips_and_refuses_another_filter() {
        let c = Cursor {
            time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: "1001".into(),
        };
        let t = encode(&c, "state=matched");
        assert_eq!(decode(&t, "state=matched").unwrap(), Some(c));
        assert!(decode::<Cursor>(&t, "state=pending").is_err());
        assert!(decode::<Cursor>("zz", "").is_err());
        assert_eq!(decode::<Cursor>("", "x").unwrap(), None);
    }

    #[test]
    fn every_key_round_trips() {
        let d = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        let key = (d, "INV|7".to_string());
        assert_eq!(decode(&encode(&key, "s"), "s").unwrap(), Some(key));
        assert_eq!(decode(&encode(&42i64, "s"), "s").unwrap(), Some(42i64));
        let id = "po_1".to_string();
        assert_eq!(decode(&encode(&id, "s"), "s").unwrap(), Some(id));
    }

    #[test]
    fn an_altered_token_is_refused_and_an_unaltered_one_is_not() {
        let t = encode(&7i64, "s");
        assert_eq!(decode::<i64>(&t, "s").unwrap(), Some(7));
        // Every single character changed to another hex digit.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(b).unwrap();
            let err = decode::<i64>(&altered, "s").unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument { violations, .. }
                    if violations.iter().all(|v| v.field == "page_token")),
                "{i}: {err:?}"
            );
        }
        // The old format (no checksum) is refused too.
        let old = hex::encode(format!("1|{}|7", fingerprint("s")));
        assert!(decode::<i64>(&old, "s").is_err());
    }

    #[test]
    fn a_forged_token_is_malformed_whatever_it_holds() {
        let fp = fingerprint("f");
        for forged in [
            format!("2|{fp}|1700000000000000|a\0b"),
            format!("2|{fp}|1700000000000000|a\u{202E}b"),
            format!("2|{fp}|1700000000000000|"),
            format!("2|{fp}|1700000000000000|{}", "x".repeat(300)),
            format!("2|{fp}|-9000000000000000000|a"),
            format!("2|{fp}|9000000000000000000|a"),
            format!("2|{fp}|1700000000000000"),
            format!("3|{fp}|1700000000000000|a"),
        ] {
            let token = sealed(&forged);
            assert!(
                matches!(
                    decode::<Cursor>(&token, "f"),
                    Err(Error::InvalidArgument { .. })
                ),
                "{forged:?}"
            );
        }
        // The same checks hold for the ledger's keys.
        for forged in ["-1", "1e3", "", "9999999999999999999999"] {
            let token = sealed(&format!("2|{fp}|{forged}"));
            assert!(decode::<i64>(&token, "f").is_err(), "{forged:?}");
        }
        for forged in [
            "-0001-01-01|a",
            "10000-01-01|a",
            "2026-02-30|a",
            "2026-01-01|",
            "2026-01-01",
        ] {
            let token = sealed(&format!("2|{fp}|{forged}"));
            assert!(
                decode::<(NaiveDate, String)>(&token, "f").is_err(),
                "{forged:?}"
            );
        }
        assert!(decode::<String>(&sealed(&format!("2|{fp}|")), "f").is_err());
        // Well-formed and sealed, it is accepted: the checks above are what refused.
        assert_eq!(
            decode::<i64>(&sealed(&format!("2|{fp}|5")), "f").unwrap(),
            Some(5)
        );
        // What is not a token at all.
        for bad in ["zz", "a\0", &"ab".repeat(600), "\u{e9}"] {
            assert!(decode::<i64>(bad, "f").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_stay_within_what_a_timestamp_can_say() {
        let t = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
        assert!(time_range(Some(&t(-8_000_000_000_000)), None).is_err());
        assert!(time_range(None, Some(&t(8_000_000_000_000))).is_err());
        assert!(time_range(Some(&t(0)), Some(&t(253_402_300_799))).is_ok());
    }
}
