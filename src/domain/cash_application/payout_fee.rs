//! Fees swept in a payout that never reach a journal (seed 004's fee
//! allocation gap, at payout level). The processor pays out gross minus its
//! fees; an ERP integration that books the payout's net (the bank deposit)
//! as sales, with no line for the fees, understates both sales and
//! processing fees by them. FEE_UNALLOCATED, the payout's fees at risk.
//!
//! The order-level twin (a journal booking one payment at its net) is
//! `matching::rules::fee`. A journal that books the gross, or any journal
//! naming the payout with a fee line, is clean.

use crate::domain::matching::findings::{ExceptionType, Finding, Observation};
use crate::domain::money::Money;
use crate::domain::policy::TolerancePolicy;
use crate::domain::record::{Body, Handoff, JournalEntry, Record, RefKind};

/// The exception's rule; its subject is the payout id.
pub const RULE: &str = "cash.payout_fee_unallocated";

/// A payout as cash application bridged it: what it paid (its net) and the
/// fees its balance transactions carried.
#[derive(Debug, Clone, Copy)]
pub struct PayoutFees<'a> {
    /// The payout's current record (its id, system and time are evidence).
    pub payout: &'a Record,
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
}

/// The payout ids a journal may name: its references of kind payout and
/// every line reference (a line names a payout, a charge, an invoice alike;
/// which are payouts is known only to the payouts table). Empty for other
/// records.
pub fn named_payouts(r: &Record) -> Vec<String> {
    let Body::JournalEntry(e) = &r.body else {
        return vec![];
    };
    let mut ids: Vec<String> = r.ids_of(RefKind::Payout).map(str::to_string).collect();
    ids.extend(e.lines.iter().filter_map(|l| l.reference.clone()));
    ids.sort();
    ids.dedup();
    ids
}

/// Whether journal `r` names `payout_id`, by reference or on a line.
pub fn names_payout(r: &Record, payout_id: &str) -> bool {
    match &r.body {
        Body::JournalEntry(e) => {
            r.ids_of(RefKind::Payout).any(|id| id == payout_id)
                || e.lines
                    .iter()
                    .any(|l| l.reference.as_deref() == Some(payout_id))
        }
        _ => false,
    }
}

/// The finding when a journal among `journals` (current versions) books the
/// payout at its net and none of the journals naming the payout has a line
/// for its fees: a debit to a fees account, or a debit of the fees' amount.
pub fn unallocated(
    p: &PayoutFees<'_>,
    journals: &[&Record],
    tolerance: &TolerancePolicy,
) -> Option<Finding> {
    let (fees, net) = (p.fees, p.net);
    if fees.currency != net.currency || fees.amount <= rust_decimal::Decimal::ZERO {
        return None;
    }
    let payout_id = p.payout.source_id.as_str();
    let naming: Vec<(&Record, &JournalEntry)> = journals
        .iter()
        .filter(|r| names_payout(r, payout_id))
        .filter_map(|r| match &r.body {
            Body::JournalEntry(e) if e.currency == net.currency => Some((*r, e)),
            _ => None,
        })
        .collect();
    if naming.iter().any(|(_, e)| has_fee_line(e, fees, tolerance)) {
        return None;
    }
    let at_net: Vec<&Record> = naming
        .iter()
        .filter(|(_, e)| {
            let booked = e.checked_debits().map(|d| Money::new(d, net.currency));
            booked.is_some_and(|b| tolerance.agree(&b, &net))
        })
        .map(|(r, _)| *r)
        .collect();
    if at_net.is_empty() {
        return None;
    }
    let ids: Vec<&str> = at_net.iter().map(|r| r.source_id.as_str()).collect();
    Some(Finding {
        exception_type: ExceptionType::FeeUnallocated,
        handoff: Handoff::PaymentToCashApplication,
        rule: RULE.into(),
        subject: payout_id.to_string(),
        summary: format!(
            "ERP journal {} ({}) books payout {payout_id} ({}) at its net of {net}; the payout's gross is {}, and its fees of {fees} have no journal line and never reach processing fees",
            ids.join(","),
            at_net[0].source_system,
            p.payout.source_system,
            p.gross,
        ),
        observations: vec![
            Observation::of(p.payout, Some(net)),
            Observation::of_many(&at_net, Some(net)),
        ],
        difference: Some(fees),
    })
}

