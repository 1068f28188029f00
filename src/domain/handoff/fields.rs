//! A contract's required fields and formats, executable: each rule names
//! the handoff it belongs to, says what it requires (the text a contract
//! shows), and finds the records of an order that break it. Matching runs
//! them (`matching::rules::contract_fields`) and raises VALIDATION_FAILED.

use crate::domain::record::{Body, Handoff, PaymentType, Record, StorefrontOrder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldRule {
    /// Every storefront order line names its SKU.
    OrderLineSku,
    /// Every SKU the ERP invoices is one the order has (an unmapped SKU
    /// bills something nobody ordered, or maps a product wrongly).
    InvoicedSkuOrdered,
    /// A refund names the payment it refunds (charge or payment intent);
    /// a capture names its payment intent.
    PaymentReference,
    /// Stripe's ids in Stripe's formats: pi_, ch_ or py_, txn_, po_.
    StripeIdFormats,
}

impl FieldRule {
    pub const ALL: [FieldRule; 4] = [
        FieldRule::OrderLineSku,
        FieldRule::InvoicedSkuOrdered,
        FieldRule::PaymentReference,
        FieldRule::StripeIdFormats,
    ];

    pub fn handoff(self) -> Handoff {
        match self {
            FieldRule::OrderLineSku => Handoff::OrderToFulfillment,
            FieldRule::InvoicedSkuOrdered => Handoff::FulfillmentToInvoice,
            FieldRule::PaymentReference => Handoff::InvoiceToPayment,
            FieldRule::StripeIdFormats => Handoff::PaymentToCashApplication,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FieldRule::OrderLineSku => "line_items[].sku is present",
            FieldRule::InvoicedSkuOrdered => "invoice lines[].sku is an ordered SKU",
            FieldRule::PaymentReference => {
                "a refund names its charge or payment intent; a capture its payment intent"
            }
            FieldRule::StripeIdFormats => {
                "stripe ids: payment_intent pi_, charge ch_ or py_, balance transaction txn_, payout po_"
            }
        }
    }

    /// The rules a handoff's contract enforces.
    pub fn of(h: Handoff) -> Vec<FieldRule> {
        Self::ALL.into_iter().filter(|r| r.handoff() == h).collect()
    }

    /// What `r` breaks of this rule, one text per problem (`order`: the
    /// order's current storefront order, when known).
    pub fn problems(self, order: Option<&StorefrontOrder>, r: &Record) -> Vec<String> {
        match (self, &r.body) {
            (FieldRule::OrderLineSku, Body::StorefrontOrder(o)) => o
                .line_items
                .iter()
                .enumerate()
                .filter(|(_, l)| l.sku.trim().is_empty())
                .map(|(i, _)| format!("line_items[{i}].sku is missing"))
                .collect(),
            (FieldRule::InvoicedSkuOrdered, Body::Invoice(inv)) => {
                let Some(o) = order.filter(|o| !o.line_items.is_empty()) else {
                    return vec![];
                };
                inv.lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| !o.line_items.iter().any(|ol| ol.sku == l.sku))
                    .map(|(i, l)| {
                        format!(
                            "lines[{i}].sku '{}' is not on the order (unmapped SKU)",
                            l.sku
                        )
                    })
                    .collect()
            }
            (FieldRule::PaymentReference, Body::ProcessorPayment(p)) => {
                let missing = match p.payment_type {
                    PaymentType::Refund => p.charge_id.is_none() && p.payment_intent_id.is_none(),
                    PaymentType::Capture => p.payment_intent_id.is_none(),
                    PaymentType::Charge => false,
                };
                if missing {
                    vec![format!(
                        "{} {} names no payment it belongs to (missing reference)",
                        p.payment_type.as_str(),
                        r.source_id
                    )]
                } else {
                    vec![]
                }
            }
            (FieldRule::StripeIdFormats, body) if r.source_system == "stripe" => {
                stripe_formats(r, body)
            }
            _ => vec![],
        }
    }
}

fn stripe_formats(r: &Record, body: &Body) -> Vec<String> {
    let mut ids: Vec<(&str, &str, &[&str])> = vec![];
    match body {
        Body::ProcessorPayment(p) => {
            if let Some(pi) = &p.payment_intent_id {
                ids.push(("payment_intent_id", pi, &["pi_"]));
            }
            if let Some(ch) = &p.charge_id {
                ids.push(("charge_id", ch, &["ch_", "py_"]));
            }
            if let Some(bt) = &p.balance_transaction_id {
                ids.push(("balance_transaction_id", bt, &["txn_"]));
            }
        }
        Body::BalanceTransaction(b) => {
            ids.push(("id", &r.source_id, &["txn_"]));
            if let Some(po) = &b.payout_id {
                ids.push(("payout_id", po, &["po_"]));
            }
        }
        Body::Payout(_) => ids.push(("id", &r.source_id, &["po_"])),
        _ => {}
    }
    ids.into_iter()
        .filter(|(_, id, prefixes)| !prefixes.iter().any(|p| id.starts_with(p)))
        .map(|(field, id, prefixes)| {
            format!(
                "{field} '{id}' is not in the format {}",
                prefixes.join(" or ")
            )
        })
        .collect()
}
