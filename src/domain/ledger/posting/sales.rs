//! Order-side bookings: invoices, payments applied to them, held cash, refunds.

use chrono::NaiveDate;

use super::{Conversion, Header, Side, clearing_lines, entry, line, non_negative, nonzero};
use crate::domain::ledger::accounts::AccountRole;
use crate::domain::ledger::journal::{
    JournalLine, LedgerEntry, LedgerError, SourceKind, SourceRef, add, sub, sum,
};
use crate::domain::money::Money;

/// An invoice raised at shipment. `gross_lines` is the undiscounted line total, so the
/// discount is booked on its own account instead of vanishing into net revenue (seed 004's
/// "discount mapping" leak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceBooking {
    pub invoice_id: String,
    pub order_id: String,
    pub date: NaiveDate,
    pub total: Money,
    pub gross_lines: Money,
    pub discount: Money,
    pub tax: Money,
    pub shipping: Money,
}

/// Dr AR (total), sales discounts / Cr revenue, sales tax payable, shipping income.
/// The stated total must equal gross - discount + tax + shipping to the cent. An invoice of
/// nothing at all has no lines and is refused (`TooFewLines`): the worker skips it.
pub fn book_invoice(merchant_id: &str, inv: &InvoiceBooking) -> Result<LedgerEntry, LedgerError> {
    let parts = [
        (inv.gross_lines, "gross_lines"),
        (inv.discount, "discount"),
        (inv.tax, "tax"),
        (inv.shipping, "shipping"),
    ];
    for (amount, field) in parts {
        non_negative(amount, field)?;
    }
    let computed = add(
        add(
            sub(inv.gross_lines, inv.discount, "discount")?,
            inv.tax,
            "tax",
        )?,
        inv.shipping,
        "shipping",
    )?;
    if computed != inv.total {
        return Err(LedgerError::InvoiceTotalMismatch {
            invoice_id: inv.invoice_id.clone(),
            stated: inv.total,
            computed,
        });
    }
    let order = Some(inv.order_id.as_str());
    // A fully discounted invoice has no receivable, only the discount against revenue.
    let lines = nonzero([
        JournalLine::debit(AccountRole::AccountsReceivable, inv.total),
        JournalLine::debit(AccountRole::SalesDiscounts, inv.discount),
        JournalLine::credit(AccountRole::Revenue, inv.gross_lines),
        JournalLine::credit(AccountRole::SalesTaxPayable, inv.tax),
        JournalLine::credit(AccountRole::ShippingIncome, inv.shipping),
    ])
    .map(|l| l.order(order))
    .collect();
    let header = Header {
        merchant_id,
        kind: "invoice",
        keys: &[&inv.invoice_id],
        date: inv.date,
        memo: format!("Invoice {} for order {}", inv.invoice_id, inv.order_id),
        sources: vec![
            SourceRef::new(SourceKind::Invoice, &inv.invoice_id),
            SourceRef::new(SourceKind::Order, &inv.order_id),
        ],
    };
    entry(header, lines)
}

/// Where a payment's money comes from, which decides the account debited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tender {
    /// A card capture: the money is at the processor until it pays out.
    Processor,
    /// The customer spent a liability the merchant already holds.
    GiftCard,
    StoreCredit,
}

impl Tender {
    /// The key storage and the API use.
    pub fn key(self) -> &'static str {
        match self {
            Tender::Processor => "processor",
            Tender::GiftCard => "gift_card",
            Tender::StoreCredit => "store_credit",
        }
    }

    pub fn from_key(key: &str) -> Option<Tender> {
        [Tender::Processor, Tender::GiftCard, Tender::StoreCredit]
            .into_iter()
            .find(|t| t.key() == key)
    }
}

/// One payment (capture or tender) and where cash application put it. `applications` are
/// (invoice id, amount) in the order's currency; what they leave of `amount` is `unapplied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentBooking {
    pub payment_id: String,
    pub order_id: String,
    pub tender: Tender,
    pub date: NaiveDate,
    pub amount: Money,
    /// Set when the processor settled in another currency than the order's.
    pub conversion: Option<Conversion>,
    pub applications: Vec<(String, Money)>,
    pub unapplied: Money,
    /// Set for a partial-capture reversal (its balance transaction or event id): the same
    /// shape booked the other way round, `applications` and `unapplied` being what the
    /// reversal took back off invoices and off held cash. Keyed by this id, so a payment
    /// reduced twice books two reversals.
    pub reversal_id: Option<String>,
}

/// Dr processor clearing (or gift card liability) / Cr AR per invoice, Cr unapplied cash for
/// whatever no open invoice could take yet. Reversed, it gives back what the payment applied.
/// How a payment's own entry's memo begins (a reversal's reads "Reversal of"): what tells
/// a payout's payment entries apart when it is reversed.
pub const PAYMENT_MEMO: &str = "Cash application:";

