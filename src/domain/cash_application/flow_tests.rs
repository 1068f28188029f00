//! Cash application and the ledger together, as the worker will drive them: every fact of
//! an order is planned by `OrderCash` and booked by the posting rules; the books must then
//! say exactly what the plan says (AR = open invoices, unapplied cash = held cash) and a
//! payout applied and deposited must leave processor clearing at zero.

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::domain::ledger::posting::{
    FeeItem, InvoiceBooking, PaymentBooking, Tender, book_fee_sweep, book_invoice, book_payment,
    book_payout_deposit, book_unapplied_release,
};
use crate::domain::ledger::test_support::{cur, day};
use crate::domain::ledger::{
    AccountRole, ClearingCheck, LedgerEntry, check_clearing, trial_balance,
};
use crate::domain::money::Money;

const MERCHANT: &str = "shop_1";
const ORDER: &str = "#1001";

#[derive(Debug, Clone)]
enum Fact {
    Invoice(i64),
    Capture(i64),
    /// Reduce the n-th capture by this many units (clamped to what it has left).
    Reverse(usize, i64),
}

struct Books {
    cash: OrderCash,
    entries: Vec<LedgerEntry>,
    captures: Vec<String>,
}

impl Books {
    fn new() -> Self {
        Books {
            cash: OrderCash::new(ORDER, cur("USD")),
            entries: Vec::new(),
            captures: Vec::new(),
        }
    }

    fn usd(units: i64) -> Money {
        Money::from_minor_units(units, cur("USD"))
    }

    fn apply(&mut self, n: usize, fact: &Fact) {
        match fact {
            Fact::Invoice(units) => self.invoice(format!("inv_{n}"), Self::usd(*units)),
            Fact::Capture(units) => self.capture(format!("ch_{n}"), Self::usd(*units)),
            Fact::Reverse(i, units) => {
                if let Some(id) = self.captures.get(*i).cloned() {
                    self.reverse(&id, format!("pcr_{n}"), *units);
                }
            }
        }
    }

    fn invoice(&mut self, id: String, total: Money) {
        let doc = Document {
            id: id.clone(),
            date: day(2),
            total,
        };
        let released = self.cash.add_invoice(&doc).unwrap();
        let booking = InvoiceBooking {
            invoice_id: id.clone(),
            order_id: ORDER.into(),
            date: day(2),
            total,
            gross_lines: total,
            discount: Self::usd(0),
            tax: Self::usd(0),
            shipping: Self::usd(0),
        };
        if !total.amount.is_zero() {
            self.entries.push(book_invoice(MERCHANT, &booking).unwrap());
        }
        self.release(&id, &released);
    }

    fn capture(&mut self, id: String, amount: Money) {
        let p = Payment {
            id: id.clone(),
            tender: Tender::Processor,
            date: day(1),
            amount,
        };
        let out = self.cash.apply_payment(&p).unwrap();
        self.captures.push(id.clone());
        let applications = out
            .applications
            .iter()
            .map(|a| (a.invoice_id.clone(), a.amount))
            .collect();
        self.book(id, None, amount, applications, out.unapplied);
    }

    fn reverse(&mut self, id: &str, reversal_id: String, units: i64) {
        let Ok(out) = self.cash.reverse_payment(id, Self::usd(units)) else {
            return; // more than the capture has left: refused, nothing changed
        };
        let taken: Decimal = out.from_invoices.iter().map(|(_, m)| m.amount).sum();
        let amount = taken + out.from_unapplied.amount;
        self.book(
            id.to_string(),
            Some(reversal_id.clone()),
            Money::new(amount, cur("USD")),
            out.from_invoices.clone(),
            out.from_unapplied,
        );
        self.release(&reversal_id, &out.released);
    }

    fn book(
        &mut self,
        id: String,
        reversal_id: Option<String>,
        amount: Money,
        applications: Vec<(String, Money)>,
        unapplied: Money,
    ) {
        if amount.amount.is_zero() {
            return;
        }
        let booking = PaymentBooking {
            payment_id: id,
            order_id: ORDER.into(),
            tender: Tender::Processor,
            date: day(1),
            amount,
            conversion: None,
            applications,
            unapplied,
            reversal_id,
        };
        self.entries.push(book_payment(MERCHANT, &booking).unwrap());
    }

