//! A charge that names no order (made by hand in the processor's dashboard,
//! one payment of several invoices) is applied to the open invoices whose
//! open amounts are the one exact combination that makes it; when several
//! or none do, it stays on clearing with an exception that says which.

use crate::cash::{account_balance, assert_ledger_sound, bt, drain, inv, payout, scalar, worker};
use crate::cash_scenarios::fail_payout;
use crate::common::*;

const INVOICED: &str = "2026-11-02T12:00:00Z";

async fn open_amount(t: &TestApp, invoice: &str) -> String {
    scalar(
        t,
        &format!(
            "SELECT round(total - applied, 2)::text FROM invoices WHERE invoice_id = '{invoice}'"
        ),
    )
    .await
}

async fn unidentified(t: &TestApp) -> Vec<String> {
    let rows =
        t.db.client()
            .await
            .query(
                "SELECT summary FROM exceptions WHERE rule = 'cash.unidentified_money' \
             AND state <> 'resolved' ORDER BY subject",
                &[],
            )
            .await
            .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Invoices A 100.00, B 50.00 and C 70.00, booked; then one 150.00 charge
/// naming no order (fee 4.36), swept by payout po_1.
async fn three_invoices_and_a_charge_of_a_and_b(t: &TestApp) -> tally::app::App {
    let app = worker(t).await;
    t.submit(vec![
        inv("A", "INV-A", "100.00", INVOICED),
        inv("B", "INV-B", "50.00", INVOICED),
        inv("C", "INV-C", "70.00", INVOICED),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    t.submit(vec![
        bt("txn_o", "charge", "ch_manual", "150.00", "4.36", "po_1"),
        payout("po_1", "145.64"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    app
}

#[tokio::test]
async fn a_charge_naming_no_order_pays_the_one_combination_of_open_invoices_it_makes() {
    let t = TestApp::start().await;
    three_invoices_and_a_charge_of_a_and_b(&t).await;

    assert_eq!(open_amount(&t, "INV-A").await, "0.00");
    assert_eq!(open_amount(&t, "INV-B").await, "0.00");
    assert_eq!(open_amount(&t, "INV-C").await, "70.00");
    assert!(unidentified(&t).await.is_empty());
    assert_eq!(
        scalar(
            &t,
            "SELECT state || ':' || round(residual, 2)::text FROM payouts WHERE payout_id = 'po_1'"
        )
        .await,
        "applied:0.00"
    );
    // One payment per order, each known by its own id; the fee shared by amount.
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(payment_id || '=' || round(amount, 2)::text, ',' ORDER BY payment_id) \
             FROM cash_applications"
        )
        .await,
        "ch_manual/A=100.00,ch_manual/B=50.00"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(order_id || '=' || round(amount, 2)::text, ',' ORDER BY order_id) \
             FROM fee_shares WHERE payout_id = 'po_1'"
        )
        .await,
        "A=2.91,B=1.45"
    );
    assert_eq!(account_balance(&t, "accounts_receivable").await, "70.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(&t, "processing_fees").await, "4.36");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn when_two_combinations_fit_nothing_is_applied_and_the_exception_lists_both() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        inv("X", "INV-X", "50.00", INVOICED),
        inv("Y", "INV-Y", "50.00", INVOICED),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    t.submit(vec![
        bt("txn_o", "charge", "ch_manual", "50.00", "1.75", "po_2"),
        payout("po_2", "48.25"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;

    assert_eq!(open_amount(&t, "INV-X").await, "50.00");
    assert_eq!(open_amount(&t, "INV-Y").await, "50.00");
    let found = unidentified(&t).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("[INV-X], [INV-Y]"), "{}", found[0]);
    assert_eq!(t.count("SELECT count(*) FROM cash_applications").await, 0);
    // The charge's money stays on clearing, named by the payout's residual
    // (the payout paid out 50.00 of gross no order took).
    assert_eq!(
        scalar(
            &t,
            "SELECT round(residual, 2)::text FROM payouts WHERE payout_id = 'po_2'"
        )
        .await,
        "-50.00"
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_failed_payout_takes_back_what_its_orphan_charge_paid() {
    let t = TestApp::start().await;
    let app = three_invoices_and_a_charge_of_a_and_b(&t).await;
    fail_payout(&t, &app, "po_1", "145.64").await;
    for invoice in ["INV-A", "INV-B"] {
        assert_eq!(open_amount(&t, invoice).await, open_amount_before(invoice));
    }
    // Each order's cash history has the payment and its reversal.
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(order_id || ':' || kind, ',' ORDER BY order_id, event_no) \
             FROM order_cash_events WHERE order_id IN ('A', 'B') AND kind <> 'invoice'"
        )
        .await,
        "A:payment,A:reversal,B:payment,B:reversal"
    );
    assert_eq!(account_balance(&t, "accounts_receivable").await, "220.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(&t, "bank").await, "0.00");
    assert_ledger_sound(&t).await;
}

fn open_amount_before(invoice: &str) -> String {
    match invoice {
        "INV-A" => "100.00",
        _ => "50.00",
    }
    .to_string()
}
