//! Turning stored records into the facts the pure planner reads.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::domain::cash_application::completeness::BalanceTxn;
use crate::domain::cash_application::order::{Document, Payment};
use crate::domain::cash_application::plan::{CashEvent, MemoParts, OrderFacts, PayoutTxn};
use crate::domain::ledger::posting::{Conversion, InvoiceBooking, Tender};
use crate::domain::money::Money;
use crate::domain::record::{Body, PaymentType, Record, RecordKind, TenderType};
use crate::domain::transaction::StoredRecord;
use crate::error::{Error, Result};

/// The kinds of an order's records the planner reads ([`order_facts`]): only
/// these are loaded, not the order's balance transactions (a payout reads its
/// own), shipments or journals.
const PLANNER_KINDS: [&str; 3] = [
    RecordKind::StorefrontOrder.as_str(),
    RecordKind::Invoice.as_str(),
    RecordKind::CreditMemo.as_str(),
];

/// With the processor's payments: a converted transaction's presentment
/// amount is its payment's ([`payout_txns`]).
const CONVERTED_KINDS: [&str; 4] = [
    PLANNER_KINDS[0],
    PLANNER_KINDS[1],
    PLANNER_KINDS[2],
    RecordKind::ProcessorPayment.as_str(),
];

/// The orders' current records of the kinds the planner reads, and their
/// processor payments when `converted` (a payout with a transaction the
/// processor converted from another currency).
pub(crate) async fn order_records(
    conn: &mut crate::storage::Conn,
    merchant: &str,
    orders: &[String],
    converted: bool,
) -> Result<BTreeMap<String, Vec<StoredRecord>>> {
    let kinds: &[&str] = if converted {
        &CONVERTED_KINDS
    } else {
        &PLANNER_KINDS
    };
    crate::storage::record_log::load_records_of(conn, merchant, orders, Some(kinds)).await
}

/// Whether any of these balance transactions was converted (has a rate).
pub(crate) fn any_converted(txns: &[Record]) -> bool {
    txns.iter()
        .any(|r| matches!(&r.body, Body::BalanceTransaction(b) if b.exchange_rate.is_some()))
}

pub(crate) fn date(r: &Record) -> NaiveDate {
    r.event_time.date_naive()
}

/// A balance transaction record as the processor reported it, amounts in settlement.
pub(crate) fn balance_txn(
    r: &Record,
) -> Option<(BalanceTxn, Option<String>, Option<rust_decimal::Decimal>)> {
    let Body::BalanceTransaction(b) = &r.body else {
        return None;
    };
    let fee = b.fee.unwrap_or(Money::zero(b.amount.currency));
    let net = b.net.or_else(|| b.amount.checked_sub(&fee))?;
    Some((
        BalanceTxn {
            id: r.source_id.clone(),
            category: b.reporting_category.clone(),
            amount: b.amount,
            fee,
            net,
        },
        b.source.clone(),
        b.exchange_rate,
    ))
}

/// Ids a balance transaction can be tied to its order by: its source first.
pub(crate) fn lookup_ids(r: &Record) -> Vec<String> {
    let mut ids = vec![];
    if let Body::BalanceTransaction(b) = &r.body {
        ids.extend(b.source.clone());
    }
    ids.push(r.source_id.clone());
    ids.extend(r.references.iter().map(|x| x.id.clone()));
    ids
}

/// The order a balance transaction pays: its own, else the first order one of
/// its ids belongs to.
pub(crate) fn tie(r: &Record, order_of: &BTreeMap<String, String>) -> Option<String> {
    r.order_id.clone().or_else(|| {
        lookup_ids(r)
            .iter()
            .find_map(|id| order_of.get(id).cloned())
    })
}

/// The payout's transactions with their orders and presentment amounts.
pub(crate) fn payout_txns(
    txns: &[Record],
    order_of: &BTreeMap<String, String>,
    orders: &BTreeMap<String, Vec<StoredRecord>>,
) -> Result<(Vec<PayoutTxn>, Vec<BalanceTxn>)> {
    let mut out = Vec::new();
    let mut plain = Vec::new();
    for r in txns {
        let (txn, source, rate) = balance_txn(r).ok_or_else(|| {
            Error::corrupt(
                format!("balance transaction {}", r.source_id),
                "net missing and amount - fee overflows",
            )
        })?;
        let order_id = tie(r, order_of);
        let presentment = match (&order_id, rate) {
            (Some(o), Some(rate)) => {
                presentment(orders.get(o), source.as_deref(), &txn.id).map(|m| (m, rate))
            }
            _ => None,
        };
        plain.push(txn.clone());
        out.push(PayoutTxn {
            txn,
            source,
            order_id,
            date: date(r),
            presentment,
        });
    }
    Ok((out, plain))
}

/// The processor payment a balance transaction settles: its amount is the presentment.
fn presentment(
    records: Option<&Vec<StoredRecord>>,
    source: Option<&str>,
    txn_id: &str,
) -> Option<Money> {
    records?.iter().find_map(|s| match &s.record.body {
        Body::ProcessorPayment(p)
            if Some(s.record.source_id.as_str()) == source
                || p.charge_id.as_deref().is_some_and(|c| Some(c) == source)
                    && p.payment_type != PaymentType::Refund
                || p.balance_transaction_id.as_deref() == Some(txn_id) =>
        {
            Some(p.amount)
        }
        _ => None,
    })
}