    fn release(&mut self, trigger: &str, released: &[Application]) {
        if released.is_empty() {
            return;
        }
        let lines: Vec<_> = released
            .iter()
            .map(|a| (a.payment_id.clone(), a.invoice_id.clone(), a.amount))
            .collect();
        self.entries
            .push(book_unapplied_release(MERCHANT, ORDER, trigger, day(3), &lines).unwrap());
    }

    fn balance(&self, role: AccountRole) -> Decimal {
        trial_balance(&self.entries)
            .unwrap()
            .get(&(role, cur("USD")))
            .copied()
            .unwrap_or_default()
    }

    /// The books agree with the plan.
    fn check(&self) -> Result<(), TestCaseError> {
        let pos = self.cash.position().unwrap();
        let open: Decimal = pos.invoices.iter().map(|(_, _, open)| open.amount).sum();
        let invoiced: Decimal = pos.invoices.iter().map(|(_, total, _)| total.amount).sum();
        prop_assert_eq!(self.balance(AccountRole::AccountsReceivable), open);
        prop_assert_eq!(
            self.balance(AccountRole::UnappliedCash),
            -pos.unapplied.amount
        );
        prop_assert_eq!(self.balance(AccountRole::Revenue), -invoiced);
        prop_assert_eq!(
            self.balance(AccountRole::ProcessorClearing),
            pos.captured.amount
        );
        Ok(())
    }
}

/// Pays the order's net captures out with a fee of `fee_units` per capture.
fn pay_out(books: &Books, fee_units: i64) -> Vec<LedgerEntry> {
    let usd = cur("USD");
    let fees: Vec<FeeItem> = books
        .captures
        .iter()
        .map(|c| FeeItem {
            balance_transaction_id: format!("txn_{c}"),
            order_id: Some(ORDER.into()),
            fee: Money::from_minor_units(fee_units, usd),
        })
        .collect();
    let sweep = book_fee_sweep(MERCHANT, "po_1", day(4), usd, &fees, &[]).unwrap();
    let captured = books.cash.position().unwrap().captured.amount;
    let net = Money::new(captured - sweep.total.amount, usd);
    let mut entries = books.entries.clone();
    entries.extend(sweep.entry);
    entries.extend(book_payout_deposit(MERCHANT, "po_1", day(5), net).unwrap());
    entries
}

#[test]
fn captured_at_checkout_invoiced_at_two_shipments_partly_reversed_then_paid_out() {
    let mut books = Books::new();
    let facts = [
        Fact::Capture(10_000),   // checkout: card captured for 100.00, no invoice yet
        Fact::Invoice(6_000),    // first shipment invoiced 60.00: held cash applied
        Fact::Reverse(0, 1_000), // 10.00 of the capture released back
        Fact::Invoice(4_000),    // second shipment 40.00: 30.00 held is applied, 10.00 open
        Fact::Capture(1_000),    // a second capture pays the rest
    ];
    for (n, f) in facts.iter().enumerate() {
        books.apply(n, f);
    }
    books.check().unwrap();
    let pos = books.cash.position().unwrap();
    assert!(
        pos.invoices
            .iter()
            .all(|(_, _, open)| open.amount.is_zero())
    );
    assert_eq!(
        check_clearing(&pay_out(&books, 30)).unwrap(),
        ClearingCheck::Zero
    );
}

proptest! {
    #[test]
    fn the_books_always_say_what_the_plan_says(
        facts in proptest::collection::vec(
            prop_oneof![
                (0i64..20_000).prop_map(Fact::Invoice),
                (0i64..20_000).prop_map(Fact::Capture),
                (0usize..6, 0i64..20_000).prop_map(|(i, u)| Fact::Reverse(i, u)),
            ],
            0..30,
        ),
        fee in 0i64..100,
    ) {
        let mut books = Books::new();
        for (n, f) in facts.iter().enumerate() {
            books.apply(n, f);
            books.check()?;
        }
        prop_assert_eq!(check_clearing(&pay_out(&books, fee)).unwrap(), ClearingCheck::Zero);
    }
}
