//! Cash application in batches (`App::run_jobs`): one commit for many jobs,
//! the same ledger as one job at a time, and a failing or busy job kept apart
//! from the rest of its batch.

use std::time::Duration;
use tally::app::App;

use tally::app::cash::{JobOutcome, RetryPolicy};
use tally::proto::tally::v1 as pb;
use tally::storage::Store;

use crate::cash::{at, bt, capture, drain, fast_retry, inv, payout, realistic_batch, scalar};
use crate::common::*;

/// Orders outside the payout, invoiced: order jobs of their own.
fn invoiced_orders() -> Vec<pb::Record> {
    vec![
        order("2005", "70.00"),
        inv("2005", "INV-2005", "70.00", "2026-11-02T12:00:00Z"),
        order("2006", "15.00"),
        inv("2006", "INV-2006", "15.00", "2026-11-02T12:00:00Z"),
    ]
}

/// Everything the worker wrote, without the export sequence (checked apart).
async fn ledger_dump(t: &TestApp) -> Vec<String> {
    let db = t.db.client().await;
    let mut out = vec![];
    for sql in [
        "SELECT e.external_id || ' ' || coalesce(e.payout_id, '-') || ' ' || e.memo || ' '
             || string_agg(l.account || ':' || l.debit || '/' || l.credit, ',' ORDER BY l.line_no)
         FROM journal_entries e JOIN journal_lines l USING (entry_id)
         GROUP BY e.entry_id, e.external_id, e.payout_id, e.memo ORDER BY 1",
        "SELECT order_id || ' ' || event_no || ' ' || kind || ' ' || ref_id || ' ' || amount
         FROM order_cash_events ORDER BY 1",
        "SELECT invoice_id || ' ' || payment_id || ' ' || amount || ' ' || coalesce(payout_id, '-')
             || ' ' || external_id FROM cash_applications ORDER BY 1",
        "SELECT invoice_id || ' ' || total || ' ' || applied FROM invoices ORDER BY 1",
        "SELECT payout_id || ' ' || order_id || ' ' || amount FROM fee_shares ORDER BY 1",
        "SELECT payout_id || ' ' || state || ' ' || residual FROM payouts ORDER BY 1",
    ] {
        for row in db.query(sql, &[]).await.unwrap() {
            out.push(row.get::<_, String>(0));
        }
    }
    out
}

async fn export_seq_is_gapless(t: &TestApp) {
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries WHERE export_seq BETWEEN 1 AND (SELECT count(*) FROM journal_entries)")
            .await,
        t.count("SELECT count(*) FROM journal_entries").await
    );
}

fn done(kind: &str, subject: &str) -> JobOutcome {
    JobOutcome::Done {
        kind: kind.into(),
        subject: subject.into(),
    }
}

#[tokio::test]
async fn a_payout_takes_over_its_orders_jobs_commits_once_and_books_the_same_ledger() {
    let mut records = realistic_batch();
    records.extend(invoiced_orders());

    // Batched. Order jobs made ready with the payout wait for it; it takes
    // those of its orders (2001-2003) over, in its transaction.
    let t = TestApp::start().await;
    t.submit(records.clone()).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    let outcomes = app.run_jobs("acme", &fast_retry(), 100).await.unwrap();
    assert_eq!(outcomes, vec![done("apply_payout", "po_1")]);
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(subject_id, ',' ORDER BY subject_id) FROM jobs"
        )
        .await,
        "2005,2006"
    );
    // The others, planned together: one more commit.
    let outcomes = app.run_jobs("acme", &fast_retry(), 100).await.unwrap();
    assert_eq!(
        outcomes,
        vec![done("apply_order", "2005"), done("apply_order", "2006")]
    );
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 0);
    assert_eq!(
        t.count("SELECT count(DISTINCT xmin::text) FROM journal_entries")
            .await,
        2,
        "two commits"
    );
    // An invoice is booked as its order's entry, not the payout's.
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries WHERE memo LIKE 'Invoice%' AND payout_id IS NOT NULL")
            .await,
        0
    );
    export_seq_is_gapless(&t).await;

    // One job at a time, the orders' jobs before the payout exists.
    let one = TestApp::start().await;
    let (before, po): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|r| !matches!(r.kind, Some(pb::record::Kind::Payout(_))));
    one.submit(before).await.unwrap();
    let app1 = App::new(Store::connect(&one.db.url, 2).unwrap());
    drain(&app1, "acme").await;
    one.submit(po).await.unwrap();
    drain(&app1, "acme").await;
    export_seq_is_gapless(&one).await;

    let (batched, alone) = (ledger_dump(&t).await, ledger_dump(&one).await);
    assert!(batched.len() > 20, "{batched:#?}");
    assert_eq!(batched, alone);
    crate::cash::assert_ledger_sound(&t).await;
}

