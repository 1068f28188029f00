//! Turns wire records into domain records, naming every malformed field by
//! its path in the request. Nothing here touches storage.

use rust_decimal::Decimal;

use crate::api::names::{lowercase_id, valid_order_id};
use crate::domain::money::parse_decimal;
use crate::domain::record as d;
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;

mod check;

use check::Check;

/// The most records one request (or one stream chunk) may carry.
pub const MAX_BATCH: usize = 1000;

fn valid_source_system(s: &str) -> bool {
    lowercase_id(s, 63, true, b"_-")
}

/// Validates record `index` of a request. Returns the domain record only
/// when every field of it is well-formed; violations go to `out`.
pub fn record(index: usize, r: &pb::Record, out: &mut Vec<FieldViolation>) -> Option<d::Record> {
    let before = out.len();
    let p = format!("records[{index}]");
    let mut c = Check { out };

    let source_id = c.text(&format!("{p}.source_id"), &r.source_id, true, 255);
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
    let event_time = c.timestamp(&format!("{p}.event_time"), r.event_time.as_ref(), true);
    let source_update_time = c.timestamp(
        &format!("{p}.source_update_time"),
        r.source_update_time.as_ref(),
        false,
    );
    let mut references = vec![];
    for (j, reference) in r.references.iter().enumerate() {
        let rp = format!("{p}.references[{j}]");
        let kind =
            c.required::<pb::ReferenceType, d::RefKind>(&format!("{rp}.type"), reference.r#type);
        let id = c.text(&format!("{rp}.id"), &reference.id, true, 255);
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
        c.fail(&format!("{p}.order_id"), "1-128 of [A-Za-z0-9._~-]");
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
                .text(&format!("{p}.gateway"), &t.gateway, false, 63)
                .unwrap_or_default();
            let amount = c.money(&format!("{p}.amount"), t.amount.as_ref(), true, true);
            let parent_id = c.text(&format!("{p}.parent_id"), &t.parent_id, false, 255);
            let processor_reference = c.text(
                &format!("{p}.processor_reference"),
                &t.processor_reference,
                false,
                255,
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
            let lines = f
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| d::FulfillmentLine {
                    sku: c
                        .text(&format!("{p}.lines[{i}].sku"), &l.sku, true, 255)
                        .unwrap_or_default(),
                    quantity: c.quantity(&format!("{p}.lines[{i}].quantity"), l.quantity, 1),
                })
                .collect();
            Some(d::Body::Fulfillment(d::Fulfillment {
                lines,
                tracking_number: c
                    .text(
                        &format!("{p}.tracking_number"),
                        &f.tracking_number,
                        false,
                        255,
                    )
                    .unwrap_or_default(),
                location: c
                    .text(&format!("{p}.location"), &f.location, false, 255)
                    .unwrap_or_default(),
            }))
        }
        K::Invoice(i) => {
            let p = format!("{p}.invoice");
            let total = c.money(&format!("{p}.total"), i.total.as_ref(), true, true);
            let discount = c.optional_money(&format!("{p}.discount"), i.discount.as_ref(), true);
            let tax = c.optional_money(&format!("{p}.tax"), i.tax.as_ref(), true);
            let shipping = c.optional_money(&format!("{p}.shipping"), i.shipping.as_ref(), true);
            let lines = invoice_lines(c, &p, &i.lines);
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
            let lines = invoice_lines(c, &p, &m.lines);
            Some(d::Body::CreditMemo(d::CreditMemo {
                total: total?,
                tax,
                lines,
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
            if let (Some(a), Some(f), None) = (amount, fee, exchange_rate) {
                if a.currency != f.currency {
                    c.fail(
                        &format!("{p}.exchange_rate"),
                        format!(
                            "required when the fee's currency ({}) differs from the amount's ({})",
                            f.currency, a.currency
                        ),
                    );
                }
            }
            Some(d::Body::ProcessorPayment(d::ProcessorPayment {
                payment_type: payment_type?,
                amount: amount?,
                fee,
                exchange_rate,
                payment_intent_id: c.text(
                    &format!("{p}.payment_intent_id"),
                    &pp.payment_intent_id,
                    false,
                    255,
                ),
                charge_id: c.text(&format!("{p}.charge_id"), &pp.charge_id, false, 255),
                balance_transaction_id: c.text(
                    &format!("{p}.balance_transaction_id"),
                    &pp.balance_transaction_id,
                    false,
                    255,
                ),
            }))
        }
        K::BalanceTransaction(b) => {
            let p = format!("{p}.balance_transaction");
            let category = if b.reporting_category.is_empty() {
                c.fail(&format!("{p}.reporting_category"), "required");
                None
            } else if !lowercase_id(&b.reporting_category, 63, false, b"_") {
                c.fail(
                    &format!("{p}.reporting_category"),
                    "1-63 of [a-z_] (\"charge\", \"refund\", \"fee\")",
                );
                None
            } else {
                Some(b.reporting_category.clone())
            };
            let amount = c.money(&format!("{p}.amount"), b.amount.as_ref(), true, false);
            let fee = c.optional_money(&format!("{p}.fee"), b.fee.as_ref(), true);
            let net = c.optional_money(&format!("{p}.net"), b.net.as_ref(), false);
            let exchange_rate = c.rate(&format!("{p}.exchange_rate"), &b.exchange_rate);
            let available_time = c.timestamp(
                &format!("{p}.available_time"),
                b.available_time.as_ref(),
                false,
            );
            Some(d::Body::BalanceTransaction(d::BalanceTransaction {
                reporting_category: category?,
                amount: amount?,
                fee,
                net,
                exchange_rate,
                source: c.text(&format!("{p}.source"), &b.source, false, 255),
                payout_id: c.text(&format!("{p}.payout_id"), &b.payout_id, false, 255),
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
                    .text(&format!("{p}.account"), &b.account, false, 255)
                    .unwrap_or_default(),
                description: c
                    .text(&format!("{p}.description"), &b.description, false, 1024)
                    .unwrap_or_default(),
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
    for (i, l) in o.line_items.iter().enumerate() {
        let lp = format!("{p}.line_items[{i}]");
        line_items.push(d::LineItem {
            sku: c
                .text(&format!("{lp}.sku"), &l.sku, false, 255)
                .unwrap_or_default(),
            quantity: c.quantity(&format!("{lp}.quantity"), l.quantity, 1),
            unit_price: c.optional_money(&format!("{lp}.unit_price"), l.unit_price.as_ref(), true),
            discount: c.optional_money(&format!("{lp}.discount"), l.discount.as_ref(), true),
            tax: c.optional_money(&format!("{lp}.tax"), l.tax.as_ref(), true),
        });
    }
    let mut discounts = vec![];
    for (i, dsc) in o.discounts.iter().enumerate() {
        let dp = format!("{p}.discounts[{i}]");
        let code = c
            .text(&format!("{dp}.code"), &dsc.code, false, 255)
            .unwrap_or_default();
        if let Some(amount) = c.money(&format!("{dp}.amount"), dsc.amount.as_ref(), true, true) {
            discounts.push(d::Discount { code, amount });
        }
    }
    let mut tenders = vec![];
    for (i, t) in o.tenders.iter().enumerate() {
        let tp = format!("{p}.tenders[{i}]");
        let tender_type =
            c.required::<pb::TenderType, d::TenderType>(&format!("{tp}.type"), t.r#type);
        let gateway = c
            .text(&format!("{tp}.gateway"), &t.gateway, false, 63)
            .unwrap_or_default();
        let amount = c.money(&format!("{tp}.amount"), t.amount.as_ref(), true, true);
        let processor_reference = c.text(
            &format!("{tp}.processor_reference"),
            &t.processor_reference,
            false,
            255,
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
        name: c
            .text(&format!("{p}.name"), &o.name, false, 255)
            .unwrap_or_default(),
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
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| d::InvoiceLine {
            sku: c
                .text(&format!("{p}.lines[{i}].sku"), &l.sku, false, 255)
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
    let mut lines = vec![];
    for (i, l) in j.lines.iter().enumerate() {
        let lp = format!("{p}.lines[{i}]");
        let account = c.text(&format!("{lp}.account"), &l.account, true, 255);
        let mut side = |field: &str, s: &str| -> Option<Decimal> {
            if s.is_empty() {
                return Some(Decimal::ZERO);
            }
            match parse_decimal(s, currency) {
                Ok(v) if v.is_sign_negative() && !v.is_zero() => {
                    c.fail(
                        &format!("{lp}.{field}"),
                        format!("'{s}' must not be negative"),
                    );
                    None
                }
                Ok(v) => Some(v),
                Err(e) => {
                    c.fail(&format!("{lp}.{field}"), e.to_string());
                    None
                }
            }
        };
        let debit = side("debit", &l.debit);
        let credit = side("credit", &l.credit);
        if let (Some(dr), Some(cr)) = (debit, credit) {
            // Negative sides were refused above, field by field.
            if let Err(e) = d::JournalLine::check_sides(i, dr, cr) {
                c.fail(&lp, e.to_string());
            }
        }
        if let (Some(account), Some(debit), Some(credit)) = (account, debit, credit) {
            lines.push(d::JournalLine {
                account,
                debit,
                credit,
                memo: l.memo.clone(),
                name: l.name.clone(),
                reference: (!l.reference.is_empty()).then(|| l.reference.clone()),
            });
        }
    }
    let entry = d::JournalEntry {
        currency: currency?,
        exchange_rate,
        posting_period: j.posting_period.clone(),
        subsidiary: j.subsidiary.clone(),
        memo: j.memo.clone(),
        lines,
    };
    if entry.lines.len() == j.lines.len() {
        if let Err(e) = entry.check_balance() {
            c.fail(&format!("{p}.lines"), e.to_string());
            return None;
        }
    }
    // What leaves validation is a journal by the domain's rules.
    debug_assert!(
        c.out.len() > violations_before || entry.check().is_ok(),
        "validation let a broken journal through: {entry:?}"
    );
    Some(entry)
}
