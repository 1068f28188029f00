//! The month scored as `tally audit` sees it: its exports (`export`)
//! audited in process by the audit's own code (`import::audit::run`, the
//! service's matching rules over parsed files), and the audit's exception
//! rows scored against the ground truth per fault kind.
//!
//! The audit sees less than the service: no shipments, invoices, credit
//! memos, payouts' own records or bank deposits are in the exports, and it
//! matches orders, not payouts. What each fault looks like from there is
//! `expect`; a kind the files cannot show is listed as not detectable, with
//! why, and never counted. One exception the audit raises on clean data by
//! the same nature (every processor refund reads as uncredited: no credit
//! memos) is counted apart (`INHERENT`).

use std::collections::BTreeMap;
use std::path::Path;

use super::Month;
use super::export;
use super::faults::{Expect, FaultKind, Sig, sig};
use super::score::{self, Inherent, Score, Seen};
use crate::import::Options;
use crate::import::audit::{Input, Report};
use crate::proto::tally::v1::{ExceptionType as T, Handoff as H};

/// The audit's clock: two weeks after the month's last day (every lag has
/// run out), fixed so the same month scores the same on any day.
pub fn as_of() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(super::build::MONTH_START + 44 * super::build::DAY, 0)
        .unwrap_or_default()
}

/// The orders export lists one payment method per order, so a split
/// tender's two-cent shortfall shows as captured short of the total.
const CAPTURED_SHORT: &[Sig] = &[sig(T::AmountMismatch, "order_total_vs_captured", None)];
const FX: &[Sig] = &[sig(T::FxVariance, "fx_rate_variance", None)];
const NONE: &[Sig] = &[];

/// What the offline audit should make of each fault.
pub fn expect(kind: FaultKind) -> Expect {
    let raised = |on_order| Expect::Raised {
        on_order,
        on_payout: NONE,
        consequences: NONE,
    };
    let not = |why| Expect::NotDetectable { why };
    match kind {
        FaultKind::RefundNotPropagated => not(
            "offline: a journal export carries no credit memos, so every refund reads as uncredited, faulted or not",
        ),
        FaultKind::FeeNotJournaled => not(
            "offline: the fault is in a payout's journal, which names only the payout; the audit matches orders, and no order's record carries a payout id",
        ),
        FaultKind::SplitTenderRounding => raised(CAPTURED_SHORT),
        FaultKind::FxRateMismatch => raised(FX),
        FaultKind::DiscountNotMapped => not(
            "offline: the discount is dropped on the ERP's invoices, and no export carries invoices",
        ),
        FaultKind::LateFulfilment => not(
            "offline: no export carries shipments, and files have no time of arrival for a lag to run against",
        ),
        FaultKind::MissingInvoice => not("offline: no export carries invoices"),
        FaultKind::OutOfSequence => Expect::Absorbed {
            why: "an export is history in event order: the order the records reached Tally in is not in it",
            check: "no exception on the order",
        },
        FaultKind::DuplicateResubmission => Expect::Absorbed {
            why: "an export is a snapshot: a record sent twice is one row",
            check: "no exception on the order",
        },
        FaultKind::ChangedResubmission => {
            not("offline: the resent record is an invoice, and no export carries invoices")
        }
        FaultKind::PayoutFailedAfterPaid => not(
            "offline: the failure is a version of the payout record, and the activity report lists no payouts (nor does the audit match them)",
        ),
        FaultKind::DepositNeverArrives => not("offline: there is no bank file"),
    }
}

/// Raised on clean data by what the exports lack.
pub const INHERENT: &[Inherent] = &[Inherent {
    sig: sig(T::RefundNotPropagated, "refund_not_credited", None),
    why: "on every processor refund: a journal export carries no credit memos",
}];

/// An audit row as the scorer reads exceptions.
fn seen(r: &crate::import::audit::ExceptionRow) -> Seen {
    let mut payouts: Vec<String> = r
        .summary
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("po_"))
        .map(str::to_string)
        .collect();
    payouts.sort();
    payouts.dedup();
    Seen {
        exception_type: r.exception_type.into(),
        rule: r.rule.clone(),
        // An audit row names no handoff: every offline shape is matched
        // on type and rule.
        handoff: H::Unspecified,
        order_id: r.order_id.clone(),
        payouts,
        summary: r.summary.clone(),
    }
}

