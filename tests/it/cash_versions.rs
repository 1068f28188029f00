//! The ledger follows the facts (issue 18): the six sequences an adversarial
//! run found booking wrong money with no exception, each through the public
//! ingest path, the worker and a real PostgreSQL.

use tally::proto::tally::v1 as pb;

use crate::cash::*;
use crate::cash_scenarios::payout_version;
use crate::common::*;
use crate::ledger_state::LedgerState;

/// Order 7001: 100.00 captured by `ch_7001`, invoiced `INV-7001`.
fn sale() -> Vec<pb::Record> {
    vec![
        order("7001", "100.00"),
        capture("7001", "ch_7001", "100.00"),
        inv("7001", "INV-7001", "100.00", "2026-11-02T12:00:00Z"),
    ]
}

/// `r` as a version changed at its source at `when`.
fn version(mut r: pb::Record, when: &str) -> pb::Record {
    r.source_update_time = ts(when);
    r
}

fn paid(amount: &str, when: &str) -> pb::Record {
    payout_version("po_7", amount, pb::PayoutStatus::Paid, when)
}

fn failed(amount: &str, when: &str) -> pb::Record {
    payout_version("po_7", amount, pb::PayoutStatus::Failed, when)
}

fn charge_txn(payout: &str) -> pb::Record {
    bt("txn_7001", "charge", "ch_7001", "100.00", "3.20", payout)
}

/// The sale, its charge swept by payout po_7, and po_7 paid.
fn paid_sale() -> Vec<pb::Record> {
    let mut records = sale();
    records.push(charge_txn("po_7"));
    records.push(paid("96.80", "2026-11-04T08:00:00Z"));
    records
}

async fn submit_and_drain(t: &TestApp, app: &tally::app::App, records: Vec<pb::Record>) {
    t.submit(records).await.unwrap();
    drain(app, "acme").await;
}

async fn history(t: &TestApp) -> String {
    scalar(
        t,
        "SELECT coalesce(string_agg(action || '@' || round, ',' ORDER BY booking_no), '')
         FROM payout_bookings WHERE payout_id = 'po_7'",
    )
    .await
}

