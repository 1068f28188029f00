//! A database already holding many orders (the 1,000,000), written
//! through Tally itself so every table is as a running service leaves it.
//! Set `TALLY_BENCH_KEEP_DB=1` to keep it (named after its size) and reuse
//! it in the next run: loading a million orders takes a while here.
#![allow(dead_code)]

use std::time::Instant;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tokio_postgres::{Client, NoTls};

use super::{order_records, scratch_database, url_for, usd};

/// One order in [`FAULTY_EVERY`] has an invoice that disagrees with the
/// order: an open exception, so exception listings have pages to read.
pub const FAULTY_EVERY: usize = 20;

/// Orders preloaded: `TALLY_BENCH_ORDERS`, else `default`.
pub fn orders(default: usize) -> usize {
    std::env::var("TALLY_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The id of preloaded order `i`.
pub fn order_id(i: usize) -> String {
    format!("pre-{i}")
}

/// Preloaded order `i`'s records: spread over three weeks of event time.
pub fn records(i: usize) -> [pb::Record; 3] {
    let mut r = order_records(&order_id(i), ((i * 2) % 1_800_000) as i64);
    if i.is_multiple_of(FAULTY_EVERY)
        && let Some(pb::record::Kind::Invoice(inv)) = &mut r[2].kind
    {
        inv.total = usd("99.00");
    }
    r
}

/// A database for a bench, to hold `orders` preloaded orders: `(admin,
/// name, url, fresh)`; a fresh one needs its migrations and its orders.
/// Kept databases are reused when already loaded.
pub async fn database(prefix: &str, orders: usize) -> (Client, String, String, bool) {
    let keep = std::env::var("TALLY_BENCH_KEEP_DB").is_ok_and(|v| v == "1") && orders > 0;
    if !keep {
        let (admin, db, url) = scratch_database(prefix).await;
        return (admin, db, url, true);
    }
    let admin_url = std::env::var("TALLY_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let db = format!("tally_bench_kept_{orders}");
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
            &[&db],
        )
        .await
        .unwrap()
        .get(0);
    let url = url_for(&admin_url, &db);
    if exists {
        let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        let loaded: bool = c
            .query_one(
                "SELECT EXISTS (SELECT FROM transactions WHERE order_id = $1)",
                &[&order_id(orders - 1)],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(false);
        if loaded {
            println!("reusing {db} ({orders} orders)");
            return (admin, db, url, false);
        }
        admin
            .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
            .await
            .unwrap();
    }
    admin
        .execute(&format!("CREATE DATABASE {db}"), &[])
        .await
        .unwrap();
    (admin, db, url, true)
}

/// Has the server log every statement in database `db` with its duration
/// (profiling a bench: TALLY_BENCH_LOG_STATEMENTS, TALLY_BENCH_PROFILE).
pub async fn log_statements(admin: &Client, db: &str) {
    admin
        .execute(
            &format!("ALTER DATABASE {db} SET log_min_duration_statement = 0"),
            &[],
        )
        .await
        .unwrap();
}

/// Whether the database is kept for the next run (so not dropped).
pub fn kept(db: &str) -> bool {
    db.starts_with("tally_bench_kept_")
}

/// Submits orders `0..orders` through `client`, 333 orders a call, two
/// calls at a time (both cores), then `ANALYZE`.
pub async fn load(
    client: &IngestServiceClient<tonic::transport::Channel>,
    raw: &Client,
    orders: usize,
) {
    let t = Instant::now();
    let per_call = 333;
    let calls: Vec<std::ops::Range<usize>> = (0..orders)
        .step_by(per_call)
        .map(|s| s..(s + per_call).min(orders))
        .collect();
    let mut done = 0;
    for pair in calls.chunks(2) {
        let sends = pair.iter().map(|range| {
            let records: Vec<pb::Record> = range.clone().flat_map(records).collect();
            super::submit_retrying(client, records, std::time::Duration::from_millis(500))
        });
        futures::future::join_all(sends).await;
        done += pair.iter().map(|r| r.len()).sum::<usize>();
        if done % 100_000 < 2 * per_call {
            println!("preloaded {done} orders in {:.0?}", t.elapsed());
        }
    }
    raw.batch_execute("ANALYZE").await.unwrap();
    println!("preloaded {orders} orders in {:.1?}", t.elapsed());
}
