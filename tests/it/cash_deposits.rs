//! Bank deposits matched to payouts: by the payout they name, else by an
//! exact unique fit of amount and date; anything else an exception.

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::storage::Store;

use tally::app::cash::JobOutcome;

use crate::cash::{
    account_balance, assert_ledger_sound, at, bt, capture, drain, fast_retry, inv, payout, scalar,
};
use crate::common::*;

/// An order captured, invoiced and paid out in `po` (net = charge - fee).
fn paid(order_id: &str, charge: &str, fee: &str, po: &str, net: &str) -> Vec<pb::Record> {
    let ch = format!("ch_{order_id}");
    vec![
        order(order_id, charge),
        capture(order_id, &ch, charge),
        inv(
            order_id,
            &format!("INV-{order_id}"),
            charge,
            "2026-11-02T12:00:00Z",
        ),
        bt(&format!("txn_{order_id}"), "charge", &ch, charge, fee, po),
        payout(po, net),
    ]
}

pub(crate) fn deposit(id: &str, amount: &str, names: &[&str]) -> pb::Record {
    let mut r = at(
        "bank",
        id,
        "",
        "2026-11-05T09:00:00Z",
        pb::record::Kind::BankDeposit(pb::BankDeposit {
            amount: usd(amount),
            account: "operating".into(),
            description: "STRIPE TRANSFER".into(),
        }),
    );
    r.references = names
        .iter()
        .map(|n| pb::ExternalReference {
            r#type: pb::ReferenceType::Payout as i32,
            id: n.to_string(),
        })
        .collect();
    r
}

async fn worker(t: &TestApp) -> App {
    App::new(Store::connect(&t.db.url, 2).unwrap())
}

/// Open deposit exceptions as `rule:subject`, sorted.
async fn open_deposit_exceptions(t: &TestApp) -> String {
    scalar(
        t,
        "SELECT coalesce(string_agg(rule || ':' || subject, ',' ORDER BY rule, subject), '')
         FROM exceptions WHERE rule LIKE 'cash.deposit%' AND state <> 'resolved'",
    )
    .await
}

async fn summary(t: &TestApp, rule: &str) -> String {
    scalar(
        t,
        &format!("SELECT summary FROM exceptions WHERE rule = '{rule}' AND state <> 'resolved'"),
    )
    .await
}

async fn deposited(t: &TestApp) -> String {
    scalar(
        t,
        "SELECT coalesce(string_agg(payout_id || '=' || coalesce(deposit_id, '-'), ',' ORDER BY payout_id), '')
         FROM payouts",
    )
    .await
}

/// Every scenario's end: balanced entries; clearing at zero; bank what the
/// matched deposits brought.
async fn assert_clean(t: &TestApp, bank: &str) {
    assert_ledger_sound(t).await;
    assert_eq!(account_balance(t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(t, "bank").await, bank);
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE applied <> total")
            .await,
        0
    );
}

#[tokio::test]
async fn a_deposit_naming_its_payout_is_matched_and_booked_once() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5001", "100.00", "3.00", "po_5001", "97.00");
    batch.push(deposit("dep_1", "97.00", &["po_5001"]));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(deposited(&t).await, "po_5001=dep_1");
    assert_eq!(
        scalar(
            &t,
            "SELECT state || ' ' || array_to_string(payout_ids, ',') FROM deposits"
        )
        .await,
        "matched po_5001"
    );
    assert_eq!(open_deposit_exceptions(&t).await, "");
    // The bank/clearing entry the payout booked is not booked again.
    assert_eq!(
        t.count("SELECT count(*) FROM journal_lines WHERE account = 'bank'")
            .await,
        1
    );
    assert_clean(&t, "97.00").await;
}

