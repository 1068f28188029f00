//! What only a Citus cluster can show (run by .ci/run's citus step, with
//! TALLY_TEST_CITUS_WORKERS set; see citus_nodes.rs). On plain PostgreSQL
//! these tests say so and pass without checking anything: there is no
//! shard to route to or move.

use std::time::Duration;

use tally::proto::tally::v1 as pb;

use crate::citus_nodes;
use crate::common::*;

fn on_citus() -> bool {
    let yes = citus_nodes::workers().is_some();
    if !yes {
        eprintln!("not a Citus cluster (TALLY_TEST_CITUS_WORKERS unset): nothing to check");
    }
    yes
}

/// `message` from a person (the workflow records who acted).
fn acting<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("x-tally-actor", "ana@acme".parse().unwrap());
    r
}

/// A server over a database where any statement Citus would run on more
/// than one shard fails (citus.multi_task_query_log_level = error).
async fn router_only_app() -> TestApp {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET citus.multi_task_query_log_level = 'error'",
            db.name
        ))
        .await
        .unwrap();
    TestApp::start_on(db, |app| app, |_| tally::api::guard::Guard::default()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_statement_of_a_request_is_a_router_query() {
    if !on_citus() {
        return;
    }
    let t = router_only_app().await;
    // The guard holds: a read across merchants is refused in this database.
    let refused =
        t.db.client()
            .await
            .query("SELECT count(*) FROM record_log", &[])
            .await;
    assert!(refused.is_err(), "a multi-shard read was allowed");

    // Ingest (new records, versions, duplicates), matching and exceptions.
    let mut records = clean_order("2001");
    records.extend([order("2002", "100.00"), charge("2002", "100.00")]);
    records.push(invoice("2002", "100.02"));
    t.submit(records.clone()).await.expect("ingest is routed");
    t.submit(records).await.expect("a repeated batch is routed");
    assert_eq!(
        t.transaction("2001").await.unwrap().state(),
        pb::ReconciliationState::Matched
    );
    let status = t.status("2002").await;
    assert_eq!(status.state(), pb::ReconciliationState::Exception);

    // Reads of one merchant.
    let listed = t
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .expect("listing is routed")
        .into_inner();
    assert_eq!(listed.transactions.len(), 2);
    let exceptions = t
        .exceptions(pb::ListExceptionsRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await;
    let name = exceptions.exceptions[0].name.clone();

    // The exception workflow: assign, acknowledge, resolve.
    let mut ex = t.exceptions.clone();
    ex.assign_exception(acting(pb::AssignExceptionRequest {
        name: name.clone(),
        owner: "ops@acme".into(),
        ..Default::default()
    }))
    .await
    .expect("assign is routed");
    ex.acknowledge_exception(acting(pb::AcknowledgeExceptionRequest {
        name: name.clone(),
        ..Default::default()
    }))
    .await
    .expect("acknowledge is routed");
    ex.resolve_exception(acting(pb::ResolveExceptionRequest {
        name: name.clone(),
        note: "invoice corrected in NetSuite".into(),
        ..Default::default()
    }))
    .await
    .expect("resolve is routed");
    let got = ex
        .get_exception(pb::GetExceptionRequest { name })
        .await
        .expect("get is routed")
        .into_inner();
    assert_eq!(got.exception.unwrap().state(), pb::ExceptionState::Resolved);
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_on_the_coordinator_shows_one_task_per_merchant_statement() {
    if !on_citus() {
        return;
    }
    let t = TestApp::start().await;
    t.submit(clean_order("3001")).await.unwrap();
    let db = t.db.client().await;
    // The statement shapes the worker claims and books with (storage::jobs,
    // storage::ledger): a merchant's queue row locked with SKIP LOCKED, the
    // merchant's counter, an order's records. One task each: a router plan.
    for sql in [
        "SELECT subject_id FROM jobs WHERE merchant_id = 'acme' AND state = 'ready' \
         AND run_after <= now() ORDER BY run_after LIMIT 10 FOR UPDATE SKIP LOCKED",
        "UPDATE ledger_counters SET next_seq = next_seq + 1 WHERE merchant_id = 'acme'",
        "SELECT record_id FROM record_log WHERE merchant_id = 'acme' AND order_id = '3001' \
         AND is_current",
        "SELECT count(*) FROM record_log r JOIN transactions x USING (merchant_id, order_id) \
         WHERE r.merchant_id = 'acme'",
    ] {
        let plan: Vec<String> = db
            .query(&format!("EXPLAIN {sql}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Task Count: 1"),
            "not a router plan for {sql}:\n{plan}"
        );
    }
    // And the check can fail: a read of every merchant is not one task.
    let plan: Vec<String> = db
        .query("EXPLAIN SELECT count(*) FROM record_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!plan.join("\n").contains("Task Count: 1"));
}

/// Submits `records` for acme, retrying what fails: a write blocked at a
/// shard move's cut-over may fail, and a client retries, as a real one does.
async fn submit_retrying(
    ingest: &tally::proto::tally::v1::ingest_service_client::IngestServiceClient<
        tonic::transport::Channel,
    >,
    records: &[pb::Record],
) {
    let mut tries = 0;
    loop {
        let r = ingest
            .clone()
            .submit_records(pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: records.to_vec(),
            })
            .await;
        match r {
            Ok(_) => return,
            Err(e) if tries < 20 => {
                tries += 1;
                eprintln!("retrying a batch: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("a batch failed {tries} times: {e}"),
        }
    }
}

/// Moves the shard of a busy merchant to the other worker while ingest AND
/// the cash worker run for it: payouts keep arriving (each batch sent twice)
/// and two `tally worker` processes apply them, before, during and after
/// the move. Nothing is lost, doubled or unbalanced: every record stored
/// once (its second copy one duplicate), every payout applied once, every
/// entry balanced, the export sequence gapless, clearing back to zero.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_merchants_shard_moves_under_ingest_and_the_worker_without_loss_or_doubles() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if !on_citus() {
        return;
    }
    let t = TestApp::start().await;
    let moved = Arc::new(AtomicBool::new(false));
    let payouts = Arc::new(AtomicUsize::new(0));
    // Payout p after p: until the move is over and 5 more after it, so
    // ingest and the worker's jobs span the whole move.
    let writer = {
        let (ingest, moved, payouts) = (t.ingest.clone(), moved.clone(), payouts.clone());
        tokio::spawn(async move {
            let mut after_move = 0;
            for p in 0..400 {
                let records = crate::workers::backlog(p);
                // Sent twice: the second is all duplicates, before or after the move.
                submit_retrying(&ingest, &records).await;
                submit_retrying(&ingest, &records).await;
                payouts.store(p + 1, Ordering::SeqCst);
                if moved.load(Ordering::SeqCst) {
                    after_move += 1;
                    if after_move == 5 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the move never finished");
        })
    };
    let mut workers: Vec<_> = (0..2).map(|_| crate::workers::worker(&t.db.url)).collect();
    // The move starts once the worker has applied payouts of this merchant.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while t
        .count("SELECT count(*) FROM payouts WHERE state = 'applied'")
        .await
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never applied a payout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = t.db.client().await;
    let row = db
        .query_one(
            "SELECT s.shardid, s.nodename, s.nodeport FROM citus_shards s
              WHERE s.table_name = 'record_log'::regclass
                AND s.shardid = get_shard_id_for_distribution_column('record_log', 'acme')",
            &[],
        )
        .await
        .unwrap();
    let (shard, host, port): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
    let target = citus_nodes::workers()
        .unwrap()
        .into_iter()
        .find(|(_, p)| i32::from(*p) != port)
        .unwrap();
    let before_move = payouts.load(Ordering::SeqCst);
    db.execute(
        "SELECT citus_move_shard_placement($1, $2, $3, $4, $5, shard_transfer_mode => 'force_logical')",
        &[&shard, &host, &port, &target.0, &i32::from(target.1)],
    )
    .await
    .expect("move the shard");
    moved.store(true, Ordering::SeqCst);
    let during_move = payouts.load(Ordering::SeqCst) - before_move;
    writer.await.unwrap();
    let n = payouts.load(Ordering::SeqCst);
    eprintln!("{n} payouts, {during_move} of them submitted during the move");
    assert!(during_move > 0, "no ingest ran during the move");

    let moved_to: i32 = db
        .query_one(
            "SELECT nodeport FROM citus_shards WHERE shardid = $1",
            &[&shard],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(moved_to, i32::from(target.1), "the shard did not move");
    // The merchant's other tables are colocated: they moved with it.
    let elsewhere = db
        .query_one(
            "SELECT count(*) FROM citus_shards s JOIN pg_dist_shard d USING (shardid)
              WHERE d.logicalrelid IN ('journal_entries'::regclass, 'jobs'::regclass,
                                       'payouts'::regclass)
                AND s.shardid = get_shard_id_for_distribution_column(d.logicalrelid, 'acme')
                AND s.nodeport <> $1",
            &[&moved_to],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(elsewhere, 0, "a colocated shard stayed behind");

    // The worker drains what arrived after the move, on the new node.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while t.count("SELECT count(*) FROM jobs").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog was never drained after the move"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in &mut workers {
        tally::embedded_pg::sys::kill(w.id(), tally::embedded_pg::sys::Signal::Terminate);
        let _ = w.wait();
    }

    let per_payout = crate::workers::backlog(0).len() as i64;
    let q = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        q("SELECT count(*) FROM record_log WHERE merchant_id = 'acme' AND is_current").await,
        n as i64 * per_payout,
        "a record was lost or stored twice"
    );
    assert_eq!(
        q("SELECT count(*) FROM record_log WHERE merchant_id = 'acme' AND outcome = 'duplicate'")
            .await,
        n as i64 * per_payout,
        "every record's second copy is one duplicate"
    );
    assert_eq!(
        q("SELECT count(*) FROM (SELECT payout_id FROM payout_bookings
            GROUP BY payout_id HAVING string_agg(action, ',') <> 'applied') x")
        .await,
        0,
        "a payout booked other than once"
    );
    assert_eq!(
        q("SELECT count(DISTINCT payout_id) FROM payout_bookings").await,
        n as i64
    );
    // Entries, applications and cash events once each; every entry
    // balanced; the export sequence gapless; clearing and receivables zero.
    crate::workers::assert_applied_once(&t, n).await;
}