#[tokio::test]
async fn a_balance_transaction_that_learns_its_payout_in_a_later_version_is_applied() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut records = sale();
    records.push(version(charge_txn(""), "2026-11-03T08:00:00Z"));
    submit_and_drain(&t, &app, records).await;
    submit_and_drain(
        &t,
        &app,
        vec![version(charge_txn("po_7"), "2026-11-03T09:00:00Z")],
    )
    .await;
    submit_and_drain(&t, &app, vec![paid("96.80", "2026-11-04T08:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.payouts, vec!["po_7 applied"]);
    assert_eq!(s.invoices, vec!["INV-7001 open 0.000"]);
    assert_eq!(s.balance("bank", "USD"), "96.800");
    assert_eq!(s.balance("processor_clearing", "USD"), "0");
    assert_eq!(s.exceptions, Vec::<String>::new());
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_paid_failed_and_paid_again_ends_applied_with_its_history() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let records = paid_sale();
    submit_and_drain(&t, &app, records).await;
    let once = LedgerState::read(&t).await;
    submit_and_drain(&t, &app, vec![failed("96.80", "2026-11-05T08:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.payouts, vec!["po_7 failed"]);
    assert_eq!(s.invoices, vec!["INV-7001 open 100.000"]);
    assert_eq!(s.balance("bank", "USD"), "0");
    assert_eq!(s.exceptions, vec!["cash.payout_failed po_7"]);
    // Each mirror names the record version that caused it.
    let named = t
        .count(
            "SELECT count(*) FROM journal_entries
             WHERE memo LIKE 'Payout po_7 failed (per stripe/po_7 as of 2026-11-05T08:00:00+00:00): reverses %'",
        )
        .await;
    assert_eq!(named, 3, "the payment, the fee sweep and the deposit");
    submit_and_drain(&t, &app, vec![paid("96.80", "2026-11-06T08:00:00Z")]).await;
    let again = LedgerState::read(&t).await;
    assert_eq!(again, once, "paid again books what paid once did");
    assert_eq!(history(&t).await, "applied@0,reversed@1,reapplied@1");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn an_applied_payout_whose_amount_changes_is_reversed_and_named() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let records = paid_sale();
    submit_and_drain(&t, &app, records).await;
    submit_and_drain(&t, &app, vec![paid("90.00", "2026-11-05T08:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    // Its transactions no longer make its amount: nothing of it stands, and
    // an exception names both figures.
    assert_eq!(s.payouts, vec!["po_7 waiting"]);
    assert_eq!(s.invoices, vec!["INV-7001 open 100.000"]);
    assert_eq!(s.balance("bank", "USD"), "0");
    assert_eq!(s.exceptions, vec!["cash.payout_incomplete po_7"]);
    let summary = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'cash.payout_incomplete'",
    )
    .await;
    assert!(
        summary.contains("90.00") && summary.contains("96.80"),
        "{summary}"
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_new_transaction_naming_an_applied_payout_is_applied_with_it() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let records = paid_sale();
    submit_and_drain(&t, &app, records).await;
    // A second sale swept into the same payout, whose new version says so.
    submit_and_drain(
        &t,
        &app,
        vec![
            order("7002", "50.00"),
            capture("7002", "ch_7002", "50.00"),
            inv("7002", "INV-7002", "50.00", "2026-11-02T12:00:00Z"),
            bt("txn_7002", "charge", "ch_7002", "50.00", "1.75", "po_7"),
            paid("145.05", "2026-11-05T08:00:00Z"),
        ],
    )
    .await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.payouts, vec!["po_7 applied"]);
    assert_eq!(
        s.invoices,
        vec!["INV-7001 open 0.000", "INV-7002 open 0.000"]
    );
    assert_eq!(s.balance("bank", "USD"), "145.050");
    assert_eq!(s.balance("processing_fees", "USD"), "4.950");
    assert_eq!(s.balance("processor_clearing", "USD"), "0");
    assert_eq!(s.exceptions, Vec::<String>::new());
    assert_eq!(history(&t).await, "applied@0,reversed@1,reapplied@1");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn failed_and_paid_versions_give_the_same_ledger_in_either_arrival_order() {
    let mut states = vec![];
    for failed_first in [false, true] {
        let t = TestApp::start().await;
        let app = worker(&t).await;
        let mut records = sale();
        records.push(charge_txn("po_7"));
        submit_and_drain(&t, &app, records).await;
        let (p, f) = (
            paid("96.80", "2026-11-04T08:00:00Z"),
            failed("96.80", "2026-11-05T08:00:00Z"),
        );
        let order = if failed_first { [f, p] } else { [p, f] };
        for r in order {
            submit_and_drain(&t, &app, vec![r]).await;
        }
        states.push(LedgerState::read(&t).await);
    }
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0].payouts, vec!["po_7 failed"]);
    assert_eq!(states[0].invoices, vec!["INV-7001 open 100.000"]);
    assert_eq!(states[0].exceptions, vec!["cash.payout_failed po_7"]);
}

fn deposit(amount: &str) -> pb::Record {
    at(
        "bank",
        "dep_7",
        "",
        "2026-11-05T09:00:00Z",
        pb::record::Kind::BankDeposit(pb::BankDeposit {
            amount: usd(amount),
            account: "checking".into(),
            description: "STRIPE PAYOUT".into(),
        }),
    )
}

#[tokio::test]
async fn a_deposited_payout_that_fails_is_an_exception_naming_the_deposit() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut records = paid_sale();
    records.push(deposit("96.80"));
    submit_and_drain(&t, &app, records).await;
    assert_eq!(
        scalar(&t, "SELECT state FROM deposits WHERE deposit_id = 'dep_7'").await,
        "matched"
    );
    assert!(LedgerState::read(&t).await.exceptions.is_empty());
    submit_and_drain(&t, &app, vec![failed("96.80", "2026-11-05T08:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.balance("bank", "USD"), "0");
    assert_eq!(
        s.exceptions,
        vec![
            "cash.deposited_payout_changed po_7",
            "cash.payout_failed po_7"
        ]
    );
    let summary = scalar(
        &t,
        "SELECT summary FROM exceptions WHERE rule = 'cash.deposited_payout_changed'",
    )
    .await;
    assert!(
        summary.contains("dep_7") && summary.contains("96.80"),
        "{summary}"
    );
    // Paid again: the bank entry is booked again and the bank agrees.
    submit_and_drain(&t, &app, vec![paid("96.80", "2026-11-06T08:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.balance("bank", "USD"), "96.800");
    assert_eq!(s.exceptions, Vec::<String>::new());
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_parked_on_a_bad_rate_is_applied_once_its_record_is_corrected() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let rated = |rate: &str, when: &str| {
        let mut r = version(
            bt("txn_e1", "charge", "ch_7101", "110.00", "3.50", "po_e"),
            when,
        );
        if let Some(pb::record::Kind::BalanceTransaction(x)) = &mut r.kind {
            x.exchange_rate = rate.into();
        }
        r
    };
    let mut records: Vec<pb::Record> = eur_sale("7101").into();
    // 100.00 EUR at 2.0 is not the 110.00 USD it settled as: refused.
    records.push(rated("2.0", "2026-11-03T08:00:00Z"));
    records.push(payout("po_e", "106.50"));
    submit_and_drain(&t, &app, records).await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_e'").await,
        "parked"
    );
    // Parked, it still shows what its transactions bring, as its bridge does.
    assert_eq!(
        scalar(
            &t,
            "SELECT round(gross, 2) || ' ' || round(fees, 2) || ' ' || round(net, 2) FROM payouts
             WHERE payout_id = 'po_e'"
        )
        .await,
        "110.00 3.50 106.50"
    );
    submit_and_drain(&t, &app, vec![rated("1.1", "2026-11-03T09:00:00Z")]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.payouts, vec!["po_e applied"]);
    assert_eq!(s.invoices, vec!["INV-7101 open 0.000"]);
    assert_eq!(s.balance("bank", "USD"), "106.500");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_booked_from_the_same_facts_again_books_nothing() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let records = paid_sale();
    submit_and_drain(&t, &app, records).await;
    let entries = t.count("SELECT count(*) FROM journal_entries").await;
    // A new version that changes nothing booked (its arrival time is the same day).
    let mut same = paid("96.80", "2026-11-04T09:00:00Z");
    if let Some(pb::record::Kind::Payout(p)) = &mut same.kind {
        p.arrival_time = ts("2026-11-05T10:00:00Z");
    }
    submit_and_drain(&t, &app, vec![same]).await;
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries").await,
        entries
    );
    assert_eq!(history(&t).await, "applied@0");
}

fn taxed_invoice(tax_currency: &str) -> pb::Record {
    let mut r = inv("7201", "INV-7201", "108.00", "2026-11-02T12:00:00Z");
    if let Some(pb::record::Kind::Invoice(i)) = &mut r.kind {
        i.tax = money(tax_currency, "8.00");
    }
    r
}

#[tokio::test]
async fn an_invoice_with_parts_in_another_currency_is_refused_at_ingest() {
    let t = TestApp::start().await;
    let err = t.submit(vec![taxed_invoice("EUR")]).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        bad_fields(&err),
        vec!["records[0].invoice.tax.currency_code"]
    );
    assert_eq!(t.count("SELECT count(*) FROM record_log").await, 0);
    // The same invoice with its tax in its total's currency is taken.
    t.submit(vec![taxed_invoice("USD")]).await.unwrap();
}

#[tokio::test]
async fn a_stored_invoice_that_cannot_be_booked_is_an_exception_not_a_silent_skip() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![order("7201", "108.00"), taxed_invoice("USD")])
        .await
        .unwrap();
    // Stored before ingest refused it: its tax in another currency.
    let changed = t
        .db
        .client()
        .await
        .execute(
            "UPDATE record_log SET payload = jsonb_set(payload, '{body,tax,currency}', '\"EUR\"')
             WHERE kind = 'invoice'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    drain(&app, "acme").await;
    let s = LedgerState::read(&t).await;
    assert!(
        s.exceptions
            .contains(&"ledger.invoice_unbookable INV-7201".to_string()),
        "{:?}",
        s.exceptions
    );
    assert_eq!(t.count("SELECT count(*) FROM journal_entries").await, 0);
}

#[tokio::test]
async fn a_payout_parked_on_an_order_it_could_not_read_is_applied_when_the_order_arrives() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let [o, c, i] = eur_sale("7301");
    let mut txn = bt("txn_7301", "charge", "ch_7301", "110.00", "3.50", "po_f");
    if let Some(pb::record::Kind::BalanceTransaction(x)) = &mut txn.kind {
        x.exchange_rate = "1.1".into();
    }
    // The EUR capture and its USD settlement, but no order or invoice yet: the
    // order's currency is not known, and the payout cannot be planned.
    submit_and_drain(&t, &app, vec![c, txn, payout("po_f", "106.50")]).await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_f'").await,
        "parked"
    );
    submit_and_drain(&t, &app, vec![o, i]).await;
    let s = LedgerState::read(&t).await;
    assert_eq!(s.payouts, vec!["po_f applied"]);
    assert_eq!(s.invoices, vec!["INV-7301 open 0.000"]);
    assert!(
        !s.exceptions
            .iter()
            .any(|e| e.starts_with("cash.job_parked")),
        "{:?}",
        s.exceptions
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_deposit_is_matched_again_from_its_current_version() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut records = paid_sale();
    records.push(version(deposit("96.80"), "2026-11-05T09:00:00Z"));
    submit_and_drain(&t, &app, records).await;
    let deposited = || scalar(&t, "SELECT coalesce(deposit_id, '-') FROM payouts");
    assert_eq!(deposited().await, "dep_7");
    // The bank corrects the deposit: it no longer makes the payout.
    submit_and_drain(
        &t,
        &app,
        vec![version(deposit("90.00"), "2026-11-05T10:00:00Z")],
    )
    .await;
    assert_eq!(deposited().await, "-");
    let s = LedgerState::read(&t).await;
    assert_eq!(s.exceptions.len(), 1, "{:?}", s.exceptions);
    assert!(s.exceptions[0].ends_with(" dep_7"), "{:?}", s.exceptions);
    // And back: matched again, nothing left open.
    submit_and_drain(
        &t,
        &app,
        vec![version(deposit("96.80"), "2026-11-05T11:00:00Z")],
    )
    .await;
    assert_eq!(deposited().await, "dep_7");
    assert!(LedgerState::read(&t).await.exceptions.is_empty());
    assert_eq!(LedgerState::read(&t).await.balance("bank", "USD"), "96.800");
}
