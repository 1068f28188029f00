//! Cash application rules of issue 7 (second part): fees given back, overpayments,
//! incomplete payouts past their lag, refunds split by their credit memo, late memos in
//! another currency, failures after held cash was released.

use tally::proto::tally::v1 as pb;

use crate::cash::{
    account_balance, assert_ledger_sound, at, bt, capture, drain, eur_sale, inv, money, payout,
    scalar, worker,
};
use crate::common::*;

async fn open_cash_exceptions(t: &TestApp) -> String {
    scalar(t, "SELECT coalesce(string_agg(rule || ':' || subject, ',' ORDER BY rule, subject), '') FROM exceptions WHERE state <> 'resolved' AND (rule LIKE 'cash.%' OR rule LIKE 'ledger.%')").await
}

#[tokio::test]
async fn a_negative_fee_is_refused_except_where_the_processor_gives_a_fee_back() {
    let t = TestApp::start().await;
    let err = t
        .submit(vec![bt(
            "txn_f1", "charge", "ch_1", "10.00", "-0.30", "po_f",
        )])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        bad_fields(&err),
        vec!["records[0].balance_transaction.fee.amount"]
    );
    assert!(
        err.message().contains("dispute_reversal"),
        "{}",
        err.message()
    );
    assert_eq!(t.count("SELECT count(*) FROM record_log").await, 0);
    t.submit(vec![bt(
        "txn_f2",
        "dispute_reversal",
        "dp_1",
        "10.00",
        "-15.00",
        "po_f",
    )])
    .await
    .unwrap();
}

