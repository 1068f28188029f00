//! Transaction-level matching: the rules that compare what each system says
//! about one order's money and order of events. Pure; every finding names
//! the systems, ids and figures it compared.
//!
//! `findings` holds what a rule reports, `rules` the rule families (record
//! level, payment, order totals, sequence, pending reasons), each reading
//! the facts of `domain::facts` through one `rules::Context`; `evaluate`
//! runs them in turn and decides the order's state.

#[cfg(test)]
mod checks_tests;
pub mod findings;
#[cfg(test)]
mod ghost_tests;
pub(crate) mod rules;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

use crate::domain::policy::MatchPolicy;
use crate::domain::transaction::{
    Figures, ReconciliationState, StoredRecord, Transaction, merge_with,
};

pub use findings::{ExceptionType, Finding, Observation, record_subject};
pub use rules::Held;
pub use rules::record::record_findings;

// Facts were public here before they had a module of their own.
pub use crate::domain::facts::PaymentFacts;

/// The outcome of matching one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub transaction: Transaction,
    pub findings: Vec<Finding>,
    /// Comparisons held back by a contract's lag, each with its deadline:
    /// re-check the order then.
    pub held: Vec<Held>,
}

impl Evaluation {
    /// When the order must be evaluated again though no record arrives:
    /// the earliest deadline of a held comparison.
    pub fn recheck_at(&self) -> Option<DateTime<Utc>> {
        self.held.iter().map(|h| h.due).min()
    }
}

/// Merges the order's records and runs every rule over them with the
/// default policy (tolerance: one minor unit of the currency).
pub fn evaluate(order_id: &str, records: &[StoredRecord]) -> Evaluation {
    evaluate_with(&MatchPolicy::default(), order_id, records)
}

/// Merges the order's records and runs every rule over them under `policy`.
/// Lags (a refund's propagation) run to the newest record's event time.
pub fn evaluate_with(policy: &MatchPolicy, order_id: &str, records: &[StoredRecord]) -> Evaluation {
    evaluate_as_of(policy, order_id, records, None)
}

/// As `evaluate_with`, with lags run to `as_of` when that is later than
/// the newest record: the domain has no clock, so a caller that re-checks
/// quiet orders passes the time it checks at.
pub fn evaluate_as_of(
    policy: &MatchPolicy,
    order_id: &str,
    records: &[StoredRecord],
    as_of: Option<DateTime<Utc>>,
) -> Evaluation {
    let figures = Figures::of(records);
    let Judgement {
        findings,
        held,
        pending,
    } = judge(policy, order_id, records, &figures, as_of);
    let mut tx = merge_with(order_id, records, figures);
    tx.state = state(&findings, &pending);
    tx.reasons = findings
        .iter()
        .map(|f| f.summary.clone())
        .chain(pending)
        .collect();
    Evaluation {
        transaction: tx,
        findings,
        held,
    }
}

/// What the rules find in one order's records.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Sorted by rule and subject, one per (rule, subject).
    pub findings: Vec<Finding>,
    pub held: Vec<Held>,
    /// What is still expected (held comparisons' reasons among them).
    pub pending: Vec<String>,
}

/// Runs every rule over one order's records and their figures: the one
/// implementation that `evaluate_as_of` (the service) and the offline
/// audit share. The audit skips only the merged view around it
/// (`merge_with`), which no rule reads.
pub fn judge(
    policy: &MatchPolicy,
    order_id: &str,
    records: &[StoredRecord],
    figures: &Figures,
    as_of: Option<DateTime<Utc>>,
) -> Judgement {
    let ctx = rules::Context::new(order_id, records, figures, policy).running_to(as_of);
    let mut findings = rules::record::currency_mismatch(&ctx);
    findings.extend(rules::record::own_figures(&ctx));
    findings.extend(rules::payment::storefront_vs_processor(&ctx));
    findings.extend(rules::payment::processor_vs_journal(&ctx));
    findings.extend(rules::payment::fees_in_several_currencies(&ctx));
    findings.extend(rules::settlement::all(&ctx));
    findings.extend(rules::refund::findings(&ctx));
    findings.extend(rules::units::shipped_more_than_ordered(&ctx));
    findings.extend(rules::totals::all(&ctx));
    findings.extend(rules::sequence::all(&ctx));
    findings.extend(rules::rounding::split_tenders(&ctx));
    findings.extend(rules::fx::rates(&ctx));
    findings.extend(rules::contract_fields::all(&ctx));
    let mut held = rules::refund::held(&ctx);
    held.extend(rules::multicapture::held(&ctx));
    let mut pending = rules::pending::reasons(&ctx);
    pending.extend(held.iter().map(|h| h.reason.clone()));

    findings.sort_by(|a, b| {
        (a.rule.as_str(), a.subject.as_str()).cmp(&(b.rule.as_str(), b.subject.as_str()))
    });
    findings.dedup_by(|a, b| a.rule == b.rule && a.subject == b.subject);
    Judgement {
        findings,
        held,
        pending,
    }
}

/// Findings make an exception; otherwise anything still expected keeps
/// the order pending.
fn state(findings: &[Finding], pending: &[String]) -> ReconciliationState {
    if !findings.is_empty() {
        ReconciliationState::Exception
    } else if pending.is_empty() {
        ReconciliationState::Matched
    } else {
        ReconciliationState::Pending
    }
}
