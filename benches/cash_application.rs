//! Cash application throughput: balance transactions applied per second by
//! the worker, against a hand-written SQL baseline of the same postings
//! measured in the same run on the same PostgreSQL.
//!
//!   cargo bench --bench cash_application   (TALLY_BENCH_DATABASE_URL, else
//!                                           postgres://postgres@127.0.0.1:5432/postgres)
//!
//! For finding where the time goes (each off unless set): TALLY_BENCH_CPU
//! prints each drain's CPU time, this process's and all postgres processes';
//! TALLY_BENCH_LOG_STATEMENTS logs every statement's duration on the bench
//! database (`log_min_duration_statement = 0`, no parameters);
//! TALLY_BENCH_WINDOWS prints each drain's start and end (CLOCK_MONOTONIC,
//! for `perf report --time` of a `perf record -k CLOCK_MONOTONIC`);
//! TALLY_BENCH_KEEP keeps the database for `EXPLAIN ANALYZE`.
//!
//! Each payout sweeps PER_PAYOUT charges, one per order (order, capture,
//! invoice submitted beforehand; not timed). Rows:
//! - tally worker: 2 loops drain every job with `App::run_jobs` (the worker's
//!   batches): claim, load facts, plan, write events, invoices, applications,
//!   fee shares, entries, lines, the balance trigger, delete the job; a payout
//!   takes over its orders' invoice jobs, so one transaction per payout.
//! - the same with every payout of one merchant: one export counter row and
//!   one fee account for all (the hot row).
//! - SQL baseline: the same entries and lines per payout (invoice and
//!   payment entry per order, fee sweep, deposit) inserted with one UNNEST
//!   statement each into the same tables, one transaction per payout, by 2
//!   connections: the floor for durably writing those postings.

use std::time::{Duration, Instant};

use tally::app::App;
use tally::app::cash::RetryPolicy;
use tally::app::worker::WorkerConfig;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::server::Running;
use tally::storage::{Store, run_migrations};
use tokio_postgres::NoTls;

#[path = "support/mod.rs"]
mod support;
use support::{scratch_database, ts, usd};

const PAYOUTS: usize = 20;
const PER_PAYOUT: usize = 100;

fn rec(system: &str, id: String, order: &str, kind: pb::record::Kind) -> pb::Record {
    pb::Record {
        source_id: id,
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(0),
        source_update_time: None,
        kind: Some(kind),
    }
}

/// One payout's records: PER_PAYOUT orders (order, capture, invoice), their
/// balance transactions, the payout.
fn payout_records(tag: &str, p: usize) -> Vec<pb::Record> {
    let mut out = vec![];
    let po = format!("po_{tag}_{p}");
    for i in 0..PER_PAYOUT {
        let o = format!("{tag}-{p}-{i}");
        let ch = format!("ch_{o}");
        out.push(rec(
            "shopify",
            o.clone(),
            &o,
            pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
                total: usd("25.00"),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "stripe",
            ch.clone(),
            &o,
            pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: pb::ProcessorPaymentType::Charge as i32,
                amount: usd("25.00"),
                charge_id: ch.clone(),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "netsuite",
            format!("INV-{o}"),
            &o,
            pb::record::Kind::Invoice(pb::Invoice {
                total: usd("25.00"),
                ..Default::default()
            }),
        ));
        out.push(rec(
            "stripe",
            format!("txn_{o}"),
            "",
            pb::record::Kind::BalanceTransaction(pb::BalanceTransaction {
                reporting_category: "charge".into(),
                amount: usd("25.00"),
                fee: usd("1.03"),
                net: usd("23.97"),
                source: ch,
                payout_id: po.clone(),
                ..Default::default()
            }),
        ));
    }
    out.push(rec(
        "stripe",
        po,
        "",
        pb::record::Kind::Payout(pb::Payout {
            amount: usd(&format!("{:.2}", 23.97 * PER_PAYOUT as f64)),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: None,
        }),
    ));
    out
}

