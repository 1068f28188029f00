//! One order's records as each system sends them: the storefront's order
//! and transactions, the processor's payments and balance transactions,
//! the 3PL's shipments, the ERP's invoices, credit memo and journal. Each
//! comes with the time Tally receives it (its knowledge time).

use super::build::{journal_line, money, rate_str, record, reference};
use super::faults::FaultKind;
use super::plan::{Channel, Plan};
use super::rng::Rng;
use crate::proto::tally::v1 as pb;
use pb::record::Kind;

/// A record and when it reaches Tally (seconds into the month).
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: i64,
    pub record: pb::Record,
}

/// A balance transaction waiting for its payout: the payout sweeping
/// funds available on `day`.
#[derive(Debug, Clone)]
pub struct Movement {
    pub day: i64,
    pub txn: String,
    pub category: &'static str,
    pub source: String,
    /// Settlement (USD) cents: gross, fee.
    pub amount: i64,
    pub fee: i64,
    pub rate: Option<String>,
    pub at: i64,
    pub order: String,
}

/// The processor's fee on a settled amount: 2.9% + 0.30.
pub fn fee_on(settled: i64) -> i64 {
    (settled * 29 + 500) / 1_000 + 30
}

pub struct Ids {
    pub pi: String,
    pub ch: String,
    pub txn: String,
    pub re: String,
    pub txn_re: String,
}

pub fn ids(p: &Plan) -> Ids {
    let n = p.n;
    Ids {
        pi: format!("pi_sim{n:08}"),
        ch: format!("ch_sim{n:08}"),
        txn: format!("txn_sim{n:08}"),
        re: format!("re_sim{n:08}"),
        txn_re: format!("txn_simr{n:08}"),
    }
}

/// The records of one order, and its movements at the processor.
pub fn records(p: &Plan, rng: &mut Rng) -> Option<(Vec<Sent>, Vec<Movement>)> {
    let ids = ids(p);
    let mut out = Outbox { sent: vec![], rng };
    let cur = p.currency;
    let fx = (cur != "USD").then(|| rate_str(p.rate_e4));
    out.send(p.placed, (0, 120), storefront_order(p, &ids));
    for (i, t) in p.tenders.iter().enumerate() {
        let card = t.kind == pb::TenderType::Card;
        out.send(
            p.placed + 1,
            (0, 120),
            record(
                "shopify",
                &format!("{}-t{i}", p.id),
                &p.id,
                p.placed + 1,
                Kind::StorefrontTransaction(pb::StorefrontTransaction {
                    kind: pb::StorefrontTransactionKind::Sale as i32,
                    status: pb::StorefrontTransactionStatus::Success as i32,
                    gateway: t.gateway.into(),
                    amount: money(cur, t.amount),
                    parent_id: String::new(),
                    processor_reference: if card { ids.ch.clone() } else { String::new() },
                }),
            ),
        );
    }
    let charged = p.placed + 5;
    let card = p.card();
    let settled = super::build::convert(card, p.rate_e4)?;
    let fee = fee_on(settled);
    out.send(
        charged,
        (0, 900),
        record(
            "stripe",
            &ids.ch,
            &p.id,
            charged,
            Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: pb::ProcessorPaymentType::Charge as i32,
                amount: money(cur, card),
                fee: money("USD", fee),
                exchange_rate: fx.clone().unwrap_or_default(),
                payment_intent_id: ids.pi.clone(),
                charge_id: ids.ch.clone(),
                balance_transaction_id: ids.txn.clone(),
            }),
        ),
    );
    let mut moves = vec![Movement {
        day: charged / super::build::DAY + 3,
        txn: ids.txn.clone(),
        category: "charge",
        source: ids.ch.clone(),
        amount: settled,
        fee,
        rate: fx.clone(),
        at: charged,
        order: p.id.clone(),
    }];
    // The ERP books the sale at the processor's rate of the day (the
    // fault: its own daily rate, 2% apart).
    let erp_rate = if p.has(FaultKind::FxRateMismatch) {
        Some(rate_str(p.rate_e4 * 102 / 100))
    } else {
        fx.clone()
    };
    out.send(
        charged,
        (600, 7_200),
        sales_journal(p, &ids, card, erp_rate),
    );
    let ships = !p.has(FaultKind::LateFulfilment);
    let invoices = ships && !p.has(FaultKind::MissingInvoice);
    for (k, (at, lines)) in p.shipments.iter().enumerate().filter(|_| ships) {
        out.send(*at, (0, 3_600), fulfilment(p, k, *at, lines));
        if invoices {
            let inv_at = at + out.rng.range(60, 1_800);
            out.send(inv_at, (600, 7_200), invoice(p, k, inv_at, lines));
        }
    }
    if let Some((at, line)) = p.refund {
        let amount = p.refund_amount()?;
        let back = super::build::convert(amount, p.rate_e4)?;
        for r in refund_records(p, &ids, at, line, amount) {
            let system_delay = if r.source_system == "netsuite" {
                (600, 7_200)
            } else {
                (0, 900)
            };
            let credit_memo = matches!(r.kind, Some(Kind::CreditMemo(_)));
            if credit_memo && p.has(FaultKind::RefundNotPropagated) {
                continue;
            }
            out.send(at, system_delay, r);
        }
        moves.push(Movement {
            day: at / super::build::DAY + 1,
            txn: ids.txn_re.clone(),
            category: "refund",
            source: ids.re.clone(),
            amount: -back,
            fee: 0,
            rate: fx,
            at,
            order: p.id.clone(),
        });
    }
    Some((out.sent, moves))
}

