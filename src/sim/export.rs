//! The month as the files finance would export at its end, in the formats
//! `tally import` and `tally audit` read (`crate::import`): Shopify's
//! orders export and payments transactions export, Stripe's
//! `balance_change_from_activity.itemized` report and a NetSuite journal
//! import. Columns are named as the importers read them (Stripe's from the
//! importer's own lists).
//!
//! An export is a snapshot of each system's history, not the stream Tally
//! received: every record appears once (a resubmitted record is the same
//! row), rows are in event-time order (arrival order is gone), and what no
//! export carries is left out: shipments, invoices, payouts' own records
//! and bank deposits. The ERP's credit memos are GL lines of
//! type `Credit Memo` in the journal file (its `Type` column), as NetSuite's
//! GL saved search exports them. Refunds are rows of the payments export
//! (the orders export's `Refunded Amount` is left empty, so no refund is
//! read twice). Tenders settled at checkout (gift card, store credit) are
//! rows of their own file in the payments export's columns, with no
//! processor reference: Shopify's payments export holds card payments only.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Month;
use crate::domain::ledger::netsuite::NETSUITE_COLUMNS;
use crate::import::{Side, stripe};
use crate::proto::tally::v1 as pb;
use pb::record::Kind;

/// The files written, each with the system it speaks for.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub files: Vec<(Side, PathBuf)>,
}

fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn line(out: &mut impl Write, fields: &[&str]) -> io::Result<()> {
    let row: Vec<String> = fields.iter().map(|f| csv(f)).collect();
    writeln!(out, "{}", row.join(","))
}

fn time(t: Option<prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn amount(m: &Option<pb::Money>) -> &str {
    m.as_ref().map_or("", |m| m.amount.as_str())
}

fn currency(m: &Option<pb::Money>) -> &str {
    m.as_ref().map_or("", |m| m.currency_code.as_str())
}

/// "12.34" as "-12.34" (refunds are money out of the balance).
fn negated(a: &str) -> String {
    match a.strip_prefix('-') {
        Some(pos) => pos.to_string(),
        None if a.is_empty() => String::new(),
        None => format!("-{a}"),
    }
}

/// Each record once (its first sending: a resubmission is the same row),
/// in event-time order, ties by id.
fn snapshot(month: &Month) -> Vec<&pb::Record> {
    let mut seen: HashSet<(&str, &str, i32)> = HashSet::with_capacity(month.records.len());
    let mut out: Vec<&pb::Record> = month
        .records
        .iter()
        .filter(|r| {
            let tag = match &r.kind {
                Some(k) => kind_tag(k),
                None => -1,
            };
            seen.insert((&r.source_system, &r.source_id, tag))
        })
        .collect();
    out.sort_by(|a, b| {
        let t = |r: &pb::Record| r.event_time.map(|t| t.seconds).unwrap_or_default();
        (t(a), &a.source_id).cmp(&(t(b), &b.source_id))
    });
    out
}

fn kind_tag(k: &Kind) -> i32 {
    match k {
        Kind::StorefrontOrder(_) => 0,
        Kind::StorefrontTransaction(_) => 1,
        Kind::ProcessorPayment(_) => 2,
        Kind::BalanceTransaction(_) => 3,
        Kind::JournalEntry(_) => 4,
        _ => 5,
    }
}

struct Writers {
    orders: BufWriter<File>,
    payments: BufWriter<File>,
    checkout: BufWriter<File>,
    stripe: BufWriter<File>,
    journal: BufWriter<File>,
}

const ORDERS: &str = "orders_export.csv";
const PAYMENTS: &str = "payment_transactions_export.csv";
const CHECKOUT: &str = "checkout_tenders_export.csv";
const STRIPE: &str = "balance_change_from_activity.itemized.csv";
const JOURNAL: &str = "journal_import.csv";

/// The payments export's columns (and the checkout tenders file's).
const PAYMENT_COLUMNS: [&str; 7] = [
    "Transaction Date",
    "Type",
    "Order",
    "Amount",
    "Net",
    "Currency",
    "Payment Reference",
];

fn create(dir: &Path, name: &str) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(dir.join(name))?,
    ))
}