async fn submit(
    client: &mut IngestServiceClient<tonic::transport::Channel>,
    merchant: &str,
    records: Vec<pb::Record>,
) {
    for chunk in records.chunks(1000) {
        client
            .submit_records(pb::SubmitRecordsRequest {
                parent: format!("merchants/{merchant}"),
                request_id: String::new(),
                records: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
}

/// Drains every job of these merchants with 2 loops; returns the time taken.
/// CPU time (ns) of this process's threads and of every postgres process.
fn cpu_ns() -> (u64, u64) {
    let read = |path: std::path::PathBuf| -> u64 {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let mut me = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        me += read(t.path().join("schedstat"));
    }
    let mut pg = 0;
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            pg += read(p.path().join("schedstat"));
        }
    }
    (me, pg)
}

async fn drain(app: &App, merchants: &[String]) -> Duration {
    let cpu = std::env::var_os("TALLY_BENCH_CPU").map(|_| cpu_ns());
    let start = Instant::now();
    let retry = RetryPolicy::default();
    let mut tasks = vec![];
    for n in 0..2 {
        let (app, merchants) = (app.clone(), merchants.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < merchants.len() {
                idle = 0;
                for k in 0..merchants.len() {
                    let m = &merchants[(k + n) % merchants.len()];
                    let batch = WorkerConfig::default().batch;
                    if app.run_jobs(m, &retry, batch).await.unwrap().is_empty() {
                        idle += 1;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    if std::env::var_os("TALLY_BENCH_WINDOWS").is_some() {
        eprintln!("DRAIN {:?} {:?}", start, Instant::now());
    }
    if let Some((me, pg)) = cpu {
        let (me2, pg2) = cpu_ns();
        eprintln!(
            "CPU {} merchants: {:.0} ms wall, client {:.1} ms, postgres {:.1} ms",
            merchants.len(),
            start.elapsed().as_secs_f64() * 1e3,
            (me2 - me) as f64 / 1e6,
            (pg2 - pg) as f64 / 1e6
        );
    }
    start.elapsed()
}

/// The baseline: the same postings by hand, one transaction per payout.
async fn baseline(url: &str, tag: &str) -> Duration {
    let cpu = std::env::var_os("TALLY_BENCH_CPU").map(|_| cpu_ns());
    let start = Instant::now();
    let mut tasks = vec![];
    for n in 0..2 {
        let url = url.to_string();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(conn);
            for p in (n..PAYOUTS).step_by(2) {
                let tx = c.transaction().await.unwrap();
                let entries = 2 * PER_PAYOUT + 2;
                let ext: Vec<String> = (0..entries).map(|e| format!("b-{tag}-{p}-{e}")).collect();
                let seq: i64 = tx
                    .query_one(
                        "INSERT INTO ledger_counters (merchant_id, next_seq) VALUES ($1, 1 + $2::bigint)
                         ON CONFLICT (merchant_id) DO UPDATE SET next_seq = ledger_counters.next_seq + $2
                         RETURNING next_seq - $2",
                        &[&format!("base-{tag}"), &(entries as i64)],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let seqs: Vec<i64> = (0..entries as i64).map(|i| seq + i).collect();
                // Two lines per entry, balanced, in the same shape as the worker's.
                let mut l_ext = vec![];
                let mut l_no = vec![];
                let mut l_acc = vec![];
                let mut l_amt = vec![];
                let mut l_debit = vec![];
                for e in &ext {
                    for (no, acc, debit) in [(0, "processor_clearing", true), (1, "accounts_receivable", false)] {
                        l_ext.push(e.clone());
                        l_no.push(no);
                        l_acc.push(acc.to_string());
                        l_amt.push("25.00".to_string());
                        l_debit.push(debit);
                    }
                }
                tx.execute(
                    "WITH e AS (
                       INSERT INTO journal_entries (merchant_id, external_id, export_seq, effective_date, memo)
                       SELECT $1, x, s, DATE '2026-11-01', 'baseline' FROM UNNEST($2::text[], $3::bigint[]) AS t(x, s)
                       RETURNING entry_id, external_id)
                     INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit, credit)
                     SELECT $1, e.entry_id, l.no, l.acc, 'USD',
                         CASE WHEN l.d THEN l.amt::numeric ELSE 0 END, CASE WHEN l.d THEN 0 ELSE l.amt::numeric END
                     FROM e JOIN UNNEST($4::text[], $5::int[], $6::text[], $7::text[], $8::bool[])
                       AS l(x, no, acc, amt, d) ON l.x = e.external_id",
                    &[&format!("base-{tag}"), &ext, &seqs, &l_ext, &l_no, &l_acc, &l_amt, &l_debit],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    if let Some((me, pg)) = cpu {
        let (me2, pg2) = cpu_ns();
        eprintln!(
            "CPU baseline: {:.0} ms wall, client {:.1} ms, postgres {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3,
            (me2 - me) as f64 / 1e6,
            (pg2 - pg) as f64 / 1e6
        );
    }
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (admin, db, url) = scratch_database("tally_bench_cash").await;
    if std::env::var_os("TALLY_BENCH_LOG_STATEMENTS").is_some() {
        admin
            .execute(
                &format!("ALTER DATABASE {db} SET log_min_duration_statement = 0"),
                &[],
            )
            .await
            .unwrap();
    }
    run_migrations(&url).await.unwrap();
    let store = Store::connect(&url, 8).unwrap();
    let server = Running::start(
        store.clone(),
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
    let mut client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let app = App::new(store);
    let txns = (PAYOUTS * PER_PAYOUT) as f64;

    let mut rows: Vec<(&str, Vec<Duration>)> = vec![
        ("tally worker, payouts over 8 merchants", vec![]),
        (
            "tally worker, one merchant (hot counter and fee account)",
            vec![],
        ),
        ("hand-written SQL, same postings (baseline)", vec![]),
    ];
    for round in 0..3 {
        // Spread: payout p belongs to merchant m{p % 8}.
        let merchants: Vec<String> = (0..8).map(|m| format!("s{round}m{m}")).collect();
        for p in 0..PAYOUTS {
            let m = &merchants[p % 8];
            submit(&mut client, m, payout_records(&format!("s{round}"), p)).await;
        }
        rows[0].1.push(drain(&app, &merchants).await);
        let hot = vec![format!("h{round}")];
        for p in 0..PAYOUTS {
            submit(
                &mut client,
                &hot[0],
                payout_records(&format!("h{round}"), p),
            )
            .await;
        }
        rows[1].1.push(drain(&app, &hot).await);
        rows[2].1.push(baseline(&url, &format!("r{round}")).await);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let base = median(rows[2].1.clone());
    println!(
        "| run ({PAYOUTS} payouts x {PER_PAYOUT} balance transactions) | ms | balance transactions/s | vs baseline |"
    );
    println!("|---|---|---|---|");
    for (name, v) in rows {
        let m = median(v);
        println!(
            "| {name} | {:.0} | {:.0} | {:.2}x |",
            m.as_secs_f64() * 1e3,
            txns / m.as_secs_f64(),
            base.as_secs_f64() / m.as_secs_f64()
        );
    }
    server.stop().await.unwrap();
    if std::env::var_os("TALLY_BENCH_KEEP").is_none() {
        let _ = admin
            .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
            .await;
    }
}
