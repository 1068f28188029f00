use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::domain::ledger::test_support::{cur, day, m};

fn order() -> OrderCash {
    OrderCash::new("#1001", cur("USD"))
}

fn invoice(id: &str, d: u32, total: &str) -> Document {
    Document {
        id: id.into(),
        date: day(d),
        total: m(total),
    }
}

fn capture(id: &str, d: u32, amount: &str) -> Payment {
    Payment {
        id: id.into(),
        tender: Tender::Processor,
        date: day(d),
        amount: m(amount),
    }
}

fn apps(list: &[Application]) -> Vec<(&str, &str, Money)> {
    list.iter()
        .map(|a| (a.payment_id.as_str(), a.invoice_id.as_str(), a.amount))
        .collect()
}

fn open(o: &OrderCash) -> Vec<(String, Money)> {
    o.position()
        .unwrap()
        .invoices
        .into_iter()
        .map(|(id, _, open)| (id, open))
        .collect()
}

#[test]
fn a_partial_capture_leaves_the_rest_of_the_invoice_open() {
    let mut o = order();
    assert!(
        o.add_invoice(&invoice("inv_1", 2, "100 USD"))
            .unwrap()
            .is_empty()
    );
    let out = o.apply_payment(&capture("ch_1", 3, "60 USD")).unwrap();
    assert_eq!(
        apps(&out.applications),
        vec![("ch_1", "inv_1", m("60 USD"))]
    );
    assert_eq!(out.unapplied, m("0 USD"));
    assert_eq!(open(&o), vec![("inv_1".into(), m("40 USD"))]);
}

#[test]
fn one_capture_spans_the_invoices_of_a_split_shipment_oldest_first() {
    let mut o = order();
    // Arrival order differs from date order: the older invoice is still paid first.
    o.add_invoice(&invoice("inv_b", 4, "40 USD")).unwrap();
    o.add_invoice(&invoice("inv_a", 3, "60 USD")).unwrap();
    let out = o.apply_payment(&capture("ch_1", 5, "70 USD")).unwrap();
    assert_eq!(
        apps(&out.applications),
        vec![
            ("ch_1", "inv_a", m("60 USD")),
            ("ch_1", "inv_b", m("10 USD"))
        ]
    );
    assert_eq!(open(&o)[1], ("inv_b".into(), m("30 USD")));
}

#[test]
fn fifty_captures_pay_one_invoice_and_the_fifty_first_is_held() {
    let mut o = order();
    o.add_invoice(&invoice("inv_1", 1, "500 USD")).unwrap();
    for i in 0..50 {
        let out = o
            .apply_payment(&capture(&format!("ch_{i:02}"), 2, "10 USD"))
            .unwrap();
        assert_eq!(out.applications.len(), 1);
    }
    assert_eq!(open(&o), vec![("inv_1".into(), m("0 USD"))]);
    let extra = o.apply_payment(&capture("ch_50", 2, "10 USD")).unwrap();
    assert!(extra.applications.is_empty());
    assert_eq!(extra.unapplied, m("10 USD"));
}

#[test]
fn cash_captured_before_its_invoice_is_held_then_applied_when_it_arrives() {
    let mut o = order();
    let out = o.apply_payment(&capture("ch_1", 1, "100 USD")).unwrap();
    assert_eq!(out.unapplied, m("100 USD"));
    let released = o.add_invoice(&invoice("inv_1", 5, "70 USD")).unwrap();
    assert_eq!(apps(&released), vec![("ch_1", "inv_1", m("70 USD"))]);
    assert!(released[0].from_unapplied);
    let second = o.add_invoice(&invoice("inv_2", 6, "30 USD")).unwrap();
    assert_eq!(apps(&second), vec![("ch_1", "inv_2", m("30 USD"))]);
    let pos = o.position().unwrap();
    assert_eq!((pos.applied, pos.unapplied), (m("100 USD"), m("0 USD")));
}

#[test]
fn an_overpayment_stays_unapplied_and_is_flagged_once_fully_invoiced() {
    let mut o = order();
    o.add_invoice(&invoice("inv_1", 1, "90 USD")).unwrap();
    o.apply_payment(&capture("ch_1", 2, "100 USD")).unwrap();
    assert_eq!(o.overpayment(true).unwrap(), Some(m("10 USD")));
    // Still shipping: the cash waits for the next invoice, no flag.
    assert_eq!(o.overpayment(false).unwrap(), None);

    let mut exact = order();
    exact.add_invoice(&invoice("inv_1", 1, "100 USD")).unwrap();
    exact.apply_payment(&capture("ch_1", 2, "100 USD")).unwrap();
    assert_eq!(exact.overpayment(true).unwrap(), None);
}

