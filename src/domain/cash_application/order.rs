//! Cash application for one order: captures and tenders to its invoices, refunds to its
//! credit memos, oldest first, every cent accounted for as applied, held or open.
//!
//! The worker feeds facts as they arrive (an invoice, a capture, a reversal...) and books
//! what each call returns with `ledger::posting`: a payment's applications and unapplied
//! rest go into its `book_payment` entry; applications of held cash (`from_unapplied`)
//! go into `book_unapplied_release` entries.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::pool::{Link, Pool, Slot};
use crate::domain::allocation::{AllocationError, from_units, to_units};
use crate::domain::currency::Currency;
use crate::domain::ledger::posting::Tender;
use crate::domain::money::Money;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CashError {
    #[error("{field}: order {order_id} is in {expected}, got {found}")]
    CurrencyMismatch {
        order_id: String,
        field: &'static str,
        expected: Currency,
        found: Currency,
    },
    #[error("{field} must not be negative")]
    Negative { field: &'static str },
    #[error("{kind} {id} was already applied to this order")]
    Duplicate { kind: &'static str, id: String },
    #[error("payment {0} is not on this order")]
    UnknownPayment(String),
    #[error("payment {payment_id}: cannot reverse {requested}, only {available} is left of it")]
    ReversalExceeds {
        payment_id: String,
        requested: Money,
        available: Money,
    },
    #[error(transparent)]
    Amount(#[from] AllocationError),
    #[error(transparent)]
    Overflow(#[from] super::pool::Overflow),
}

/// A capture or tender: money the customer paid towards the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub tender: Tender,
    pub date: NaiveDate,
    pub amount: Money,
}

/// An invoice or a credit memo: what the order owes, or owes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub date: NaiveDate,
    pub total: Money,
}

/// Money moved between a payment and an invoice. `from_unapplied` when the money had been
/// held as unapplied cash (booked earlier) rather than arriving with this payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub payment_id: String,
    pub tender: Tender,
    pub invoice_id: String,
    pub amount: Money,
    pub from_unapplied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    pub applications: Vec<Application>,
    /// What no open invoice could take: held on the order as unapplied cash.
    pub unapplied: Money,
}

/// A partial-capture reversal: what came off held cash, what came off invoices (which
/// reopen), and held cash of other payments that then flowed into the reopened invoices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalOutcome {
    pub from_unapplied: Money,
    pub from_invoices: Vec<(String, Money)>,
    pub released: Vec<Application>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundApplication {
    pub refund_id: String,
    pub credit_memo_id: String,
    pub amount: Money,
}

/// A refund taken back: what it had taken of each credit memo, and other refunds that
/// then took the room it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReversal {
    pub undone: Vec<RefundApplication>,
    pub released: Vec<RefundApplication>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    pub applications: Vec<RefundApplication>,
    /// Refunded money no credit memo covers yet: an exception once the lag has passed.
    pub unmatched: Money,
}

/// Where an order's cash stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashPosition {
    /// Net of reversals.
    pub captured: Money,
    pub applied: Money,
    pub unapplied: Money,
    /// (invoice id, total, open), oldest first.
    pub invoices: Vec<(String, Money, Money)>,
    pub unmatched_refunds: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderCash {
    order_id: String,
    currency: Currency,
    payments: Pool,
    refunds: Pool,
    tenders: BTreeMap<String, Tender>,
}

impl OrderCash {
    pub fn new(order_id: impl Into<String>, currency: Currency) -> Self {
        OrderCash {
            order_id: order_id.into(),
            currency,
            payments: Pool::default(),
            refunds: Pool::default(),
            tenders: BTreeMap::new(),
        }
    }

    /// An invoice arrives: cash held on the order is applied to it, oldest payment first.
    pub fn add_invoice(&mut self, invoice: &Document) -> Result<Vec<Application>, CashError> {
        if self.payments.has_target(&invoice.id) {
            return Err(duplicate("invoice", &invoice.id));
        }
        let slot = self.slot(&invoice.id, invoice.date, invoice.total, "invoice.total")?;
        let links = self.payments.add_target(slot)?;
        self.applications(links, true)
    }

