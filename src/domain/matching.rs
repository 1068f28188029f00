//! Transaction-level matching: the rules that compare what each system says
//! about one order's money and order of events. Pure; every finding names
//! the systems, ids and figures it compared.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::currency::Currency;
use super::money::{Money, tolerance};
use super::record::{
    Body, Handoff, PaymentType, Record, RecordKind, RefKind, TenderType, TxnKind, TxnStatus,
};
use super::transaction::{
    ReconciliationState, StoredRecord, Transaction, current_order, is_capture, merge, sum_in,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionType {
    AmountMismatch,
    OutOfSequence,
    RecordConflict,
    ValidationFailed,
    LateHandoff,
    NotPropagated,
}

impl ExceptionType {
    pub const ALL: [ExceptionType; 6] = [
        ExceptionType::AmountMismatch,
        ExceptionType::OutOfSequence,
        ExceptionType::RecordConflict,
        ExceptionType::ValidationFailed,
        ExceptionType::LateHandoff,
        ExceptionType::NotPropagated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionType::AmountMismatch => "amount_mismatch",
            ExceptionType::OutOfSequence => "out_of_sequence",
            ExceptionType::RecordConflict => "record_conflict",
            ExceptionType::ValidationFailed => "validation_failed",
            ExceptionType::LateHandoff => "late_handoff",
            ExceptionType::NotPropagated => "not_propagated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Types the matcher re-derives on every merge, and so may clear by
    /// itself when later records settle the question. A conflict needs a
    /// person.
    pub fn is_derived(self) -> bool {
        !matches!(self, ExceptionType::RecordConflict)
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

/// The outcome of matching one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub transaction: Transaction,
    pub findings: Vec<Finding>,
}

/// Payment figures, each payment counted once.
#[derive(Debug, Clone, Default)]
pub struct PaymentFacts {
    pub storefront_captured: Option<Money>,
    pub storefront_refunded: Option<Money>,
    pub processor_captured: Option<Money>,
    pub processor_refunded: Option<Money>,
    /// The processor's figure where it reported a payment, the storefront's
    /// otherwise; plus, when the storefront sent no captures at all, the
    /// order's non-card tenders, which settle at checkout without a
    /// processor.
    pub captured: Option<Money>,
    pub journaled: Option<Money>,
}

fn processor_ids(r: &Record) -> Vec<&str> {
    let mut v = vec![r.source_id.as_str()];
    if let Body::ProcessorPayment(p) = &r.body {
        v.extend(p.charge_id.as_deref());
        v.extend(p.payment_intent_id.as_deref());
    }
    v
}

fn sf_txns(
    records: &[StoredRecord],
) -> impl Iterator<Item = (&Record, &super::record::StorefrontTransaction)> {
    records.iter().filter_map(|r| match &r.record.body {
        Body::StorefrontTransaction(t) if t.status == TxnStatus::Success => Some((&r.record, t)),
        _ => None,
    })
}

fn proc_payments(
    records: &[StoredRecord],
    refunds: bool,
) -> impl Iterator<Item = (&Record, &super::record::ProcessorPayment)> {
    records.iter().filter_map(move |r| match &r.record.body {
        Body::ProcessorPayment(p) if (p.payment_type == PaymentType::Refund) == refunds => {
            Some((&r.record, p))
        }
        _ => None,
    })
}

impl PaymentFacts {
    pub fn gather(records: &[StoredRecord], currency: Option<Currency>) -> PaymentFacts {
        let sf_caps: Vec<_> = sf_txns(records)
            .filter(|(_, t)| is_capture(t.kind))
            .collect();
        let sf_refs: Vec<_> = sf_txns(records)
            .filter(|(_, t)| t.kind == TxnKind::Refund)
            .collect();
        let pc: Vec<_> = proc_payments(records, false).collect();
        let pr: Vec<_> = proc_payments(records, true).collect();

        let known: Vec<&str> = pc.iter().flat_map(|(r, _)| processor_ids(r)).collect();
        let mut captured_items: Vec<Money> = pc.iter().map(|(_, p)| p.amount).collect();
        captured_items.extend(
            sf_caps
                .iter()
                .filter(|(_, t)| {
                    t.processor_reference
                        .as_deref()
                        .is_none_or(|p| !known.contains(&p))
                })
                .map(|(_, t)| t.amount),
        );
        if sf_caps.is_empty() {
            if let Some((_, o)) = current_order(records) {
                captured_items.extend(
                    o.tenders
                        .iter()
                        .filter(|t| {
                            t.tender_type != TenderType::Card && t.processor_reference.is_none()
                        })
                        .map(|t| t.amount),
                );
            }
        }
        let journal_debits: Vec<Money> = journal_lines_for(records, &known)
            .into_iter()
            .map(|(_, _, m)| m)
            .collect();

        PaymentFacts {
            storefront_captured: sum_in(currency, sf_caps.iter().map(|(_, t)| &t.amount)),
            storefront_refunded: sum_in(currency, sf_refs.iter().map(|(_, t)| &t.amount)),
            processor_captured: sum_in(currency, pc.iter().map(|(_, p)| &p.amount)),
            processor_refunded: sum_in(currency, pr.iter().map(|(_, p)| &p.amount)),
            captured: if pc.is_empty() && sf_caps.is_empty() {
                None
            } else {
                sum_in(currency, captured_items.iter())
            },
            journaled: sum_in(currency, journal_debits.iter()),
        }
    }
}

/// Debit lines of the order's journals that book one of `ids`, as
/// (journal record, referenced id, debit).
fn journal_lines_for<'a>(
    records: &'a [StoredRecord],
    ids: &[&str],
) -> Vec<(&'a Record, String, Money)> {
    let mut out = vec![];
    for sr in records {
        if let Body::JournalEntry(j) = &sr.record.body {
            for l in &j.lines {
                if let Some(reference) = &l.reference {
                    if ids.contains(&reference.as_str()) && !l.debit.is_zero() {
                        out.push((
                            &sr.record,
                            reference.clone(),
                            Money::new(l.debit, j.currency),
                        ));
                    }
                }
            }
        }
    }
    out
}

fn obs(r: &Record, amount: Option<Money>) -> Observation {
    Observation {
        source_system: r.source_system.clone(),
        kind: r.kind(),
        source_ids: vec![r.source_id.clone()],
        amount,
        event_time: Some(r.event_time),
    }
}

fn obs_many(records: &[&Record], amount: Option<Money>) -> Observation {
    let first = records[0];
    Observation {
        source_system: first.source_system.clone(),
        kind: first.kind(),
        source_ids: records.iter().map(|r| r.source_id.clone()).collect(),
        amount,
        event_time: records.iter().map(|r| r.event_time).min(),
    }
}

/// A finding when `a` and `b` differ by more than 0.01.
fn compare(
    rule: &str,
    subject: &str,
    handoff: Handoff,
    what_a: &str,
    a: (Observation, Money),
    what_b: &str,
    b: (Observation, Money),
) -> Option<Finding> {
    if a.1.currency == b.1.currency && (a.1.amount - b.1.amount).abs() <= tolerance() {
        return None;
    }
    let (difference, summary) = if a.1.currency == b.1.currency {
        let d = Money::new((a.1.amount - b.1.amount).abs(), a.1.currency);
        (
            Some(d),
            format!(
                "{what_a} {} ({} {}) differs from {what_b} {} ({} {}) by {d}",
                a.1,
                a.0.source_system,
                a.0.source_ids.join(","),
                b.1,
                b.0.source_system,
                b.0.source_ids.join(",")
            ),
        )
    } else {
        (
            None,
            format!(
                "{what_a} is in {} ({} {}) but {what_b} is in {} ({} {})",
                a.1.currency,
                a.0.source_system,
                a.0.source_ids.join(","),
                b.1.currency,
                b.0.source_system,
                b.0.source_ids.join(",")
            ),
        )
    };
    Some(Finding {
        exception_type: ExceptionType::AmountMismatch,
        handoff,
        rule: rule.to_string(),
        subject: subject.to_string(),
        summary,
        observations: vec![a.0, b.0],
        difference,
    })
}

fn sequence(
    rule: &str,
    handoff: Handoff,
    later: &Record,
    what_later: &str,
    earlier: &Record,
    what_earlier: &str,
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
            "{what_later} {} ({}) is dated {} , before {what_earlier} {} ({}) at {}",
            later.source_id,
            later.source_system,
            later.event_time.to_rfc3339(),
            earlier.source_id,
            earlier.source_system,
            earlier.event_time.to_rfc3339()
        )
        .replace(" ,", ","),
        observations: vec![obs(later, None), obs(earlier, None)],
        difference: None,
    })
}