/// A debit line that carries fees: to an account named for fees
/// ("6100 Processing Fees", "Stripe Fees"), or of the fees' amount.
fn has_fee_line(e: &JournalEntry, fees: Money, tolerance: &TolerancePolicy) -> bool {
    e.lines.iter().any(|l| {
        !l.debit.is_zero()
            && (l.account.to_lowercase().contains("fee")
                || tolerance.agree(&Money::new(l.debit, e.currency), &fees))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::test_support::m;
    use crate::domain::record::{JournalLine, Reference};
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    fn payout() -> Record {
        let mut r = crate::domain::testkit::every_kind()
            .into_iter()
            .find(|r| matches!(r.body, Body::Payout(_)))
            .expect("a payout sample");
        r.source_id = "po_1".into();
        r.source_system = "stripe".into();
        r
    }

    fn line(account: &str, debit: &str, credit: &str, reference: Option<&str>) -> JournalLine {
        JournalLine {
            account: account.into(),
            debit: debit.parse::<Decimal>().unwrap(),
            credit: credit.parse::<Decimal>().unwrap(),
            memo: String::new(),
            name: String::new(),
            reference: reference.map(str::to_string),
        }
    }

    fn journal(id: &str, refs: &[&str], lines: Vec<JournalLine>) -> Record {
        let entry = JournalEntry::new(
            m("0 USD").currency,
            None,
            "Nov 2026".into(),
            "US".into(),
            String::new(),
            lines,
        )
        .unwrap();
        Record {
            source_id: id.into(),
            source_system: "netsuite".into(),
            order_id: None,
            references: refs
                .iter()
                .map(|id| Reference {
                    kind: RefKind::Payout,
                    id: id.to_string(),
                })
                .collect(),
            event_time: chrono::Utc.with_ymd_and_hms(2026, 11, 5, 9, 0, 0).unwrap(),
            source_update_time: None,
            body: Body::JournalEntry(entry),
        }
    }

    fn fees(p: &Record) -> PayoutFees<'_> {
        PayoutFees {
            payout: p,
            gross: m("150.00 USD"),
            fees: m("4.95 USD"),
            net: m("145.05 USD"),
        }
    }

    fn net_as_sales(id: &str, line_ref: Option<&str>, refs: &[&str]) -> Record {
        journal(
            id,
            refs,
            vec![
                line("1000 Operating Bank", "145.05", "0", line_ref),
                line("4000 Shopify Sales", "0", "145.05", None),
            ],
        )
    }

    #[test]
    fn a_journal_booking_the_payout_net_as_sales_leaves_the_fees_unallocated() {
        let p = payout();
        let tol = TolerancePolicy::default();
        for je in [
            net_as_sales("JE-1", Some("po_1"), &[]),
            net_as_sales("JE-1", None, &["po_1"]),
        ] {
            let f = unallocated(&fees(&p), &[&je], &tol).expect("raised");
            assert_eq!(f.exception_type, ExceptionType::FeeUnallocated);
            assert_eq!(f.handoff, Handoff::PaymentToCashApplication);
            assert_eq!((f.rule.as_str(), f.subject.as_str()), (RULE, "po_1"));
            assert_eq!(f.difference, Some(m("4.95 USD")));
            assert_eq!(f.observations[1].source_ids, vec!["JE-1".to_string()]);
            assert_eq!(f.observations[1].amount, Some(m("145.05 USD")));
            assert!(f.summary.contains("4.95 USD") && f.summary.contains("150.00 USD"));
        }
    }

    #[test]
    fn silent_with_a_fee_line_a_gross_booking_or_a_fee_journal() {
        let p = payout();
        let tol = TolerancePolicy::default();
        let with_fee_account = journal(
            "JE-1",
            &["po_1"],
            vec![
                line("1000 Operating Bank", "145.05", "0", None),
                line("6100 Processing Fees", "4.95", "0", None),
                line("4000 Shopify Sales", "0", "150.00", None),
            ],
        );
        assert_eq!(unallocated(&fees(&p), &[&with_fee_account], &tol), None);
        let gross = journal(
            "JE-1",
            &["po_1"],
            vec![
                line("1200 Stripe Clearing", "150.00", "0", None),
                line("4000 Shopify Sales", "0", "150.00", None),
            ],
        );
        assert_eq!(unallocated(&fees(&p), &[&gross], &tol), None);
        // The net booking plus a separate journal sweeping the fees.
        let net = net_as_sales("JE-1", Some("po_1"), &[]);
        let sweep = journal(
            "JE-2",
            &[],
            vec![
                line("6900 Bank Charges", "4.95", "0", Some("po_1")),
                line("4000 Shopify Sales", "0", "4.95", None),
            ],
        );
        assert_eq!(unallocated(&fees(&p), &[&net, &sweep], &tol), None);
        // A fee journal for another payout does not count.
        let elsewhere = journal(
            "JE-3",
            &["po_2"],
            vec![
                line("6100 Processing Fees", "4.95", "0", None),
                line("1200 Stripe Clearing", "0", "4.95", None),
            ],
        );
        assert!(unallocated(&fees(&p), &[&net, &elsewhere], &tol).is_some());
    }

    #[test]
    fn silent_without_fees_or_without_a_journal_naming_the_payout() {
        let p = payout();
        let tol = TolerancePolicy::default();
        let net = net_as_sales("JE-1", Some("po_1"), &[]);
        let mut no_fees = fees(&p);
        no_fees.fees = m("0 USD");
        assert_eq!(unallocated(&no_fees, &[&net], &tol), None);
        let other = net_as_sales("JE-1", Some("po_9"), &[]);
        assert_eq!(unallocated(&fees(&p), &[&other], &tol), None);
        assert_eq!(unallocated(&fees(&p), &[], &tol), None);
    }

    #[test]
    fn the_payout_ids_a_journal_may_name() {
        let je = net_as_sales("JE-1", Some("ch_1"), &["po_1"]);
        assert_eq!(named_payouts(&je), vec!["ch_1", "po_1"]);
        assert!(names_payout(&je, "po_1") && names_payout(&je, "ch_1"));
        assert!(named_payouts(&payout()).is_empty());
    }
}
