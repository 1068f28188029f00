//! What the rules report: findings, the observations they compared, and
//! the builders every rule shares (a comparison of two figures, an order
//! of events, a record whose own figures do not add up).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::money::Money;
use crate::domain::policy::TolerancePolicy;
use crate::domain::record::{Handoff, Record, RecordKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionType {
    AmountMismatch,
    OutOfSequence,
    RecordConflict,
    ValidationFailed,
    LateHandoff,
    NotPropagated,
    /// Ghost revenue (seed 004): a refund that never reached the processor
    /// or the ERP's credit memo.
    RefundNotPropagated,
    /// Ghost revenue: processor fees that never reached a journal.
    FeeUnallocated,
    /// Ghost revenue: parts that each round within policy but add up.
    RoundingVariance,
    /// Ghost revenue: the processor's and the ERP's rates disagree.
    FxVariance,
    /// Ghost revenue: a storefront discount the ERP books as full price.
    DiscountUnmapped,
}

impl ExceptionType {
    pub const ALL: [ExceptionType; 11] = [
        ExceptionType::AmountMismatch,
        ExceptionType::OutOfSequence,
        ExceptionType::RecordConflict,
        ExceptionType::ValidationFailed,
        ExceptionType::LateHandoff,
        ExceptionType::NotPropagated,
        ExceptionType::RefundNotPropagated,
        ExceptionType::FeeUnallocated,
        ExceptionType::RoundingVariance,
        ExceptionType::FxVariance,
        ExceptionType::DiscountUnmapped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionType::AmountMismatch => "amount_mismatch",
            ExceptionType::OutOfSequence => "out_of_sequence",
            ExceptionType::RecordConflict => "record_conflict",
            ExceptionType::ValidationFailed => "validation_failed",
            ExceptionType::LateHandoff => "late_handoff",
            ExceptionType::NotPropagated => "not_propagated",
            ExceptionType::RefundNotPropagated => "refund_not_propagated",
            ExceptionType::FeeUnallocated => "fee_unallocated",
            ExceptionType::RoundingVariance => "rounding_variance",
            ExceptionType::FxVariance => "fx_variance",
            ExceptionType::DiscountUnmapped => "discount_unmapped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Types the matcher re-derives on every merge, and so may clear by
    /// itself when later records settle the question. A conflict needs a
    /// person; a late handoff is raised by the deadline sweeper and cleared
    /// when its record arrives (`app::handoffs`), not by the matcher.
    pub fn is_derived(self) -> bool {
        !matches!(
            self,
            ExceptionType::RecordConflict | ExceptionType::LateHandoff
        )
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub source_system: String,
    pub kind: RecordKind,
    pub source_ids: Vec<String>,
    pub amount: Option<Money>,
    pub event_time: Option<DateTime<Utc>>,
}

impl Observation {
    /// What one record says.
    pub fn of(r: &Record, amount: Option<Money>) -> Observation {
        Observation::of_many(&[r], amount)
    }

    /// What several records of one system and kind say together; at least
    /// one record.
    pub fn of_many(records: &[&Record], amount: Option<Money>) -> Observation {
        debug_assert!(!records.is_empty(), "an observation observes something");
        Observation {
            source_system: records
                .first()
                .map(|r| r.source_system.clone())
                .unwrap_or_default(),
            kind: records
                .first()
                .map(|r| r.kind())
                .unwrap_or(RecordKind::StorefrontOrder),
            source_ids: records.iter().map(|r| r.source_id.clone()).collect(),
            amount,
            event_time: records.iter().map(|r| r.event_time).min(),
        }
    }

    fn describe(&self) -> String {
        format!("{} {}", self.source_system, self.source_ids.join(","))
    }
}

/// Something the rules found wrong with one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub exception_type: ExceptionType,
    pub handoff: Handoff,
    pub rule: String,
    /// Distinguishes findings of one rule on one order (a charge id, a
    /// fulfilment id); part of the exception's identity.
    pub subject: String,
    pub summary: String,
    pub observations: Vec<Observation>,
    pub difference: Option<Money>,
}

/// Names one record in a finding's subject: source ids are unique only
/// within their system and kind.
pub fn record_subject(r: &Record) -> String {
    format!("{}/{}/{}", r.source_system, r.kind().as_str(), r.source_id)
}

/// One figure as one side saw it: what it is called, who said it, how much.
/// The records are kept, not their observation: most comparisons agree,
/// and an observation (the records' system and ids as strings) is built
/// only for a finding.
pub(crate) struct Side<'a> {
    pub what: &'a str,
    seen: Seen<'a>,
    pub figure: Money,
}

enum Seen<'a> {
    One(&'a Record),
    /// At least one record.
    Many(&'a [&'a Record]),
}

