//! Payment rules: one payment as the storefront and the processor saw it,
//! the processor's gross against the ERP journal lines that book it, and
//! fees that cannot join the fee total.

use std::collections::BTreeMap;

use super::Context;
use crate::domain::facts::fees;
use crate::domain::facts::select::{
    is_capture, journal_lines_for, proc_payments, processor_ids, sf_txns,
};
use crate::domain::facts::sum_in;
use crate::domain::matching::findings::{ExceptionType, Finding, Observation, Side, compare};
use crate::domain::money::Money;
use crate::domain::record::{Body, Handoff, PaymentType, ProcessorPayment, Record, TxnKind};

/// Storefront transactions by (refund?, processor reference).
type ByReference<'a> = BTreeMap<(bool, &'a str), (Vec<&'a Record>, Vec<Money>)>;

fn storefront_by_reference<'a>(ctx: &Context<'a>) -> ByReference<'a> {
    let mut by_ref: ByReference<'a> = BTreeMap::new();
    for (r, t) in sf_txns(ctx.records) {
        let refund = t.kind == TxnKind::Refund;
        if let Some(p) = t
            .processor_reference
            .as_deref()
            .filter(|_| refund || is_capture(t.kind))
        {
            let e = by_ref.entry((refund, p)).or_default();
            e.0.push(r);
            e.1.push(t.amount);
        }
    }
    by_ref
}

/// The same payment as the storefront and the processor saw it.
pub(crate) fn storefront_vs_processor(ctx: &Context<'_>) -> Vec<Finding> {
    let currency = ctx.currency;
    let mut findings = vec![];
    for ((refund, reference), (sf, amounts)) in storefront_by_reference(ctx) {
        let matched: Vec<(&Record, Money)> = proc_payments(ctx.records, refund)
            .filter(|(r, _)| processor_ids(r).contains(&reference))
            .map(|(r, p)| (r, p.amount))
            .collect();
        let (Some(sf_sum), Some(pr_sum)) = (
            sum_in(currency, amounts.iter()),
            sum_in(currency, matched.iter().map(|(_, m)| m)),
        ) else {
            continue;
        };
        let prs: Vec<&Record> = matched.iter().map(|(r, _)| *r).collect();
        let (rule, sf_what, pr_what) = if refund {
            (
                "storefront_vs_processor_refund",
                "storefront refund",
                "processor refund",
            )
        } else {
            (
                "storefront_vs_processor_capture",
                "storefront capture",
                "processor capture",
            )
        };
        findings.extend(compare(
            &ctx.policy.tolerance,
            (rule, reference, Handoff::InvoiceToPayment),
            Side::many(sf_what, &sf, sf_sum),
            Side::many(pr_what, &prs, pr_sum),
        ));
    }
    findings
}

/// The processor's gross against the ERP journal lines that book it.
pub(crate) fn processor_vs_journal(ctx: &Context<'_>) -> Vec<Finding> {
    let mut findings = vec![];
    for pr in &ctx.payments {
        let Body::ProcessorPayment(p) = &pr.body else {
            continue;
        };
        if p.payment_type == PaymentType::Refund {
            continue;
        }
        let lines = journal_lines_for(ctx.records, &[pr.source_id.as_str()]);
        let mut journals: Vec<&Record> = lines.iter().map(|(j, _, _)| *j).collect();
        journals.dedup_by(|a, b| std::ptr::eq(*a, *b));
        let Some(sum) = sum_in(Some(p.amount.currency), lines.iter().map(|(_, _, m)| m)) else {
            continue;
        };
        // Two ghost-revenue signatures have types of their own.
        let ghost = super::fee::unallocated(ctx, pr, p, &journals, sum).or_else(|| {
            super::rounding::ledger_lines(ctx, pr, p.amount, lines.len(), &journals, sum)
        });
        if let Some(f) = ghost {
            findings.push(f);
            continue;
        }
        let finding = compare(
            &ctx.policy.tolerance,
            (
                "processor_vs_journal",
                &pr.source_id,
                Handoff::PaymentToCashApplication,
            ),
            Side::one("processor gross", pr, p.amount),
            Side::many("ERP journal debits", &journals, sum),
        );
        findings.extend(finding.map(|f| name_fee_gap(f, pr, p, &journals)));
    }
    findings
}

/// A journal that books the net on the payment's line and the fee on a
/// line of its own falls short of the gross by exactly the fee: say so,
/// and name the fee's line when one of the journals has it.
fn name_fee_gap(
    mut f: Finding,
    pr: &Record,
    p: &ProcessorPayment,
    journals: &[&Record],
) -> Finding {
    let Some(fee) = p.fee.filter(|fee| !fee.amount.is_zero()) else {
        return f;
    };
    if f.difference != Some(fee)
        || f.observations[1]
            .amount
            .is_none_or(|j| j.amount > p.amount.amount)
    {
        return f;
    }
    let fee_line = journals.iter().find_map(|j| match &j.body {
        Body::JournalEntry(e) if e.currency == fee.currency => e
            .lines
            .iter()
            .find(|l| {
                l.debit == fee.amount && l.reference.as_deref() != Some(pr.source_id.as_str())
            })
            .map(|l| (j.source_id.as_str(), l.account.as_str())),
        _ => None,
    });
    f.summary.push_str(&format!(
        "; the gap is the processor's fee of {fee} on {}",
        pr.source_id
    ));
    if let Some((journal, account)) = fee_line {
        f.summary.push_str(&format!(
            ", which journal {journal} books on a line of its own (account {account})"
        ));
    }
    f
}

/// Fees in a second currency that no stated rate converts: the fee total
/// leaves them out, and this says so.
pub(crate) fn fees_in_several_currencies(ctx: &Context<'_>) -> Vec<Finding> {
    let fees = fees(ctx.records);
    let Some(total) = fees.total else {
        return vec![];
    };
    fees.unconverted
        .iter()
        .map(|u| Finding {
            exception_type: ExceptionType::AmountMismatch,
            handoff: Handoff::PaymentToCashApplication,
            rule: "fee_currency_mismatch".into(),
            subject: crate::domain::matching::findings::record_subject(u.record),
            summary: format!(
                "processor fee {} on {} ({}) is not in {}, the other fees' currency, and no exchange rate converts it; it is not in the fee total",
                u.fee, u.record.source_id, u.record.source_system, total.currency
            ),
            observations: vec![Observation::of(u.record, Some(u.fee))],
            difference: None,
        })
        .collect()
}
