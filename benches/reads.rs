//! Read latency while ingest runs at half its measured maximum, open-loop,
//! against a no-op RPC (the health check: the transport's ceiling) sent on
//! the same schedule in the same run.
//!
//!   TALLY_BENCH_ORDERS=1000000 cargo bench --bench reads   (default 100,000)
//!
//! (TALLY_BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres;
//! TALLY_BENCH_KEEP_DB=1 keeps the preloaded database, shared with
//! `benches/ingest.rs`, for the next run.)
//!
//! 1. Preload: the orders through Tally (`support/preload.rs`), one in 20
//!    with an invoice that disagrees (an open exception).
//! 2. Maximum ingest: two clients submit 99-record SubmitRecords calls
//!    back to back for [`MAX_SECS`] seconds.
//! 3. Under load, for [`READ_SECS`] seconds: calls of 99 records on a fixed
//!    schedule at half that rate, and on another fixed schedule [`PER_KIND`]
//!    requests a second of each read: GetTransaction and
//!    GetReconciliationStatus of a random preloaded order, ListExceptions
//!    (first page of 50), GetPeriodReport (October 2026, where every
//!    preload starts), and the health
//!    check. Open-loop: each request is sent at its intended time whether
//!    or not earlier ones have answered, and its latency counts from that
//!    intended time, so a stall shows in every request it delays.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tally::server::Running;
use tally::storage::{Store, run_migrations};
use tokio_postgres::NoTls;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[path = "support/mod.rs"]
mod support;
use support::{order_records, preload};

