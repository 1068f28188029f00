//! Cash application: payouts applied to invoices and booked as balanced
//! journals, exactly once, through the real queue and a real PostgreSQL.

use std::time::Duration;

use tally::app::App;
use tally::app::cash::{JobOutcome, RetryPolicy};
use tally::proto::tally::v1 as pb;
use tally::storage::Store;

use crate::common::*;

pub use crate::common::record as at;

pub fn inv(order: &str, id: &str, total: &str, when: &str) -> pb::Record {
    at(
        "netsuite",
        id,
        order,
        when,
        pb::record::Kind::Invoice(pb::Invoice {
            total: usd(total),
            ..Default::default()
        }),
    )
}

pub fn capture(order: &str, ch: &str, amount: &str) -> pb::Record {
    at(
        "stripe",
        ch,
        order,
        "2026-11-02T10:00:05Z",
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Charge as i32,
            amount: usd(amount),
            charge_id: ch.into(),
            ..Default::default()
        }),
    )
}

/// A balance transaction (settlement USD) swept by `payout`.
pub fn bt(
    id: &str,
    category: &str,
    source: &str,
    amount: &str,
    fee: &str,
    payout: &str,
) -> pb::Record {
    let a: rust_decimal::Decimal = amount.parse().unwrap();
    let f: rust_decimal::Decimal = fee.parse().unwrap();
    at(
        "stripe",
        id,
        "",
        "2026-11-03T08:00:00Z",
        pb::record::Kind::BalanceTransaction(pb::BalanceTransaction {
            reporting_category: category.into(),
            amount: usd(amount),
            fee: usd(fee),
            net: usd(&(a - f).to_string()),
            source: source.into(),
            payout_id: payout.into(),
            ..Default::default()
        }),
    )
}

pub fn payout(id: &str, amount: &str) -> pb::Record {
    at(
        "stripe",
        id,
        "",
        "2026-11-04T08:00:00Z",
        pb::record::Kind::Payout(pb::Payout {
            amount: usd(amount),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: ts("2026-11-05T08:00:00Z"),
        }),
    )
}

/// A cash-application App over the test's database (the worker's use cases).
pub async fn worker(t: &TestApp) -> App {
    App::new(Store::connect(&t.db.url, 2).unwrap())
}

pub fn money(code: &str, amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: code.into(),
        amount: amount.into(),
    })
}

/// Order `order` sold in EUR: the order (one card tender), its 100.00 EUR
/// capture `ch_{order}` and invoice `INV-{order}`.
pub fn eur_sale(order: &str) -> [pb::Record; 3] {
    let eur = |a: &str| money("EUR", a);
    let mut o = crate::common::order(order, "100.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total = eur("100.00");
        so.tenders[0].amount = eur("100.00");
    }
    let mut c = capture(order, &format!("ch_{order}"), "100.00");
    if let Some(pb::record::Kind::ProcessorPayment(p)) = &mut c.kind {
        p.amount = eur("100.00");
    }
    let mut i = inv(
        order,
        &format!("INV-{order}"),
        "100.00",
        "2026-11-02T12:00:00Z",
    );
    if let Some(pb::record::Kind::Invoice(x)) = &mut i.kind {
        x.total = eur("100.00");
    }
    [o, c, i]
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    }
}

/// Runs every due job of the merchant as the worker does (in batches, every
/// kind); returns the outcomes.
pub async fn drain(app: &App, merchant: &str) -> Vec<JobOutcome> {
    let mut out = vec![];
    loop {
        let batch = app.run_jobs(merchant, &fast_retry(), 32).await.unwrap();
        if batch.is_empty() || batch.iter().all(|o| *o == JobOutcome::Postponed) {
            break;
        }
        out.extend(batch);
        assert!(out.len() < 1000, "the queue never empties");
    }
    out
}

pub async fn scalar(t: &TestApp, sql: &str) -> String {
    t.db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// The checks every scenario ends with: each entry balances per currency,
/// processor clearing and unapplied cash net to zero unless an exception
/// names the residual.
pub async fn assert_ledger_sound(t: &TestApp) {
    let unbalanced = t
        .count(
            "SELECT count(*) FROM (SELECT entry_id, currency_code FROM journal_lines
               GROUP BY entry_id, currency_code HAVING sum(debit) <> sum(credit)) x",
        )
        .await;
    assert_eq!(unbalanced, 0);
}

pub async fn account_balance(t: &TestApp, account: &str) -> String {
    scalar(
        t,
        &format!(
            "SELECT round(coalesce(sum(debit - credit), 0), 2)::text FROM journal_lines WHERE account = '{account}'"
        ),
    )
    .await
}