#[tokio::test]
async fn an_overpayment_stays_unapplied_with_an_exception_naming_it_and_exact_pay_is_silent() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("5001", "100.00"),
        capture("5001", "ch_5001", "110.00"),
        inv("5001", "INV-5001", "100.00", "2026-11-02T12:00:00Z"),
        bt("txn_o1", "charge", "ch_5001", "110.00", "3.00", "po_o"),
        order("5002", "50.00"),
        capture("5002", "ch_5002", "50.00"),
        inv("5002", "INV-5002", "50.00", "2026-11-02T12:00:00Z"),
        bt("txn_o2", "charge", "ch_5002", "50.00", "1.00", "po_o"),
        payout("po_o", "156.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(open_cash_exceptions(&t).await, "cash.overpayment:5001");
    let summary = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'cash.overpayment'",
    )
    .await;
    assert!(summary.contains("10.00 USD"), "{summary}");
    assert_eq!(account_balance(&t, "unapplied_cash").await, "-10.00");
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    // The processor gives the excess back (a partial-capture reversal): settled by itself.
    t.submit(vec![
        bt(
            "txn_o3",
            "partial_capture_reversal",
            "ch_5001",
            "-10.00",
            "0.00",
            "po_o2",
        ),
        payout("po_o2", "-10.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'cash.overpayment' AND state = 'resolved' AND resolved_by = 'rules'").await,
        1
    );
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn cash_held_before_the_last_invoice_is_no_overpayment() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    // A split shipment: captured in full at checkout, invoiced in two parts.
    t.submit(vec![
        order("5101", "100.00"),
        capture("5101", "ch_5101", "100.00"),
        inv("5101", "INV-5101a", "60.00", "2026-11-02T12:00:00Z"),
        bt("txn_p1", "charge", "ch_5101", "100.00", "3.00", "po_p"),
        payout("po_p", "97.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "unapplied_cash").await, "-40.00");
    assert_eq!(open_cash_exceptions(&t).await, "");
    t.submit(vec![inv(
        "5101",
        "INV-5101b",
        "40.00",
        "2026-11-03T12:00:00Z",
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_ledger_sound(&t).await;
}

fn payout_at(id: &str, amount: &str, when: &str) -> pb::Record {
    let mut p = payout(id, amount);
    p.event_time = ts(when);
    p
}

#[tokio::test]
async fn a_payout_incomplete_past_its_lag_is_an_exception_naming_what_is_missing_until_complete() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    // Paid 2026-11-04: the contract's lag passed long ago, and one charge never came.
    t.submit(vec![
        order("5201", "150.00"),
        capture("5201", "ch_5201a", "100.00"),
        capture("5201", "ch_5201b", "50.00"),
        inv("5201", "INV-5201", "150.00", "2026-11-02T12:00:00Z"),
        bt("txn_w1", "charge", "ch_5201a", "100.00", "3.20", "po_w"),
        payout("po_w", "145.05"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_w'").await,
        "waiting"
    );
    assert_eq!(
        open_cash_exceptions(&t).await,
        "cash.payout_incomplete:po_w"
    );
    let summary = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'cash.payout_incomplete'",
    )
    .await;
    assert!(
        summary.contains("po_w") && summary.contains("48.25 USD") && summary.contains("96.80 USD"),
        "{summary}"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT type FROM exceptions WHERE rule = 'cash.payout_incomplete'"
        )
        .await,
        "late_handoff"
    );
    // The missing charge arrives: applied, and the exception resolved by the rules.
    t.submit(vec![bt(
        "txn_w2", "charge", "ch_5201b", "50.00", "1.75", "po_w",
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_w'").await,
        "applied"
    );
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'cash.payout_incomplete' AND state = 'resolved' AND resolved_by = 'rules'").await,
        1
    );
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_still_within_its_lag_only_waits_and_is_checked_again_at_its_deadline() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let now = chrono::Utc::now();
    t.submit(vec![
        order("5301", "150.00"),
        capture("5301", "ch_5301a", "100.00"),
        bt("txn_x1", "charge", "ch_5301a", "100.00", "3.20", "po_x"),
        payout_at("po_x", "145.05", &now.to_rfc3339()),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_x'").await,
        "waiting"
    );
    assert_eq!(open_cash_exceptions(&t).await, "");
    // Its re-check is due at the payout's time plus the contract's lag (7 days by default).
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE kind = 'check_payout' AND subject_id = 'po_x' AND run_after > now() + interval '6 days'").await,
        1
    );
    // The clock reaches the deadline: the check finds it still incomplete.
    t.db.client()
        .await
        .execute(
            "UPDATE jobs SET run_after = now() WHERE kind = 'check_payout'",
            &[],
        )
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_cash_exceptions(&t).await,
        "cash.payout_incomplete:po_x"
    );
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 0);
}

fn memo(order: &str, id: &str, total: &str, tax: &str, shipping: &str) -> pb::Record {
    at(
        "netsuite",
        id,
        order,
        "2026-11-05T12:00:00Z",
        pb::record::Kind::CreditMemo(pb::CreditMemo {
            total: usd(total),
            tax: usd(tax),
            shipping: usd(shipping),
            ..Default::default()
        }),
    )
}

fn processor_refund(order: &str, id: &str, amount: Option<pb::Money>) -> pb::Record {
    at(
        "stripe",
        id,
        order,
        "2026-11-05T10:00:00Z",
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Refund as i32,
            amount,
            ..Default::default()
        }),
    )
}

#[tokio::test]
async fn a_refund_is_split_into_returns_tax_and_shipping_as_its_credit_memo_is() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("5401", "110.00"),
        capture("5401", "ch_5401", "110.00"),
        inv("5401", "INV-5401", "110.00", "2026-11-02T12:00:00Z"),
        bt("txn_r1", "charge", "ch_5401", "110.00", "3.00", "po_r1"),
        payout("po_r1", "107.00"),
        // In full: 20.00 goods, 5.00 tax, 5.00 shipping.
        processor_refund("5401", "re_5401", usd("30.00")),
        memo("5401", "CM-5401", "30.00", "5.00", "5.00"),
        bt("txn_r2", "refund", "re_5401", "-30.00", "0.00", "po_r2"),
        // In part: 10.00 of a memo of 30.00 with 3.33 tax, by largest remainder.
        order("5402", "30.00"),
        capture("5402", "ch_5402", "30.00"),
        inv("5402", "INV-5402", "30.00", "2026-11-02T12:00:00Z"),
        bt("txn_r3", "charge", "ch_5402", "30.00", "1.00", "po_r2"),
        processor_refund("5402", "re_5402", usd("10.00")),
        memo("5402", "CM-5402", "30.00", "3.33", "0.00"),
        bt("txn_r4", "refund", "re_5402", "-10.00", "0.00", "po_r2"),
        payout("po_r2", "-11.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    let lines = scalar(
        &t,
        "SELECT string_agg(order_id || ' ' || account || ' ' || round(debit - credit, 2)::text, ', ' ORDER BY order_id, account)
         FROM journal_lines l WHERE account IN ('sales_returns', 'sales_tax_payable', 'shipping_income')
           AND debit > 0",
    )
    .await;
    assert_eq!(
        lines,
        "5401 sales_returns 20.00, 5401 sales_tax_payable 5.00, 5401 shipping_income 5.00, \
         5402 sales_returns 8.89, 5402 sales_tax_payable 1.11"
    );
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_ledger_sound(&t).await;
    // A memo whose tax and shipping exceed its total is refused, naming the field.
    let err = t
        .submit(vec![memo("5403", "CM-5403", "10.00", "6.00", "5.00")])
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["records[0].credit_memo.shipping"]);
}