impl<'a> Side<'a> {
    /// What one record says.
    pub fn one(what: &'a str, record: &'a Record, figure: Money) -> Self {
        Side {
            what,
            seen: Seen::One(record),
            figure,
        }
    }

    /// What several records of one system and kind say together.
    pub fn many(what: &'a str, records: &'a [&'a Record], figure: Money) -> Self {
        Side {
            what,
            seen: Seen::Many(records),
            figure,
        }
    }

    fn observation(&self) -> Observation {
        match self.seen {
            Seen::One(r) => Observation::of(r, Some(self.figure)),
            Seen::Many(rs) => Observation::of_many(rs, Some(self.figure)),
        }
    }
}

/// A finding when `a` and `b` disagree beyond the tolerance, or are in
/// two currencies.
pub(crate) fn compare(
    tolerance: &TolerancePolicy,
    (rule, subject, handoff): (&str, &str, Handoff),
    a: Side<'_>,
    b: Side<'_>,
) -> Option<Finding> {
    if tolerance.agree(&a.figure, &b.figure) {
        return None;
    }
    let (a_seen, b_seen) = (a.observation(), b.observation());
    let (oa, ob) = (a_seen.describe(), b_seen.describe());
    let difference = a.figure.abs_diff(&b.figure);
    let summary = match difference {
        Some(d) => format!(
            "{} {} ({oa}) differs from {} {} ({ob}) by {d}",
            a.what, a.figure, b.what, b.figure
        ),
        None => format!(
            "{} is in {} ({oa}) but {} is in {} ({ob})",
            a.what, a.figure.currency, b.what, b.figure.currency
        ),
    };
    Some(Finding {
        exception_type: ExceptionType::AmountMismatch,
        handoff,
        rule: rule.to_string(),
        subject: subject.to_string(),
        summary,
        observations: vec![a_seen, b_seen],
        difference,
    })
}

/// A finding when `later` is dated before `earlier`, which it depends on.
pub(crate) fn sequence(
    (rule, handoff): (&str, Handoff),
    (later, what_later): (&Record, &str),
    (earlier, what_earlier): (&Record, &str),
) -> Option<Finding> {
    if later.event_time >= earlier.event_time {
        return None;
    }
    Some(Finding {
        exception_type: ExceptionType::OutOfSequence,
        handoff,
        rule: rule.to_string(),
        subject: record_subject(later),
        summary: format!(
            "{what_later} {} ({}) is dated {}, before {what_earlier} {} ({}) at {}",
            later.source_id,
            later.source_system,
            later.event_time.to_rfc3339(),
            earlier.source_id,
            earlier.source_system,
            earlier.event_time.to_rfc3339()
        ),
        observations: vec![Observation::of(later, None), Observation::of(earlier, None)],
        difference: None,
    })
}

/// A record's own parts, as summed: one figure, or money in several
/// currencies that has no one sum.
pub(crate) enum Parts {
    Sum(Money),
    Mixed(String),
    /// A part or their sum is beyond what an exact decimal holds.
    Overflow,
}

/// A finding when a record states a figure its own parts do not make.
pub(crate) fn inconsistent(
    tolerance: &TolerancePolicy,
    (rule, handoff): (&str, Handoff),
    r: &Record,
    what: &str,
    stated: Money,
    parts: Parts,
) -> Option<Finding> {
    // Most records add up: the words are written only for one that does not.
    if let Parts::Sum(computed) = &parts
        && tolerance.agree(&stated, computed)
    {
        return None;
    }
    let head = format!(
        "{} {} ({}): {what}",
        r.kind().as_str(),
        r.source_id,
        r.source_system
    );
    let (summary, difference) = match parts {
        Parts::Sum(computed) => (
            format!("{head}: states {stated}, its parts sum to {computed}"),
            stated.abs_diff(&computed),
        ),
        Parts::Mixed(parts) => (
            format!(
                "{head}: states {stated}, its parts are in several currencies ({parts}) and cannot be summed without a rate"
            ),
            None,
        ),
        Parts::Overflow => (
            format!("{head}: states {stated}, its parts overflow an exact decimal"),
            None,
        ),
    };
    Some(Finding {
        exception_type: ExceptionType::ValidationFailed,
        handoff,
        rule: rule.to_string(),
        subject: record_subject(r),
        summary,
        observations: vec![Observation::of(r, Some(stated))],
        difference,
    })
}