pub fn book_payment(merchant_id: &str, p: &PaymentBooking) -> Result<LedgerEntry, LedgerError> {
    check_payment_conserved(p)?;
    let lines = payment_lines(p)?;
    let (kind, keys, verb) = match &p.reversal_id {
        Some(reversal) => (
            "payment-reversal",
            vec![p.payment_id.as_str(), reversal],
            "Reversal of",
        ),
        None => ("payment", vec![p.payment_id.as_str()], PAYMENT_MEMO),
    };
    let payment_kind = match p.tender {
        Tender::Processor => SourceKind::Capture,
        Tender::GiftCard | Tender::StoreCredit => SourceKind::Tender,
    };
    let mut sources = vec![
        SourceRef::new(payment_kind, &p.payment_id),
        SourceRef::new(SourceKind::Order, &p.order_id),
    ];
    sources.extend(
        p.applications
            .iter()
            .map(|(i, _)| SourceRef::new(SourceKind::Invoice, i)),
    );
    let header = Header {
        merchant_id,
        kind,
        keys: &keys,
        date: p.date,
        memo: format!(
            "{verb} {} payment {} for order {}",
            p.tender.key(),
            p.payment_id,
            p.order_id
        ),
        sources,
    };
    entry(header, lines)
}

/// Applications plus unapplied must be the payment, to the cent.
fn check_payment_conserved(p: &PaymentBooking) -> Result<(), LedgerError> {
    non_negative(p.amount, "amount")?;
    non_negative(p.unapplied, "unapplied")?;
    for (_, amount) in &p.applications {
        non_negative(*amount, "applications.amount")?;
    }
    let applied = sum(
        p.applications.iter().map(|(_, m)| m),
        p.amount.currency,
        "applications",
    )?;
    let parts = add(applied, p.unapplied, "unapplied")?;
    if parts != p.amount {
        return Err(LedgerError::PartsDoNotAddUp {
            field: "applications",
            total: p.amount,
            parts,
        });
    }
    Ok(())
}

fn payment_lines(p: &PaymentBooking) -> Result<Vec<JournalLine>, LedgerError> {
    let (debit, credit) = match p.reversal_id {
        Some(_) => (Side::Credit, Side::Debit),
        None => (Side::Debit, Side::Credit),
    };
    let mut lines = match p.tender {
        Tender::Processor => clearing_lines(debit, p.amount, p.conversion.as_ref())?,
        Tender::GiftCard | Tender::StoreCredit => {
            vec![line(debit, AccountRole::GiftCardLiability, p.amount)]
        }
    };
    for (invoice_id, amount) in &p.applications {
        let l = line(credit, AccountRole::AccountsReceivable, *amount).memo(invoice_id.clone());
        lines.extend(nonzero([l]));
    }
    lines.extend(nonzero([line(
        credit,
        AccountRole::UnappliedCash,
        p.unapplied,
    )]));
    let order = Some(p.order_id.as_str());
    Ok(lines.into_iter().map(|l| l.order(order)).collect())
}

/// Dr unapplied cash / Cr AR: cash held on the order meets an invoice (one that just
/// arrived, or one a reversal reopened). `released` are (payment id, invoice id, amount) as
/// cash application returned them; `trigger_id` is the event that released them (the
/// invoice or the reversal), which keys the entry: booked once however often the worker
/// retries, and a second release between the same payment and invoice gets its own id.
pub fn book_unapplied_release(
    merchant_id: &str,
    order_id: &str,
    trigger_id: &str,
    date: NaiveDate,
    released: &[(String, String, Money)],
) -> Result<LedgerEntry, LedgerError> {
    let held = HeldCash {
        merchant_id,
        order_id,
        trigger_id,
        date,
    };
    held.entry(
        HeldCashMove::Release,
        released,
        format!("Held cash of order {order_id} applied ({trigger_id})"),
    )
}

/// Dr AR / Cr unapplied cash: applications of held cash taken back off their invoices (the
/// payment they came from is gone, e.g. its payout failed), the invoices reopened. Keyed by
/// the event that took them back. `returned` are (payment id, invoice id, amount).
pub fn book_unapplied_return(
    merchant_id: &str,
    order_id: &str,
    trigger_id: &str,
    date: NaiveDate,
    returned: &[(String, String, Money)],
) -> Result<LedgerEntry, LedgerError> {
    let held = HeldCash {
        merchant_id,
        order_id,
        trigger_id,
        date,
    };
    held.entry(
        HeldCashMove::Return,
        returned,
        format!("Applied cash of order {order_id} taken back off its invoices ({trigger_id})"),
    )
}