fn inconsistent(
    rule: &str,
    handoff: Handoff,
    r: &Record,
    what: &str,
    stated: Money,
    computed: Money,
) -> Option<Finding> {
    if stated.currency == computed.currency
        && (stated.amount - computed.amount).abs() <= tolerance()
    {
        return None;
    }
    Some(Finding {
        exception_type: ExceptionType::ValidationFailed,
        handoff,
        rule: rule.to_string(),
        subject: record_subject(r),
        summary: format!(
            "{} {} ({}): {what}: states {stated}, its parts sum to {computed}",
            r.kind().as_str(),
            r.source_id,
            r.source_system
        ),
        observations: vec![obs(r, Some(stated))],
        difference: (stated.currency == computed.currency)
            .then(|| Money::new((stated.amount - computed.amount).abs(), stated.currency)),
    })
}

/// Checks one record against its own figures (tenders that do not sum to
/// the total, a net that is not amount - fee). A record never changes, so
/// neither do these; they hold whether or not the record's order is known.
pub fn record_findings(r: &Record) -> Vec<Finding> {
    let mut findings = vec![];
    match &r.body {
        Body::StorefrontOrder(o) => {
            if !o.tenders.is_empty() {
                if let Some(sum) =
                    sum_in(Some(o.total.currency), o.tenders.iter().map(|t| &t.amount))
                {
                    findings.extend(inconsistent(
                        "order_tenders_sum",
                        Handoff::OrderToFulfillment,
                        r,
                        "tenders",
                        o.total,
                        sum,
                    ));
                }
            }
            if let Some(sub) = o.subtotal {
                let zero = Money::zero(o.total.currency);
                let parts = sub.amount - o.total_discount.unwrap_or(zero).amount
                    + o.total_tax.unwrap_or(zero).amount
                    + o.total_shipping.unwrap_or(zero).amount;
                findings.extend(inconsistent(
                    "order_components_sum",
                    Handoff::OrderToFulfillment,
                    r,
                    "subtotal - discount + tax + shipping",
                    o.total,
                    Money::new(parts, o.total.currency),
                ));
                // Lines priced at unit x quantity should make the subtotal.
                let priced: Option<Vec<Money>> = o
                    .line_items
                    .iter()
                    .map(|l| {
                        l.unit_price
                            .map(|p| Money::new(p.amount * Decimal::from(l.quantity), p.currency))
                    })
                    .collect();
                if let Some(lines) = priced.filter(|l| !l.is_empty()) {
                    if let Some(sum) = sum_in(Some(sub.currency), lines.iter()) {
                        findings.extend(inconsistent(
                            "order_lines_sum",
                            Handoff::OrderToFulfillment,
                            r,
                            "line items (unit price x quantity) against the subtotal",
                            sub,
                            sum,
                        ));
                    }
                }
            }
            if let (Some(td), false) = (o.total_discount, o.discounts.is_empty()) {
                if let Some(sum) = sum_in(Some(td.currency), o.discounts.iter().map(|d| &d.amount))
                {
                    findings.extend(inconsistent(
                        "order_discounts_sum",
                        Handoff::OrderToFulfillment,
                        r,
                        "discounts",
                        td,
                        sum,
                    ));
                }
            }
        }
        Body::BalanceTransaction(b) => {
            if let Some(net) = b.net {
                let fee = b.fee.map(|f| f.amount).unwrap_or_default();
                findings.extend(inconsistent(
                    "balance_transaction_net",
                    Handoff::PaymentToCashApplication,
                    r,
                    "net = amount - fee",
                    net,
                    Money::new(b.amount.amount - fee, b.amount.currency),
                ));
            }
        }
        _ => {}
    }
    findings
}

