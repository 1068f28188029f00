//! Ingest throughput: 1,000-record batches through SubmitRecords, against
//! baselines measured in the same run on the same PostgreSQL (machines here
//! are noisy; ratios travel, absolute numbers do not).
//!
//!   cargo bench --bench ingest            (TALLY_BENCH_DATABASE_URL, else
//!                                          postgres://postgres@127.0.0.1:5432/postgres)
//!
//! Rows, each a median over interleaved rounds:
//! - tally: a SubmitRecords call of 1,000 new records (333 orders with their
//!   capture and invoice, plus one), over gRPC on loopback: validation, the
//!   log insert, merge and matching of every touched order, projection and
//!   exception upserts, one commit.
//! - tally, replayed: the same batch again (all DUPLICATE).
//! - raw UNNEST insert: the same 1,000 payloads into a bare table with the
//!   same unique key, one statement, one commit: the floor for durably
//!   writing them.
//! - row by row: the same rows with one INSERT each, in one transaction: the
//!   round-trip cost that set-based statements avoid.
//! - stream of one-record chunks: the same 1,000 records as 1,000
//!   StreamRecords messages on one stream, the client sending without
//!   waiting; the server stores chunks that are waiting together.
//! - one record per call: SubmitRecords with a single record, 100 calls one
//!   after another (scaled to 1,000): what a caller that never batches gets.

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::server::Running;
use tally::storage::{Store, run_migrations};
use tokio_postgres::NoTls;

/// A batch of [`BATCH`] records: 333 clean orders and part of one more.
fn batch(round: usize, tag: &str) -> Vec<tally::proto::tally::v1::Record> {
    batch_of(|i| format!("{tag}-{round}-{i}"), |_| 0)
}

#[path = "support/mod.rs"]
mod support;
use support::{BATCH, batch_of, median, scratch_database};

const ROUNDS: usize = 9;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (admin, db, url) = scratch_database("tally_bench").await;
    run_migrations(&url).await.unwrap();

    let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    raw.batch_execute(
        "CREATE TABLE raw_log (merchant_id text, source_system text, kind text, source_id text,
           order_id text, payload jsonb, receive_time timestamptz DEFAULT now(),
           PRIMARY KEY (merchant_id, source_system, kind, source_id))",
    )
    .await
    .unwrap();

    let server = Running::start(
        Store::connect(&url, 8).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);

    let submit = |records: Vec<pb::Record>| {
        let mut c = client.clone();
        async move {
            let t = Instant::now();
            let r = c
                .submit_records(pb::SubmitRecordsRequest {
                    parent: "merchants/bench".into(),
                    request_id: String::new(),
                    records,
                })
                .await
                .unwrap()
                .into_inner();
            (t.elapsed(), r)
        }
    };
    let payloads =
        |records: &[pb::Record]| -> Vec<(String, String, String, String, serde_json::Value)> {
            records
                .iter()
                .map(|r| {
                    // The very payload Tally stores: the validated, normalised record.
                    let record =
                        tally::api::validate::record(0, r, &mut vec![]).expect("valid record");
                    let payload = serde_json::to_value(&record).unwrap();
                    (
                        r.source_system.clone(),
                        record.kind().as_str().to_string(),
                        r.source_id.clone(),
                        r.order_id.clone(),
                        payload,
                    )
                })
                .collect()
        };

    // Warm-up: connections, statement caches, the first pages of each table.
    submit(batch(0, "warm")).await;
    // A young database has no planner statistics until autovacuum gets to
    // it; measure the steady state a running service is in.
    raw.batch_execute("ANALYZE").await.unwrap();

    let (mut tally, mut replay, mut unnest, mut rowwise) = (vec![], vec![], vec![], vec![]);
    let (mut streamed, mut single) = (vec![], vec![]);
    for round in 0..ROUNDS {
        let records = batch(round, "t");
        let (d, r) = submit(records.clone()).await;
        assert!(
            r.results
                .iter()
                .all(|x| x.outcome() == pb::RecordOutcome::Accepted)
        );
        tally.push(d);
        let (d, r) = submit(records).await;
        assert!(
            r.results
                .iter()
                .all(|x| x.outcome() == pb::RecordOutcome::Duplicate)
        );
        replay.push(d);

        let rows = payloads(&batch(round, "u"));
        let t = Instant::now();
        let cols = |f: fn(&(String, String, String, String, serde_json::Value)) -> String| {
            rows.iter().map(f).collect::<Vec<_>>()
        };
        let (a, b, c, e) = (
            cols(|r| r.0.clone()),
            cols(|r| r.1.clone()),
            cols(|r| r.2.clone()),
            cols(|r| r.3.clone()),
        );
        let p: Vec<serde_json::Value> = rows.iter().map(|r| r.4.clone()).collect();
        raw.execute(
            "INSERT INTO raw_log (merchant_id, source_system, kind, source_id, order_id, payload)
             SELECT 'bench', * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[])
             ON CONFLICT DO NOTHING",
            &[&a, &b, &c, &e, &p],
        )
        .await
        .unwrap();
        unnest.push(t.elapsed());

        let rows = payloads(&batch(round, "r"));
        let t = Instant::now();
        raw.batch_execute("BEGIN").await.unwrap();
        let stmt = raw
            .prepare(
                "INSERT INTO raw_log (merchant_id, source_system, kind, source_id, order_id, payload)
                 VALUES ('bench', $1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .await
            .unwrap();
        for r in &rows {
            raw.execute(&stmt, &[&r.0, &r.1, &r.2, &r.3, &r.4])
                .await
                .unwrap();
        }
        raw.batch_execute("COMMIT").await.unwrap();
        rowwise.push(t.elapsed());

        let chunks: Vec<pb::StreamRecordsRequest> = batch(round, "s")
            .into_iter()
            .map(|r| pb::StreamRecordsRequest {
                parent: "merchants/bench".into(),
                request_id: String::new(),
                records: vec![r],
            })
            .collect();
        let t = Instant::now();
        let mut c = client.clone();
        let mut responses = c
            .stream_records(tokio_stream::iter(chunks))
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(r) = responses.message().await.unwrap() {
            assert_eq!(r.results[0].outcome(), pb::RecordOutcome::Accepted);
            n += 1;
        }
        assert_eq!(n, BATCH);
        streamed.push(t.elapsed());

        let one_by_one = batch(round, "o");
        let t = Instant::now();
        for r in one_by_one.into_iter().take(BATCH / 10) {
            let (_, resp) = submit(vec![r]).await;
            assert_eq!(resp.results[0].outcome(), pb::RecordOutcome::Accepted);
        }
        single.push(t.elapsed() * 10);
    }

    let base = median(unnest.clone());
    println!("ingest, {BATCH}-record batches, median of {ROUNDS} interleaved rounds");
    println!("| path | ms per batch | records/s | time vs raw UNNEST insert |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("tally SubmitRecords (new records)", tally),
        ("tally SubmitRecords (all duplicates)", replay),
        ("raw UNNEST insert, one statement (baseline)", unnest),
        ("raw insert, one statement per row", rowwise),
        ("tally StreamRecords, 1,000 one-record chunks", streamed),
        ("tally SubmitRecords, one record per call", single),
    ] {
        let m = median(v);
        println!(
            "| {name} | {:.1} | {:.0} | {:.2}x |",
            m.as_secs_f64() * 1e3,
            BATCH as f64 / m.as_secs_f64(),
            m.as_secs_f64() / base.as_secs_f64()
        );
    }

    server.stop().await.unwrap();
    drop(raw);
    let _ = admin
        .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
        .await;
}
