//! Scoring: Tally's unresolved exceptions against the ground truth, per
//! fault kind. Recall: faults named by an exception of the shape the kind
//! maps to, on the faulted order (or payout). Precision: of the exceptions
//! of that shape, those that name a fault of the kind. Exceptions that no
//! planted fault explains are listed: on a clean month there must be none.
//! Absorbed kinds are not counted as found; what should hold instead
//! (checked by the caller through the API) is scored in their place.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Truth;
use super::faults::{Expect, FaultKind, Sig};
use crate::proto::tally::v1 as pb;

/// One unresolved exception as the API returned it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub exception_type: pb::ExceptionType,
    pub rule: String,
    pub handoff: pb::Handoff,
    /// The order of its transaction; empty when it names none.
    pub order_id: String,
    /// Payout ids it names (observations, summary).
    pub payouts: Vec<String>,
    pub summary: String,
}

/// The payout ids (`po_...`) these texts name, sorted, each once.
pub(crate) fn payout_ids_in<'a>(texts: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut payouts: Vec<String> = texts
        .flat_map(|s| s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("po_"))
        .map(str::to_string)
        .collect();
    payouts.sort();
    payouts.dedup();
    payouts
}

impl Seen {
    pub fn from_pb(e: &pb::Exception) -> Seen {
        let order_id = e
            .transaction
            .rsplit_once("/transactions/")
            .map(|(_, o)| o.to_string())
            .unwrap_or_default();
        let payouts = payout_ids_in(
            e.observations
                .iter()
                .flat_map(|o| o.source_ids.iter())
                .chain(std::iter::once(&e.summary)),
        );
        Seen {
            exception_type: e.r#type(),
            rule: e.rule.clone(),
            handoff: e.handoff(),
            order_id,
            payouts,
            summary: e.summary.clone(),
        }
    }

    fn is(&self, s: &Sig) -> bool {
        self.exception_type == s.exception_type
            && self.rule == s.rule
            && s.handoff.is_none_or(|h| h == self.handoff)
    }

    fn on_payouts(&self, t: &Truth) -> bool {
        self.payouts.iter().any(|p| t.payouts.contains(p))
    }
}

/// What a scorer expects of each fault kind: the service's
/// (`FaultKind::expect`) or the offline audit's (`offline::expect`).
pub type Expectations = fn(FaultKind) -> Expect;

/// Whether `e` names fault `t` as its kind's primary exception.
fn names(how: Expectations, e: &Seen, t: &Truth) -> bool {
    match how(t.kind) {
        Expect::Raised {
            on_order,
            on_payout,
            ..
        } => {
            (!t.order_id.is_empty() && e.order_id == t.order_id && on_order.iter().any(|s| e.is(s)))
                || (t.order_id.is_empty() && e.on_payouts(t) && on_payout.iter().any(|s| e.is(s)))
        }
        Expect::Absorbed { .. } | Expect::NoRule { .. } | Expect::NotDetectable { .. } => false,
    }
}

/// Whether `e` is a consequence `t` explains (on a payout of its order).
fn follows(how: Expectations, e: &Seen, t: &Truth) -> bool {
    match how(t.kind) {
        Expect::Raised { consequences, .. } => {
            e.on_payouts(t) && consequences.iter().any(|s| e.is(s))
        }
        Expect::Absorbed { .. } | Expect::NoRule { .. } | Expect::NotDetectable { .. } => false,
    }
}