/// Names one record in a finding's subject: source ids are unique only
/// within their system and kind.
pub fn record_subject(r: &Record) -> String {
    format!("{}/{}/{}", r.source_system, r.kind().as_str(), r.source_id)
}

/// Merges the order's records and runs every rule over them.
pub fn evaluate(order_id: &str, records: &[StoredRecord]) -> Evaluation {
    let mut tx = merge(order_id, records);
    let mut findings = vec![];
    let mut pending = vec![];
    let currency = tx.currency;
    let order = current_order(records);

    let invoices: Vec<&Record> = kind_records(records, RecordKind::Invoice);
    let credit_memos: Vec<&Record> = kind_records(records, RecordKind::CreditMemo);
    let fulfilments: Vec<&Record> = kind_records(records, RecordKind::Fulfillment);
    let payments: Vec<&Record> = kind_records(records, RecordKind::ProcessorPayment);

    // Anything in another currency than the transaction's cannot be summed
    // with it: say so instead of dropping it.
    if let Some(c) = currency {
        for sr in records {
            if let Some(m) = sr.record.headline_amount() {
                // Settlement-side records and the ERP's books may rightly be
                // in the settlement or base currency; the rest describe the
                // customer's money and must be in the order's.
                let foreign_ok = matches!(
                    sr.record.body,
                    Body::BalanceTransaction(_)
                        | Body::Payout(_)
                        | Body::BankDeposit(_)
                        | Body::JournalEntry(_)
                );
                if m.currency != c && !foreign_ok {
                    findings.push(Finding {
                        exception_type: ExceptionType::AmountMismatch,
                        handoff: sr.record.kind().handoff(),
                        rule: "currency_mismatch".into(),
                        subject: record_subject(&sr.record),
                        summary: format!(
                            "{} {} ({}) is in {}, the transaction is in {c}",
                            sr.record.kind().as_str(),
                            sr.record.source_id,
                            sr.record.source_system,
                            m.currency
                        ),
                        observations: vec![obs(&sr.record, Some(m))],
                        difference: None,
                    });
                }
            }
        }
    }

    // Records whose own figures do not add up: the current order, and any
    // balance transaction tied to this order.
    if let Some((r, _)) = order {
        findings.extend(record_findings(r));
    }
    for sr in records {
        if matches!(sr.record.body, Body::BalanceTransaction(_)) {
            findings.extend(record_findings(&sr.record));
        }
    }

    // The same payment as the storefront and the processor saw it.
    let mut by_ref: BTreeMap<String, (Vec<&Record>, Vec<Money>, bool)> = BTreeMap::new();
    for (r, t) in sf_txns(records) {
        if let Some(p) = &t.processor_reference {
            if is_capture(t.kind) || t.kind == TxnKind::Refund {
                let e = by_ref
                    .entry(format!("{}:{p}", t.kind == TxnKind::Refund))
                    .or_default();
                e.0.push(r);
                e.1.push(t.amount);
                e.2 = t.kind == TxnKind::Refund;
            }
        }
    }
    for (key, (sf, amounts, refund)) in &by_ref {
        let reference = key.split_once(':').map(|(_, p)| p).unwrap_or_default();
        let matched: Vec<(&Record, Money)> = proc_payments(records, *refund)
            .filter(|(r, _)| processor_ids(r).contains(&reference))
            .map(|(r, p)| (r, p.amount))
            .collect();
        if matched.is_empty() {
            continue;
        }
        let (Some(sf_sum), Some(pr_sum)) = (
            sum_in(currency, amounts.iter()),
            sum_in(currency, matched.iter().map(|(_, m)| m)),
        ) else {
            continue;
        };
        let prs: Vec<&Record> = matched.iter().map(|(r, _)| *r).collect();
        let what = if *refund { "refund" } else { "capture" };
        findings.extend(compare(
            if *refund {
                "storefront_vs_processor_refund"
            } else {
                "storefront_vs_processor_capture"
            },
            reference,
            Handoff::InvoiceToPayment,
            &format!("storefront {what}"),
            (obs_many(sf, Some(sf_sum)), sf_sum),
            &format!("processor {what}"),
            (obs_many(&prs, Some(pr_sum)), pr_sum),
        ));
    }

    // The processor's gross against the ERP journal lines that book it.
    for pr in &payments {
        let Body::ProcessorPayment(p) = &pr.body else {
            continue;
        };
        if p.payment_type == PaymentType::Refund {
            continue;
        }
        let lines = journal_lines_for(records, &[pr.source_id.as_str()]);
        if lines.is_empty() {
            continue;
        }
        let journals: Vec<&Record> = lines.iter().map(|(j, _, _)| *j).collect();
        if let Some(sum) = sum_in(Some(p.amount.currency), lines.iter().map(|(_, _, m)| m)) {
            findings.extend(compare(
                "processor_vs_journal",
                &pr.source_id,
                Handoff::PaymentToCashApplication,
                "processor gross",
                (obs(pr, Some(p.amount)), p.amount),
                "ERP journal debits",
                (obs_many(&journals, Some(sum)), sum),
            ));
        }
    }

    // Order against invoices and captures, once shipping is complete (an
    // order shipping in parts is invoiced and captured in parts).
    let ordered_units: i64 = order
        .map(|(_, o)| o.line_items.iter().map(|l| l.quantity).sum())
        .unwrap_or(0);
    let shipped_units: i64 = tx.fulfillments.iter().map(|f| f.quantity).sum();
    let partly_shipped =
        !fulfilments.is_empty() && ordered_units > 0 && shipped_units < ordered_units;
    let invoiced = tx.totals.invoiced;
    let captured = tx.totals.captured;
    if let Some((or, o)) = order {
        let order_obs = || (obs(or, Some(o.total)), o.total);
        if let Some(inv) = invoiced {
            let over =
                inv.currency == o.total.currency && inv.amount > o.total.amount + tolerance();
            if !partly_shipped || over {
                let mut finding = compare(
                    "order_total_vs_invoiced",
                    order_id,
                    Handoff::FulfillmentToInvoice,
                    "storefront order total",
                    order_obs(),
                    "ERP invoiced total",
                    (obs_many(&invoices, Some(inv)), inv),
                );
                // The commonest cause has a signature worth naming: the ERP
                // billed full retail because the discount never reached it.
                if let (Some(f), Some(discount)) = (&mut finding, o.total_discount) {
                    let unbilled = invoices.iter().all(|i| {
                        matches!(&i.body, Body::Invoice(b) if b.discount.is_none_or(|d| d.amount.is_zero()))
                    });
                    if unbilled
                        && !discount.amount.is_zero()
                        && f.difference == Some(discount)
                        && inv.amount > o.total.amount
                    {
                        f.summary.push_str(&format!(
                            "; that is the order's discount of {discount}, which the invoices do not carry"
                        ));
                    }
                }
                findings.extend(finding);
            }
        }
        if let Some(cap) = captured {
            let over =
                cap.currency == o.total.currency && cap.amount > o.total.amount + tolerance();
            if !partly_shipped || over {
                let capture_records: Vec<&Record> = records
                    .iter()
                    .map(|r| &r.record)
                    .filter(|r| matches!(&r.body, Body::ProcessorPayment(p) if p.payment_type != PaymentType::Refund)
                        || matches!(&r.body, Body::StorefrontTransaction(t) if t.status == TxnStatus::Success && is_capture(t.kind)))
                    .collect();
                let cap_obs = if capture_records.is_empty() {
                    obs(or, Some(cap))
                } else {
                    obs_many(&capture_records, Some(cap))
                };
                findings.extend(compare(
                    "order_total_vs_captured",
                    order_id,
                    Handoff::InvoiceToPayment,
                    "storefront order total",
                    order_obs(),
                    "captured",
                    (cap_obs, cap),
                ));
            }
        }
    } else if let (Some(inv), Some(cap)) = (invoiced, captured) {
        if !payments.is_empty() {
            findings.extend(compare(
                "invoiced_vs_captured",
                order_id,
                Handoff::InvoiceToPayment,
                "ERP invoiced total",
                (obs_many(&invoices, Some(inv)), inv),
                "processor captured",
                (obs_many(&payments, Some(cap)), cap),
            ));
        }
    }

    // Refunds as the storefront saw them against the ERP's credit memos.
    if let (Some(refunded), Some(credited)) = (tx.totals.storefront_refunded, tx.totals.credited) {
        let sf: Vec<&Record> = sf_txns(records)
            .filter(|(_, t)| t.kind == TxnKind::Refund)
            .map(|(r, _)| r)
            .collect();
        findings.extend(compare(
            "refunded_vs_credited",
            order_id,
            Handoff::FulfillmentToInvoice,
            "storefront refunds",
            (obs_many(&sf, Some(refunded)), refunded),
            "ERP credit memos",
            (obs_many(&credit_memos, Some(credited)), credited),
        ));
    }

    // Steps dated before the steps they depend on.
    if let Some((or, _)) = order {
        for f in &fulfilments {
            findings.extend(sequence(
                "fulfillment_before_order",
                Handoff::OrderToFulfillment,
                f,
                "fulfilment",
                or,
                "order",
            ));
        }
        for i in &invoices {
            findings.extend(sequence(
                "invoice_before_order",
                Handoff::FulfillmentToInvoice,
                i,
                "invoice",
                or,
                "order",
            ));
        }
    }
    for i in &invoices {
        let billed: Vec<&Record> = i
            .ids_of(RefKind::Fulfillment)
            .filter_map(|id| fulfilments.iter().copied().find(|f| f.source_id == id))
            .collect();
        let target = if billed.is_empty() {
            fulfilments.iter().copied().min_by_key(|f| f.event_time)
        } else {
            billed.into_iter().max_by_key(|f| f.event_time)
        };
        if let Some(f) = target {
            findings.extend(sequence(
                "invoice_before_fulfillment",
                Handoff::FulfillmentToInvoice,
                i,
                "invoice",
                f,
                "fulfilment",
            ));
        }
    }
    if let Some(first_invoice) = invoices.iter().copied().min_by_key(|i| i.event_time) {
        for c in &credit_memos {
            findings.extend(sequence(
                "credit_memo_before_invoice",
                Handoff::FulfillmentToInvoice,
                c,
                "credit memo",
                first_invoice,
                "invoice",
            ));
        }
    }

    // What is still expected before the order can be called matched.
    if order.is_none() {
        pending.push("waiting for the storefront order".to_string());
    }
    if partly_shipped {
        pending.push(format!("{shipped_units} of {ordered_units} units shipped"));
        // While shipping is partial the totals are not compared; say how
        // far each side has got instead.
        if let Some((_, o)) = order {
            for (what, figure) in [("invoiced", invoiced), ("captured", captured)] {
                if let Some(f) =
                    figure.filter(|f| f.currency == o.total.currency && f.amount < o.total.amount)
                {
                    pending.push(format!("{what} {f} of {}", o.total));
                }
            }
        }
    }
    if invoices.is_empty() {
        pending.push("waiting for an ERP invoice".to_string());
    }
    if captured.is_none_or(|c| c.amount.is_zero()) {
        pending.push("waiting for payment capture".to_string());
    }
    if let Some(refunded) = tx.totals.storefront_refunded {
        if credit_memos.is_empty() && !refunded.amount.is_zero() {
            pending.push(format!(
                "storefront refunds of {refunded} not yet credited in the ERP"
            ));
        }
    }

    findings.sort_by(|a, b| {
        (a.rule.as_str(), a.subject.as_str()).cmp(&(b.rule.as_str(), b.subject.as_str()))
    });
    findings.dedup_by(|a, b| a.rule == b.rule && a.subject == b.subject);
    tx.state = if !findings.is_empty() {
        ReconciliationState::Exception
    } else if pending.is_empty() {
        ReconciliationState::Matched
    } else {
        ReconciliationState::Pending
    };
    tx.reasons = findings
        .iter()
        .map(|f| f.summary.clone())
        .chain(pending)
        .collect();
    Evaluation {
        transaction: tx,
        findings,
    }
}