    /// A capture or tender: applied to open invoices oldest first, the rest held.
    pub fn apply_payment(&mut self, payment: &Payment) -> Result<PaymentOutcome, CashError> {
        if self.payments.has_source(&payment.id) {
            return Err(duplicate("payment", &payment.id));
        }
        let slot = self.slot(&payment.id, payment.date, payment.amount, "payment.amount")?;
        self.tenders.insert(payment.id.clone(), payment.tender);
        let links = self.payments.add_source(slot)?;
        let applications = self.applications(links, false)?;
        let held = self
            .payments
            .sources()
            .iter()
            .find(|s| s.id == payment.id)
            .map_or(0, |s| s.free());
        Ok(PaymentOutcome {
            applications,
            unapplied: self.money(held)?,
        })
    }

    /// A partial-capture reversal (or any reduction of a payment): the payment shrinks by
    /// `amount`, taken from its held cash first, then from its newest invoices.
    pub fn reverse_payment(
        &mut self,
        payment_id: &str,
        amount: Money,
    ) -> Result<ReversalOutcome, CashError> {
        let units = self.reducible(&self.payments, payment_id, amount, "reversal.amount")?;
        let (from_held, undone, released) = self.payments.reduce_source(payment_id, units)?;
        let from_invoices = undone
            .into_iter()
            .map(|l| Ok((l.target, self.money(-l.amount)?)))
            .collect::<Result<_, CashError>>()?;
        Ok(ReversalOutcome {
            from_unapplied: self.money(from_held)?,
            from_invoices,
            released: self.applications(released, true)?,
        })
    }

    /// A credit memo arrives: refunds waiting for it are matched, oldest first.
    pub fn add_credit_memo(
        &mut self,
        memo: &Document,
    ) -> Result<Vec<RefundApplication>, CashError> {
        if self.refunds.has_target(&memo.id) {
            return Err(duplicate("credit memo", &memo.id));
        }
        let slot = self.slot(&memo.id, memo.date, memo.total, "credit_memo.total")?;
        let links = self.refunds.add_target(slot)?;
        self.refund_applications(links)
    }

    /// A refund: matched against open credit memos oldest first; the rest waits for one.
    pub fn apply_refund(&mut self, refund: &Payment) -> Result<RefundOutcome, CashError> {
        if self.refunds.has_source(&refund.id) {
            return Err(duplicate("refund", &refund.id));
        }
        let slot = self.slot(&refund.id, refund.date, refund.amount, "refund.amount")?;
        let links = self.refunds.add_source(slot)?;
        let held = self
            .refunds
            .sources()
            .iter()
            .find(|s| s.id == refund.id)
            .map_or(0, |s| s.free());
        Ok(RefundOutcome {
            applications: self.refund_applications(links)?,
            unmatched: self.money(held)?,
        })
    }

    /// A refund taken back (the payout that applied it was reversed): it no longer
    /// counts against its credit memos (`undone`: what it had taken of each), and refunds
    /// waiting for one may now take the room it leaves (`released`).
    pub fn reverse_refund(
        &mut self,
        refund_id: &str,
        amount: Money,
    ) -> Result<RefundReversal, CashError> {
        let units = self.reducible(&self.refunds, refund_id, amount, "refund_reversal.amount")?;
        let (_, undone, released) = self.refunds.reduce_source(refund_id, units)?;
        let undone = undone
            .into_iter()
            .map(|mut l| {
                l.amount = -l.amount;
                l
            })
            .collect();
        Ok(RefundReversal {
            undone: self.refund_applications(undone)?,
            released: self.refund_applications(released)?,
        })
    }