/// Records with the time each reaches Tally: its event time plus the
/// sending system's delay.
struct Outbox<'a> {
    sent: Vec<Sent>,
    rng: &'a mut Rng,
}

impl Outbox<'_> {
    fn send(&mut self, at: i64, delay: (i64, i64), record: pb::Record) {
        let at = at + self.rng.range(delay.0, delay.1);
        self.sent.push(Sent { at, record });
    }
}

fn storefront_order(p: &Plan, ids: &Ids) -> pb::Record {
    let cur = p.currency;
    let prefix = match p.channel {
        Channel::Web => "W",
        Channel::Pos => "P",
        Channel::Marketplace => "M",
    };
    record(
        "shopify",
        &p.id,
        &p.id,
        p.placed,
        Kind::StorefrontOrder(pb::StorefrontOrder {
            name: format!("#{prefix}{}", p.id),
            total: money(cur, p.total()),
            subtotal: money(cur, p.subtotal()),
            total_discount: money(cur, p.discount()),
            total_tax: money(cur, p.tax()),
            total_shipping: money(cur, p.shipping),
            line_items: p
                .lines
                .iter()
                .map(|l| pb::LineItem {
                    sku: l.sku.clone(),
                    quantity: l.qty,
                    unit_price: money(cur, l.unit),
                    discount: money(cur, l.discount),
                    tax: money(cur, l.tax),
                })
                .collect(),
            discounts: p
                .code
                .map(|c| pb::Discount {
                    code: c.into(),
                    amount: money(cur, p.discount()),
                })
                .into_iter()
                .collect(),
            tenders: p
                .tenders
                .iter()
                .map(|t| pb::Tender {
                    r#type: t.kind as i32,
                    gateway: t.gateway.into(),
                    amount: money(cur, t.amount),
                    processor_reference: if t.kind == pb::TenderType::Card {
                        ids.pi.clone()
                    } else {
                        String::new()
                    },
                })
                .collect(),
        }),
    )
}

fn sales_journal(p: &Plan, ids: &Ids, card: i64, rate: Option<String>) -> pb::Record {
    record(
        "netsuite",
        &format!("JE-S{}", p.id),
        "",
        p.placed + 5,
        Kind::JournalEntry(pb::JournalEntry {
            currency_code: p.currency.into(),
            exchange_rate: rate.unwrap_or_default(),
            posting_period: "Nov 2026".into(),
            subsidiary: "Sim Retail US".into(),
            memo: format!("Shopify order {}", p.id),
            lines: vec![
                journal_line("1200 Stripe Clearing", card, 0, &ids.ch),
                journal_line("4000 Sales", 0, card, ""),
            ],
        }),
    )
}

