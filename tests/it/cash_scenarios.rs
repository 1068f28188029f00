//! Cash application scenarios of issue 7: refunds, disputes, gift cards, FX.

use tally::proto::tally::v1 as pb;

use crate::cash::{
    account_balance, assert_ledger_sound, at, bt, capture, drain, eur_sale, inv, payout, scalar,
    worker,
};
use crate::common::*;

pub(crate) fn credit_memo(order: &str, id: &str, total: &str) -> pb::Record {
    at(
        "netsuite",
        id,
        order,
        "2026-11-05T12:00:00Z",
        pb::record::Kind::CreditMemo(pb::CreditMemo {
            total: usd(total),
            ..Default::default()
        }),
    )
}

pub(crate) fn processor_refund(order: &str, id: &str, amount: &str) -> pb::Record {
    at(
        "stripe",
        id,
        order,
        "2026-11-05T10:00:00Z",
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Refund as i32,
            amount: usd(amount),
            ..Default::default()
        }),
    )
}

async fn exception_rules(t: &TestApp) -> String {
    scalar(t, "SELECT coalesce(string_agg(rule || ':' || subject, ',' ORDER BY rule), '') FROM exceptions WHERE rule LIKE 'cash.%' OR rule LIKE 'ledger.%'").await
}

#[tokio::test]
async fn a_refund_after_its_payout_is_booked_against_its_credit_memo() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("4001", "100.00"),
        capture("4001", "ch_4001", "100.00"),
        inv("4001", "INV-4001", "100.00", "2026-11-02T12:00:00Z"),
        bt("txn_a1", "charge", "ch_4001", "100.00", "3.00", "po_a"),
        payout("po_a", "97.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    t.submit(vec![
        processor_refund("4001", "re_4001", "30.00"),
        credit_memo("4001", "CM-4001", "30.00"),
        bt("txn_b1", "refund", "re_4001", "-30.00", "0.00", "po_b"),
        payout("po_b", "-30.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "sales_returns").await, "30.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(exception_rules(&t).await, "");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_refund_with_no_credit_memo_is_an_exception_naming_the_residual() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("4101", "100.00"),
        capture("4101", "ch_4101", "100.00"),
        inv("4101", "INV-4101", "100.00", "2026-11-02T12:00:00Z"),
        processor_refund("4101", "re_4101", "30.00"),
        bt("txn_c1", "charge", "ch_4101", "100.00", "3.00", "po_c"),
        bt("txn_c2", "refund", "re_4101", "-30.00", "0.00", "po_c"),
        payout("po_c", "67.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    // No cash-level exception of its own (matching's REFUND_NOT_PROPAGATED covers a refund
    // with no credit memo once the refund lag has passed): the payout's residual names it.
    assert_eq!(exception_rules(&t).await, "ledger.clearing_residual:po_c");
    let summary = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'ledger.clearing_residual'",
    )
    .await;
    assert!(
        summary.contains("30.00 USD") && summary.contains("re_4101"),
        "{summary}"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT round(residual, 2)::text FROM payouts WHERE payout_id = 'po_c'"
        )
        .await,
        "30.00"
    );
    assert_ledger_sound(&t).await;

    // The payout fails: its bookings are mirrored, what it left on clearing
    // with them, and its residual exception is resolved by the rules.
    fail_payout(&t, &app, "po_c", "67.00").await;
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(
        scalar(
            &t,
            "SELECT state || '/' || resolved_by FROM exceptions WHERE rule = 'ledger.clearing_residual'"
        )
        .await,
        "resolved/rules"
    );
    assert_ledger_sound(&t).await;
}

fn dispute_bt(id: &str, category: &str, amount: &str, fee: &str, payout: &str) -> pb::Record {
    let mut r = bt(id, category, "dp_4201", amount, fee, payout);
    r.references = vec![pb::ExternalReference {
        r#type: pb::ReferenceType::Charge as i32,
        id: "ch_4201".into(),
    }];
    r
}