#[test]
fn a_gift_card_tender_is_applied_and_keeps_its_tender() {
    let mut o = order();
    o.add_invoice(&invoice("inv_1", 1, "100 USD")).unwrap();
    let mut gc = capture("gc_1", 1, "25 USD");
    gc.tender = Tender::GiftCard;
    let out = o.apply_payment(&gc).unwrap();
    assert_eq!(out.applications[0].tender, Tender::GiftCard);
    let card = o.apply_payment(&capture("ch_1", 2, "75 USD")).unwrap();
    assert_eq!(card.applications[0].tender, Tender::Processor);
    assert_eq!(open(&o), vec![("inv_1".into(), m("0 USD"))]);
}

#[test]
fn a_refund_waits_for_its_credit_memo() {
    let mut o = order();
    let r = o.apply_refund(&capture("re_1", 3, "20 USD")).unwrap();
    assert_eq!(r.unmatched, m("20 USD"));
    assert_eq!(o.position().unwrap().unmatched_refunds, m("20 USD"));
    let matched = o.add_credit_memo(&invoice("cm_1", 4, "20 USD")).unwrap();
    assert_eq!(
        matched,
        vec![RefundApplication {
            refund_id: "re_1".into(),
            credit_memo_id: "cm_1".into(),
            amount: m("20 USD")
        }]
    );
    assert_eq!(o.position().unwrap().unmatched_refunds, m("0 USD"));
    // A refund after its memo is matched at once.
    o.add_credit_memo(&invoice("cm_2", 5, "5 USD")).unwrap();
    let now = o.apply_refund(&capture("re_2", 6, "5 USD")).unwrap();
    assert_eq!((now.applications.len(), now.unmatched), (1, m("0 USD")));
}

#[test]
fn a_partial_capture_reversal_takes_held_cash_first_then_the_newest_invoice() {
    let mut o = order();
    o.add_invoice(&invoice("inv_1", 1, "30 USD")).unwrap();
    o.add_invoice(&invoice("inv_2", 2, "30 USD")).unwrap();
    o.apply_payment(&capture("ch_1", 3, "100 USD")).unwrap();
    let rev = o.reverse_payment("ch_1", m("50 USD")).unwrap();
    assert_eq!(rev.from_unapplied, m("40 USD"));
    assert_eq!(rev.from_invoices, vec![("inv_2".to_string(), m("10 USD"))]);
    assert!(rev.released.is_empty());
    assert_eq!(
        open(&o),
        vec![("inv_1".into(), m("0 USD")), ("inv_2".into(), m("10 USD"))]
    );
    assert_eq!(o.position().unwrap().captured, m("50 USD"));
}

#[test]
fn a_reopened_invoice_takes_cash_other_payments_hold() {
    let mut o = order();
    o.add_invoice(&invoice("inv_1", 1, "100 USD")).unwrap();
    o.apply_payment(&capture("ch_1", 2, "100 USD")).unwrap();
    o.apply_payment(&capture("ch_2", 3, "30 USD")).unwrap();
    let rev = o.reverse_payment("ch_1", m("20 USD")).unwrap();
    assert_eq!(rev.from_invoices, vec![("inv_1".to_string(), m("20 USD"))]);
    assert_eq!(apps(&rev.released), vec![("ch_2", "inv_1", m("20 USD"))]);
    assert_eq!(o.position().unwrap().unapplied, m("10 USD"));
    assert_eq!(
        o.applied().unwrap(),
        vec![
            ("ch_1".into(), "inv_1".into(), m("80 USD")),
            ("ch_2".into(), "inv_1".into(), m("20 USD"))
        ]
    );
}