/// A USD order invoiced in EUR: its order job's plan is refused.
fn unplannable_order() -> Vec<pb::Record> {
    vec![
        order("3201", "20.00"),
        at(
            "netsuite",
            "INV-3201",
            "3201",
            "2026-11-02T12:00:00Z",
            pb::record::Kind::Invoice(pb::Invoice {
                total: Some(pb::Money {
                    currency_code: "EUR".into(),
                    amount: "20.00".into(),
                }),
                ..Default::default()
            }),
        ),
    ]
}

/// Reverses more than was captured: the payout's plan is refused.
fn unplannable_payout() -> Vec<pb::Record> {
    vec![
        order("3001", "10.00"),
        capture("3001", "ch_3001", "10.00"),
        bt("txn_31", "charge", "ch_3001", "10.00", "0.00", "po_bad"),
        bt(
            "txn_32",
            "partial_capture_reversal",
            "ch_3001",
            "-30.00",
            "0.00",
            "po_bad",
        ),
        payout("po_bad", "-20.00"),
    ]
}

#[tokio::test]
async fn a_failing_job_rolls_back_alone_and_the_rest_of_its_batch_commits() {
    let t = TestApp::start().await;
    let mut records = realistic_batch();
    records.extend(invoiced_orders());
    records.extend(unplannable_order());
    records.extend(unplannable_payout());
    t.submit(records).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    // Failures back off for a minute: each job runs once here.
    let slow = RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(600),
    };
    // The payouts, tried together, then one by one (po_bad fails the
    // group); then the order jobs that waited for them, together.
    let mut outcomes = vec![];
    for expected in [2, 3, 0] {
        let batch = app.run_jobs("acme", &slow, 100).await.unwrap();
        assert_eq!(batch.len(), expected, "{batch:?}");
        outcomes.extend(batch);
    }
    let failed: Vec<&JobOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o, JobOutcome::Failed { parked: false, .. }))
        .collect();
    assert_eq!(failed.len(), 2, "{outcomes:?}");
    for ok in [
        done("apply_payout", "po_1"),
        done("apply_order", "2005"),
        done("apply_order", "2006"),
    ] {
        assert!(outcomes.contains(&ok), "{outcomes:?}");
    }
    // The good ones committed; nothing of the failing two was written.
    assert_eq!(
        scalar(&t, "SELECT state FROM payouts WHERE payout_id = 'po_1'").await,
        "applied"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE invoice_id IN ('INV-2005', 'INV-2006')")
            .await,
        2
    );
    assert_eq!(
        t.count("SELECT count(*) FROM order_cash_events WHERE order_id IN ('3001', '3201')")
            .await,
        0
    );
    assert_eq!(
        t.count(
            "SELECT count(*) FROM journal_entries WHERE payout_id = 'po_bad' OR memo LIKE '%3201%'"
        )
        .await,
        0
    );
    // Each failure counted against its own job only, to be retried.
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(subject_id || ' ' || attempts, ',' ORDER BY subject_id) FROM jobs"
        )
        .await,
        "3201 1,po_bad 1"
    );
    crate::cash::assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_busy_order_is_postponed_alone_and_the_other_order_jobs_commit() {
    let t = TestApp::start().await;
    t.submit(invoiced_orders()).await.unwrap();
    // An ingest holding order 2005.
    let mut holder = t.db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('acme' || chr(31) || 'order' || chr(31) || '2005', 0))",
        &[],
    )
    .await
    .unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    let outcomes = app.run_jobs("acme", &fast_retry(), 100).await.unwrap();
    assert_eq!(
        outcomes,
        vec![JobOutcome::Postponed, done("apply_order", "2006")]
    );
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE invoice_id = 'INV-2006'")
            .await,
        1
    );
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE subject_id = '2005' AND attempts = 0")
            .await,
        1
    );
    tx.rollback().await.unwrap();
    // Once free, it runs (after its short postponement).
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(drain(&app, "acme").await, vec![done("apply_order", "2005")]);
    assert_eq!(t.count("SELECT count(*) FROM invoices").await, 2);
}