/// Writes the month's exports into `dir` (which must exist).
pub fn write(dir: &Path, month: &Month) -> io::Result<Files> {
    let mut w = Writers {
        orders: create(dir, ORDERS)?,
        payments: create(dir, PAYMENTS)?,
        checkout: create(dir, CHECKOUT)?,
        stripe: create(dir, STRIPE)?,
        journal: create(dir, JOURNAL)?,
    };
    headers(&mut w)?;
    let records = snapshot(month);
    // A balance transaction's charge or refund: its customer-facing money
    // and ids, which the itemized report prints on the same row.
    let payments: BTreeMap<&str, &pb::ProcessorPayment> = records
        .iter()
        .filter_map(|r| match &r.kind {
            Some(Kind::ProcessorPayment(p)) => Some((r.source_id.as_str(), p)),
            _ => None,
        })
        .collect();
    for r in &records {
        match &r.kind {
            Some(Kind::StorefrontOrder(o)) => order_rows(&mut w.orders, r, o)?,
            Some(Kind::StorefrontTransaction(t)) => {
                let out = if t.processor_reference.is_empty() {
                    &mut w.checkout
                } else {
                    &mut w.payments
                };
                payment_row(out, r, t)?;
            }
            Some(Kind::BalanceTransaction(b)) => stripe_row(&mut w.stripe, r, b, &payments)?,
            Some(Kind::JournalEntry(j)) => journal_rows(&mut w.journal, r, j)?,
            Some(Kind::CreditMemo(c)) => credit_memo_rows(&mut w.journal, r, c)?,
            _ => {}
        }
    }
    for f in [
        &mut w.orders,
        &mut w.payments,
        &mut w.checkout,
        &mut w.stripe,
        &mut w.journal,
    ] {
        f.flush()?;
    }
    let at = |s: Side, n: &str| (s, dir.join(n));
    Ok(Files {
        files: vec![
            at(Side::Storefront, ORDERS),
            at(Side::Storefront, PAYMENTS),
            at(Side::Storefront, CHECKOUT),
            at(Side::Processor, STRIPE),
            at(Side::Ledger, JOURNAL),
        ],
    })
}

fn headers(w: &mut Writers) -> io::Result<()> {
    line(
        &mut w.orders,
        &[
            "Name",
            "Financial Status",
            "Currency",
            "Subtotal",
            "Shipping",
            "Taxes",
            "Total",
            "Discount Code",
            "Discount Amount",
            "Created at",
            "Lineitem quantity",
            "Lineitem name",
            "Lineitem price",
            "Lineitem sku",
            "Lineitem discount",
            "Payment Method",
            "Payment Reference",
            "Refunded Amount",
            "Id",
        ],
    )?;
    line(&mut w.payments, &PAYMENT_COLUMNS)?;
    line(&mut w.checkout, &PAYMENT_COLUMNS)?;
    line(
        &mut w.stripe,
        &[
            stripe::ID[0],
            stripe::CREATED[0],
            stripe::AVAILABLE[0],
            "currency",
            stripe::GROSS[0],
            "fee",
            "net",
            stripe::CATEGORY[0],
            stripe::SOURCE[0],
            "description",
            "customer_facing_amount",
            "customer_facing_currency",
            stripe::PAYOUT[0],
            "charge_id",
            "payment_intent_id",
            stripe::ORDER[0],
        ],
    )?;
    // NetSuite's journal-import columns, led by the GL export's Type (a
    // credit memo's lines say so).
    let journal: Vec<&str> = std::iter::once("Type").chain(NETSUITE_COLUMNS).collect();
    line(&mut w.journal, &journal)
}

