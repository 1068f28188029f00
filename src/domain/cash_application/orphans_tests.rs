use chrono::Days;
use proptest::prelude::*;

use super::*;
use crate::domain::cash_application::order::Application;
use crate::domain::ledger::posting::Tender;
use crate::domain::ledger::test_support::{day, m};

/// A charge of the payout: `order` None for one naming no order.
fn charge(id: &str, amount: &str, fee: &str, order: Option<&str>, d: u32) -> PayoutTxn {
    let (amount, fee) = (m(amount), m(fee));
    PayoutTxn {
        txn: BalanceTxn {
            id: id.into(),
            category: "charge".into(),
            amount,
            fee,
            net: amount.checked_sub(&fee).unwrap(),
        },
        source: Some(format!("ch_{id}")),
        order_id: order.map(str::to_string),
        date: day(d),
        presentment: None,
    }
}

fn inv(id: &str, order: &str, open: &str, d: u32) -> OpenInvoice {
    OpenInvoice {
        invoice_id: id.into(),
        order_id: order.into(),
        date: day(d),
        open: m(open),
    }
}

fn open_for(txn: &str, invoices: Vec<OpenInvoice>) -> BTreeMap<String, Vec<OpenInvoice>> {
    BTreeMap::from([(txn.to_string(), invoices)])
}

/// (order, amount, fee, source) of each part.
fn parts(o: &Orphans) -> Vec<(Option<String>, String, String, Option<String>)> {
    o.txns
        .iter()
        .map(|t| {
            (
                t.order_id.clone(),
                t.txn.amount.to_string(),
                t.txn.fee.to_string(),
                t.source.clone(),
            )
        })
        .collect()
}

#[test]
fn a_unique_fit_is_split_per_order_with_the_fee_shared_and_every_cent_kept() {
    let open = open_for(
        "txn_1",
        vec![
            inv("INV-A", "A", "100.00 USD", 10),
            inv("INV-B", "B", "50.00 USD", 11),
            inv("INV-C", "C", "70.00 USD", 12),
        ],
    );
    let o = match_orphans(
        vec![charge("txn_1", "150.00 USD", "4.36 USD", None, 12)],
        &open,
    )
    .unwrap();
    let s = |x: &str| x.to_string();
    assert_eq!(
        parts(&o),
        vec![
            (
                Some(s("A")),
                s("100.00 USD"),
                s("2.91 USD"),
                Some(s("ch_txn_1/A"))
            ),
            (
                Some(s("B")),
                s("50.00 USD"),
                s("1.45 USD"),
                Some(s("ch_txn_1/B"))
            ),
        ]
    );
    assert_eq!(o.orders, BTreeSet::from([s("A"), s("B")]));
    assert!(o.notes.is_empty());
    // Each part's net is its amount less its fee; the parts' nets make the charge's.
    assert_eq!(o.txns[0].txn.net, m("97.09 USD"));
    assert_eq!(o.txns[1].txn.net, m("48.55 USD"));
}

#[test]
fn two_combinations_that_fit_leave_the_charge_whole_and_name_both() {
    let open = open_for(
        "txn_1",
        vec![
            inv("INV-X", "X", "50.00 USD", 10),
            inv("INV-Y", "Y", "50.00 USD", 11),
        ],
    );
    let whole = charge("txn_1", "50.00 USD", "1.75 USD", None, 12);
    let o = match_orphans(vec![whole.clone()], &open).unwrap();
    assert_eq!(o.txns, vec![whole]);
    assert!(o.orders.is_empty());
    let note = &o.notes["txn_1"];
    assert!(note.contains("[INV-X], [INV-Y]"), "{note}");
    assert!(note.starts_with("several combinations"), "{note}");
}

#[test]
fn no_fit_and_too_many_candidates_are_said_and_applied_nowhere() {
    let open = open_for("txn_1", vec![inv("INV-A", "A", "80.00 USD", 10)]);
    let o = match_orphans(vec![charge("txn_1", "50.00 USD", "0 USD", None, 12)], &open).unwrap();
    assert!(o.notes["txn_1"].starts_with("no combination of the 1 open invoices"));
    assert_eq!(o.txns[0].order_id, None);

    let many: Vec<OpenInvoice> = (0..=MAX_CANDIDATES)
        .map(|i| inv(&format!("INV-{i:02}"), &format!("O{i}"), "50.00 USD", 10))
        .collect();
    let o = match_orphans(
        vec![charge("txn_1", "50.00 USD", "0 USD", None, 12)],
        &open_for("txn_1", many),
    )
    .unwrap();
    let note = &o.notes["txn_1"];
    assert!(note.contains("more than the 20 searched exactly"), "{note}");
    assert_eq!(o.txns[0].order_id, None);
}