/// One batch of a merchant at a time: a second finds it busy, runs
/// nothing and holds nothing (its orders stay free for ingest), while
/// another merchant's batch runs.
#[tokio::test]
async fn a_merchant_busy_with_a_batch_is_left_to_it_and_another_merchant_runs() {
    let t = TestApp::start().await;
    t.submit(invoiced_orders()).await.unwrap();
    t.submit_as("other", "", invoiced_orders()).await.unwrap();
    // Another worker loop's batch of acme, still open.
    let mut holder = t.db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('acme' || chr(31) || 'ref' || chr(31) || chr(31) || 'cash-batch', 0))",
        &[],
    )
    .await
    .unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    assert_eq!(
        app.run_jobs("acme", &fast_retry(), 100).await.unwrap(),
        vec![]
    );
    // Nothing claimed, nothing tried: both jobs as they were, untouched.
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE merchant_id = 'acme' AND attempts = 0")
            .await,
        2
    );
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE merchant_id = 'acme'")
            .await,
        0
    );
    assert_eq!(
        app.run_jobs("other", &fast_retry(), 100).await.unwrap(),
        vec![done("apply_order", "2005"), done("apply_order", "2006")]
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        drain(&app, "acme").await,
        vec![done("apply_order", "2005"), done("apply_order", "2006")]
    );
    assert_eq!(t.count("SELECT count(*) FROM invoices").await, 4);
}

/// Three payouts, each of its own order: a capture invoiced, a split
/// shipment, cash captured before its invoice (held unapplied).
fn plain_payouts() -> Vec<Vec<pb::Record>> {
    vec![
        vec![
            order("4001", "50.00"),
            capture("4001", "ch_4001", "50.00"),
            inv("4001", "INV-4001", "50.00", "2026-11-02T12:00:00Z"),
            bt("txn_41", "charge", "ch_4001", "50.00", "1.75", "po_a"),
            payout("po_a", "48.25"),
        ],
        vec![
            order("4002", "80.00"),
            capture("4002", "ch_4002", "80.00"),
            inv("4002", "INV-4002-A", "50.00", "2026-11-02T12:00:00Z"),
            inv("4002", "INV-4002-B", "30.00", "2026-11-02T13:00:00Z"),
            bt("txn_42", "charge", "ch_4002", "80.00", "2.62", "po_b"),
            payout("po_b", "77.38"),
        ],
        vec![
            order("4003", "30.00"),
            capture("4003", "ch_4003", "30.00"),
            bt("txn_43", "charge", "ch_4003", "30.00", "1.17", "po_c"),
            payout("po_c", "28.83"),
        ],
    ]
}

/// Applies each group of records alone: submitted, then drained.
async fn one_payout_at_a_time(groups: &[Vec<pb::Record>]) -> TestApp {
    let one = TestApp::start().await;
    let app = App::new(Store::connect(&one.db.url, 2).unwrap());
    for g in groups {
        one.submit(g.clone()).await.unwrap();
        drain(&app, "acme").await;
    }
    one
}

/// How many statements wrote the journal entries (the rows a statement
/// inserts share its transaction and command id).
async fn journal_inserts(t: &TestApp) -> i64 {
    t.count("SELECT count(DISTINCT (xmin::text, cmin::text)) FROM journal_entries")
        .await
}