#[tokio::test]
async fn a_deposit_naming_no_payout_takes_the_unique_exact_fit_even_when_it_came_first() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    // The deposit arrives before its payouts: nothing fits yet.
    t.submit(vec![deposit("dep_2", "145.25", &[])])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_without_payout:dep_2"
    );
    assert!(
        summary(&t, "cash.deposit_without_payout")
            .await
            .contains("145.25 USD")
    );
    // 97.00 + 48.25 is the only combination of the three that makes 145.25;
    // a greedy first fit in date order would take 70.00 and miss it.
    let mut batch = paid("5101", "72.00", "2.00", "po_5101", "70.00");
    batch.extend(paid("5102", "100.00", "3.00", "po_5102", "97.00"));
    batch.extend(paid("5103", "50.00", "1.75", "po_5103", "48.25"));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(deposited(&t).await, "po_5101=-,po_5102=dep_2,po_5103=dep_2");
    // Resolved by itself once its payouts arrived. The third payout's money
    // never reached the bank, whose feed has passed its date: that is late.
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_missing:po_5101"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM exceptions WHERE rule = 'cash.deposit_without_payout' AND resolved_by = 'rules'")
            .await,
        1
    );
    assert_clean(&t, "215.25").await;
}

#[tokio::test]
async fn an_ambiguous_deposit_is_an_exception_listing_the_combinations() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5201", "52.00", "2.00", "po_5201", "50.00");
    batch.extend(paid("5202", "52.00", "2.00", "po_5202", "50.00"));
    batch.push(deposit("dep_3", "50.00", &[]));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_ambiguous:dep_3"
    );
    let s = summary(&t, "cash.deposit_ambiguous").await;
    assert!(s.contains("[po_5201]") && s.contains("[po_5202]"), "{s}");
    assert_eq!(deposited(&t).await, "po_5201=-,po_5202=-");
    assert_clean(&t, "100.00").await;
}

#[tokio::test]
async fn a_deposit_that_is_not_its_payouts_net_is_an_exception_naming_both_amounts() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5301", "100.00", "3.00", "po_5301", "97.00");
    batch.push(deposit("dep_4", "96.00", &["po_5301"]));
    batch.push(deposit("dep_5", "10.00", &["po_none"]));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_amount_mismatch:dep_4,cash.deposit_without_payout:dep_5"
    );
    let s = summary(&t, "cash.deposit_amount_mismatch").await;
    assert!(s.contains("96.00 USD") && s.contains("97.00 USD"), "{s}");
    assert!(
        summary(&t, "cash.deposit_without_payout")
            .await
            .contains("po_none")
    );
    assert_eq!(deposited(&t).await, "po_5301=-");
    assert_clean(&t, "97.00").await;
}

fn done(kind: &str, subject: &str) -> JobOutcome {
    JobOutcome::Done {
        kind: kind.into(),
        subject: subject.into(),
    }
}

/// A batch is claimed in one statement: a deposit made ready before the
/// batch's payout is claimed with it and runs after it, in its transaction;
/// one made ready with (or after) the payout waits for the next batch, never
/// running before the payout it could be.
#[tokio::test]
async fn a_deposit_runs_after_the_payouts_made_ready_before_it_in_the_same_batch_or_the_next() {
    // Made ready first: the payout's batch takes it and runs it last.
    let t = TestApp::start().await;
    let app = worker(&t).await;
    t.submit(vec![deposit("dep_3", "97.00", &["po_5201"])])
        .await
        .unwrap();
    t.submit(paid("5201", "100.00", "3.00", "po_5201", "97.00"))
        .await
        .unwrap();
    let outcomes = app.run_jobs("acme", &fast_retry(), 32).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            done("apply_payout", "po_5201"),
            done("apply_deposit", "dep_3")
        ]
    );
    assert_eq!(deposited(&t).await, "po_5201=dep_3");
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 0);
    assert_clean(&t, "97.00").await;

    // Made ready with its payout: it waits for it, then runs in the next batch.
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5202", "100.00", "3.00", "po_5202", "97.00");
    batch.push(deposit("dep_4", "97.00", &["po_5202"]));
    t.submit(batch).await.unwrap();
    let outcomes = app.run_jobs("acme", &fast_retry(), 32).await.unwrap();
    assert_eq!(outcomes, vec![done("apply_payout", "po_5202")]);
    assert_eq!(deposited(&t).await, "po_5202=-");
    let outcomes = app.run_jobs("acme", &fast_retry(), 32).await.unwrap();
    assert_eq!(outcomes, vec![done("apply_deposit", "dep_4")]);
    assert_eq!(deposited(&t).await, "po_5202=dep_4");
    assert_clean(&t, "97.00").await;
}

