//! Ingest throughput against baselines measured in the same run, on the
//! same PostgreSQL, interleaved round by round (machines here are noisy;
//! ratios travel, absolute numbers do not).
//!
//!   cargo bench --bench ingest                               (empty tables)
//!   TALLY_BENCH_ORDERS=1000000 cargo bench --bench ingest    (and 1M orders)
//!
//! (TALLY_BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres;
//! TALLY_BENCH_KEEP_DB=1 keeps the preloaded database for the next run.)
//!
//! Each phase (empty tables, then with `TALLY_BENCH_ORDERS` preloaded
//! orders) runs [`ROUNDS`] rounds of:
//! - SubmitRecords: one call of 1,000 new records (333 orders with their
//!   charge and invoice, plus one), over gRPC on loopback.
//! - StreamRecords: the same shape of batch as 1,000 one-record messages on
//!   one stream, the client sending without waiting.
//! - their baseline, binary `COPY`: the very rows a SubmitRecords call of
//!   such a batch writes, in the very tables it writes them to, one
//!   transaction and one commit (`support/capture.rs`).
//! - unary: one-record SubmitRecords calls from 1, 8 and 32 concurrent
//!   clients (each client its own orders), [`UNARY`] records a level;
//! - their baseline: one-row `INSERT` of each record's log row into
//!   `record_log`, autocommit (one commit each), from as many connections.
//!
//! `TALLY_BENCH_LOG_STATEMENTS=1` (a profile, not a measurement: logging
//! slows every statement) logs the bench database's statements and prints,
//! for one one-record call and one 1,000-record call after the warm-up,
//! each statement executed with its time, from the server log
//! (`TALLY_BENCH_SERVER_LOG`, else Debian's).

use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::storage::{Store, run_migrations};
use tokio_postgres::{Client, NoTls};

#[path = "support/mod.rs"]
mod support;
use support::capture::{Capture, copy_in};
use support::{BATCH, batch_of, median, preload};

const ROUNDS: usize = 5;
/// Records sent one per call at each concurrency level, per round.
const UNARY: usize = 384;
const CLIENTS: [usize; 3] = [1, 8, 32];

use support::Ingest;

/// Records of new orders: the process id keeps them apart from a kept
/// database's earlier runs.
fn batch(round: usize, tag: &str) -> Vec<pb::Record> {
    let run = std::process::id();
    batch_of(|i| format!("{tag}-{run}-{round}-{i}"), |_| 0)
}

/// One median figure of a phase, and the baseline it is read against.
struct Row {
    name: String,
    tally: Duration,
    baseline: Duration,
    baseline_name: String,
    /// Records the durations are for.
    records: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let capture = Capture::new().await;
    let orders = preload::orders(0);
    let mut phases = vec![0];
    if orders > 0 {
        phases.push(orders);
    }
    for (p, orders) in phases.into_iter().enumerate() {
        let (admin, db, url, fresh) = preload::database("tally_bench_ingest", orders).await;
        if fresh {
            run_migrations(&url).await.unwrap();
        }
        if profiling() {
            preload::log_statements(&admin, &db).await;
        }
        let rows = phase(&capture, &url, orders, fresh && orders > 0, p as i64).await;
        print(orders, &rows);
        if !preload::kept(&db) {
            let _ = admin
                .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
                .await;
        }
    }
    capture.drop().await;
}