/// Submits every group's records, then runs one batch: each of the three
/// payouts is done in it, whether together or alone.
async fn one_batch_applies_the_three(groups: &[Vec<pb::Record>]) -> TestApp {
    let t = TestApp::start().await;
    t.submit(groups.concat()).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    let outcomes = app.run_jobs("acme", &fast_retry(), 100).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            done("apply_payout", "po_a"),
            done("apply_payout", "po_b"),
            done("apply_payout", "po_c"),
        ]
    );
    t
}

#[tokio::test]
async fn plain_payouts_due_together_are_written_by_one_statement_and_book_the_same_ledger() {
    let groups = plain_payouts();
    let t = one_batch_applies_the_three(&groups).await;
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 0);
    assert_eq!(journal_inserts(&t).await, 1, "one insert for the three");
    assert_eq!(
        t.count("SELECT count(*) FROM payouts WHERE state = 'applied'")
            .await,
        3
    );
    export_seq_is_gapless(&t).await;

    let one = one_payout_at_a_time(&groups).await;
    assert_eq!(journal_inserts(&one).await, 3);
    let (together, alone) = (ledger_dump(&t).await, ledger_dump(&one).await);
    assert!(together.len() > 20, "{together:#?}");
    assert_eq!(together, alone);
    crate::cash::assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn payouts_paying_one_order_are_applied_one_by_one_as_alone() {
    // A multicapture: two captures of one order, swept by two payouts.
    let groups = vec![
        vec![
            order("4101", "50.00"),
            capture("4101", "ch_4101_a", "30.00"),
            capture("4101", "ch_4101_b", "20.00"),
            inv("4101", "INV-4101", "50.00", "2026-11-02T12:00:00Z"),
            bt("txn_51", "charge", "ch_4101_a", "30.00", "1.17", "po_d"),
            payout("po_d", "28.83"),
        ],
        vec![
            bt("txn_52", "charge", "ch_4101_b", "20.00", "0.88", "po_e"),
            payout("po_e", "19.12"),
        ],
    ];
    let t = TestApp::start().await;
    t.submit(groups.concat()).await.unwrap();
    let app = App::new(Store::connect(&t.db.url, 2).unwrap());
    let outcomes = app.run_jobs("acme", &fast_retry(), 100).await.unwrap();
    assert_eq!(
        outcomes,
        vec![done("apply_payout", "po_d"), done("apply_payout", "po_e")]
    );
    // Not together: the second plan reads what the first wrote.
    assert_eq!(journal_inserts(&t).await, 2);
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE applied = 50.00 AND total = 50.00")
            .await,
        1
    );
    let one = one_payout_at_a_time(&groups).await;
    assert_eq!(ledger_dump(&t).await, ledger_dump(&one).await);
    crate::cash::assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_still_waiting_for_transactions_runs_alone_and_those_after_it_too() {
    let mut groups = plain_payouts();
    // po_b's second charge has not arrived: 77.38 of 100.00.
    groups[1].pop();
    groups[1].push(payout("po_b", "100.00"));
    let t = one_batch_applies_the_three(&groups).await;
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(payout_id || ' ' || state, ',' ORDER BY payout_id) FROM payouts"
        )
        .await,
        "po_a applied,po_b waiting,po_c applied"
    );
    // One by one, in claim order: an insert each for the two applied.
    assert_eq!(journal_inserts(&t).await, 2);
    crate::cash::assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn the_plain_payouts_at_the_head_go_together_and_the_rest_alone_after_them() {
    let mut groups = plain_payouts();
    // po_c's charge has not arrived: it waits, after po_a and po_b together.
    groups[2].retain(|r| !matches!(r.kind, Some(pb::record::Kind::BalanceTransaction(_))));
    let t = one_batch_applies_the_three(&groups).await;
    assert_eq!(journal_inserts(&t).await, 1, "po_a and po_b together");
    assert_eq!(
        scalar(
            &t,
            "SELECT string_agg(payout_id || ' ' || state, ',' ORDER BY payout_id) FROM payouts"
        )
        .await,
        "po_a applied,po_b applied,po_c waiting"
    );
    let one = one_payout_at_a_time(&groups).await;
    assert_eq!(ledger_dump(&t).await, ledger_dump(&one).await);
    crate::cash::assert_ledger_sound(&t).await;
}