fn claims(how: Expectations, kind: FaultKind, e: &Seen) -> bool {
    match how(kind) {
        Expect::Raised {
            on_order,
            on_payout,
            ..
        } => on_order.iter().chain(on_payout).any(|s| e.is(s)),
        Expect::Absorbed { .. } | Expect::NoRule { .. } | Expect::NotDetectable { .. } => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub kind: FaultKind,
    pub injected: u64,
    /// Faults named by an exception (recall's numerator); for an
    /// absorbed kind, faults whose check held.
    pub found: u64,
    /// Exceptions of the kind's shape, and those naming a fault of it.
    pub claimed: u64,
    pub claimed_right: u64,
}

impl Row {
    pub fn recall(&self) -> Option<f64> {
        (self.injected > 0).then(|| self.found as f64 / self.injected as f64)
    }
    pub fn precision(&self) -> Option<f64> {
        (self.claimed > 0).then(|| self.claimed_right as f64 / self.claimed as f64)
    }
    /// Everything planted found, nothing claimed wrongly.
    pub fn perfect(&self) -> bool {
        self.found == self.injected && self.claimed_right == self.claimed
    }
}

/// Exceptions a view raises on clean data by its nature (what it cannot
/// see), with why: listed and counted apart, never scored.
#[derive(Debug, Clone, Copy)]
pub struct Inherent {
    pub sig: Sig,
    pub why: &'static str,
}

#[derive(Debug, Clone)]
pub struct Score {
    pub rows: Vec<Row>,
    /// Exceptions no planted fault explains.
    pub unexplained: Vec<Seen>,
    /// Absorbed faults whose check failed: the order and why.
    pub failed_checks: Vec<(String, String)>,
    /// Exceptions of each inherent shape, set apart.
    pub inherent: Vec<(Inherent, u64)>,
    how: Expectations,
}

/// The service's score: `checks`, for each order hit by an absorbed
/// fault, whether what should hold did (Err: why not).
pub fn score(
    truth: &[Truth],
    seen: &[Seen],
    checks: &BTreeMap<String, Result<(), String>>,
) -> Score {
    score_with(FaultKind::expect, &[], truth, seen, checks)
}

/// A score under `how`'s expectations; exceptions of an `inherent` shape
/// are counted apart and scored nowhere.
pub fn score_with(
    how: Expectations,
    inherent: &[Inherent],
    truth: &[Truth],
    seen: &[Seen],
    checks: &BTreeMap<String, Result<(), String>>,
) -> Score {
    let set_apart = |e: &Seen| inherent.iter().any(|i| e.is(&i.sig));
    let inherent_counts = inherent
        .iter()
        .map(|i| (*i, seen.iter().filter(|e| e.is(&i.sig)).count() as u64))
        .collect();
    let seen: Vec<&Seen> = seen.iter().filter(|e| !set_apart(e)).collect();
    let mut rows = vec![];
    for kind in FaultKind::ALL {
        let faults: Vec<&Truth> = truth.iter().filter(|t| t.kind == kind).collect();
        let found = match how(kind) {
            Expect::Raised { .. } => faults
                .iter()
                .filter(|t| seen.iter().any(|e| names(how, e, t)))
                .count(),
            Expect::NoRule { .. } | Expect::NotDetectable { .. } => 0,
            Expect::Absorbed { .. } => faults
                .iter()
                .filter(|t| checks.get(&t.order_id).is_some_and(|c| c.is_ok()))
                .count(),
        };
        let claimed: Vec<&&Seen> = seen.iter().filter(|e| claims(how, kind, e)).collect();
        let right = claimed
            .iter()
            .filter(|e| faults.iter().any(|t| names(how, e, t)))
            .count();
        rows.push(Row {
            kind,
            injected: faults.len() as u64,
            found: found as u64,
            claimed: claimed.len() as u64,
            claimed_right: right as u64,
        });
    }
    let unexplained = seen
        .iter()
        .filter(|e| !truth.iter().any(|t| names(how, e, t) || follows(how, e, t)))
        .map(|e| (*e).clone())
        .collect();
    let failed_checks = checks
        .iter()
        .filter_map(|(o, c)| c.as_ref().err().map(|e| (o.clone(), e.clone())))
        .collect();
    Score {
        rows,
        unexplained,
        failed_checks,
        inherent: inherent_counts,
        how,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

impl Score {
    /// No unexplained exception, and every kind the view can see perfect.
    pub fn perfect(&self) -> bool {
        self.unexplained.is_empty()
            && self.failed_checks.is_empty()
            && self
                .rows
                .iter()
                .filter(|r| !matches!((self.how)(r.kind), Expect::NotDetectable { .. }))
                .all(Row::perfect)
    }

    pub fn table(&self, title: &str) -> String {
        let mut out = format!(
            "{title}\n{:<26} {:>8} {:>8} {:>9} {:>9}  how\n",
            "fault", "injected", "found", "precision", "recall"
        );
        for r in &self.rows {
            let how = match (self.how)(r.kind) {
                Expect::Raised {
                    on_order,
                    on_payout,
                    ..
                } => on_order
                    .iter()
                    .chain(on_payout)
                    .map(|s| format!("{} {}", s.exception_type.as_str_name(), s.rule))
                    .collect::<Vec<_>>()
                    .join(" | "),
                Expect::Absorbed { why, check } => {
                    format!("absorbed: no exception expected ({why}); checked by: {check}")
                }
                Expect::NoRule { why } => format!("NOT DETECTED: {why}"),
                Expect::NotDetectable { why } => format!("not detectable {why}"),
            };
            // What the view cannot see is neither found nor missed.
            let unseen = matches!((self.how)(r.kind), Expect::NotDetectable { .. });
            let (found, recall) = if unseen {
                ("-".to_string(), "-".to_string())
            } else {
                (r.found.to_string(), pct(r.recall()))
            };
            let _ = writeln!(
                out,
                "{:<26} {:>8} {:>8} {:>9} {:>9}  {how}",
                r.kind.as_str(),
                r.injected,
                found,
                pct(r.precision()),
                recall,
            );
        }
        for (i, n) in &self.inherent {
            let _ = writeln!(
                out,
                "raised by the data's nature, not scored: {n} {} {} ({})",
                i.sig.exception_type.as_str_name(),
                i.sig.rule,
                i.why
            );
        }
        let _ = writeln!(out, "unexplained exceptions: {}", self.unexplained.len());
        for e in self.unexplained.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {} order={} {}",
                e.exception_type.as_str_name(),
                e.rule,
                e.order_id,
                e.summary
            );
        }
        let _ = writeln!(
            out,
            "absorbed faults whose check failed: {}",
            self.failed_checks.len()
        );
        for (order, why) in self.failed_checks.iter().take(20) {
            let _ = writeln!(out, "  order {order}: {why}");
        }
        out
    }
}
