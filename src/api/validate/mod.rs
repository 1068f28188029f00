//! Turns wire records into domain records, naming every malformed field by
//! its path in the request. Nothing here touches storage: every string,
//! number and time is checked here before anything reaches the database
//! (text: `text`; bounds: `check`, documented in the proto).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::api::names::{lowercase_id, valid_order_id};
use crate::domain::record as d;
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;

mod check;
pub mod fields;
pub mod text;

pub use check::{AMOUNT_DIGITS, ID_MAX, MAX_QUANTITY};
use check::{Check, MAX_ITEMS, MAX_JOURNAL_LINES, NAME_MAX, PROSE_MAX, When};

/// The most records one request (or one stream chunk) may carry.
pub const MAX_BATCH: usize = 1000;

/// Reporting categories whose fee may be negative: the processor giving a fee back.
pub const FEE_GIVEN_BACK: [&str; 3] = ["dispute_reversal", "adjustment", "other_adjustment"];

fn valid_source_system(s: &str) -> bool {
    lowercase_id(s, 63, true, b"_-")
}

/// Validates record `index` of a request. Returns the domain record only
/// when every field of it is well-formed; violations go to `out`.
pub fn record(index: usize, r: &pb::Record, out: &mut Vec<FieldViolation>) -> Option<d::Record> {
    record_at(index, r, Utc::now(), out)
}