#[test]
fn refuses_duplicates_other_currencies_negatives_and_over_reversal() {
    let mut o = order();
    o.apply_payment(&capture("ch_1", 1, "10 USD")).unwrap();
    assert!(matches!(
        o.apply_payment(&capture("ch_1", 1, "10 USD")),
        Err(CashError::Duplicate { .. })
    ));
    o.add_invoice(&invoice("inv_1", 1, "5 USD")).unwrap();
    assert!(matches!(
        o.add_invoice(&invoice("inv_1", 1, "5 USD")),
        Err(CashError::Duplicate { .. })
    ));
    assert!(matches!(
        o.apply_payment(&capture("ch_2", 1, "10 EUR")),
        Err(CashError::CurrencyMismatch {
            field: "payment.amount",
            ..
        })
    ));
    assert_eq!(
        o.apply_payment(&capture("ch_3", 1, "-1 USD")),
        Err(CashError::Negative {
            field: "payment.amount"
        })
    );
    assert!(matches!(
        o.reverse_payment("ch_1", m("10.01 USD")),
        Err(CashError::ReversalExceeds { .. })
    ));
    assert_eq!(
        o.reverse_payment("ch_9", m("1 USD")),
        Err(CashError::UnknownPayment("ch_9".into()))
    );
    // Nothing partial was kept from the refused calls.
    assert_eq!(o.position().unwrap().captured, m("10 USD"));
}

#[derive(Debug, Clone)]
enum Op {
    Invoice(u32, i64),
    Pay(u32, i64, bool),
    Reverse(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..28, 0i64..50_000).prop_map(|(d, a)| Op::Invoice(d, a)),
        (1u32..28, 0i64..50_000, any::<bool>()).prop_map(|(d, a, g)| Op::Pay(d, a, g)),
        (0usize..10, 0i64..50_000).prop_map(|(i, a)| Op::Reverse(i, a)),
    ]
}

/// Runs `ops`, returning every outcome and the net amount applied according to them.
fn run(ops: &[Op]) -> (OrderCash, Vec<String>, Decimal) {
    let usd = cur("USD");
    let mut o = order();
    let (mut log, mut applied, mut payments) = (Vec::new(), Decimal::ZERO, Vec::new());
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Invoice(d, a) => {
                let doc = Document {
                    id: format!("inv_{n}"),
                    date: day(*d),
                    total: Money::from_minor_units(*a, usd),
                };
                let out = o.add_invoice(&doc).unwrap();
                applied += out.iter().map(|a| a.amount.amount).sum::<Decimal>();
                log.push(format!("{out:?}"));
            }
            Op::Pay(d, a, gift) => {
                let tender = if *gift {
                    Tender::GiftCard
                } else {
                    Tender::Processor
                };
                let p = Payment {
                    id: format!("ch_{n}"),
                    tender,
                    date: day(*d),
                    amount: Money::from_minor_units(*a, usd),
                };
                let out = o.apply_payment(&p).unwrap();
                applied += out
                    .applications
                    .iter()
                    .map(|a| a.amount.amount)
                    .sum::<Decimal>();
                payments.push(p.id);
                log.push(format!("{out:?}"));
            }
            Op::Reverse(i, a) => {
                let Some(id) = payments.get(*i) else { continue };
                match o.reverse_payment(id, Money::from_minor_units(*a, usd)) {
                    Ok(out) => {
                        applied -= out
                            .from_invoices
                            .iter()
                            .map(|(_, m)| m.amount)
                            .sum::<Decimal>();
                        applied += out
                            .released
                            .iter()
                            .map(|a| a.amount.amount)
                            .sum::<Decimal>();
                        log.push(format!("{out:?}"));
                    }
                    Err(e) => log.push(format!("{e:?}")),
                }
            }
        }
    }
    (o, log, applied)
}

proptest! {
    #[test]
    fn applied_plus_unapplied_is_what_was_captured_and_nothing_goes_negative(
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let (o, log, applied) = run(&ops);
        let pos = o.position().unwrap();
        prop_assert_eq!(pos.applied.amount + pos.unapplied.amount, pos.captured.amount);
        prop_assert_eq!(applied, pos.applied.amount, "outcomes add up to the position");
        let mut open_total = Decimal::ZERO;
        for (_, total, open) in &pos.invoices {
            prop_assert!(open.amount >= Decimal::ZERO && open.amount <= total.amount);
            open_total += open.amount;
        }
        // Never cash held beside an open invoice: it would have been applied.
        prop_assert!(pos.unapplied.amount.is_zero() || open_total.is_zero());
        let (again, log_again, _) = run(&ops);
        prop_assert_eq!(log, log_again);
        prop_assert_eq!(again, o);
    }
}