fn kind_records(records: &[StoredRecord], kind: RecordKind) -> Vec<&Record> {
    records
        .iter()
        .map(|r| &r.record)
        .filter(|r| r.kind() == kind)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::{Reference, Stage, Tender};
    use crate::domain::testkit::*;
    use crate::domain::transaction::Transaction;

    fn rules(e: &Evaluation) -> Vec<&str> {
        e.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn clean_order_with_capture_and_invoice_is_matched() {
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                charge("ch_1", "100.00", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert_eq!(e.transaction.state, ReconciliationState::Matched);
        assert!(e.transaction.reasons.is_empty());
        assert_eq!(e.transaction.totals.captured, Some(usd("100.00")));
        assert_eq!(e.transaction.totals.processor_fees, Some(usd("3.20")));
    }

    #[test]
    fn one_cent_is_within_tolerance_two_cents_is_a_mismatch() {
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                charge("ch_1", "100.00", 1),
                invoice("INV-1", "100.01", 60),
            ],
        );
        assert_eq!(e.transaction.state, ReconciliationState::Matched);

        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                charge("ch_1", "100.00", 1),
                invoice("INV-1", "100.02", 60),
            ],
        );
        assert_eq!(e.transaction.state, ReconciliationState::Exception);
        assert_eq!(rules(&e), vec!["order_total_vs_invoiced"]);
        let f = &e.findings[0];
        assert_eq!(f.exception_type, ExceptionType::AmountMismatch);
        assert_eq!(f.difference, Some(usd("0.02")));
        assert_eq!(f.observations[0].source_system, "shopify");
        assert_eq!(f.observations[1].source_ids, vec!["INV-1".to_string()]);
        assert!(
            f.summary.contains("INV-1") && f.summary.contains("100.02"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn under_capture_is_a_mismatch_once_shipping_is_complete() {
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                charge("ch_1", "99.98", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert_eq!(rules(&e), vec!["order_total_vs_captured"]);
        assert_eq!(e.findings[0].handoff, Handoff::InvoiceToPayment);
    }

    #[test]
    fn storefront_and_processor_disagree_on_one_payment() {
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                sf_capture("5001", "100.00", "ch_1", 1),
                charge("ch_1", "90.00", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert!(
            rules(&e).contains(&"storefront_vs_processor_capture"),
            "{:?}",
            rules(&e)
        );
        // Counted once, at the processor's figure.
        assert_eq!(e.transaction.totals.captured, Some(usd("90.00")));
    }

    #[test]
    fn missing_steps_leave_the_order_pending() {
        let e = evaluate("1001", &[order("100.00", 2)]);
        assert_eq!(e.transaction.state, ReconciliationState::Pending);
        assert!(e.transaction.reasons.iter().any(|r| r.contains("invoice")));
        assert!(e.transaction.reasons.iter().any(|r| r.contains("capture")));
        let e = evaluate("1001", &[invoice("INV-1", "100.00", 60)]);
        assert!(
            e.transaction
                .reasons
                .iter()
                .any(|r| r.contains("storefront order"))
        );
    }

    #[test]
    fn split_shipments_are_compared_only_when_complete() {
        let partial = [
            order("100.00", 2),
            fulfilment("F1", 1, 30),
            invoice("INV-1", "50.00", 31),
            charge("ch_1", "50.00", 32),
        ];
        let e = evaluate("1001", &partial);
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert_eq!(e.transaction.state, ReconciliationState::Pending);
        assert_eq!(
            e.transaction.reasons,
            vec![
                "1 of 2 units shipped",
                "invoiced 50.00 USD of 100.00 USD",
                "captured 50.00 USD of 100.00 USD"
            ]
        );

        let mut all = partial.to_vec();
        all.extend([
            fulfilment("F2", 1, 90),
            invoice("INV-2", "50.00", 91),
            charge("ch_2", "50.00", 92),
        ]);
        let e = evaluate("1001", &all);
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert_eq!(e.transaction.state, ReconciliationState::Matched);
    }

    #[test]
    fn fulfilment_before_order_and_invoice_before_shipment_are_out_of_sequence() {
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                fulfilment("F1", 2, -5),
                invoice("INV-1", "100.00", 20),
                charge("ch_1", "100.00", 1),
            ],
        );
        assert_eq!(rules(&e), vec!["fulfillment_before_order"]);
        assert_eq!(e.findings[0].exception_type, ExceptionType::OutOfSequence);
        assert_eq!(e.findings[0].handoff, Handoff::OrderToFulfillment);

        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                fulfilment("F1", 2, 30),
                invoice("INV-1", "100.00", 10),
                charge("ch_1", "100.00", 1),
            ],
        );
        assert_eq!(rules(&e), vec!["invoice_before_fulfillment"]);
        assert_eq!(e.findings[0].subject, "netsuite/invoice/INV-1");
    }

    #[test]
    fn an_invoice_in_another_currency_is_a_mismatch_not_a_silent_sum() {
        let mut inv = invoice("INV-1", "100.00", 60);
        if let Body::Invoice(i) = &mut inv.record.body {
            i.total = Money::parse("100.00", Currency::from_code("EUR").unwrap()).unwrap();
        }
        let e = evaluate(
            "1001",
            &[order("100.00", 2), charge("ch_1", "100.00", 1), inv],
        );
        assert_eq!(rules(&e), vec!["currency_mismatch"]);
        assert_eq!(e.findings[0].subject, "netsuite/invoice/INV-1");
        // The EUR invoice is not added to the USD invoiced total.
        assert_eq!(e.transaction.totals.invoiced, None);
    }

    #[test]
    fn a_discount_that_never_reached_the_invoice_is_named() {
        let mut o = order("90.00", 2);
        if let Body::StorefrontOrder(so) = &mut o.record.body {
            so.total_discount = Some(usd("10.00"));
        }
        let e = evaluate(
            "1001",
            &[
                o,
                charge("ch_1", "90.00", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert_eq!(rules(&e), vec!["order_total_vs_invoiced"]);
        assert!(
            e.findings[0].summary.contains("discount of 10.00 USD"),
            "{}",
            e.findings[0].summary
        );
    }

    #[test]
    fn tenders_that_do_not_sum_to_the_total_are_flagged() {
        let mut o = order("100.00", 2);
        if let Body::StorefrontOrder(so) = &mut o.record.body {
            so.tenders[0].amount = usd("80.00");
        }
        let e = evaluate(
            "1001",
            &[
                o,
                charge("ch_1", "100.00", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert_eq!(rules(&e), vec!["order_tenders_sum"]);
        assert_eq!(
            e.findings[0].exception_type,
            ExceptionType::ValidationFailed
        );
    }

    #[test]
    fn gift_card_tender_settles_without_a_processor() {
        let mut o = order("100.00", 2);
        if let Body::StorefrontOrder(so) = &mut o.record.body {
            so.tenders[0].amount = usd("80.00");
            so.tenders.push(Tender {
                tender_type: TenderType::GiftCard,
                gateway: "gift_card".into(),
                amount: usd("20.00"),
                processor_reference: None,
            });
        }
        let e = evaluate(
            "1001",
            &[
                o,
                charge("ch_1", "80.00", 1),
                invoice("INV-1", "100.00", 60),
            ],
        );
        assert!(e.findings.is_empty(), "{:?}", e.findings);
        assert_eq!(e.transaction.totals.captured, Some(usd("100.00")));
    }

    #[test]
    fn merge_collects_every_external_id_and_a_timeline() {
        let mut inv = invoice("INV-1", "100.00", 60);
        inv.record.references.push(Reference {
            kind: RefKind::Fulfillment,
            id: "F1".into(),
        });
        let e = evaluate(
            "1001",
            &[
                order("100.00", 2),
                charge("ch_1", "100.00", 1),
                inv,
                fulfilment("F1", 2, 30),
            ],
        );
        let ids = &e.transaction.external_ids;
        assert!(ids.charge_ids.contains("ch_1"));
        assert!(ids.payment_intent_ids.contains("pi_1"));
        assert!(ids.invoice_ids.contains("INV-1"));
        assert!(ids.fulfillment_ids.contains("F1"));
        let stages: Vec<_> = e.transaction.timeline.iter().map(|t| t.stage).collect();
        assert_eq!(
            stages,
            vec![
                Stage::OrderCapture,
                Stage::PaymentCapture,
                Stage::Fulfillment,
                Stage::Invoice
            ]
        );
    }

    #[test]
    fn records_and_transactions_survive_a_storage_round_trip() {
        let recs = [
            order("100.00", 2),
            charge("ch_1", "100.00", 1),
            invoice("INV-1", "100.00", 60),
            sf_capture("5001", "100.00", "ch_1", 1),
            fulfilment("F1", 2, 30),
        ];
        for r in &recs {
            let json = serde_json::to_value(&r.record).unwrap();
            let back: Record = serde_json::from_value(json).unwrap();
            assert_eq!(back, r.record);
            assert_eq!(back.content_hash(), r.record.content_hash());
        }
        let t = evaluate("1001", &recs).transaction;
        let back: Transaction = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