#[tokio::test]
async fn a_lost_dispute_books_chargeback_and_fee_and_a_won_one_gives_both_back() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("4201", "50.00"),
        capture("4201", "ch_4201", "50.00"),
        inv("4201", "INV-4201", "50.00", "2026-11-02T12:00:00Z"),
        bt("txn_d1", "charge", "ch_4201", "50.00", "1.75", "po_d"),
        dispute_bt("txn_d2", "dispute", "-50.00", "15.00", "po_d"),
        // 48.25 - 65.00
        payout("po_d", "-16.75"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "chargebacks").await, "50.00");
    assert_eq!(account_balance(&t, "dispute_fees").await, "15.00");
    assert_eq!(account_balance(&t, "processing_fees").await, "1.75");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    // Won: the amount and the dispute fee come back (a negative fee on the reversal).
    t.submit(vec![
        dispute_bt("txn_e1", "dispute_reversal", "50.00", "-15.00", "po_e"),
        payout("po_e", "65.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "chargebacks").await, "0.00");
    assert_eq!(account_balance(&t, "dispute_fees").await, "0.00");
    assert_eq!(account_balance(&t, "processing_fees").await, "1.75");
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_e'").await,
        "applied"
    );
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(exception_rules(&t).await, "");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_gift_card_tender_is_applied_from_its_liability_account() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut o = order("4301", "100.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.tenders = vec![
            pb::Tender {
                r#type: pb::TenderType::GiftCard as i32,
                gateway: "gift_card".into(),
                amount: usd("40.00"),
                processor_reference: String::new(),
            },
            pb::Tender {
                r#type: pb::TenderType::Card as i32,
                gateway: "stripe".into(),
                amount: usd("60.00"),
                processor_reference: "pi_4301".into(),
            },
        ];
    }
    t.submit(vec![
        o,
        capture("4301", "ch_4301", "60.00"),
        inv("4301", "INV-4301", "100.00", "2026-11-02T12:00:00Z"),
        bt("txn_g1", "charge", "ch_4301", "60.00", "2.00", "po_g"),
        payout("po_g", "58.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "gift_card_liability").await, "40.00");
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(
        scalar(&t, "SELECT string_agg(tender || '=' || round(amount, 2)::text, ',' ORDER BY tender) FROM cash_applications").await,
        "gift_card=40.00,processor=60.00"
    );
}

#[tokio::test]
async fn an_eur_order_settled_in_usd_books_fx_and_clears_to_zero() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let [o, c, i] = eur_sale("4401");
    let mut b = bt("txn_f1", "charge", "ch_4401", "110.00", "3.50", "po_f");
    if let Some(pb::record::Kind::BalanceTransaction(x)) = &mut b.kind {
        x.exchange_rate = "1.1".into();
    }
    t.submit(vec![o, c, i, b, payout("po_f", "106.50")])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_f'").await,
        "applied"
    );
    let by_currency = scalar(
        &t,
        "SELECT string_agg(account || ' ' || currency_code || ' ' || round(b, 2)::text, ', ' ORDER BY account, currency_code)
         FROM (SELECT account, currency_code, sum(debit - credit) b FROM journal_lines
               WHERE account IN ('processor_clearing', 'accounts_receivable', 'fx_gain_loss')
               GROUP BY 1, 2) x",
    )
    .await;
    assert_eq!(
        by_currency,
        "accounts_receivable EUR 0.00, fx_gain_loss EUR 100.00, fx_gain_loss USD -110.00, processor_clearing USD 0.00"
    );
    assert_ledger_sound(&t).await;
}

pub(crate) fn payout_version(
    id: &str,
    amount: &str,
    status: pb::PayoutStatus,
    updated: &str,
) -> pb::Record {
    let mut r = payout(id, amount);
    r.source_update_time = ts(updated);
    if let Some(pb::record::Kind::Payout(p)) = &mut r.kind {
        p.status = status as i32;
    }
    r
}

/// The bank returns payout `id` (a later version of its record, failed);
/// the worker runs and the payout reads back reversed.
pub(crate) async fn fail_payout(t: &TestApp, app: &tally::app::App, id: &str, amount: &str) {
    t.submit(vec![payout_version(
        id,
        amount,
        pb::PayoutStatus::Failed,
        "2026-11-06T08:00:00Z",
    )])
    .await
    .unwrap();
    drain(app, "acme").await;
    assert_eq!(
        scalar(
            t,
            &format!("SELECT state FROM payouts WHERE payout_id = '{id}'")
        )
        .await,
        "failed"
    );
}

#[tokio::test]
async fn a_payout_that_fails_after_it_was_paid_reverses_what_it_applied() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("4501", "100.00"),
        capture("4501", "ch_4501", "100.00"),
        inv("4501", "INV-4501", "60.00", "2026-11-02T12:00:00Z"),
        bt("txn_h1", "charge", "ch_4501", "100.00", "3.00", "po_h"),
        payout_version(
            "po_h",
            "97.00",
            pb::PayoutStatus::Paid,
            "2026-11-05T08:00:00Z",
        ),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "bank").await, "97.00");
    assert_eq!(account_balance(&t, "unapplied_cash").await, "-40.00");
    // The bank returns it: a later version of the payout record.
    fail_payout(&t, &app, "po_h", "97.00").await;
    for (account, balance) in [
        ("bank", "0.00"),
        ("processor_clearing", "0.00"),
        ("processing_fees", "0.00"),
        ("unapplied_cash", "0.00"),
        // The invoice is open again, in the ledger and in AR.
        ("accounts_receivable", "60.00"),
    ] {
        assert_eq!(account_balance(&t, account).await, balance, "{account}");
    }
    assert_eq!(
        scalar(
            &t,
            "SELECT round(total - applied, 2)::text FROM invoices WHERE invoice_id = 'INV-4501'"
        )
        .await,
        "60.00"
    );
    // Booked once: a re-sent failed version changes nothing.
    let lines = t.count("SELECT count(*) FROM journal_lines").await;
    t.db.client()
        .await
        .execute("INSERT INTO jobs (merchant_id, kind, subject_id) VALUES ('acme', 'apply_payout', 'po_h')", &[])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, lines);
    // The order's cash replays to the ledger's state: a new capture pays the reopened invoice.
    t.submit(vec![
        capture("4501", "ch_4501b", "60.00"),
        bt("txn_h2", "charge", "ch_4501b", "60.00", "2.00", "po_i"),
        payout("po_i", "58.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    // The failed payout stays explained until the processor says otherwise.
    assert_eq!(exception_rules(&t).await, "cash.payout_failed:po_h");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_credit_memo_arriving_after_its_refund_is_booked_and_settles_the_exception() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![
        order("4701", "100.00"),
        capture("4701", "ch_4701", "100.00"),
        inv("4701", "INV-4701", "100.00", "2026-11-02T12:00:00Z"),
        processor_refund("4701", "re_4701", "30.00"),
        bt("txn_k1", "charge", "ch_4701", "100.00", "3.00", "po_k"),
        bt("txn_k2", "refund", "re_4701", "-30.00", "0.00", "po_k"),
        payout("po_k", "67.00"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "processor_clearing").await, "30.00");
    t.submit(vec![credit_memo("4701", "CM-4701", "30.00")])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "sales_returns").await, "30.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    // The payout's residual is back to zero, and its exception resolved by the rules.
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'ledger.clearing_residual' AND subject = 'po_k' AND state = 'resolved' AND resolved_by = 'rules'")
            .await,
        1
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT round(residual, 2)::text FROM payouts WHERE payout_id = 'po_k'"
        )
        .await,
        "0.00"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE state <> 'resolved' AND (rule LIKE 'cash.%' OR rule LIKE 'ledger.%')").await,
        0
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn multicapture_across_two_payouts_leaves_exactly_the_unpaid_rest_open() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    // Three captures on one payment intent pay one invoice of 150.00; 120.00 in all.
    t.submit(vec![
        order("4801", "150.00"),
        inv("4801", "INV-4801", "150.00", "2026-11-02T12:00:00Z"),
        capture("4801", "ch_4801a", "50.00"),
        capture("4801", "ch_4801b", "40.00"),
        capture("4801", "ch_4801c", "30.00"),
        bt("txn_m1", "charge", "ch_4801a", "50.00", "1.75", "po_m1"),
        bt("txn_m2", "charge", "ch_4801b", "40.00", "1.46", "po_m1"),
        payout("po_m1", "86.79"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "accounts_receivable").await, "60.00");
    t.submit(vec![
        bt("txn_m3", "charge", "ch_4801c", "30.00", "1.17", "po_m2"),
        payout("po_m2", "28.83"),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(state, ',' ORDER BY payout_id) FROM payouts"
        )
        .await,
        "applied,applied"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT invoice_id || ' ' || round(total - applied, 2)::text FROM invoices"
        )
        .await,
        "INV-4801 30.00"
    );
    assert_eq!(
        scalar(&t, "SELECT string_agg(payment_id || '=' || round(amount, 2)::text, ',' ORDER BY payment_id) FROM cash_applications").await,
        "ch_4801a=50.00,ch_4801b=40.00,ch_4801c=30.00"
    );
    assert_eq!(account_balance(&t, "accounts_receivable").await, "30.00");
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(exception_rules(&t).await, "");
    assert_ledger_sound(&t).await;
}