pub fn realistic_batch() -> Vec<pb::Record> {
    vec![
        // Captured at checkout, invoiced at shipment.
        order("2001", "100.00"),
        capture("2001", "ch_2001", "100.00"),
        inv("2001", "INV-2001", "100.00", "2026-11-02T12:00:00Z"),
        // A split shipment: one capture pays two invoices.
        order("2002", "80.00"),
        capture("2002", "ch_2002", "80.00"),
        inv("2002", "INV-2002-A", "50.00", "2026-11-02T12:00:00Z"),
        inv("2002", "INV-2002-B", "30.00", "2026-11-02T13:00:00Z"),
        // A partial capture: 60 authorised, 40 shipped and invoiced, 20 released.
        order("2003", "40.00"),
        capture("2003", "ch_2003", "60.00"),
        inv("2003", "INV-2003", "40.00", "2026-11-02T12:00:00Z"),
        // Captured, not invoiced yet: held as unapplied cash.
        order("2004", "50.00"),
        capture("2004", "ch_2004", "50.00"),
        bt("txn_1", "charge", "ch_2001", "100.00", "3.20", "po_1"),
        bt("txn_2", "charge", "ch_2002", "80.00", "2.62", "po_1"),
        bt("txn_3", "charge", "ch_2003", "60.00", "2.04", "po_1"),
        bt(
            "txn_4",
            "partial_capture_reversal",
            "ch_2003",
            "-20.00",
            "0.00",
            "po_1",
        ),
        bt("txn_5", "charge", "ch_2004", "50.00", "1.75", "po_1"),
        // 96.80 + 77.38 + 57.96 - 20.00 + 48.25
        payout("po_1", "260.39"),
    ]
}

#[tokio::test]
async fn a_realistic_payout_is_applied_once_and_books_balanced_journals() {
    let t = TestApp::start().await;
    t.submit(realistic_batch()).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 4).unwrap());
    let outcomes = drain(&app, "acme").await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, JobOutcome::Done { .. })),
        "{outcomes:?}"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT state || ' ' || residual::text FROM payouts WHERE payout_id = 'po_1'"
        )
        .await,
        "applied 0"
    );
    assert_ledger_sound(&t).await;
    // Clearing: 290 in, 20 reversed, 9.61 fees, 260.39 to the bank.
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(&t, "processing_fees").await, "9.61");
    assert_eq!(account_balance(&t, "bank").await, "260.39");
    // Every invoice paid; 2004's 50 held until its invoice comes.
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE applied <> total")
            .await,
        0
    );
    assert_eq!(account_balance(&t, "unapplied_cash").await, "-50.00");
    // One fee entry for the payout, with each order's share traceable.
    assert_eq!(
        t.count(
            "SELECT count(*) FROM journal_entries WHERE memo LIKE 'Processor fees of payout po_1%'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(&t, "SELECT string_agg(order_id || '=' || round(amount, 2)::text, ',' ORDER BY order_id) FROM fee_shares").await,
        "2001=3.20,2002=2.62,2003=2.04,2004=1.75"
    );

    // The invoice arrives: held cash is applied by the worker, no payout needed.
    t.submit(vec![inv(
        "2004",
        "INV-2004",
        "50.00",
        "2026-11-06T12:00:00Z",
    )])
    .await
    .unwrap();
    let entries_before = t.count("SELECT count(*) FROM journal_entries").await;
    drain(&app, "acme").await;
    assert_eq!(account_balance(&t, "unapplied_cash").await, "0.00");
    assert_eq!(account_balance(&t, "accounts_receivable").await, "0.00");
    // Invoice + release.
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries").await,
        entries_before + 2
    );

    // The same payout again (a retried job, a re-sent record) books nothing.
    let before = t.count("SELECT count(*) FROM journal_lines").await;
    t.db.client()
        .await
        .execute("INSERT INTO jobs (merchant_id, kind, subject_id) VALUES ('acme', 'apply_payout', 'po_1')", &[])
        .await
        .unwrap();
    t.submit(realistic_batch()).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, before);
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_waits_for_its_transactions_then_applies() {
    let t = TestApp::start().await;
    let mut batch = realistic_batch();
    let late = batch.remove(batch.len() - 2); // txn_5 arrives later
    t.submit(batch).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 4).unwrap());
    drain(&app, "acme").await;
    assert_eq!(
        scalar(
            &t,
            "SELECT state || ' ' || missing::text FROM payouts WHERE payout_id = 'po_1'"
        )
        .await,
        "waiting 48.25"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries WHERE payout_id IS NOT NULL")
            .await,
        0
    );
    t.submit(vec![late]).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_1'").await,
        "applied"
    );
    assert_eq!(account_balance(&t, "processor_clearing").await, "0.00");
}