async fn phase(capture: &Capture, url: &str, orders: usize, load: bool, p: i64) -> Vec<Row> {
    let (mut raw, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let (server, channel) = support::serve(Store::connect(url, 8).unwrap()).await;
    let client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    if load {
        preload::load(&client, &raw, orders).await;
    }
    let mut singles = vec![];
    for _ in 0..*CLIENTS.iter().max().unwrap() {
        let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(conn);
        singles.push(c);
    }
    // Warm-up: connections, statement caches, the first pages of each table.
    submit(&client, batch(0, &format!("warm{p}"))).await;
    if orders == 0 {
        // A young database has no planner statistics until autovacuum gets
        // to it; measure the steady state a running service is in.
        raw.batch_execute("ANALYZE").await.unwrap();
    }
    if profiling() {
        profile(&client, &raw, url, p).await;
    }

    let (mut submitted, mut streamed, mut copied) = (vec![], vec![], vec![]);
    let mut unary: Vec<(Vec<Duration>, Vec<Duration>)> = CLIENTS.map(|_| (vec![], vec![])).into();
    for round in 0..ROUNDS {
        let t = Instant::now();
        let r = submit(&client, batch(round, &format!("t{p}"))).await;
        submitted.push(t.elapsed());
        assert!(r.iter().all(|o| *o == pb::RecordOutcome::Accepted));

        // Ids of their own: this run's (a kept database holds others'),
        // this phase's and round's.
        let run = i64::from(std::process::id() % 100_000);
        let id_base =
            1_000_000_000_000 + run * 10_000_000_000 + (p * 100 + round as i64) * 10_000_000;
        let rows = capture
            .rows_of(batch(round, &format!("c{p}")), id_base)
            .await;
        copied.push(copy_in(&mut raw, &rows).await);

        streamed.push(stream(&client, batch(round, &format!("s{p}"))).await);

        for (level, &clients) in CLIENTS.iter().enumerate() {
            let records = batch(round, &format!("u{p}-{clients}"));
            unary[level]
                .0
                .push(one_per_call(&client, &records[..UNARY], clients).await);
            let records = batch(round, &format!("i{p}-{clients}"));
            unary[level]
                .1
                .push(insert_per_row(&singles[..clients], &records[..UNARY]).await);
        }
    }
    server.stop().await.unwrap();
    let copy = median(copied);
    let mut out = vec![
        Row {
            name: "SubmitRecords, 1,000 new records a call".into(),
            tally: median(submitted),
            baseline: copy,
            baseline_name: "binary COPY of the same rows into the same tables".into(),
            records: BATCH,
        },
        Row {
            name: "StreamRecords, 1,000 one-record messages".into(),
            tally: median(streamed),
            baseline: copy,
            baseline_name: "binary COPY of the same rows into the same tables".into(),
            records: BATCH,
        },
    ];
    for (level, (t, b)) in unary.into_iter().enumerate() {
        let c = CLIENTS[level];
        out.push(Row {
            name: format!("SubmitRecords, one record a call, {c} clients"),
            tally: median(t),
            baseline: median(b),
            baseline_name: format!("single-row INSERT + commit, {c} connections"),
            records: UNARY,
        });
    }
    out
}

async fn submit(client: &Ingest, records: Vec<pb::Record>) -> Vec<pb::RecordOutcome> {
    support::submit(client, "bench", records)
        .await
        .results
        .iter()
        .map(|r| r.outcome())
        .collect()
}

async fn stream(client: &Ingest, records: Vec<pb::Record>) -> Duration {
    let chunks: Vec<pb::StreamRecordsRequest> = records
        .into_iter()
        .map(|r| pb::StreamRecordsRequest {
            parent: "merchants/bench".into(),
            request_id: String::new(),
            records: vec![r],
        })
        .collect();
    let n = chunks.len();
    let t = Instant::now();
    let mut responses = client
        .clone()
        .stream_records(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    let mut got = 0;
    while let Some(r) = responses.message().await.unwrap() {
        assert_eq!(r.results[0].outcome(), pb::RecordOutcome::Accepted);
        got += 1;
    }
    assert_eq!(got, n);
    t.elapsed()
}

/// `records` as one-record SubmitRecords calls from `clients` concurrent
/// callers, each sending its contiguous share one call after another.
async fn one_per_call(client: &Ingest, records: &[pb::Record], clients: usize) -> Duration {
    let share = records.len() / clients;
    let t = Instant::now();
    let callers = records.chunks(share).map(|mine| {
        let mine = mine.to_vec();
        async move {
            for r in mine {
                let o = submit(client, vec![r]).await;
                assert_eq!(o, [pb::RecordOutcome::Accepted]);
            }
        }
    });
    futures::future::join_all(callers).await;
    t.elapsed()
}

/// Each record's `record_log` row (its normalised payload, hash and
/// figures), one autocommitted INSERT per row, spread over `conns`.
async fn insert_per_row(conns: &[Client], records: &[pb::Record]) -> Duration {
    const SQL: &str = "INSERT INTO record_log (merchant_id, source_system, kind, source_id,
        order_id, outcome, content_hash, payload, currency_code, amount, event_time, is_current)
        VALUES ('bench', $1, $2, $3, $4, 'accepted', $5, $6, $7, $8::text::numeric, $9::text::timestamptz, true)";
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            let record = tally::api::validate::record(0, r, &mut vec![]).expect("valid record");
            let amount = record.headline_amount().map(|m| m.amount.to_string());
            let currency = record
                .headline_amount()
                .map(|m| m.currency.code().to_string());
            (
                r.source_system.clone(),
                record.kind().as_str().to_string(),
                r.source_id.clone(),
                r.order_id.clone(),
                record.content_hash().to_vec(),
                serde_json::to_value(&record).unwrap(),
                currency,
                amount,
                record.event_time.to_rfc3339(),
            )
        })
        .collect();
    let share = rows.len() / conns.len();
    let t = Instant::now();
    let writers = rows.chunks(share).zip(conns).map(|(mine, c)| async move {
        let stmt = c.prepare(SQL).await.unwrap();
        for r in mine {
            c.execute(
                &stmt,
                &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8],
            )
            .await
            .unwrap();
        }
    });
    futures::future::join_all(writers).await;
    t.elapsed()
}

