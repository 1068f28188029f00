//! What each record contributes to a period report's figures. One
//! function, used where deltas are written (ingest) and where a figure is
//! traced back to its records (drill-down, diff), so the two cannot
//! disagree.

use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::record::{Body, PaymentType, PayoutStatus, Record, TxnKind, TxnStatus};

/// A figure a record counts towards. Names are stable: they are stored
/// (report_deltas.figure) and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Figure {
    Orders,
    GrossSales,
    Discounts,
    Tax,
    Shipping,
    StorefrontRefunds,
    Captured,
    Refunded,
    Fees,
    DisputesLost,
    DisputesWon,
    PayoutsPaid,
    Invoiced,
    CreditMemos,
    RevenueJournaled,
    Deposited,
}

impl Figure {
    pub const ALL: [Figure; 16] = [
        Figure::Orders,
        Figure::GrossSales,
        Figure::Discounts,
        Figure::Tax,
        Figure::Shipping,
        Figure::StorefrontRefunds,
        Figure::Captured,
        Figure::Refunded,
        Figure::Fees,
        Figure::DisputesLost,
        Figure::DisputesWon,
        Figure::PayoutsPaid,
        Figure::Invoiced,
        Figure::CreditMemos,
        Figure::RevenueJournaled,
        Figure::Deposited,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Figure::Orders => "storefront.orders",
            Figure::GrossSales => "storefront.gross_sales",
            Figure::Discounts => "storefront.discounts",
            Figure::Tax => "storefront.tax",
            Figure::Shipping => "storefront.shipping",
            Figure::StorefrontRefunds => "storefront.refunds",
            Figure::Captured => "processor.captured",
            Figure::Refunded => "processor.refunded",
            Figure::Fees => "processor.fees",
            Figure::DisputesLost => "processor.disputes_lost",
            Figure::DisputesWon => "processor.disputes_won",
            Figure::PayoutsPaid => "processor.payouts_paid",
            Figure::Invoiced => "erp.invoiced",
            Figure::CreditMemos => "erp.credit_memos",
            Figure::RevenueJournaled => "erp.revenue_journaled",
            Figure::Deposited => "bank.deposited",
        }
    }

    pub fn parse(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The record kind whose versions carry this figure (drill-down).
    pub fn record_kind(self) -> crate::domain::record::RecordKind {
        use crate::domain::record::RecordKind as K;
        match self {
            Figure::Orders
            | Figure::GrossSales
            | Figure::Discounts
            | Figure::Tax
            | Figure::Shipping => K::StorefrontOrder,
            Figure::StorefrontRefunds => K::StorefrontTransaction,
            Figure::Captured | Figure::Refunded | Figure::Fees => K::ProcessorPayment,
            Figure::DisputesLost | Figure::DisputesWon => K::BalanceTransaction,
            Figure::PayoutsPaid => K::Payout,
            Figure::Invoiced => K::Invoice,
            Figure::CreditMemos => K::CreditMemo,
            Figure::RevenueJournaled => K::JournalEntry,
            Figure::Deposited => K::BankDeposit,
        }
    }
}

/// One record's share of one figure, in the record's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    pub figure: Figure,
    pub currency: Currency,
    pub amount: Decimal,
    pub count: i64,
}

/// Money that cannot be summed without overflowing: the record is refused
/// rather than counted wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} of this record overflows a decimal")]
pub struct Overflow(pub &'static str);

fn add(a: Decimal, b: Decimal, what: &'static str) -> Result<Decimal, Overflow> {
    a.checked_add(b).ok_or(Overflow(what))
}

/// Whether an ERP account is a revenue account: NetSuite's income
/// accounts are numbered 4xxx, and names say "revenue" or "sales".
pub fn is_revenue_account(account: &str) -> bool {
    let a = account.trim().to_ascii_lowercase();
    a.starts_with('4') || a.contains("revenue") || a.contains("sales")
}

/// What `r` contributes to the report figures of its event time.
pub fn contributions(r: &Record) -> Result<Vec<Contribution>, Overflow> {
    let one = |figure, m: crate::domain::money::Money| Contribution {
        figure,
        currency: m.currency,
        amount: m.amount,
        count: 1,
    };
    let mut out = vec![];
    match &r.body {
        Body::StorefrontOrder(o) => {
            let cur = o.total.currency;
            let discounts = match o.total_discount {
                Some(d) => d.amount,
                None => o
                    .discounts
                    .iter()
                    .try_fold(Decimal::ZERO, |s, d| add(s, d.amount.amount, "discounts"))?,
            };
            let tax = o.total_tax.map_or(Decimal::ZERO, |m| m.amount);
            let shipping = o.total_shipping.map_or(Decimal::ZERO, |m| m.amount);
            // Gross sales: what the goods sold for before discounts, without
            // tax and shipping (the storefront's own "gross sales").
            let gross = add(o.total.amount, discounts, "gross sales")?
                .checked_sub(tax)
                .and_then(|g| g.checked_sub(shipping))
                .ok_or(Overflow("gross sales"))?;
            out.push(one(Figure::Orders, o.total));
            for (figure, amount) in [
                (Figure::GrossSales, gross),
                (Figure::Discounts, discounts),
                (Figure::Tax, tax),
                (Figure::Shipping, shipping),
            ] {
                out.push(Contribution {
                    figure,
                    currency: cur,
                    amount,
                    count: 1,
                });
            }
        }
        Body::StorefrontTransaction(t) => {
            if t.kind == TxnKind::Refund && t.status == TxnStatus::Success {
                out.push(one(Figure::StorefrontRefunds, t.amount));
            }
        }
        Body::ProcessorPayment(p) => {
            let figure = match p.payment_type {
                PaymentType::Charge | PaymentType::Capture => Figure::Captured,
                PaymentType::Refund => Figure::Refunded,
            };
            out.push(one(figure, abs(p.amount)));
            if let Some(fee) = p.fee {
                out.push(one(Figure::Fees, fee));
            }
        }
        Body::BalanceTransaction(b) => match b.reporting_category.as_str() {
            "dispute" => out.push(one(Figure::DisputesLost, abs(b.amount))),
            "dispute_reversal" => out.push(one(Figure::DisputesWon, abs(b.amount))),
            _ => {}
        },
        Body::Payout(p) => {
            if p.status == PayoutStatus::Paid {
                out.push(one(Figure::PayoutsPaid, p.amount));
            }
        }
        Body::Invoice(i) => out.push(one(Figure::Invoiced, i.total)),
        Body::CreditMemo(c) => out.push(one(Figure::CreditMemos, c.total)),
        Body::JournalEntry(j) => {
            let mut revenue = Decimal::ZERO;
            for l in j.lines.iter().filter(|l| is_revenue_account(&l.account)) {
                let net = l.credit.checked_sub(l.debit).ok_or(Overflow("revenue"))?;
                revenue = add(revenue, net, "revenue")?;
            }
            if !revenue.is_zero() {
                out.push(Contribution {
                    figure: Figure::RevenueJournaled,
                    currency: j.currency,
                    amount: revenue,
                    count: 1,
                });
            }
        }
        Body::BankDeposit(d) => out.push(one(Figure::Deposited, d.amount)),
        Body::Fulfillment(_) => {}
    }
    Ok(out)
}

/// Money out is reported as a positive figure (a refund of 5 is "refunded 5").
fn abs(m: crate::domain::money::Money) -> crate::domain::money::Money {
    crate::domain::money::Money::new(m.amount.abs(), m.currency)
}
