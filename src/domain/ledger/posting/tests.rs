use super::*;
use crate::domain::ledger::balances::{ClearingCheck, check_clearing, trial_balance};
use crate::domain::ledger::journal::{LedgerError, SourceKind, SourceRef};
use crate::domain::ledger::test_support::{cur, day, m};
use crate::domain::money::Money;

const M: &str = "shop_1";

fn invoice(
    id: &str,
    total: &str,
    gross: &str,
    discount: &str,
    tax: &str,
    ship: &str,
) -> InvoiceBooking {
    InvoiceBooking {
        invoice_id: id.into(),
        order_id: "#1001".into(),
        date: day(2),
        total: m(total),
        gross_lines: m(gross),
        discount: m(discount),
        tax: m(tax),
        shipping: m(ship),
    }
}

fn payment(id: &str, amount: &str, apps: &[(&str, &str)], unapplied: &str) -> PaymentBooking {
    PaymentBooking {
        payment_id: id.into(),
        order_id: "#1001".into(),
        tender: Tender::Processor,
        date: day(1),
        amount: m(amount),
        conversion: None,
        applications: apps.iter().map(|(i, a)| (i.to_string(), m(a))).collect(),
        unapplied: m(unapplied),
        reversal_id: None,
    }
}

fn bal(entries: &[&LedgerEntry], role: AccountRole, c: &str) -> Decimal {
    trial_balance(entries.iter().copied())
        .unwrap()
        .get(&(role, cur(c)))
        .copied()
        .unwrap_or_default()
}