/// What the planner needs of one order, from its stored records and cash events.
pub(crate) fn order_facts(
    order_id: &str,
    records: &[StoredRecord],
    events: Vec<CashEvent>,
    fallback: Option<crate::domain::currency::Currency>,
    mut refund_settlements: BTreeMap<String, Conversion>,
) -> Option<OrderFacts> {
    let mut currency = None;
    let mut invoices = Vec::new();
    let mut unbookable_invoices = Vec::new();
    let mut credit_memos = Vec::new();
    let mut tenders = Vec::new();
    let mut order_total = None;
    let mut memo_parts = BTreeMap::new();
    for s in records {
        let r = &s.record;
        match &r.body {
            Body::StorefrontOrder(o) => {
                currency = Some(o.total.currency);
                order_total = Some(o.total);
                for (i, t) in o.tenders.iter().enumerate() {
                    let tender = match t.tender_type {
                        TenderType::GiftCard => Tender::GiftCard,
                        TenderType::StoreCredit => Tender::StoreCredit,
                        _ => continue,
                    };
                    tenders.push(Payment {
                        id: format!("{}:{}:{i}", r.source_id, t.gateway),
                        tender,
                        date: date(r),
                        amount: t.amount,
                    });
                }
            }
            Body::Invoice(inv) => {
                currency.get_or_insert(inv.total.currency);
                match invoice_booking(order_id, r, inv) {
                    Some(b) => invoices.push(b),
                    None => unbookable_invoices.push(r.source_id.clone()),
                }
            }
            Body::CreditMemo(m) => {
                let zero = Money::zero(m.total.currency);
                memo_parts.insert(
                    r.source_id.clone(),
                    MemoParts {
                        tax: m.tax.unwrap_or(zero),
                        shipping: m.shipping.unwrap_or(zero),
                    },
                );
                credit_memos.push(Document {
                    id: r.source_id.clone(),
                    date: date(r),
                    total: m.total,
                })
            }
            _ => {}
        }
    }
    let currency = currency.or(fallback)?;
    // Only a conversion into another currency is one.
    refund_settlements.retain(|_, c| c.settlement.currency != currency);
    Some(OrderFacts {
        order_id: order_id.to_string(),
        currency,
        events,
        invoices,
        credit_memos,
        tenders,
        order_total,
        memo_parts,
        refund_settlements,
        unbookable_invoices,
    })
}

/// An invoice as booked: gross lines from its lines when each has an amount (so a total
/// that disagrees with its lines is refused), else derived from the total.
fn invoice_booking(
    order_id: &str,
    r: &Record,
    inv: &crate::domain::record::Invoice,
) -> Option<InvoiceBooking> {
    let c = inv.total.currency;
    let zero = Money::zero(c);
    let discount = inv.discount.unwrap_or(zero);
    let tax = inv.tax.unwrap_or(zero);
    let shipping = inv.shipping.unwrap_or(zero);
    let from_lines = if !inv.lines.is_empty() && inv.lines.iter().all(|l| l.amount.is_some()) {
        inv.lines
            .iter()
            .try_fold(zero, |acc, l| acc.checked_add(&l.amount?))
    } else {
        None
    };
    let gross_lines = match from_lines {
        Some(g) => g,
        None => inv
            .total
            .checked_add(&discount)?
            .checked_sub(&tax)?
            .checked_sub(&shipping)?,
    };
    Some(InvoiceBooking {
        invoice_id: r.source_id.clone(),
        order_id: order_id.to_string(),
        date: date(r),
        total: inv.total,
        gross_lines,
        discount,
        tax,
        shipping,
    })
}

/// Refunds applied to an order but not (all) booked yet wait for a credit memo that has not
/// been seen; when one has arrived, these are the refunds whose settlement is needed.
pub(crate) fn refunds_awaiting_memo(records: &[StoredRecord], events: &[CashEvent]) -> Vec<String> {
    use crate::domain::cash_application::plan::EventKind;
    let known: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::CreditMemo)
        .map(|e| e.ref_id.as_str())
        .collect();
    let new_memo = records.iter().any(|s| {
        matches!(s.record.body, Body::CreditMemo(_))
            && !known.contains(&s.record.source_id.as_str())
    });
    if !new_memo {
        return vec![];
    }
    events
        .iter()
        .filter(|e| e.kind == EventKind::Refund)
        .map(|e| e.ref_id.clone())
        .collect()
}

/// A refund's settlement, from its balance transaction: (refund id, whole settlement
/// amount and rate), when the processor converted it.
pub(crate) fn refund_settlement(r: &Record) -> Option<(String, Conversion)> {
    let (txn, source, rate) = balance_txn(r)?;
    Some((
        source?,
        Conversion {
            settlement: Money::new(txn.amount.amount.abs(), txn.amount.currency),
            rate: rate?,
        },
    ))
}