#[tokio::test]
async fn a_late_credit_memo_on_an_eur_order_settled_in_usd_books_at_the_processor_rate() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let eur = |a: &str| money("EUR", a);
    let [o, c, i] = eur_sale("5501");
    let fx = |mut r: pb::Record| {
        if let Some(pb::record::Kind::BalanceTransaction(x)) = &mut r.kind {
            x.exchange_rate = "1.1".into();
        }
        r
    };
    t.submit(vec![
        o,
        c,
        i,
        fx(bt("txn_s1", "charge", "ch_5501", "110.00", "3.50", "po_s1")),
        payout("po_s1", "106.50"),
        processor_refund("5501", "re_5501", eur("30.00")),
        fx(bt("txn_s2", "refund", "re_5501", "-33.00", "0.00", "po_s2")),
        payout("po_s2", "-33.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_cash_exceptions(&t).await,
        "ledger.clearing_residual:po_s2"
    );
    let mut m = memo("5501", "CM-5501", "30.00", "0.00", "0.00");
    if let Some(pb::record::Kind::CreditMemo(x)) = &mut m.kind {
        x.total = eur("30.00");
        x.tax = None;
        x.shipping = None;
    }
    t.submit(vec![m]).await.unwrap();
    drain(&app, "acme").await;
    let by_currency = scalar(
        &t,
        "SELECT string_agg(account || ' ' || currency_code || ' ' || round(b, 2)::text, ', ' ORDER BY account, currency_code)
         FROM (SELECT account, currency_code, sum(debit - credit) b FROM journal_lines
               WHERE account IN ('processor_clearing', 'sales_returns', 'fx_gain_loss')
               GROUP BY 1, 2) x",
    )
    .await;
    assert_eq!(
        by_currency,
        "fx_gain_loss EUR 70.00, fx_gain_loss USD -77.00, processor_clearing USD 0.00, sales_returns EUR 30.00"
    );
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_eq!(
        scalar(
            &t,
            "SELECT round(residual, 2)::text FROM payouts WHERE payout_id = 'po_s2'"
        )
        .await,
        "0.00"
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_failure_after_its_held_cash_was_released_reopens_the_invoice_in_ledger_and_history() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    // Captured at checkout, paid out before the invoice: held as unapplied cash.
    t.submit(vec![
        order("5601", "100.00"),
        capture("5601", "ch_5601", "100.00"),
        bt("txn_u1", "charge", "ch_5601", "100.00", "3.00", "po_u"),
        payout("po_u", "97.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "unapplied_cash").await, "-100.00");
    // The invoice arrives: the order's own job releases the held cash to it.
    t.submit(vec![inv(
        "5601",
        "INV-5601",
        "100.00",
        "2026-11-06T12:00:00Z",
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    // The bank returns the payout.
    let mut failed = payout("po_u", "97.00");
    failed.source_update_time = ts("2026-11-07T08:00:00Z");
    if let Some(pb::record::Kind::Payout(p)) = &mut failed.kind {
        p.status = pb::PayoutStatus::Failed as i32;
    }
    t.submit(vec![failed]).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_u'").await,
        "failed"
    );
    // Ledger and history agree: the invoice is open again, nothing held, nothing at the bank.
    assert_eq!(account_balance(&t, "accounts_receivable").await, "100.00");
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(&t, "bank").await, "0.00");
    assert_eq!(
        scalar(
            &t,
            "SELECT round(total - applied, 2)::text FROM invoices WHERE invoice_id = 'INV-5601'"
        )
        .await,
        "100.00"
    );
    // The order's replayed cash agrees: a new capture pays the reopened invoice in full.
    t.submit(vec![
        capture("5601", "ch_5601b", "100.00"),
        bt("txn_u2", "charge", "ch_5601b", "100.00", "3.00", "po_u2"),
        payout("po_u2", "97.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_eq!(
        scalar(
            &t,
            "SELECT round(total - applied, 2)::text FROM invoices WHERE invoice_id = 'INV-5601'"
        )
        .await,
        "0.00"
    );
    // The failed payout stays explained until the processor says otherwise.
    assert_eq!(open_cash_exceptions(&t).await, "cash.payout_failed:po_u");
    assert_ledger_sound(&t).await;
}

/// Finance resolves an overpayment by hand (refunded outside the processor,
/// say): the worker planning the order again on the same evidence leaves
/// that decision alone; more money paid is new evidence, a new exception.
#[tokio::test]
async fn an_overpayment_a_person_resolved_stays_resolved_until_more_is_paid() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("5301", "100.00"),
        capture("5301", "ch_5301", "110.00"),
        inv("5301", "INV-5301", "100.00", "2026-11-02T12:00:00Z"),
        bt("txn_r1", "charge", "ch_5301", "110.00", "3.00", "po_r"),
        payout("po_r", "107.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(open_cash_exceptions(&t).await, "cash.overpayment:5301");
    let name = scalar(
        &t,
        "SELECT 'merchants/acme/exceptions/' || exception_id FROM exceptions WHERE rule = 'cash.overpayment'",
    )
    .await;
    let mut req = tonic::Request::new(pb::ResolveExceptionRequest {
        name,
        note: "10.00 refunded by bank transfer".into(),
        etag: String::new(),
    });
    req.metadata_mut()
        .insert("x-tally-actor", "alice".parse().unwrap());
    t.exceptions.clone().resolve_exception(req).await.unwrap();
    assert_eq!(open_cash_exceptions(&t).await, "");

    // The ERP sends the invoice again, its line added (a later version, the
    // same figures): the order is planned again and finds the same 10.00 held.
    let mut again = inv("5301", "INV-5301", "100.00", "2026-11-02T12:00:00Z");
    again.source_update_time = ts("2026-11-03T09:00:00Z");
    if let Some(pb::record::Kind::Invoice(i)) = &mut again.kind {
        i.lines = vec![pb::InvoiceLine {
            sku: "SKU-1".into(),
            quantity: 1,
            amount: usd("100.00"),
        }];
    }
    t.submit(vec![again]).await.unwrap();
    assert_eq!(
        t.count(
            "SELECT count(*) FROM (SELECT kind, subject_id FROM jobs
               UNION SELECT kind, subject_id FROM job_signals) q
             WHERE kind = 'apply_order' AND subject_id = '5301'"
        )
        .await,
        1
    );
    drain(&app, "acme").await;
    assert_eq!(open_cash_exceptions(&t).await, "");
    assert_eq!(
        t.count("SELECT count(*) FROM exception_events WHERE action = 'reopened'")
            .await,
        0
    );

    // A second capture of 5.00 is paid out: 15.00 held now, an exception of
    // its own; alice's decision on the 10.00 keeps its state and history.
    t.submit(vec![
        capture("5301", "ch_5301b", "5.00"),
        bt("txn_r2", "charge", "ch_5301b", "5.00", "0.20", "po_r2"),
        payout("po_r2", "4.80"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(open_cash_exceptions(&t).await, "cash.overpayment:5301");
    let open = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'cash.overpayment' AND state = 'open'",
    )
    .await;
    assert!(open.contains("15.00 USD"), "{open}");
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'cash.overpayment' AND state = 'resolved' AND resolved_by = 'alice'")
            .await,
        1
    );
    assert_ledger_sound(&t).await;
}