#[test]
fn an_invoice_books_discount_tax_and_shipping_on_their_own_accounts() {
    let e = book_invoice(
        M,
        &invoice(
            "inv_1",
            "105.00 USD",
            "100.00 USD",
            "10.00 USD",
            "7.50 USD",
            "7.50 USD",
        ),
    )
    .unwrap();
    let e = [&e];
    assert_eq!(
        bal(&e, AccountRole::AccountsReceivable, "USD"),
        m("105 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::SalesDiscounts, "USD"),
        m("10 USD").amount
    );
    assert_eq!(bal(&e, AccountRole::Revenue, "USD"), m("-100 USD").amount);
    assert_eq!(
        bal(&e, AccountRole::SalesTaxPayable, "USD"),
        m("-7.50 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::ShippingIncome, "USD"),
        m("-7.50 USD").amount
    );
    // No discount: no zero line.
    let plain = book_invoice(
        M,
        &invoice("inv_2", "100 USD", "100 USD", "0 USD", "0 USD", "0 USD"),
    )
    .unwrap();
    assert_eq!(plain.lines().len(), 2);
    // Fully discounted: no receivable, the discount against revenue.
    let free = book_invoice(
        M,
        &invoice("inv_3", "0 USD", "20 USD", "20 USD", "0 USD", "0 USD"),
    )
    .unwrap();
    assert_eq!(
        bal(&[&free], AccountRole::SalesDiscounts, "USD"),
        m("20 USD").amount
    );
    assert_eq!(free.lines().len(), 2);
}

#[test]
fn an_invoice_whose_parts_do_not_make_its_total_is_refused() {
    // The ERP booked full retail and forgot the discount: seed 004's discount mapping leak.
    let err = book_invoice(
        M,
        &invoice(
            "inv_1",
            "115.00 USD",
            "100.00 USD",
            "10.00 USD",
            "7.50 USD",
            "7.50 USD",
        ),
    );
    assert!(matches!(err, Err(LedgerError::InvoiceTotalMismatch { .. })));
    let neg = book_invoice(
        M,
        &invoice("inv_1", "90 USD", "100 USD", "-10 USD", "0 USD", "0 USD"),
    );
    assert_eq!(neg, Err(LedgerError::NegativeInput { field: "discount" }));
}

#[test]
fn a_capture_applies_to_invoices_and_holds_the_rest_unapplied() {
    let e = book_payment(
        M,
        &payment("ch_1", "100 USD", &[("inv_1", "60 USD")], "40 USD"),
    )
    .unwrap();
    let e = [&e];
    assert_eq!(
        bal(&e, AccountRole::ProcessorClearing, "USD"),
        m("100 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::AccountsReceivable, "USD"),
        m("-60 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::UnappliedCash, "USD"),
        m("-40 USD").amount
    );
}

#[test]
fn a_payment_whose_applications_do_not_add_up_is_refused() {
    let err = book_payment(
        M,
        &payment("ch_1", "100 USD", &[("inv_1", "60 USD")], "39.99 USD"),
    );
    assert!(matches!(err, Err(LedgerError::PartsDoNotAddUp { .. })));
}

#[test]
fn a_gift_card_tender_comes_from_its_liability_not_the_processor() {
    let mut p = payment("gc_1", "25 USD", &[("inv_1", "25 USD")], "0 USD");
    p.tender = Tender::GiftCard;
    let e = book_payment(M, &p).unwrap();
    let e = [&e];
    assert_eq!(
        bal(&e, AccountRole::GiftCardLiability, "USD"),
        m("25 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::ProcessorClearing, "USD"),
        Decimal::ZERO
    );
}

#[test]
fn a_partial_capture_reversal_is_the_payment_booked_backwards() {
    let mut p = payment("pcr_1", "40 USD", &[], "40 USD");
    p.reversal_id = Some("pcr_txn_1".into());
    let e = book_payment(M, &p).unwrap();
    let e = [&e];
    assert_eq!(
        bal(&e, AccountRole::ProcessorClearing, "USD"),
        m("-40 USD").amount
    );
    assert_eq!(
        bal(&e, AccountRole::UnappliedCash, "USD"),
        m("40 USD").amount
    );
}

#[test]
fn held_cash_is_released_to_its_invoice_once_per_key() {
    let from = vec![
        ("ch_1".to_string(), "inv_1".to_string(), m("30 USD")),
        ("ch_2".to_string(), "inv_1".to_string(), m("20 USD")),
    ];
    let e = book_unapplied_release(M, "#1001", "inv_1", day(4), &from).unwrap();
    assert_eq!(
        bal(&[&e], AccountRole::UnappliedCash, "USD"),
        m("50 USD").amount
    );
    assert_eq!(
        bal(&[&e], AccountRole::AccountsReceivable, "USD"),
        m("-50 USD").amount
    );
    let again = book_unapplied_release(M, "#1001", "inv_1", day(5), &from).unwrap();
    assert_eq!(again.external_id(), e.external_id());
    // Released again later by a reversal that reopened the invoice: its own entry.
    let later = book_unapplied_release(M, "#1001", "pcr_1", day(6), &from[..1]).unwrap();
    assert_ne!(later.external_id(), e.external_id());
    assert!(matches!(
        book_unapplied_release(M, "#1001", "x", day(6), &[]),
        Err(LedgerError::TooFewLines(0))
    ));
}

#[test]
fn a_refund_books_returns_and_tax_against_clearing() {
    let r = RefundBooking {
        refund_id: "re_1".into(),
        credit_memo_id: "cm_1".into(),
        order_id: "#1001".into(),
        date: day(6),
        returns: m("20 USD"),
        tax: m("1.50 USD"),
        shipping: m("0 USD"),
        conversion: None,
    };
    let e = book_refund(M, &r).unwrap();
    assert_eq!(e.lines().len(), 3);
    assert_eq!(
        bal(&[&e], AccountRole::ProcessorClearing, "USD"),
        m("-21.50 USD").amount
    );
}

#[test]
fn an_eur_order_settled_in_usd_balances_each_currency_and_leaves_fx_on_fx() {
    // Invoice EUR 100; captured EUR 100 settled USD 108.00 at 1.08; refunded EUR 100 settled
    // USD 105.00 at 1.05. The EUR legs close; FX keeps USD 3.00 credit: the realised gain.
    let inv = book_invoice(
        M,
        &invoice("inv_1", "100 EUR", "100 EUR", "0 EUR", "0 EUR", "0 EUR"),
    )
    .unwrap();
    let mut cap = payment("ch_1", "100 EUR", &[("inv_1", "100 EUR")], "0 EUR");
    cap.conversion = Some(Conversion {
        settlement: m("108 USD"),
        rate: Decimal::new(108, 2),
    });
    let cap = book_payment(M, &cap).unwrap();
    let refund = RefundBooking {
        refund_id: "re_1".into(),
        credit_memo_id: "cm_1".into(),
        order_id: "#1001".into(),
        date: day(6),
        returns: m("100 EUR"),
        tax: m("0 EUR"),
        shipping: m("0 EUR"),
        conversion: Some(Conversion {
            settlement: m("105 USD"),
            rate: Decimal::new(105, 2),
        }),
    };
    let refund = book_refund(M, &refund).unwrap();
    let all = [&inv, &cap, &refund];
    assert_eq!(
        bal(&all, AccountRole::AccountsReceivable, "EUR"),
        Decimal::ZERO
    );
    assert_eq!(bal(&all, AccountRole::FxGainLoss, "EUR"), Decimal::ZERO);
    assert_eq!(
        bal(&all, AccountRole::FxGainLoss, "USD"),
        m("-3 USD").amount
    );
    assert_eq!(
        bal(&all, AccountRole::ProcessorClearing, "USD"),
        m("3 USD").amount
    );
}

#[test]
fn a_conversion_that_is_not_the_stated_rate_is_refused() {
    let mut cap = payment("ch_1", "100 EUR", &[], "100 EUR");
    cap.conversion = Some(Conversion {
        settlement: m("108.02 USD"),
        rate: Decimal::new(108, 2),
    });
    assert!(matches!(
        book_payment(M, &cap),
        Err(LedgerError::RateMismatch { .. })
    ));
    // One minor unit apart is the processor's rounding, accepted.
    cap.conversion = Some(Conversion {
        settlement: m("108.01 USD"),
        rate: Decimal::new(108, 2),
    });
    assert!(book_payment(M, &cap).is_ok());
}

fn fee(txn: &str, order: Option<&str>, amount: &str) -> FeeItem {
    FeeItem {
        balance_transaction_id: txn.into(),
        order_id: order.map(str::to_string),
        fee: m(amount),
    }
}

#[test]
fn one_fee_entry_per_payout_with_each_orders_share() {
    let items = [
        fee("txn_1", Some("#1"), "3.20 USD"),
        fee("txn_2", Some("#2"), "0.59 USD"),
        fee("txn_3", Some("#1"), "0.30 USD"),
        // A payout-level fee naming no order: spread by gross, #1 100.00 and #2 50.00.
        fee("txn_4", None, "1.00 USD"),
    ];
    let gross = [
        ("#1".to_string(), m("100 USD")),
        ("#2".to_string(), m("50 USD")),
    ];
    let sweep = book_fee_sweep(M, "po_1", day(7), cur("USD"), &items, &gross).unwrap();
    let entry = sweep.entry.unwrap();
    assert_eq!(
        entry.lines().len(),
        2,
        "one sweep: one fee line, one clearing line"
    );
    assert_eq!(
        bal(&[&entry], AccountRole::ProcessingFees, "USD"),
        m("5.09 USD").amount
    );
    assert_eq!(sweep.total, m("5.09 USD"));
    let shares: Vec<_> = sweep
        .shares
        .iter()
        .map(|s| (s.order_id.clone().unwrap(), s.amount))
        .collect();
    assert_eq!(
        shares,
        vec![("#1".into(), m("4.17 USD")), ("#2".into(), m("0.92 USD"))]
    );
}

#[test]
fn a_fee_with_no_orders_to_carry_it_stays_on_the_payout_and_zero_fees_book_nothing() {
    let sweep = book_fee_sweep(
        M,
        "po_1",
        day(7),
        cur("USD"),
        &[fee("txn_9", None, "2 USD")],
        &[],
    )
    .unwrap();
    assert_eq!(
        sweep.shares,
        vec![FeeShare {
            order_id: None,
            amount: m("2 USD")
        }]
    );
    let none = book_fee_sweep(
        M,
        "po_2",
        day(7),
        cur("USD"),
        &[fee("t", Some("#1"), "0 USD")],
        &[],
    )
    .unwrap();
    assert!(none.entry.is_none());
    let wrong = book_fee_sweep(
        M,
        "po_3",
        day(7),
        cur("USD"),
        &[fee("t", None, "1 EUR")],
        &[],
    );
    assert!(matches!(wrong, Err(LedgerError::CurrencyMismatch { .. })));
}

#[test]
fn a_lost_dispute_costs_amount_and_fee_and_a_won_one_gives_both_back() {
    let d = DisputeBooking {
        payout_id: "po_1".into(),
        dispute_id: "dp_1".into(),
        order_id: Some("#1".into()),
        date: day(8),
        amount: m("50 USD"),
        fee: m("15 USD"),
    };
    let lost = book_dispute(M, &d).unwrap();
    let won = book_dispute_won(M, &d).unwrap();
    assert_ne!(lost.external_id(), won.external_id());
    assert_eq!(
        bal(&[&lost], AccountRole::Chargebacks, "USD"),
        m("50 USD").amount
    );
    assert_eq!(
        bal(&[&lost], AccountRole::DisputeFees, "USD"),
        m("15 USD").amount
    );
    for role in [
        AccountRole::Chargebacks,
        AccountRole::DisputeFees,
        AccountRole::ProcessorClearing,
    ] {
        assert_eq!(bal(&[&lost, &won], role, "USD"), Decimal::ZERO);
    }
}

#[test]
fn rounding_within_policy_is_booked_and_beyond_it_is_refused() {
    let limit = Decimal::new(1, 2);
    let e = book_rounding(M, "po_1", day(9), m("0.01 USD"), limit)
        .unwrap()
        .unwrap();
    assert_eq!(
        bal(&[&e], AccountRole::Rounding, "USD"),
        m("0.01 USD").amount
    );
    assert_eq!(
        bal(&[&e], AccountRole::ProcessorClearing, "USD"),
        m("-0.01 USD").amount
    );
    let gain = book_rounding(M, "po_1", day(9), m("-0.01 USD"), limit)
        .unwrap()
        .unwrap();
    assert_eq!(
        bal(&[&gain], AccountRole::ProcessorClearing, "USD"),
        m("0.01 USD").amount
    );
    assert!(matches!(
        book_rounding(M, "po_1", day(9), m("0.02 USD"), limit),
        Err(LedgerError::OutsideRoundingPolicy { .. })
    ));
    assert_eq!(
        book_rounding(M, "po_1", day(9), m("0 USD"), limit),
        Ok(None)
    );
}

/// A whole payout: two orders captured at checkout (one before its invoice exists), a
/// fee sweep and the deposit. Clearing ends at zero; with a cent missing it reports it.
#[test]
fn a_payout_applied_and_deposited_leaves_clearing_at_zero() {
    let inv = book_invoice(
        M,
        &invoice("inv_1", "100 USD", "100 USD", "0 USD", "0 USD", "0 USD"),
    )
    .unwrap();
    let c1 = book_payment(
        M,
        &payment("ch_1", "100 USD", &[("inv_1", "100 USD")], "0 USD"),
    )
    .unwrap();
    let mut p2 = payment("ch_2", "50 USD", &[], "50 USD");
    p2.order_id = "#1002".into();
    let c2 = book_payment(M, &p2).unwrap();
    let fees = [
        fee("txn_1", Some("#1001"), "3.20 USD"),
        fee("txn_2", Some("#1002"), "1.75 USD"),
    ];
    let sweep = book_fee_sweep(M, "po_1", day(3), cur("USD"), &fees, &[])
        .unwrap()
        .entry
        .unwrap();
    let deposit = book_payout_deposit(M, "po_1", day(4), m("145.05 USD"))
        .unwrap()
        .unwrap();
    let payout = [&c1, &c2, &sweep, &deposit];
    assert_eq!(check_clearing(payout).unwrap(), ClearingCheck::Zero);
    assert_eq!(
        bal(&[&inv, &c1], AccountRole::AccountsReceivable, "USD"),
        Decimal::ZERO
    );
    assert_eq!(
        bal(&[&c2], AccountRole::UnappliedCash, "USD"),
        m("-50 USD").amount
    );

    let short = book_payout_deposit(M, "po_1", day(4), m("145.04 USD"))
        .unwrap()
        .unwrap();
    assert_eq!(
        check_clearing([&c1, &c2, &sweep, &short]).unwrap(),
        ClearingCheck::Residual(vec![m("0.01 USD")])
    );

    // The payout then fails: its reversal takes the deposit back off the bank, stably keyed.
    let failed =
        book_payout_failure("po_1", day(10), std::slice::from_ref(&deposit), "failed").unwrap();
    assert_eq!(
        bal(&[&deposit, &failed[0]], AccountRole::Bank, "USD"),
        Decimal::ZERO
    );
    assert_eq!(
        failed,
        book_payout_failure("po_1", day(10), &[deposit], "failed").unwrap()
    );
}

#[test]
fn a_negative_payout_debits_the_bank_and_an_fx_residual_moves_to_fx() {
    let neg = book_payout_deposit(M, "po_n", day(4), m("-12.00 USD"))
        .unwrap()
        .unwrap();
    assert_eq!(bal(&[&neg], AccountRole::Bank, "USD"), m("-12 USD").amount);
    let fx = book_fx_difference(M, "po_1", day(4), m("-0.37 USD"))
        .unwrap()
        .unwrap();
    assert_eq!(
        bal(&[&fx], AccountRole::FxGainLoss, "USD"),
        m("-0.37 USD").amount
    );
    assert_eq!(
        book_payout_deposit(M, "po_z", day(4), Money::zero(cur("USD"))),
        Ok(None)
    );
}

#[test]
fn tenders_round_trip_through_their_keys_and_name_their_source() {
    for t in [Tender::Processor, Tender::GiftCard, Tender::StoreCredit] {
        assert_eq!(Tender::from_key(t.key()), Some(t));
    }
    let mut p = payment("sc_1", "5 USD", &[("inv_1", "5 USD")], "0 USD");
    p.tender = Tender::StoreCredit;
    let e = book_payment(M, &p).unwrap();
    assert_eq!(
        e.source_refs()[0],
        SourceRef::new(SourceKind::Tender, "sc_1")
    );
}

/// A payout carrying a charge, a refund, a lost dispute with its fee and the charge fees:
/// clearing returns to zero once deposited, and the won dispute a week later nets out.
#[test]
fn a_payout_with_a_refund_and_a_dispute_leaves_clearing_at_zero() {
    let charge = book_payment(
        M,
        &payment("ch_1", "200 USD", &[("inv_1", "200 USD")], "0 USD"),
    )
    .unwrap();
    let refund = RefundBooking {
        refund_id: "re_1".into(),
        credit_memo_id: "cm_1".into(),
        order_id: "#1001".into(),
        date: day(3),
        returns: m("40 USD"),
        tax: m("0 USD"),
        shipping: m("0 USD"),
        conversion: None,
    };
    let refund = book_refund(M, &refund).unwrap();
    let d = DisputeBooking {
        payout_id: "po_1".into(),
        dispute_id: "dp_1".into(),
        order_id: Some("#1001".into()),
        date: day(3),
        amount: m("60 USD"),
        fee: m("15 USD"),
    };
    let dispute = book_dispute(M, &d).unwrap();
    let fees = [fee("txn_1", Some("#1001"), "6.10 USD")];
    let sweep = book_fee_sweep(M, "po_1", day(3), cur("USD"), &fees, &[])
        .unwrap()
        .entry
        .unwrap();
    // 200 - 40 - 60 - 15 - 6.10
    let deposit = book_payout_deposit(M, "po_1", day(4), m("78.90 USD"))
        .unwrap()
        .unwrap();
    let payout = [&charge, &refund, &dispute, &sweep, &deposit];
    assert_eq!(check_clearing(payout).unwrap(), ClearingCheck::Zero);

    let won = book_dispute_won(M, &d).unwrap();
    let next = book_payout_deposit(M, "po_2", day(11), m("75 USD"))
        .unwrap()
        .unwrap();
    assert_eq!(check_clearing([&won, &next]).unwrap(), ClearingCheck::Zero);
}