/// `record`, with the clock the time windows are read against.
pub fn record_at(
    index: usize,
    r: &pb::Record,
    now: DateTime<Utc>,
    out: &mut Vec<FieldViolation>,
) -> Option<d::Record> {
    let before = out.len();
    let p = format!("records[{index}]");
    let mut c = Check { out, now };

    let source_id = c.id(&format!("{p}.source_id"), &r.source_id, true, ID_MAX);
    let source_system = if r.source_system.is_empty() {
        c.fail(&format!("{p}.source_system"), "required");
        None
    } else if !valid_source_system(&r.source_system) {
        c.fail(
            &format!("{p}.source_system"),
            "1-63 of [a-z0-9_-], lowercase (\"shopify\", \"stripe\")",
        );
        None
    } else {
        Some(r.source_system.clone())
    };
    let event_time = c.timestamp(
        &format!("{p}.event_time"),
        r.event_time.as_ref(),
        true,
        When::Happened,
    );
    let source_update_time = c.timestamp(
        &format!("{p}.source_update_time"),
        r.source_update_time.as_ref(),
        false,
        When::Happened,
    );
    let mut references = vec![];
    let given = c.items(&format!("{p}.references"), &r.references, MAX_ITEMS);
    for (j, reference) in given.iter().enumerate() {
        let rp = format!("{p}.references[{j}]");
        let kind =
            c.required::<pb::ReferenceType, d::RefKind>(&format!("{rp}.type"), reference.r#type);
        let id = c.id(&format!("{rp}.id"), &reference.id, true, ID_MAX);
        if let (Some(kind), Some(id)) = (kind, id) {
            references.push(d::Reference { kind, id });
        }
    }

    let body = match &r.kind {
        None => {
            c.fail(&format!("{p}.kind"), "exactly one record kind must be set (storefront_order, invoice, processor_payment, ...)");
            None
        }
        Some(kind) => body(&mut c, &p, kind),
    };

    let needs_order = body
        .as_ref()
        .map(|b: &d::Body| b.kind().needs_order())
        .unwrap_or(false);
    let order_id = if r.order_id.is_empty() {
        if needs_order {
            c.fail(&format!("{p}.order_id"), "required for this record kind");
        }
        None
    } else if !valid_order_id(&r.order_id) {
        c.fail(
            &format!("{p}.order_id"),
            "1-128 of [A-Za-z0-9._~-], at least one a letter or digit",
        );
        None
    } else {
        Some(r.order_id.clone())
    };

    if c.out.len() > before {
        return None;
    }
    Some(d::Record {
        source_id: source_id?,
        source_system: source_system?,
        order_id,
        references,
        event_time: event_time?,
        source_update_time,
        body: body?,
    })
}

fn body(c: &mut Check<'_>, p: &str, kind: &pb::record::Kind) -> Option<d::Body> {
    use pb::record::Kind as K;
    match kind {
        K::StorefrontOrder(o) => {
            storefront_order(c, &format!("{p}.storefront_order"), o).map(d::Body::StorefrontOrder)
        }
        K::StorefrontTransaction(t) => {
            let p = format!("{p}.storefront_transaction");
            let kind = c.required::<pb::StorefrontTransactionKind, d::TxnKind>(
                &format!("{p}.kind"),
                t.kind,
            );
            let status = c.required::<pb::StorefrontTransactionStatus, d::TxnStatus>(
                &format!("{p}.status"),
                t.status,
            );
            let gateway = c
                .id(&format!("{p}.gateway"), &t.gateway, false, NAME_MAX)
                .unwrap_or_default();
            let amount = c.money(&format!("{p}.amount"), t.amount.as_ref(), true, true);
            let parent_id = c.id(&format!("{p}.parent_id"), &t.parent_id, false, ID_MAX);
            let processor_reference = c.id(
                &format!("{p}.processor_reference"),
                &t.processor_reference,
                false,
                ID_MAX,
            );
            Some(d::Body::StorefrontTransaction(d::StorefrontTransaction {
                kind: kind?,
                status: status?,
                gateway,
                amount: amount?,
                parent_id,
                processor_reference,
            }))
        }
        K::Fulfillment(f) => {
            let p = format!("{p}.fulfillment");
            let lines = c
                .items(&format!("{p}.lines"), &f.lines, MAX_ITEMS)
                .iter()
                .enumerate()
                .map(|(i, l)| d::FulfillmentLine {
                    sku: c
                        .id(&format!("{p}.lines[{i}].sku"), &l.sku, true, ID_MAX)
                        .unwrap_or_default(),
                    quantity: c.quantity(&format!("{p}.lines[{i}].quantity"), l.quantity, 1),
                })
                .collect();
            Some(d::Body::Fulfillment(d::Fulfillment {
                lines,
                tracking_number: c
                    .id(
                        &format!("{p}.tracking_number"),
                        &f.tracking_number,
                        false,
                        ID_MAX,
                    )
                    .unwrap_or_default(),
                location: c.prose(&format!("{p}.location"), &f.location, ID_MAX),
            }))
        }
        K::Invoice(i) => {
            let p = format!("{p}.invoice");
            let total = c.money(&format!("{p}.total"), i.total.as_ref(), true, true);
            let discount = c.optional_money(&format!("{p}.discount"), i.discount.as_ref(), true);
            let tax = c.optional_money(&format!("{p}.tax"), i.tax.as_ref(), true);
            let shipping = c.optional_money(&format!("{p}.shipping"), i.shipping.as_ref(), true);
            let lines = invoice_lines(c, &p, &i.lines);
            // Every part of an invoice is booked against its total: one currency.
            if let Some(t) = total {
                let parts = [("discount", discount), ("tax", tax), ("shipping", shipping)];
                let lines = lines
                    .iter()
                    .enumerate()
                    .map(|(k, l)| (format!("lines[{k}].amount"), l.amount));
                let parts = parts
                    .map(|(f, m)| (f.to_string(), m))
                    .into_iter()
                    .chain(lines);
                for (field, part) in parts {
                    if part.is_some_and(|m| m.currency != t.currency) {
                        c.fail(
                            &format!("{p}.{field}.currency_code"),
                            format!("must be the total's currency ({})", t.currency.code()),
                        );
                    }
                }
            }
            Some(d::Body::Invoice(d::Invoice {
                total: total?,
                discount,
                tax,
                shipping,
                lines,
            }))
        }
        K::CreditMemo(m) => {
            let p = format!("{p}.credit_memo");
            let total = c.money(&format!("{p}.total"), m.total.as_ref(), true, true);
            let tax = c.optional_money(&format!("{p}.tax"), m.tax.as_ref(), true);
            let shipping = c.optional_money(&format!("{p}.shipping"), m.shipping.as_ref(), true);
            let lines = invoice_lines(c, &p, &m.lines);
            if let Some(t) = total {
                let parts = [tax, shipping]
                    .into_iter()
                    .flatten()
                    .try_fold(rust_decimal::Decimal::ZERO, |acc, m| {
                        (m.currency == t.currency).then(|| acc.checked_add(m.amount))?
                    });
                if parts.is_none_or(|parts| parts > t.amount) {
                    c.fail(
                        &format!("{p}.shipping"),
                        "tax and shipping must be in the total's currency and at most the total",
                    );
                }
            }
            Some(d::Body::CreditMemo(d::CreditMemo {
                total: total?,
                tax,
                lines,
                shipping,
            }))
        }
        K::JournalEntry(j) => {
            journal_entry(c, &format!("{p}.journal_entry"), j).map(d::Body::JournalEntry)
        }
        K::ProcessorPayment(pp) => {
            let p = format!("{p}.processor_payment");
            let payment_type = c.required::<pb::ProcessorPaymentType, d::PaymentType>(
                &format!("{p}.type"),
                pp.r#type,
            );
            let amount = c.money(&format!("{p}.amount"), pp.amount.as_ref(), true, true);
            let fee = c.optional_money(&format!("{p}.fee"), pp.fee.as_ref(), true);
            let exchange_rate = c.rate(&format!("{p}.exchange_rate"), &pp.exchange_rate);
            if let (Some(a), Some(f), None) = (amount, fee, exchange_rate)
                && a.currency != f.currency
            {
                c.fail(
                    &format!("{p}.exchange_rate"),
                    format!(
                        "required when the fee's currency ({}) differs from the amount's ({})",
                        f.currency, a.currency
                    ),
                );
            }
            Some(d::Body::ProcessorPayment(d::ProcessorPayment {
                payment_type: payment_type?,
                amount: amount?,
                fee,
                exchange_rate,
                payment_intent_id: c.id(
                    &format!("{p}.payment_intent_id"),
                    &pp.payment_intent_id,
                    false,
                    ID_MAX,
                ),
                charge_id: c.id(&format!("{p}.charge_id"), &pp.charge_id, false, ID_MAX),
                balance_transaction_id: c.id(
                    &format!("{p}.balance_transaction_id"),
                    &pp.balance_transaction_id,
                    false,
                    ID_MAX,
                ),
            }))
        }
        K::BalanceTransaction(b) => {
            let p = format!("{p}.balance_transaction");
            let category = if b.reporting_category.is_empty() {
                c.fail(&format!("{p}.reporting_category"), "required");
                None
            } else if !lowercase_id(&b.reporting_category, NAME_MAX, false, b"_") {
                c.fail(
                    &format!("{p}.reporting_category"),
                    "1-63 of [a-z_] (\"charge\", \"refund\", \"fee\")",
                );
                None
            } else {
                Some(b.reporting_category.clone())
            };
            let amount = c.money(&format!("{p}.amount"), b.amount.as_ref(), true, false);
            let fee = c.optional_money(&format!("{p}.fee"), b.fee.as_ref(), false);
            // A fee comes back (negative) only when the processor reverses one: a won
            // dispute gives its dispute fee back; an adjustment may refund a fee.
            if fee.is_some_and(|f| f.amount.is_sign_negative() && !f.amount.is_zero())
                && !FEE_GIVEN_BACK.contains(&b.reporting_category.as_str())
            {
                c.fail(
                    &format!("{p}.fee.amount"),
                    format!(
                        "must not be negative for a '{}' transaction; only {} may give a fee back",
                        b.reporting_category,
                        FEE_GIVEN_BACK.join(", ")
                    ),
                );
            }
            let net = c.optional_money(&format!("{p}.net"), b.net.as_ref(), false);
            let exchange_rate = c.rate(&format!("{p}.exchange_rate"), &b.exchange_rate);
            let available_time = c.timestamp(
                &format!("{p}.available_time"),
                b.available_time.as_ref(),
                false,
                When::Scheduled,
            );
            Some(d::Body::BalanceTransaction(d::BalanceTransaction {
                reporting_category: category?,
                amount: amount?,
                fee,
                net,
                exchange_rate,
                source: c.id(&format!("{p}.source"), &b.source, false, ID_MAX),
                payout_id: c.id(&format!("{p}.payout_id"), &b.payout_id, false, ID_MAX),
                available_time,
            }))
        }
        K::Payout(po) => {
            let p = format!("{p}.payout");
            let amount = c.money(&format!("{p}.amount"), po.amount.as_ref(), true, false);
            let status =
                c.required::<pb::PayoutStatus, d::PayoutStatus>(&format!("{p}.status"), po.status);
            let arrival_time = c.timestamp(
                &format!("{p}.arrival_time"),
                po.arrival_time.as_ref(),
                false,
                When::Scheduled,
            );
            Some(d::Body::Payout(d::Payout {
                amount: amount?,
                status: status?,
                arrival_time,
            }))
        }
        K::BankDeposit(b) => {
            let p = format!("{p}.bank_deposit");
            let amount = c.money(&format!("{p}.amount"), b.amount.as_ref(), true, true);
            Some(d::Body::BankDeposit(d::BankDeposit {
                amount: amount?,
                account: c
                    .id(&format!("{p}.account"), &b.account, false, ID_MAX)
                    .unwrap_or_default(),
                description: c.prose(&format!("{p}.description"), &b.description, PROSE_MAX),
            }))
        }
    }
}

fn storefront_order(
    c: &mut Check<'_>,
    p: &str,
    o: &pb::StorefrontOrder,
) -> Option<d::StorefrontOrder> {
    let total = c.money(&format!("{p}.total"), o.total.as_ref(), true, true);
    let subtotal = c.optional_money(&format!("{p}.subtotal"), o.subtotal.as_ref(), true);
    let total_discount = c.optional_money(
        &format!("{p}.total_discount"),
        o.total_discount.as_ref(),
        true,
    );
    let total_tax = c.optional_money(&format!("{p}.total_tax"), o.total_tax.as_ref(), true);
    let total_shipping = c.optional_money(
        &format!("{p}.total_shipping"),
        o.total_shipping.as_ref(),
        true,
    );
    let mut line_items = vec![];
    let given = c.items(&format!("{p}.line_items"), &o.line_items, MAX_ITEMS);
    for (i, l) in given.iter().enumerate() {
        let lp = format!("{p}.line_items[{i}]");
        let line = d::LineItem {
            sku: c
                .id(&format!("{lp}.sku"), &l.sku, false, ID_MAX)
                .unwrap_or_default(),
            quantity: c.quantity(&format!("{lp}.quantity"), l.quantity, 1),
            unit_price: c.optional_money(&format!("{lp}.unit_price"), l.unit_price.as_ref(), true),
            discount: c.optional_money(&format!("{lp}.discount"), l.discount.as_ref(), true),
            tax: c.optional_money(&format!("{lp}.tax"), l.tax.as_ref(), true),
        };
        // The rules price a line at unit x quantity: that figure is bounded
        // like any amount, so every sum of the lines exists.
        if let Some(price) = line.unit_price {
            let extended = price.amount.checked_mul(Decimal::from(line.quantity));
            if !extended.is_some_and(check::below_amount_bound) {
                c.fail(
                    &lp,
                    format!(
                        "unit price x quantity is too large: at most {AMOUNT_DIGITS} digits \
                         before the point"
                    ),
                );
            }
        }
        line_items.push(line);
    }
    let mut discounts = vec![];
    let given = c.items(&format!("{p}.discounts"), &o.discounts, MAX_ITEMS);
    for (i, dsc) in given.iter().enumerate() {
        let dp = format!("{p}.discounts[{i}]");
        let code = c
            .id(&format!("{dp}.code"), &dsc.code, false, ID_MAX)
            .unwrap_or_default();
        if let Some(amount) = c.money(&format!("{dp}.amount"), dsc.amount.as_ref(), true, true) {
            discounts.push(d::Discount { code, amount });
        }
    }
    let mut tenders = vec![];
    let given = c.items(&format!("{p}.tenders"), &o.tenders, MAX_ITEMS);
    for (i, t) in given.iter().enumerate() {
        let tp = format!("{p}.tenders[{i}]");
        let tender_type =
            c.required::<pb::TenderType, d::TenderType>(&format!("{tp}.type"), t.r#type);
        let gateway = c
            .id(&format!("{tp}.gateway"), &t.gateway, false, NAME_MAX)
            .unwrap_or_default();
        let amount = c.money(&format!("{tp}.amount"), t.amount.as_ref(), true, true);
        let processor_reference = c.id(
            &format!("{tp}.processor_reference"),
            &t.processor_reference,
            false,
            ID_MAX,
        );
        if let (Some(tender_type), Some(amount)) = (tender_type, amount) {
            tenders.push(d::Tender {
                tender_type,
                gateway,
                amount,
                processor_reference,
            });
        }
    }
    Some(d::StorefrontOrder {
        name: c.prose(&format!("{p}.name"), &o.name, ID_MAX),
        total: total?,
        subtotal,
        total_discount,
        total_tax,
        total_shipping,
        line_items,
        discounts,
        tenders,
    })
}

fn invoice_lines(c: &mut Check<'_>, p: &str, lines: &[pb::InvoiceLine]) -> Vec<d::InvoiceLine> {
    c.items(&format!("{p}.lines"), lines, MAX_ITEMS)
        .iter()
        .enumerate()
        .map(|(i, l)| d::InvoiceLine {
            sku: c
                .id(&format!("{p}.lines[{i}].sku"), &l.sku, false, ID_MAX)
                .unwrap_or_default(),
            quantity: c.quantity(&format!("{p}.lines[{i}].quantity"), l.quantity, 0),
            amount: c.optional_money(&format!("{p}.lines[{i}].amount"), l.amount.as_ref(), false),
        })
        .collect()
}

fn journal_entry(c: &mut Check<'_>, p: &str, j: &pb::JournalEntry) -> Option<d::JournalEntry> {
    let violations_before = c.out.len();
    let currency = c.currency(&format!("{p}.currency_code"), &j.currency_code);
    let exchange_rate = c.rate(&format!("{p}.exchange_rate"), &j.exchange_rate);
    if j.lines.len() < 2 {
        c.fail(
            &format!("{p}.lines"),
            d::JournalError::TooFewLines.to_string(),
        );
    }
    let given = c.items(&format!("{p}.lines"), &j.lines, MAX_JOURNAL_LINES);
    let mut lines = vec![];
    for (i, l) in given.iter().enumerate() {
        let lp = format!("{p}.lines[{i}]");
        let account = c.id(&format!("{lp}.account"), &l.account, true, ID_MAX);
        let mut side = |field: &str, s: &str| -> Option<Decimal> {
            if s.is_empty() {
                return Some(Decimal::ZERO);
            }
            c.amount(&format!("{lp}.{field}"), s, currency, true)
        };
        let debit = side("debit", &l.debit);
        let credit = side("credit", &l.credit);
        if let (Some(dr), Some(cr)) = (debit, credit) {
            // Negative sides were refused above, field by field.
            if let Err(e) = d::JournalLine::check_sides(i, dr, cr) {
                c.fail(&lp, e.to_string());
            }
        }
        let memo = c.prose(&format!("{lp}.memo"), &l.memo, PROSE_MAX);
        let name = c.prose(&format!("{lp}.name"), &l.name, ID_MAX);
        let reference = c.id(&format!("{lp}.reference"), &l.reference, false, ID_MAX);
        if let (Some(account), Some(debit), Some(credit)) = (account, debit, credit) {
            lines.push(d::JournalLine {
                account,
                debit,
                credit,
                memo,
                name,
                reference,
            });
        }
    }
    let entry = d::JournalEntry {
        currency: currency?,
        exchange_rate,
        posting_period: c.prose(&format!("{p}.posting_period"), &j.posting_period, NAME_MAX),
        subsidiary: c.prose(&format!("{p}.subsidiary"), &j.subsidiary, ID_MAX),
        memo: c.prose(&format!("{p}.memo"), &j.memo, PROSE_MAX),
        lines,
    };
    // Balanced is judged whenever every line could be read, so a bad memo
    // and an unbalanced journal are both reported at once.
    if entry.lines.len() == j.lines.len()
        && let Err(e) = entry.check_balance()
    {
        c.fail(&format!("{p}.lines"), e.to_string());
    }
    if c.out.len() > violations_before {
        return None;
    }
    // What leaves validation is a journal by the domain's rules.
    debug_assert!(
        entry.check().is_ok(),
        "validation let a broken journal through: {entry:?}"
    );
    Some(entry)
}

#[cfg(test)]
mod tests;