#[tokio::test]
async fn a_failing_payout_is_retried_then_parked_and_nothing_is_half_applied() {
    let t = TestApp::start().await;
    t.submit(vec![
        order("3001", "10.00"),
        capture("3001", "ch_3001", "10.00"),
        bt("txn_31", "charge", "ch_3001", "10.00", "0.00", "po_bad"),
        // Reverses more than was captured: the plan is refused.
        bt(
            "txn_32",
            "partial_capture_reversal",
            "ch_3001",
            "-30.00",
            "0.00",
            "po_bad",
        ),
        payout("po_bad", "-20.00"),
    ])
    .await
    .unwrap();
    let app = App::new(Store::connect(&t.db.url, 4).unwrap());
    let outcomes = drain(&app, "acme").await;
    let failures: Vec<bool> = outcomes
        .iter()
        .filter_map(|o| match o {
            JobOutcome::Failed { parked, .. } => Some(*parked),
            _ => None,
        })
        .collect();
    // max_attempts 3: two retries, then parked.
    assert_eq!(failures, vec![false, false, true], "{outcomes:?}");
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_bad'").await,
        "parked"
    );
    assert_eq!(t.count("SELECT count(*) FROM journal_entries").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM order_cash_events").await, 0);
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'cash.job_parked' AND subject = 'apply_payout/po_bad'")
            .await,
        1
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT state || ' ' || attempts FROM jobs WHERE subject_id = 'po_bad'"
        )
        .await,
        "parked 3"
    );
}

