//! Growth without statistics: one merchant grows from empty, never-analysed
//! tables to 60,000 records in 1,000-record batches, as a new merchant
//! outruns autovacuum. Plans must not depend on statistics, so a batch at
//! the end should cost what one at the start did, and reads of that merchant
//! should cost what they cost once the tables are analysed.
//!
//!   cargo bench --bench growth            (TALLY_BENCH_DATABASE_URL, else
//!                                          postgres://postgres@127.0.0.1:5432/postgres;
//!                                          TALLY_BENCH_BATCHES, default 60)
//!
//! Reports, each a ratio within this run (machines here are noisy):
//! - ingest: median of the first 5 batches vs the last 5, and vs 5 batches
//!   more after an ANALYZE;
//! - reads: GetTransaction (orders across the whole history) and
//!   ListTransactions (first page of 50, all states and MATCHED only), the
//!   median latency before ANALYZE vs after.

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tally::storage::{Store, run_migrations};
use tokio_postgres::NoTls;

/// 333 orders with their charge and invoice, plus part of one: 1,000 records.
fn batch(n: usize) -> Vec<tally::proto::tally::v1::Record> {
    batch_of(
        |i| order_id(n, i),
        |i| (n * ORDERS_PER_BATCH + i) as i64 * 60,
    )
}

#[path = "support/mod.rs"]
mod support;
use support::{BATCH, batch_of, median, scratch_database};

const ORDERS_PER_BATCH: usize = BATCH / 3 + 1;
const EDGE: usize = 5;
const READS: usize = 60;

fn order_id(batch: usize, i: usize) -> String {
    format!("g-{batch}-{i}")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Reads {
    get: Duration,
    list: Duration,
    list_matched: Duration,
}

async fn reads(
    client: &TransactionServiceClient<tonic::transport::Channel>,
    batches: usize,
) -> Reads {
    let (mut get, mut list, mut matched) = (vec![], vec![], vec![]);
    for k in 0..READS {
        // Orders spread over the whole history, oldest to newest.
        let b = k * batches / READS;
        let name = format!("merchants/grow/transactions/{}", order_id(b, k % 300));
        let mut c = client.clone();
        let t = Instant::now();
        let tx = c
            .get_transaction(pb::GetTransactionRequest { name })
            .await
            .unwrap()
            .into_inner();
        get.push(t.elapsed());
        assert!(tx.transaction.is_some());
        for (state, out) in [
            (pb::ReconciliationState::Unspecified, &mut list),
            (pb::ReconciliationState::Matched, &mut matched),
        ] {
            let t = Instant::now();
            let page = c
                .list_transactions(pb::ListTransactionsRequest {
                    parent: "merchants/grow".into(),
                    page_size: 50,
                    state: state as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            out.push(t.elapsed());
            assert_eq!(page.transactions.len(), 50);
        }
    }
    Reads {
        get: median(get),
        list: median(list),
        list_matched: median(matched),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let batches: usize = std::env::var("TALLY_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    assert!(batches >= 2 * EDGE);
    let (admin, db, url) = scratch_database("tally_growth").await;
    run_migrations(&url).await.unwrap();
    let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    // No statistics until we ask for them, whatever the server's autovacuum.
    for t in [
        "record_log",
        "order_refs",
        "record_refs",
        "record_links",
        "transactions",
        "exceptions",
        "submissions",
    ] {
        raw.batch_execute(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
            .await
            .unwrap();
    }

    let (server, channel) = support::serve(Store::connect(&url, 8).unwrap()).await;
    let ingest = IngestServiceClient::new(channel.clone()).max_decoding_message_size(64 << 20);
    let query = TransactionServiceClient::new(channel);
    let submit = |records: Vec<pb::Record>| {
        let c = ingest.clone();
        async move {
            let t = Instant::now();
            let r = support::submit(&c, "grow", records).await;
            assert!(
                r.results
                    .iter()
                    .all(|x| x.outcome() == pb::RecordOutcome::Accepted)
            );
            t.elapsed()
        }
    };

    let mut times = Vec::with_capacity(batches);
    for n in 0..batches {
        let d = submit(batch(n)).await;
        if n % 10 == 9 {
            eprintln!(
                "batch {} ({} records): {:.1} ms",
                n + 1,
                (n + 1) * BATCH,
                ms(d)
            );
        }
        times.push(d);
    }
    let analysed_before: i64 = raw
        .query_one(
            "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL
                 OR last_autoanalyze IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analysed_before, 0, "no table may have been analysed yet");
    let cold = reads(&query, batches).await;

    raw.batch_execute("ANALYZE").await.unwrap();
    let warm = reads(&query, batches).await;
    let mut after = vec![];
    for n in batches..batches + EDGE {
        after.push(submit(batch(n)).await);
    }

    let first = median(times[..EDGE].to_vec());
    let last = median(times[batches - EDGE..].to_vec());
    let after = median(after);
    println!(
        "growth: one merchant, never-analysed tables, {batches} batches of {BATCH} records \
         ({} records), medians",
        batches * BATCH
    );
    println!("| comparison | A, ms | B, ms | B / A |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, a: Duration, b: Duration| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2}x |",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64()
        )
    };
    row(
        "SubmitRecords, 1,000 new records: A first 5 batches, B last 5 (unanalysed)",
        first,
        last,
    );
    row(
        "SubmitRecords: A 5 batches after ANALYZE, B last 5 unanalysed",
        after,
        last,
    );
    row(
        "GetTransaction: A after ANALYZE, B unanalysed",
        warm.get,
        cold.get,
    );
    row(
        "ListTransactions, page of 50: A after ANALYZE, B unanalysed",
        warm.list,
        cold.list,
    );
    row(
        "ListTransactions MATCHED, page of 50: A after ANALYZE, B unanalysed",
        warm.list_matched,
        cold.list_matched,
    );

    server.stop().await.unwrap();
    drop(raw);
    let _ = admin
        .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
        .await;
}