/// The audit's outcome on a month's exports, and its score.
pub struct Audited {
    pub report: Report,
    pub score: Score,
}

/// Writes `month`'s exports into `dir`, audits them as `tally audit` would,
/// and scores the audit's exception rows.
pub fn audit(dir: &Path, month: &Month) -> Result<Audited, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = export::write(dir, month).map_err(|e| format!("{}: {e}", dir.display()))?;
    audit_files(files, month)
}

/// Audits `month`'s exports, already written, and scores the audit.
pub fn audit_files(files: export::Files, month: &Month) -> Result<Audited, String> {
    let input = Input {
        files: files.files,
        options: Options::default(),
    };
    let report = crate::import::audit::run(&input, as_of(), &Default::default());
    if let Some(e) = report.errors.first() {
        return Err(format!(
            "the audit could not read {} rows of the exports; the first: {e}",
            report.errors.len()
        ));
    }
    let seen: Vec<Seen> = report.exceptions.iter().map(seen).collect();
    let score = score::score_with(expect, INHERENT, &month.truth, &seen, &checks(month, &seen));
    Ok(Audited { report, score })
}

/// Orders hit by a fault the audit absorbs: no scored exception on them.
fn checks(month: &Month, seen: &[Seen]) -> BTreeMap<String, Result<(), String>> {
    let inherent = |e: &Seen| INHERENT.iter().any(|i| i.sig.rule == e.rule);
    month
        .truth
        .iter()
        .filter(|t| matches!(expect(t.kind), Expect::Absorbed { .. }))
        .map(|t| {
            let on = seen
                .iter()
                .find(|e| e.order_id == t.order_id && !inherent(e));
            let verdict = match on {
                Some(e) => Err(format!("{} {}", e.rule, e.summary)),
                None => Ok(()),
            };
            (t.order_id.clone(), verdict)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Config, generate};

    fn month(orders: u64, rates: Vec<(FaultKind, f64)>) -> Month {
        generate(&Config {
            orders,
            seed: 4,
            rates,
        })
        .unwrap()
    }

    fn dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tally-offline-{name}-{}", std::process::id()))
    }

    /// A clean month's exports read back whole, and the audit raises
    /// nothing on them but what the exports' nature makes it raise.
    #[test]
    fn a_clean_month_audits_clean_but_for_the_uncredited_refunds() {
        let d = dir("clean");
        let m = month(2_000, vec![]);
        let a = audit(&d, &m).unwrap();
        let table = a.score.table("clean");
        assert!(a.score.perfect(), "{table}");
        assert!(a.score.unexplained.is_empty(), "{table}");
        assert_eq!(a.report.orders, 2_000, "{table}");
        assert_eq!(a.report.storefront_only + a.report.processor_only, 0);
        // Every refund, and only refunds, is the audit's by nature.
        let refunds = m
            .records
            .iter()
            .filter(|r| {
                matches!(&r.kind, Some(crate::proto::tally::v1::record::Kind::ProcessorPayment(p))
                    if p.r#type == crate::proto::tally::v1::ProcessorPaymentType::Refund as i32)
            })
            .map(|r| &r.source_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len() as u64;
        assert!(refunds > 50, "{refunds}");
        assert_eq!(a.score.inherent[0].1, refunds, "{table}");
        let _ = std::fs::remove_dir_all(&d);
    }

    /// Every kind mixed: what the files show is found where planted and
    /// nowhere else; what they cannot show is never counted as found.
    #[test]
    fn every_kind_mixed_is_found_offline_where_the_files_show_it() {
        let d = dir("mixed");
        let rates = FaultKind::ALL
            .iter()
            .map(|k| (*k, if k.per_payout() { 0.1 } else { 0.03 }))
            .collect();
        let m = month(3_000, rates);
        let a = audit(&d, &m).unwrap();
        let table = a.score.table("mixed");
        println!("{table}");
        assert!(a.score.perfect(), "{table}");
        for r in &a.score.rows {
            match expect(r.kind) {
                Expect::Raised { .. } | Expect::Absorbed { .. } => {
                    assert!(r.injected > 0, "{:?} never planted:\n{table}", r.kind);
                    assert!(r.perfect(), "{:?}:\n{table}", r.kind);
                }
                Expect::NotDetectable { .. } | Expect::NoRule { .. } => {
                    assert_eq!((r.found, r.claimed), (0, 0), "{table}")
                }
            }
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