#[tokio::test]
async fn a_failed_job_backs_off_before_its_next_try() {
    let t = TestApp::start().await;
    t.submit(vec![
        order("3101", "10.00"),
        capture("3101", "ch_3101", "10.00"),
        bt("txn_41", "charge", "ch_3101", "10.00", "0.00", "po_b2"),
        bt(
            "txn_42",
            "partial_capture_reversal",
            "ch_3101",
            "-30.00",
            "0.00",
            "po_b2",
        ),
        payout("po_b2", "-20.00"),
    ])
    .await
    .unwrap();
    let app = App::new(Store::connect(&t.db.url, 4).unwrap());
    let slow = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(600),
    };
    let first = app.run_one_job("acme", &slow).await.unwrap();
    assert!(
        matches!(first, Some(JobOutcome::Failed { parked: false, .. })),
        "{first:?}"
    );
    // Backing off: not due again yet.
    assert_eq!(app.run_one_job("acme", &slow).await.unwrap(), None);
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE run_after > now() + interval '50 seconds' AND last_error LIKE '%cannot reverse%'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_database_refuses_an_unbalanced_journal_entry() {
    let t = TestApp::start().await;
    let db = t.db.client().await;
    // An entry's lines are written by one statement, as the worker writes them.
    let insert = |debit: &'static str, credit: &'static str| {
        format!(
            "BEGIN;
             INSERT INTO journal_entries (merchant_id, external_id, export_seq, effective_date, memo)
               VALUES ('acme', 'x-{debit}-{credit}', {n}, '2026-11-01', 'm');
             INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit, credit)
               SELECT 'acme', entry_id, l.no, l.account, 'USD', l.debit, l.credit
               FROM journal_entries, (VALUES (0, 'bank', {debit}, 0), (1, 'processor_clearing', 0, {credit}))
                 AS l(no, account, debit, credit)
               WHERE external_id = 'x-{debit}-{credit}';
             COMMIT;",
            n = if debit == credit { 1 } else { 2 }
        )
    };
    let err = db.batch_execute(&insert("10", "9.99")).await.unwrap_err();
    assert!(format!("{err:?}").contains("does not balance"), "{err:?}");
    let _ = db.batch_execute("ROLLBACK").await;
    db.batch_execute(&insert("10", "10")).await.unwrap();
    assert_eq!(t.count("SELECT count(*) FROM journal_entries").await, 1);
    // A line added to a balanced entry later unbalances it: refused too.
    let err = db
        .batch_execute(
            "INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit, credit)
             SELECT 'acme', entry_id, 2, 'bank', 'USD', 1, 0 FROM journal_entries",
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("does not balance"), "{err:?}");
    // The insert check reads only the new lines (migration 000014): they
    // must balance per entry and currency among themselves. Debits in one
    // currency against credits in another are refused...
    let lines = |rows: &str| {
        format!(
            "INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit, credit)
             SELECT 'acme', entry_id, l.no, l.account, l.cur, l.debit, l.credit
             FROM journal_entries, (VALUES {rows}) AS l(no, account, cur, debit, credit)"
        )
    };
    let err = db
        .batch_execute(&lines(
            "(2, 'bank', 'USD', 5, 0), (3, 'processor_clearing', 'EUR', 0, 5)",
        ))
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("does not balance"), "{err:?}");
    // ...while balanced lines added later keep the entry balanced, and go in.
    db.batch_execute(&lines(
        "(2, 'bank', 'EUR', 5, 0), (3, 'processor_clearing', 'EUR', 0, 5)",
    ))
    .await
    .unwrap();
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, 4);
    // The ledger is append-only (migration 000015): a line or an entry is
    // never changed or removed, balanced or not; a correction is a new entry.
    for change in [
        "UPDATE journal_lines SET debit = 4 WHERE line_no = 2",
        "UPDATE journal_lines SET memo = 'edited'",
        "DELETE FROM journal_lines WHERE line_no = 3",
        "UPDATE journal_entries SET memo = 'edited'",
        "DELETE FROM journal_entries",
    ] {
        let err = db.batch_execute(change).await.unwrap_err();
        assert!(
            format!("{err:?}").contains("append-only"),
            "{change}: {err:?}"
        );
    }
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, 4);
    assert_eq!(
        t.count("SELECT count(*) FROM journal_lines WHERE memo = 'edited'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_database_refuses_journal_lines_of_an_entry_that_does_not_exist() {
    let t = TestApp::start().await;
    let db = t.db.client().await;
    db.batch_execute(
        "INSERT INTO journal_entries (merchant_id, external_id, export_seq, effective_date, memo)
         VALUES ('acme', 'x-1', 1, '2026-11-01', 'm')",
    )
    .await
    .unwrap();
    let lines = |merchant: &str, entry: &str| {
        format!(
            "INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit, credit)
             SELECT '{merchant}', {entry}, l.no, l.account, 'USD', l.debit, l.credit
             FROM (VALUES (0, 'bank', 10, 0), (1, 'processor_clearing', 0, 10))
               AS l(no, account, debit, credit)"
        )
    };
    // No such entry id, and a real entry id under another merchant: both refused.
    for (merchant, entry) in [
        ("acme", "(SELECT max(entry_id) + 1 FROM journal_entries)"),
        ("globex", "(SELECT entry_id FROM journal_entries)"),
    ] {
        let err = db.batch_execute(&lines(merchant, entry)).await.unwrap_err();
        assert!(
            format!("{err:?}").contains("does not exist"),
            "{merchant} {entry}: {err:?}"
        );
    }
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, 0);
    // The entry's own merchant and id: accepted.
    db.batch_execute(&lines("acme", "(SELECT entry_id FROM journal_entries)"))
        .await
        .unwrap();
    assert_eq!(t.count("SELECT count(*) FROM journal_lines").await, 2);
}

/// The worker reads only the kinds of an order's records it plans from: the
/// filter keeps those, of the order's own records and of those linked to it
/// (the balance transaction names the charge, not the order), and no filter
/// keeps them all.
#[tokio::test]
async fn an_orders_records_are_read_of_the_kinds_asked_for() {
    let t = TestApp::start().await;
    t.submit(vec![
        capture("7001", "ch_7001", "20.00"),
        inv("7001", "INV-7001", "20.00", "2026-11-02T12:00:00Z"),
        bt("txn_7001", "charge", "ch_7001", "20.00", "0.88", "po_7001"),
    ])
    .await
    .unwrap();
    let store = Store::connect(&t.db.url, 1).unwrap();
    let mut conn = store.conn().await.unwrap();
    let orders = vec!["7001".to_string()];
    let kinds_read = async |conn: &mut tally::storage::Conn, kinds: Option<&[&str]>| {
        let by_order = tally::storage::record_log::load_records_of(conn, "acme", &orders, kinds)
            .await
            .unwrap();
        let mut kinds: Vec<&str> = by_order["7001"]
            .iter()
            .map(|s| s.record.kind().as_str())
            .collect();
        kinds.sort();
        kinds.join(",")
    };
    assert_eq!(
        kinds_read(&mut *conn, None).await,
        "balance_transaction,invoice,processor_payment"
    );
    assert_eq!(
        kinds_read(&mut *conn, Some(&["invoice", "balance_transaction"])).await,
        "balance_transaction,invoice"
    );
    assert_eq!(
        kinds_read(&mut *conn, Some(&["processor_payment"])).await,
        "processor_payment"
    );
}