    /// `amount` in minor units, when `pool` holds a source `id` with at least that much.
    fn reducible(
        &self,
        pool: &Pool,
        id: &str,
        amount: Money,
        field: &'static str,
    ) -> Result<i128, CashError> {
        let units = self.units(amount, field)?;
        let available = pool
            .sources()
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.total)
            .ok_or_else(|| CashError::UnknownPayment(id.to_string()))?;
        if units > available {
            return Err(CashError::ReversalExceeds {
                payment_id: id.to_string(),
                requested: amount,
                available: self.money(available)?,
            });
        }
        Ok(units)
    }

    pub fn position(&self) -> Result<CashPosition, CashError> {
        let total = |slots: &[Slot], f: fn(&Slot) -> i128| {
            slots
                .iter()
                .try_fold(0i128, |acc, s| acc.checked_add(f(s)))
                .ok_or(super::pool::Overflow)
        };
        let sources = self.payments.sources();
        let invoices = self
            .payments
            .targets()
            .iter()
            .map(|t| Ok((t.id.clone(), self.money(t.total)?, self.money(t.free())?)))
            .collect::<Result<_, CashError>>()?;
        Ok(CashPosition {
            captured: self.money(total(sources, |s| s.total)?)?,
            applied: self.money(total(sources, |s| s.used)?)?,
            unapplied: self.money(total(sources, Slot::free)?)?,
            invoices,
            unmatched_refunds: self.money(total(self.refunds.sources(), Slot::free)?)?,
        })
    }

    /// Net (payment id, invoice id, amount) applied so far, in the order first applied: what
    /// an invoice's "applications" shows.
    pub fn applied(&self) -> Result<Vec<(String, String, Money)>, CashError> {
        self.payments
            .links()
            .iter()
            .filter(|l| l.amount != 0)
            .map(|l| Ok((l.source.clone(), l.target.clone(), self.money(l.amount)?)))
            .collect()
    }

    /// Cash held once the order is fully invoiced is an overpayment: it stays as unapplied
    /// cash (never silently taken as revenue) and the worker raises an exception for it.
    pub fn overpayment(&self, fully_invoiced: bool) -> Result<Option<Money>, CashError> {
        let held = self.position()?.unapplied;
        Ok((fully_invoiced && !held.amount.is_zero()).then_some(held))
    }

    fn slot(
        &self,
        id: &str,
        date: NaiveDate,
        amount: Money,
        field: &'static str,
    ) -> Result<Slot, CashError> {
        Ok(Slot {
            id: id.to_string(),
            date,
            total: self.units(amount, field)?,
            used: 0,
        })
    }

    fn units(&self, amount: Money, field: &'static str) -> Result<i128, CashError> {
        if amount.currency != self.currency {
            return Err(CashError::CurrencyMismatch {
                order_id: self.order_id.clone(),
                field,
                expected: self.currency,
                found: amount.currency,
            });
        }
        let units = to_units(amount.amount, amount.currency)?;
        if units < 0 {
            return Err(CashError::Negative { field });
        }
        Ok(units)
    }

    fn money(&self, units: i128) -> Result<Money, CashError> {
        Ok(from_units(units, self.currency)?)
    }

    fn applications(
        &self,
        links: Vec<Link>,
        from_unapplied: bool,
    ) -> Result<Vec<Application>, CashError> {
        links
            .into_iter()
            .map(|l| {
                Ok(Application {
                    tender: self
                        .tenders
                        .get(&l.source)
                        .copied()
                        .unwrap_or(Tender::Processor),
                    amount: self.money(l.amount)?,
                    payment_id: l.source,
                    invoice_id: l.target,
                    from_unapplied,
                })
            })
            .collect()
    }

    fn refund_applications(&self, links: Vec<Link>) -> Result<Vec<RefundApplication>, CashError> {
        links
            .into_iter()
            .map(|l| {
                Ok(RefundApplication {
                    amount: self.money(l.amount)?,
                    refund_id: l.source,
                    credit_memo_id: l.target,
                })
            })
            .collect()
    }
}

fn duplicate(kind: &'static str, id: &str) -> CashError {
    CashError::Duplicate {
        kind,
        id: id.to_string(),
    }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