fn print(orders: usize, rows: &[Row]) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\ningest, {} stored before, median of {ROUNDS} interleaved rounds, load average {}",
        if orders == 0 {
            "empty tables, no orders".to_string()
        } else {
            format!("{orders} orders")
        },
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| figure | records/s | baseline | records/s | ratio |");
    println!("|---|---:|---|---:|---:|");
    for r in rows {
        let rate = |d: Duration| r.records as f64 / d.as_secs_f64();
        println!(
            "| {} | {:.0} | {} | {:.0} | {:.2}x |",
            r.name,
            rate(r.tally),
            r.baseline_name,
            rate(r.baseline),
            rate(r.tally) / rate(r.baseline)
        );
    }
}

fn profiling() -> bool {
    std::env::var("TALLY_BENCH_LOG_STATEMENTS").is_ok_and(|v| v == "1")
}

/// Prints the statements one one-record call and one 1,000-record call run,
/// read back from the server log between marker statements.
async fn profile(client: &Ingest, raw: &Client, url: &str, p: i64) {
    let db = &url[url.rfind('/').unwrap() + 1..];
    let marker = |m: &'static str| async move {
        raw.batch_execute(&format!("SELECT 'tally-marker-{m}'"))
            .await
            .unwrap();
    };
    marker("one-start").await;
    submit(client, batch(0, &format!("p1{p}"))[..1].to_vec()).await;
    marker("one-end").await;
    submit(client, batch(0, &format!("p1000{p}"))).await;
    marker("batch-end").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = std::env::var("TALLY_BENCH_SERVER_LOG")
        .unwrap_or_else(|_| "/var/log/postgresql/postgresql-15-main.log".into());
    let text = std::fs::read_to_string(&log).expect("the server log");
    let mine: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("@{db} ")) && l.contains("duration:"))
        .collect();
    let at = |m: &str| {
        mine.iter()
            .rposition(|l| l.contains(&format!("tally-marker-{m}")))
            .expect("marker in the log")
    };
    for (name, from, to) in [
        ("one record", at("one-start"), at("one-end")),
        ("1,000 records", at("one-end"), at("batch-end")),
    ] {
        let mut total = 0.0;
        let mut executes = 0;
        println!("\nstatements of one SubmitRecords call of {name} (ms: parse/bind/execute):");
        for l in &mine[from + 1..to] {
            let rest = &l[l.find("duration:").unwrap() + 9..];
            let ms: f64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            total += ms;
            let what = rest.split_once("ms").unwrap().1.trim();
            if what.starts_with("execute") || what.starts_with("statement") {
                executes += 1;
            }
            println!("  {ms:8.3} {}", what.chars().take(110).collect::<String>());
        }
        println!("  {executes} statements executed, {total:.2} ms in the server");
    }
}
