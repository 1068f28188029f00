//! What every List call shares: page sizes, time windows, and opaque page
//! tokens. A token carries the last row's sort key and a
//! fingerprint of the filter it was issued for, so reusing it with another
//! filter is refused rather than silently skipping rows.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::api::names::parse_parent;
use crate::api::validate::text::{self, Text};
use crate::error::{Error, Result};
use crate::storage::{Cursor, TimeWindow};

pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The range google.protobuf.Timestamp allows, 0001-01-01 to 9999-12-31:
/// filters and page tokens outside it are refused here rather than by
/// PostgreSQL (whose timestamptz ends elsewhere).
const PROTO_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
pub const MAX_PAGE_SIZE: usize = 1000;

fn page_size_of(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

fn fingerprint(filter: &str) -> String {
    hex::encode(&Sha256::digest(filter.as_bytes())[..6])
}

pub fn encode(cursor: &Cursor, filter: &str) -> String {
    let raw = format!(
        "1|{}|{}|{}",
        fingerprint(filter),
        cursor.time.timestamp_micros(),
        cursor.id
    );
    hex::encode(raw)
}

pub fn decode(token: &str, filter: &str) -> Result<Option<Cursor>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::invalid(
            "page_token",
            "malformed page token; start again without one",
        )
    };
    if token.len() > 1024 {
        return Err(bad());
    }
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.splitn(4, '|');
    let (Some("1"), Some(fp), Some(micros), Some(id)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if fp != fingerprint(filter) {
        return Err(Error::invalid(
            "page_token",
            "the page token was issued for a different filter",
        ));
    }
    let time = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|t| PROTO_SECONDS.contains(&t.timestamp()))
        .ok_or_else(bad)?;
    // A token is the caller's to forge: its id meets the rules of the ids
    // it resumes after before it is bound to a statement.
    if text::check(id, Text::Id, 255).is_err() || id.is_empty() {
        return Err(bad());
    }
    Ok(Some(Cursor {
        time,
        id: id.to_string(),
    }))
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
    if let (Some(s), Some(e)) = (s, e) {
        if e <= s {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
    }
    Ok((s, e))
}

/// The fields every List request has, named alike (AIP-132).
pub trait ListRequest {
    fn parent(&self) -> &str;
    fn page_size(&self) -> i32;
    fn page_token(&self) -> &str;
    fn window(
        &self,
    ) -> (
        Option<&prost_types::Timestamp>,
        Option<&prost_types::Timestamp>,
    );
}

macro_rules! list_request {
    ($($t:ty),*) => {$(
        impl ListRequest for $t {
            fn parent(&self) -> &str {
                &self.parent
            }
            fn page_size(&self) -> i32 {
                self.page_size
            }
            fn page_token(&self) -> &str {
                &self.page_token
            }
            fn window(&self) -> (Option<&prost_types::Timestamp>, Option<&prost_types::Timestamp>) {
                (self.start_time.as_ref(), self.end_time.as_ref())
            }
        }
    )*};
}

list_request!(
    crate::proto::tally::v1::ListTransactionsRequest,
    crate::proto::tally::v1::ListExceptionsRequest
);

/// What every List request shares, checked once: the merchant, the page
/// size, the time window, and where the page starts.
pub struct ListScope {
    pub merchant: String,
    pub limit: usize,
    pub window: TimeWindow,
    page_token: String,
}

impl ListScope {
    pub fn of(req: &impl ListRequest) -> Result<ListScope> {
        let merchant = parse_parent("parent", req.parent())?;
        let limit = page_size_of(req.page_size())?;
        let (start, end) = req.window();
        let (start, end) = time_range(start, end)?;
        Ok(ListScope {
            merchant,
            limit,
            window: TimeWindow { start, end },
            page_token: req.page_token().to_string(),
        })
    }

    /// Where the page starts: the cursor in the page token, refused unless
    /// it was issued for this merchant and `filter` (which holds the window).
    pub fn resume(&self, filter: &impl std::fmt::Debug) -> Result<Resume> {
        let fingerprint = format!("{}|{filter:?}", self.merchant);
        Ok(Resume {
            after: decode(&self.page_token, &fingerprint)?,
            fingerprint,
        })
    }
}

/// Where a page starts, and what the token of the next carries.
pub struct Resume {
    pub after: Option<Cursor>,
    fingerprint: String,
}

impl Resume {
    /// The next_page_token of a page: empty on the last.
    pub fn next_token(&self, next: Option<Cursor>) -> String {
        next.map(|c| encode(&c, &self.fingerprint))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_another_filter() {
        let c = Cursor {
            time: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: "1001".into(),
        };
        let t = encode(&c, "state=matched");
        assert_eq!(decode(&t, "state=matched").unwrap(), Some(c));
        assert!(decode(&t, "state=pending").is_err());
        assert!(decode("zz", "").is_err());
        assert_eq!(decode("", "x").unwrap(), None);
    }

    #[test]
    fn a_forged_token_is_malformed_whatever_it_holds() {
        let fp = fingerprint("f");
        for forged in [
            format!("1|{fp}|1700000000000000|a\0b"),
            format!("1|{fp}|1700000000000000|a\u{202E}b"),
            format!("1|{fp}|1700000000000000|"),
            format!("1|{fp}|1700000000000000|{}", "x".repeat(300)),
            format!("1|{fp}|-9000000000000000000|a"),
            format!("1|{fp}|9000000000000000000|a"),
        ] {
            let token = hex::encode(&forged);
            assert!(
                matches!(decode(&token, "f"), Err(Error::InvalidArgument { .. })),
                "{forged:?}"
            );
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