#[test]
fn outside_the_window_or_of_an_order_the_payout_pays_is_no_candidate() {
    let open = open_for(
        "txn_2",
        vec![
            // Paid by txn_1 of the same payout.
            inv("INV-A", "A", "50.00 USD", 10),
            // 31 days before the charge.
            inv("INV-OLD", "OLD", "50.00 USD", 1),
        ],
    );
    let mut late = charge("txn_2", "50.00 USD", "0 USD", None, 1);
    late.date = day(1).checked_add_days(Days::new(31)).unwrap();
    let txns = vec![charge("txn_1", "50.00 USD", "0 USD", Some("A"), 10), late];
    let o = match_orphans(txns, &open).unwrap();
    assert!(o.orders.is_empty(), "{:?}", o.orders);
    assert!(
        o.notes["txn_2"].starts_with("no combination of the 0"),
        "{:?}",
        o.notes
    );
}

#[test]
fn an_invoice_one_orphan_took_is_not_offered_to_the_next() {
    let invoices = vec![inv("INV-A", "A", "50.00 USD", 10)];
    let open = BTreeMap::from([
        ("txn_1".to_string(), invoices.clone()),
        ("txn_2".to_string(), invoices),
    ]);
    // Given in the other order: the earlier charge takes it whatever the arrival order.
    let txns = vec![
        charge("txn_2", "50.00 USD", "0 USD", None, 13),
        charge("txn_1", "50.00 USD", "0 USD", None, 12),
    ];
    let o = match_orphans(txns, &open).unwrap();
    assert_eq!(o.txns[0].order_id, None);
    assert_eq!(o.txns[0].txn.id, "txn_2");
    assert_eq!(o.txns[1].order_id.as_deref(), Some("A"));
    assert!(o.notes.contains_key("txn_2"));
}

#[test]
fn a_reversal_splits_the_charge_as_it_was_applied() {
    let open = open_for(
        "txn_1",
        vec![
            inv("INV-A", "A", "100.00 USD", 10),
            inv("INV-B", "B", "50.00 USD", 11),
        ],
    );
    let whole = charge("txn_1", "150.00 USD", "4.36 USD", None, 12);
    let matched = match_orphans(vec![whole.clone()], &open).unwrap();
    let applied: Vec<AppliedCash> = matched
        .txns
        .iter()
        .map(|p| AppliedCash {
            order_id: p.order_id.clone().unwrap(),
            external_id: String::new(),
            application: Application {
                payment_id: p.source.clone().unwrap(),
                tender: Tender::Processor,
                invoice_id: format!("INV-{}", p.order_id.as_ref().unwrap()),
                amount: p.txn.amount,
                from_unapplied: false,
            },
        })
        .collect();
    let again = as_applied(vec![whole.clone()], &applied).unwrap();
    assert_eq!(again.txns, matched.txns);
    assert_eq!(again.orders, matched.orders);
    // Applications that do not make the charge leave it whole.
    let partial = as_applied(vec![whole.clone()], &applied[..1]).unwrap();
    assert_eq!(partial.txns, vec![whole]);
}

proptest! {
    /// Whatever the open amounts and the fee, a unique fit's parts make the charge, its
    /// fee and its net to the cent.
    #[test]
    fn a_split_conserves_every_cent(
        cents in proptest::collection::vec(1i64..1_000_000, 1..6),
        fee in 0i64..50_000,
    ) {
        let invoices: Vec<OpenInvoice> = cents
            .iter()
            .enumerate()
            .map(|(i, c)| inv(&format!("INV-{i}"), &format!("O{i}"), &format!("{}.{:02} USD", c / 100, c % 100), 10))
            .collect();
        let total: i64 = cents.iter().sum();
        let amount = format!("{}.{:02} USD", total / 100, total % 100);
        let fee = format!("{}.{:02} USD", fee / 100, fee % 100);
        let t = charge("txn_1", &amount, &fee, None, 12);
        let o = match_orphans(vec![t.clone()], &open_for("txn_1", invoices)).unwrap();
        let sum = |f: fn(&PayoutTxn) -> Money| o
            .txns
            .iter()
            .try_fold(Money::zero(t.txn.amount.currency), |s, p| s.checked_add(&f(p)))
            .unwrap();
        prop_assert_eq!(sum(|p| p.txn.amount), t.txn.amount);
        prop_assert_eq!(sum(|p| p.txn.fee), t.txn.fee);
        prop_assert_eq!(sum(|p| p.txn.net), t.txn.net);
    }
}