/// One row per line item; the order's own fields on its first row only.
fn order_rows(out: &mut impl Write, r: &pb::Record, o: &pb::StorefrontOrder) -> io::Result<()> {
    let name = format!("#{}", r.order_id);
    let card = o
        .tenders
        .iter()
        .find(|t| t.r#type == pb::TenderType::Card as i32);
    let others = o.tenders.iter().any(|t| t.processor_reference.is_empty());
    let method = match (card.is_some(), others) {
        (true, true) => "Shopify Payments + Gift Card",
        (true, false) => "Shopify Payments",
        (false, _) => "Gift Card",
    };
    let reference = card.map_or("", |t| t.processor_reference.as_str());
    let code = o.discounts.first().map_or("", |d| d.code.as_str());
    let created = format!("{} +0000", time(r.event_time));
    for (i, l) in o.line_items.iter().enumerate() {
        let qty = l.quantity.to_string();
        let head = |v: &str| if i == 0 { v.to_string() } else { String::new() };
        line(
            out,
            &[
                &name,
                &head("paid"),
                &head(currency(&o.total)),
                &head(amount(&o.subtotal)),
                &head(amount(&o.total_shipping)),
                &head(amount(&o.total_tax)),
                &head(amount(&o.total)),
                &head(code),
                &head(amount(&o.total_discount)),
                &head(&created),
                &qty,
                &l.sku,
                amount(&l.unit_price),
                &l.sku,
                amount(&l.discount),
                &head(method),
                &head(reference),
                "",
                &head(&r.source_id),
            ],
        )?;
    }
    Ok(())
}

fn payment_row(
    out: &mut impl Write,
    r: &pb::Record,
    t: &pb::StorefrontTransaction,
) -> io::Result<()> {
    let kind = if t.kind == pb::StorefrontTransactionKind::Refund as i32 {
        "refund"
    } else {
        "charge"
    };
    let money = if kind == "refund" {
        negated(amount(&t.amount))
    } else {
        amount(&t.amount).to_string()
    };
    // The export names a transaction by its order, type and second: a
    // checkout tender is taken the second after the card, so the two are
    // not read as one.
    let at = if t.processor_reference.is_empty() {
        r.event_time.map(|mut t| {
            t.seconds += 1;
            t
        })
    } else {
        r.event_time
    };
    line(
        out,
        &[
            &format!("{} +0000", time(at)),
            kind,
            &format!("#{}", r.order_id),
            &money,
            &money,
            currency(&t.amount),
            &t.processor_reference,
        ],
    )
}

/// A charge or refund of the balance, with its payment's customer-facing
/// money when that was another currency, and its order in the metadata.
fn stripe_row(
    out: &mut impl Write,
    r: &pb::Record,
    b: &pb::BalanceTransaction,
    payments: &BTreeMap<&str, &pb::ProcessorPayment>,
) -> io::Result<()> {
    let p = payments.get(b.source.as_str());
    let refund = b.reporting_category == "refund";
    let (cf_amount, cf_currency) = match p.map(|p| &p.amount) {
        Some(Some(m)) if !m.currency_code.eq_ignore_ascii_case(currency(&b.amount)) => {
            let a = if refund {
                negated(&m.amount)
            } else {
                m.amount.clone()
            };
            (a, m.currency_code.to_ascii_lowercase())
        }
        _ => (String::new(), String::new()),
    };
    let order = r
        .references
        .iter()
        .find(|x| x.r#type == pb::ReferenceType::Order as i32)
        .map_or("", |x| x.id.as_str());
    line(
        out,
        &[
            &r.source_id,
            &time(r.event_time),
            &time(b.available_time),
            &currency(&b.amount).to_ascii_lowercase(),
            amount(&b.amount),
            amount(&b.fee),
            amount(&b.net),
            &b.reporting_category,
            &b.source,
            &format!("Shopify order #{order}"),
            &cf_amount,
            &cf_currency,
            &b.payout_id,
            p.map_or("", |p| p.charge_id.as_str()),
            p.map_or("", |p| p.payment_intent_id.as_str()),
            order,
        ],
    )
}

/// One row per line under the journal's External ID; each line's
/// reference in its Line Memo, where NetSuite users put it.
fn journal_rows(out: &mut impl Write, r: &pb::Record, j: &pb::JournalEntry) -> io::Result<()> {
    let date = time(r.event_time);
    for l in &j.lines {
        let memo = if l.reference.is_empty() {
            &l.memo
        } else {
            &l.reference
        };
        line(
            out,
            &[
                "Journal",
                &r.source_id,
                &date,
                &j.posting_period,
                &j.subsidiary,
                &j.currency_code,
                &j.exchange_rate,
                &j.memo,
                &l.account,
                &l.debit,
                &l.credit,
                memo,
                &l.name,
            ],
        )?;
    }
    Ok(())
}

/// A credit memo's GL impact, as NetSuite posts it: returns and tax
/// debited, receivables credited by the total; the order's name in Memo.
fn credit_memo_rows(out: &mut impl Write, r: &pb::Record, c: &pb::CreditMemo) -> io::Result<()> {
    use rust_decimal::Decimal;
    let bad = |what: &str| io::Error::other(format!("credit memo {}: {what}", r.source_id));
    let total: Decimal = amount(&c.total).parse().map_err(|_| bad("total"))?;
    let tax: Decimal = match amount(&c.tax) {
        "" => Decimal::ZERO,
        t => t.parse().map_err(|_| bad("tax"))?,
    };
    let returns = total
        .checked_sub(tax)
        .ok_or_else(|| bad("tax above total"))?;
    let date = time(r.event_time);
    let period = r
        .event_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%b %Y").to_string())
        .unwrap_or_default();
    let memo = format!("Refund of #{}", r.order_id);
    let (total, returns, tax) = (total.to_string(), returns.to_string(), tax.to_string());
    let lines = [
        ("4100 Sales Returns", returns.as_str(), ""),
        ("2200 Sales Tax Payable", tax.as_str(), ""),
        ("1100 Accounts Receivable", "", total.as_str()),
    ];
    for (account, debit, credit) in lines {
        if debit.parse::<Decimal>().is_ok_and(|d| d.is_zero()) {
            continue;
        }
        line(
            out,
            &[
                "Credit Memo",
                &r.source_id,
                &date,
                &period,
                "",
                currency(&c.total),
                "",
                &memo,
                account,
                debit,
                credit,
                "",
                "",
            ],
        )?;
    }
    Ok(())
}
