//! The month scored as `tally audit` sees it: its exports (`export`)
//! audited in process by the audit's own code (`import::audit::run`, the
//! service's matching rules over parsed files), and the audit's exception
//! rows scored against the ground truth per fault kind.
//!
//! The audit sees less than the service: no shipments, invoices, payouts'
//! own records or bank deposits are in the exports, and it matches orders,
//! not payouts. What each fault looks like from there is `expect`; a kind
//! the files cannot show is listed as not detectable, with why, and never
//! counted. A clean month audits to no exception at all: the journal file
//! carries the ERP's credit memos as GL lines, so a refund is uncredited
//! only where the fault kept its memo out.

use std::collections::BTreeMap;
use std::path::Path;

use super::Month;
use super::export;
use super::faults::{Expect, FaultKind, Sig, sig};
use super::score::{self, Score, Seen};
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
/// The refund's credit memo missing from the ERP's GL lines.
const REFUND_NOT_CREDITED: &[Sig] = &[sig(T::RefundNotPropagated, "refund_not_credited", None)];
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
        FaultKind::RefundNotPropagated => raised(REFUND_NOT_CREDITED),
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

/// An audit row as the scorer reads exceptions.
fn seen(r: &crate::import::audit::ExceptionRow) -> Seen {
    let payouts = super::score::payout_ids_in(std::iter::once(&r.summary));
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
    let score = score::score_with(expect, &[], &month.truth, &seen, &checks(month, &seen));
    Ok(Audited { report, score })
}

/// Orders hit by a fault the audit absorbs: no scored exception on them.
fn checks(month: &Month, seen: &[Seen]) -> BTreeMap<String, Result<(), String>> {
    month
        .truth
        .iter()
        .filter(|t| matches!(expect(t.kind), Expect::Absorbed { .. }))
        .map(|t| {
            let on = seen.iter().find(|e| e.order_id == t.order_id);
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

    /// A clean month's exports read back whole, credit memos with the
    /// journals, and the audit raises nothing on them.
    #[test]
    fn a_clean_month_audits_to_no_exception() {
        let d = dir("clean");
        let m = month(2_000, vec![]);
        let a = audit(&d, &m).unwrap();
        let table = a.score.table("clean");
        assert!(a.score.perfect(), "{table}");
        assert!(a.score.unexplained.is_empty(), "{table}");
        assert!(a.score.inherent.is_empty(), "{table}");
        assert_eq!(a.report.orders, 2_000, "{table}");
        assert_eq!(a.report.storefront_only + a.report.processor_only, 0);
        assert!(
            a.report.exceptions.is_empty(),
            "{:?}",
            &a.report.exceptions[..1]
        );
        // Every processor refund has its credit memo among the ERP's rows.
        let kind = |k: fn(&crate::proto::tally::v1::record::Kind) -> bool| {
            m.records
                .iter()
                .filter(|r| r.kind.as_ref().is_some_and(k))
                .map(|r| &r.source_id)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        use crate::proto::tally::v1::record::Kind as K;
        let refunds = kind(|k| {
            matches!(k, K::ProcessorPayment(p)
                if p.r#type == crate::proto::tally::v1::ProcessorPaymentType::Refund as i32)
        });
        assert!(refunds > 50, "{refunds}");
        assert_eq!(kind(|k| matches!(k, K::CreditMemo(_))), refunds);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The fault keeps a refund's credit memo out of the ERP: found on
    /// exactly the faulted orders, and nothing else raised.
    #[test]
    fn an_uncredited_refund_is_found_offline() {
        let d = dir("uncredited");
        let m = month(2_000, vec![(FaultKind::RefundNotPropagated, 0.05)]);
        let a = audit(&d, &m).unwrap();
        let table = a.score.table("uncredited");
        let row = a
            .score
            .rows
            .iter()
            .find(|r| r.kind == FaultKind::RefundNotPropagated)
            .unwrap();
        assert!(row.injected > 0 && row.perfect(), "{table}");
        assert!(
            a.score.perfect() && a.score.unexplained.is_empty(),
            "{table}"
        );
        assert!(
            a.report
                .exceptions
                .iter()
                .all(|e| e.rule == "refund_not_credited"),
            "{table}"
        );
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