/// Which way held cash moves between unapplied cash and AR.
#[derive(Clone, Copy)]
enum HeldCashMove {
    /// Unapplied cash -> AR (applied to an invoice).
    Release,
    /// AR -> unapplied cash (taken back off an invoice).
    Return,
}

/// The order and event a held-cash entry is keyed by.
struct HeldCash<'a> {
    merchant_id: &'a str,
    order_id: &'a str,
    trigger_id: &'a str,
    date: NaiveDate,
}

impl HeldCash<'_> {
    /// One entry for `moves` (payment id, invoice id, amount): per move, a line on
    /// unapplied cash naming the payment and one on AR naming the invoice.
    fn entry(
        &self,
        way: HeldCashMove,
        moves: &[(String, String, Money)],
        memo: String,
    ) -> Result<LedgerEntry, LedgerError> {
        let (kind, field) = match way {
            HeldCashMove::Release => ("unapplied-release", "released.amount"),
            HeldCashMove::Return => ("unapplied-return", "returned.amount"),
        };
        let mut lines = Vec::new();
        for (payment_id, invoice_id, amount) in moves {
            non_negative(*amount, field)?;
            type Side = fn(AccountRole, Money) -> JournalLine;
            let (unapplied, receivable): (Side, Side) = match way {
                HeldCashMove::Release => (JournalLine::debit, JournalLine::credit),
                HeldCashMove::Return => (JournalLine::credit, JournalLine::debit),
            };
            let unapplied = unapplied(AccountRole::UnappliedCash, *amount).memo(payment_id.clone());
            let receivable =
                receivable(AccountRole::AccountsReceivable, *amount).memo(invoice_id.clone());
            // Debit first, as every entry lists its lines.
            let (first, second) = match way {
                HeldCashMove::Release => (unapplied, receivable),
                HeldCashMove::Return => (receivable, unapplied),
            };
            lines.extend(nonzero([first, second]));
        }
        let lines = lines
            .into_iter()
            .map(|l| l.order(Some(self.order_id)))
            .collect();
        let mut sources = vec![SourceRef::new(SourceKind::Order, self.order_id)];
        for (payment_id, invoice_id, _) in moves {
            sources.push(SourceRef::new(SourceKind::Capture, payment_id));
            sources.push(SourceRef::new(SourceKind::Invoice, invoice_id));
        }
        sources.sort();
        sources.dedup();
        let header = Header {
            merchant_id: self.merchant_id,
            kind,
            keys: &[self.order_id, self.trigger_id],
            date: self.date,
            memo,
            sources,
        };
        entry(header, lines)
    }
}

/// A refund booked against its credit memo: what the memo returns (goods, tax, shipping)
/// is debited, and the money leaves through processor clearing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundBooking {
    pub refund_id: String,
    pub credit_memo_id: String,
    pub order_id: String,
    pub date: NaiveDate,
    pub returns: Money,
    pub tax: Money,
    pub shipping: Money,
    pub conversion: Option<Conversion>,
}

/// Dr sales returns, sales tax payable, shipping income / Cr processor clearing.
pub fn book_refund(merchant_id: &str, r: &RefundBooking) -> Result<LedgerEntry, LedgerError> {
    for (amount, field) in [
        (r.returns, "returns"),
        (r.tax, "tax"),
        (r.shipping, "shipping"),
    ] {
        non_negative(amount, field)?;
    }
    let total = add(add(r.returns, r.tax, "tax")?, r.shipping, "shipping")?;
    let mut lines: Vec<JournalLine> = nonzero([
        JournalLine::debit(AccountRole::SalesReturns, r.returns),
        JournalLine::debit(AccountRole::SalesTaxPayable, r.tax),
        JournalLine::debit(AccountRole::ShippingIncome, r.shipping),
    ])
    .collect();
    lines.extend(clearing_lines(Side::Credit, total, r.conversion.as_ref())?);
    let lines = lines
        .into_iter()
        .map(|l| l.order(Some(&r.order_id)))
        .collect();
    let header = Header {
        merchant_id,
        kind: "refund",
        // A refund spread over two credit memos is booked once against each.
        keys: &[&r.refund_id, &r.credit_memo_id],
        date: r.date,
        memo: format!(
            "Refund {} against credit memo {}",
            r.refund_id, r.credit_memo_id
        ),
        sources: vec![
            SourceRef::new(SourceKind::Refund, &r.refund_id),
            SourceRef::new(SourceKind::CreditMemo, &r.credit_memo_id),
            SourceRef::new(SourceKind::Order, &r.order_id),
        ],
    };
    entry(header, lines)
}
