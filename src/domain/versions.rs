//! Versions of a record that changes at its source: how a resubmission of a
//! stored key is judged, and the history a transaction shows. Pure.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::money::Money;
use super::record::{Body, PayoutStatus, Record, RecordKind, TxnStatus};

/// What a record sent for a key that already has a current version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The same content (whatever its version time): nothing changes.
    Duplicate,
    /// A later version: it supersedes the current one.
    Update,
    /// An earlier version than the current one: logged, ignored.
    Stale,
    /// Other content for the same version (or for a record that has no
    /// versions): a person decides.
    Conflict,
}

/// Judges a record against the key's current version. `same_content` is
/// whether their content hashes agree (the version time is not content).
///
/// Versions are ordered by `source_update_time`. A record without one
/// behaves as records always did: the first content is kept and other
/// content is a conflict. A stored version without a time is older than
/// any timed one: a source that starts sending times is updating it.
pub fn judge(
    same_content: bool,
    sent: Option<DateTime<Utc>>,
    current: Option<DateTime<Utc>>,
) -> Verdict {
    if same_content {
        // The same content changed again later at its source is the latest
        // version: a version older than it that arrives after it must lose
        // to it (judged stale), not win over an earlier time.
        return match (sent, current) {
            (Some(s), Some(c)) if s > c => Verdict::Update,
            _ => Verdict::Duplicate,
        };
    }
    match (sent, current) {
        (Some(s), Some(c)) => match s.cmp(&c) {
            Ordering::Greater => Verdict::Update,
            Ordering::Less => Verdict::Stale,
            Ordering::Equal => Verdict::Conflict,
        },
        (Some(_), None) => Verdict::Update,
        (None, _) => Verdict::Conflict,
    }
}

/// Every stored version of one record, oldest first; the last is current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordHistory {
    pub source_system: String,
    pub kind: RecordKind,
    pub source_id: String,
    pub versions: Vec<RecordVersion>,
}

/// One version as a transaction shows it: when, how much, which status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordVersion {
    pub source_update_time: Option<DateTime<Utc>>,
    pub receive_time: DateTime<Utc>,
    pub event_time: DateTime<Utc>,
    pub amount: Option<Money>,
    pub status: Option<String>,
    pub current: bool,
}

/// One stored version of a record, as storage reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVersion {
    pub record: Record,
    pub receive_time: DateTime<Utc>,
    pub current: bool,
}

impl RecordVersion {
    pub fn of(v: &StoredVersion) -> RecordVersion {
        RecordVersion {
            source_update_time: v.record.source_update_time,
            receive_time: v.receive_time,
            event_time: v.record.event_time,
            amount: v.record.headline_amount(),
            status: status(&v.record).map(str::to_string),
            current: v.current,
        }
    }
}

/// The status a record of this kind carries, where it has one.
pub fn status(r: &Record) -> Option<&'static str> {
    match &r.body {
        Body::Payout(p) => Some(match p.status {
            PayoutStatus::Pending => "pending",
            PayoutStatus::InTransit => "in_transit",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
            PayoutStatus::Canceled => "canceled",
        }),
        Body::StorefrontTransaction(t) => Some(match t.status {
            TxnStatus::Success => "success",
            TxnStatus::Pending => "pending",
            TxnStatus::Failure => "failure",
            TxnStatus::Error => "error",
        }),
        _ => None,
    }
}

/// Groups versions by record key, each record's versions oldest first
/// (by version time, then by arrival), records in key order. Exactly one
/// version of each record is current.
pub fn histories(mut versions: Vec<StoredVersion>) -> Vec<RecordHistory> {
    versions.sort_by(|a, b| {
        (a.record.key(), a.record.source_update_time, a.receive_time).cmp(&(
            b.record.key(),
            b.record.source_update_time,
            b.receive_time,
        ))
    });
    let mut out: Vec<RecordHistory> = vec![];
    for v in &versions {
        let same = out.last().is_some_and(|h| {
            h.source_system == v.record.source_system
                && h.kind == v.record.kind()
                && h.source_id == v.record.source_id
        });
        if !same {
            out.push(RecordHistory {
                source_system: v.record.source_system.clone(),
                kind: v.record.kind(),
                source_id: v.record.source_id.clone(),
                versions: vec![],
            });
        }
        if let Some(h) = out.last_mut() {
            h.versions.push(RecordVersion::of(v));
        }
    }
    debug_assert!(
        out.iter()
            .all(|h| h.versions.iter().filter(|v| v.current).count() <= 1),
        "at most one current version per record"
    );
    out
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::testkit::*;

    #[test]
    fn later_versions_update_earlier_ones_are_stale_and_equal_times_conflict() {
        let t = t0();
        let later = Some(t + Duration::seconds(1));
        assert_eq!(judge(false, later, Some(t)), Verdict::Update);
        assert_eq!(judge(false, Some(t), later), Verdict::Stale);
        assert_eq!(judge(false, Some(t), Some(t)), Verdict::Conflict);
        // The same content at an earlier or equal time is a duplicate; at a
        // later time it is the latest version, so that an older version
        // arriving after it is stale (paid 10:00 then failed 09:00 stays paid).
        assert_eq!(judge(true, later, Some(t)), Verdict::Update);
        assert_eq!(judge(true, Some(t), later), Verdict::Duplicate);
        assert_eq!(judge(true, Some(t), Some(t)), Verdict::Duplicate);
    }

    #[test]
    fn without_a_version_time_the_first_content_is_kept() {
        let t = Some(t0());
        assert_eq!(judge(false, None, None), Verdict::Conflict);
        assert_eq!(judge(false, None, t), Verdict::Conflict);
        assert_eq!(judge(true, None, None), Verdict::Duplicate);
        // A timed version supersedes one stored without a time.
        assert_eq!(judge(false, t, None), Verdict::Update);
    }

    #[test]
    fn histories_group_by_record_and_order_by_version_time() {
        let a = order("100.00", 1).record;
        let mut a2 = a.clone();
        a2.source_update_time = Some(t0() + Duration::hours(1));
        let mut a1 = a.clone();
        a1.source_update_time = Some(t0());
        let v = |record: Record, current| StoredVersion {
            record,
            receive_time: t0(),
            current,
        };
        let h = histories(vec![v(a2, true), v(a1, false)]);
        assert_eq!(h.len(), 1);
        let times: Vec<_> = h[0]
            .versions
            .iter()
            .map(|v| (v.source_update_time, v.current))
            .collect();
        assert_eq!(
            times,
            vec![(Some(t0()), false), (Some(t0() + Duration::hours(1)), true)]
        );
    }
}
