//! Plans of the lookups the ledger's re-derivation added (issue 18): a
//! payout's current balance transactions, the payouts earlier versions of a
//! transaction named, parked payouts woken by their orders' new facts. On
//! never-analysed tables grown by one merchant, each is index probes bound
//! by more than the merchant, as a custom plan and as a generic one.

use tally::storage::{jobs, payout_batch, payout_facts};

use crate::common::TestDb;
use crate::plans::{check_probes, plans, quiet};

/// Balance transactions of the one merchant, two versions each, spread over
/// 300 payouts; linked to their orders; a few parked payout jobs.
const TXNS: i32 = 3000;

async fn grown() -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await;
    let c = db.client().await;
    quiet(&c).await;
    c.batch_execute(&format!(
        "INSERT INTO record_log (merchant_id, source_system, kind, source_id, outcome,
             original_id, content_hash, payload, currency_code, amount, event_time)
         SELECT 'm1', 'stripe', 'balance_transaction', 'txn_' || i, o, NULL,
             sha256((i::text || o)::bytea),
             jsonb_build_object('body', jsonb_build_object('payout_id', 'po_' || (i % 300))),
             'USD', 100, now()
         FROM generate_series(1, {TXNS}) i, (VALUES ('accepted')) v(o);
         INSERT INTO record_links SELECT 'm1', 'o' || i, i FROM generate_series(1, {TXNS}) i;
         INSERT INTO jobs (merchant_id, kind, subject_id, state)
         SELECT 'm1', 'apply_payout', 'po_' || i, 'parked' FROM generate_series(1, 5) i;
         INSERT INTO jobs (merchant_id, kind, subject_id)
         SELECT 'm1', 'apply_payout', 'po_x' || i FROM generate_series(1, {TXNS}) i;"
    ))
    .await
    .unwrap();
    (db, c)
}

#[tokio::test]
async fn the_ledgers_new_lookups_are_index_probes_without_statistics() {
    let (_db, c) = grown().await;
    let m = "'m1'".to_string();
    let txns: Vec<String> = (1..=20).map(|i| format!("txn_{}", i * 7)).collect();
    let orders: Vec<String> = (1..=20).map(|i| format!("o{}", i * 11)).collect();
    let array = |v: &[String]| format!("'{{{}}}'", v.join(","));
    let lookups: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "a payout's current balance transactions",
            payout_facts::PAYOUT_TXNS,
            vec![m.clone(), "'po_7'".into()],
        ),
        (
            "payouts earlier versions named",
            payout_facts::PAYOUTS_NAMED_BEFORE,
            vec![m.clone(), array(&txns)],
        ),
        (
            "parked payouts of these orders",
            jobs::WAKE_PARKED,
            vec![m.clone(), "'apply_payout'".into(), array(&orders)],
        ),
        (
            "a group's records",
            payout_batch::RECORDS,
            vec![m.clone(), "'{po_7,po_8}'".into()],
        ),
    ];
    for (what, sql, args) in lookups {
        for plan in plans(&c, sql, &args).await {
            check_probes(what, &plan);
        }
    }
}