const MAX_SECS: u64 = 8;
const READ_SECS: u64 = 40;
const PER_KIND: u64 = 25;
const KINDS: [&str; 5] = [
    "GetTransaction",
    "GetReconciliationStatus",
    "ListExceptions, first page of 50",
    "GetPeriodReport, the month",
    "health check (no-op, baseline)",
];

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orders = preload::orders(100_000);
    let (admin, db, url, fresh) = preload::database("tally_bench_reads", orders).await;
    if fresh {
        run_migrations(&url).await.unwrap();
    }
    let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let server = Running::start(
        Store::connect(&url, 8).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let channel = || async {
        Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    let ingest = IngestServiceClient::new(channel().await);
    if fresh {
        preload::load(&ingest, &raw, orders).await;
    }

    let next = Arc::new(Mutex::new(0usize));
    let max = max_ingest(&ingest, &next).await;
    println!("maximum ingest: {max:.0} records/s (99-record calls, 2 clients)");
    let half = max / 2.0;
    let load_task = tokio::spawn(paced_ingest(ingest.clone(), next.clone(), half));

    let reads = channel().await;
    let samples = open_loop(reads, orders).await;
    load_task.abort();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    print(&samples, orders, half, &loadavg);

    server.stop().await.unwrap();
    drop(raw);
    if !preload::kept(&db) {
        let _ = admin
            .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
            .await;
    }
}

/// A call of 99 new records (33 orders), numbered from `next`.
fn records(next: &Mutex<usize>) -> Vec<pb::Record> {
    let n = {
        let mut n = next.lock().unwrap();
        *n += 1;
        *n
    };
    (0..33)
        // The process id keeps a kept database's earlier runs' orders apart.
        .flat_map(|k| {
            let order = format!("live-{}-{n}-{k}", std::process::id());
            order_records(&order, (n * 33 + k) as i64 % 1_800_000)
        })
        .collect()
}

async fn send(client: &IngestServiceClient<Channel>, records: Vec<pb::Record>) {
    support::submit_retrying(client, records, Duration::ZERO).await;
}

/// Records a second two closed-loop clients get through.
async fn max_ingest(client: &IngestServiceClient<Channel>, next: &Arc<Mutex<usize>>) -> f64 {
    let t = Instant::now();
    let until = t + Duration::from_secs(MAX_SECS);
    let worker = || async {
        let mut n = 0;
        while Instant::now() < until {
            send(client, records(next)).await;
            n += 99;
        }
        n
    };
    let (a, b) = tokio::join!(worker(), worker());
    (a + b) as f64 / t.elapsed().as_secs_f64()
}

/// Calls of 99 records at `rate` records a second, each sent at its time.
async fn paced_ingest(client: IngestServiceClient<Channel>, next: Arc<Mutex<usize>>, rate: f64) {
    let period = Duration::from_secs_f64(99.0 / rate);
    let start = tokio::time::Instant::now();
    for k in 0u32.. {
        tokio::time::sleep_until(start + period * k).await;
        let (c, r) = (client.clone(), records(&next));
        tokio::spawn(async move { send(&c, r).await });
    }
}

/// Latencies of each kind, from intended send times.
async fn open_loop(channel: Channel, orders: usize) -> Vec<Vec<Duration>> {
    let samples: Arc<Mutex<Vec<Vec<Duration>>>> = Arc::new(Mutex::new(vec![vec![]; KINDS.len()]));
    let period = Duration::from_secs(1) / (PER_KIND * KINDS.len() as u64) as u32;
    let total = READ_SECS * PER_KIND * KINDS.len() as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = vec![];
    for k in 0..total {
        let intended = start + period * k as u32;
        tokio::time::sleep_until(intended).await;
        let kind = (k % KINDS.len() as u64) as usize;
        // A random preloaded order (a multiplicative hash of k).
        let order = preload::order_id((k.wrapping_mul(2_654_435_761) % orders as u64) as usize);
        let call = read(&channel, kind, &order);
        let samples = samples.clone();
        tasks.push(tokio::spawn(async move {
            call.await;
            let latency = tokio::time::Instant::now() - intended;
            samples.lock().unwrap()[kind].push(latency);
        }));
    }
    futures::future::join_all(tasks).await;
    Arc::try_unwrap(samples).unwrap().into_inner().unwrap()
}

fn read(channel: &Channel, kind: usize, order: &str) -> Call {
    let name = format!("merchants/bench/transactions/{order}");
    let ch = channel.clone();
    match kind {
        0 => Box::pin(async move {
            let r = TransactionServiceClient::new(ch)
                .get_transaction(pb::GetTransactionRequest { name })
                .await
                .unwrap();
            assert!(r.into_inner().transaction.is_some());
        }),
        1 => Box::pin(async move {
            TransactionServiceClient::new(ch)
                .get_reconciliation_status(pb::GetReconciliationStatusRequest { name })
                .await
                .unwrap();
        }),
        2 => Box::pin(async move {
            let r = ExceptionServiceClient::new(ch)
                .list_exceptions(pb::ListExceptionsRequest {
                    parent: "merchants/bench".into(),
                    page_size: 50,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(r.into_inner().exceptions.len(), 50);
        }),
        3 => Box::pin(async move {
            let r = ReportServiceClient::new(ch)
                .get_period_report(pb::GetPeriodReportRequest {
                    parent: "merchants/bench".into(),
                    period: Some(pb::PeriodSelector {
                        period: "2026-10".into(),
                        ..Default::default()
                    }),
                    as_of: None,
                })
                .await
                .unwrap();
            assert!(!r.into_inner().figures.is_empty());
        }),
        _ => Box::pin(async move {
            HealthClient::new(ch)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .unwrap();
        }),
    }
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn print(samples: &[Vec<Duration>], orders: usize, half: f64, loadavg: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let base = &samples[KINDS.len() - 1];
    let (b50, b99) = (pct(base, 0.5), pct(base, 0.99));
    println!(
        "\nreads, {orders} orders stored, ingest at {half:.0} records/s (half its maximum), \
         {PER_KIND}/s of each kind for {READ_SECS} s, open-loop; load average {}",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| figure | p50 ms | p99 ms | baseline: health check p50 / p99 ms | ratio p99 |");
    println!("|---|---:|---:|---:|---:|");
    for (kind, v) in KINDS.iter().zip(samples) {
        println!(
            "| {kind} ({} requests) | {:.2} | {:.2} | {:.2} / {:.2} | {:.1}x |",
            v.len(),
            ms(pct(v, 0.5)),
            ms(pct(v, 0.99)),
            ms(b50),
            ms(b99),
            ms(pct(v, 0.99)) / ms(b99)
        );
    }
}