fn fulfilment(p: &Plan, k: usize, at: i64, lines: &[usize]) -> pb::Record {
    record(
        "shipbob",
        &format!("F-{}-{k}", p.id),
        &p.id,
        at,
        Kind::Fulfillment(pb::Fulfillment {
            lines: lines
                .iter()
                .filter_map(|i| p.lines.get(*i))
                .map(|l| pb::FulfillmentLine {
                    sku: l.sku.clone(),
                    quantity: l.qty,
                })
                .collect(),
            tracking_number: format!("1Z{:010}{k}", p.n),
            location: if p.channel == Channel::Pos {
                "Store 12"
            } else {
                "Reno DC"
            }
            .into(),
        }),
    )
}

/// The invoice of shipment `k`: its lines, their discount and tax, and the
/// shipping on the first. The fault: full retail, the discount dropped.
fn invoice(p: &Plan, k: usize, at: i64, lines: &[usize]) -> pb::Record {
    let cur = p.currency;
    let ls: Vec<_> = lines.iter().filter_map(|i| p.lines.get(*i)).collect();
    let unmapped = p.has(FaultKind::DiscountNotMapped);
    let discount = if unmapped {
        0
    } else {
        ls.iter().map(|l| l.discount).sum()
    };
    let tax: i64 = ls.iter().map(|l| l.tax).sum();
    let shipping = if k == 0 { p.shipping } else { 0 };
    let gross: i64 = ls.iter().map(|l| l.gross()).sum();
    let mut r = record(
        "netsuite",
        &format!("INV-{}-{k}", p.id),
        &p.id,
        at,
        Kind::Invoice(pb::Invoice {
            total: money(cur, gross - discount + tax + shipping),
            discount: money(cur, discount),
            tax: money(cur, tax),
            shipping: money(cur, shipping),
            lines: ls
                .iter()
                .map(|l| pb::InvoiceLine {
                    sku: l.sku.clone(),
                    quantity: l.qty,
                    amount: money(cur, l.gross()),
                })
                .collect(),
        }),
    );
    r.references = vec![reference(
        pb::ReferenceType::Fulfillment,
        &format!("F-{}-{k}", p.id),
    )];
    r
}

fn refund_records(p: &Plan, ids: &Ids, at: i64, line: usize, amount: i64) -> Vec<pb::Record> {
    let cur = p.currency;
    let Some(l) = p.lines.get(line) else {
        return vec![];
    };
    let shipment = p
        .shipments
        .iter()
        .position(|(_, ls)| ls.contains(&line))
        .unwrap_or(0);
    let mut memo = record(
        "netsuite",
        &format!("CM-{}", p.id),
        &p.id,
        at + 600,
        Kind::CreditMemo(pb::CreditMemo {
            total: money(cur, amount),
            tax: money(cur, l.tax),
            lines: vec![pb::InvoiceLine {
                sku: l.sku.clone(),
                quantity: l.qty,
                amount: money(cur, l.gross() - l.discount),
            }],
            shipping: money(cur, 0),
        }),
    );
    memo.references = vec![reference(
        pb::ReferenceType::Invoice,
        &format!("INV-{}-{shipment}", p.id),
    )];
    vec![
        record(
            "shopify",
            &format!("{}-r", p.id),
            &p.id,
            at,
            Kind::StorefrontTransaction(pb::StorefrontTransaction {
                kind: pb::StorefrontTransactionKind::Refund as i32,
                status: pb::StorefrontTransactionStatus::Success as i32,
                gateway: "shopify_payments".into(),
                amount: money(cur, amount),
                parent_id: format!("{}-t0", p.id),
                processor_reference: ids.ch.clone(),
            }),
        ),
        record(
            "stripe",
            &ids.re,
            &p.id,
            at + 2,
            Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: pb::ProcessorPaymentType::Refund as i32,
                amount: money(cur, amount),
                fee: None,
                exchange_rate: String::new(),
                payment_intent_id: ids.pi.clone(),
                charge_id: ids.ch.clone(),
                balance_transaction_id: ids.txn_re.clone(),
            }),
        ),
        memo,
    ]
}