/// A paid payout's deposit is expected by the end of its arrival date plus
/// the payment-to-cash-application lag: once the bank feed has passed it
/// with no deposit for it, LATE_HANDOFF `cash.deposit_missing` names it; its
/// deposit arriving late settles it. A merchant that sends no bank feed is
/// told nothing.
#[tokio::test]
async fn a_payout_whose_deposit_never_arrives_is_late_once_the_bank_feed_passed_it() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5301", "100.00", "3.00", "po_5301", "97.00");
    batch.extend(paid("5302", "50.00", "1.75", "po_5302", "48.25"));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    // No bank feed at all: no evidence, no exception, no check queued.
    assert_eq!(open_deposit_exceptions(&t).await, "");
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE kind = 'check_deposit'")
            .await,
        0
    );

    // The feed shows the second payout's deposit; the first's never came.
    t.submit(vec![deposit("dep_5302", "48.25", &["po_5302"])])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_missing:po_5301"
    );
    assert_eq!(
        scalar(
            &t,
            "SELECT type || ' ' || handoff FROM exceptions
             WHERE rule = 'cash.deposit_missing'"
        )
        .await,
        "late_handoff payment_to_cash_application"
    );
    assert!(
        summary(&t, "cash.deposit_missing")
            .await
            .contains("97.00 USD")
    );

    // It arrives after all: matched, booked once, the exception settled.
    t.submit(vec![deposit("dep_5301", "97.00", &["po_5301"])])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_eq!(open_deposit_exceptions(&t).await, "");
    assert_eq!(
        t.count(
            "SELECT count(*) FROM exceptions WHERE rule = 'cash.deposit_missing'
               AND resolved_by = 'rules'"
        )
        .await,
        1
    );
    assert_clean(&t, "145.25").await;
}

/// Only money sent to the bank is expected there: a payout of a refund
/// (negative) debits the bank and is never `cash.deposit_missing`. A
/// deposit that matched nothing hides a payout's missing deposit only when
/// it could be that payout's (it names none, or this one): one naming
/// another payout does not.
#[tokio::test]
async fn a_payout_with_nothing_for_the_bank_is_not_expected_there_nor_hidden_by_anothers_deposit() {
    use crate::cash_scenarios::{credit_memo, processor_refund};
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let mut batch = paid("5401", "100.00", "3.00", "po_5401", "97.00");
    batch.extend([
        processor_refund("5401", "re_5401", "30.00"),
        credit_memo("5401", "CM-5401", "30.00"),
        bt(
            "txn_r5401",
            "refund",
            "re_5401",
            "-30.00",
            "0.00",
            "po_5402",
        ),
        payout("po_5402", "-30.00"),
    ]);
    batch.extend(paid("5403", "50.00", "1.75", "po_5403", "48.25"));
    batch.push(deposit("dep_5401", "97.00", &["po_5401"]));
    batch.push(deposit("dep_x", "10.00", &["po_elsewhere"]));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(deposited(&t).await, "po_5401=dep_5401,po_5402=-,po_5403=-");
    assert_eq!(
        open_deposit_exceptions(&t).await,
        "cash.deposit_missing:po_5403,cash.deposit_without_payout:dep_x"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE kind = 'check_deposit'")
            .await,
        0
    );
}
