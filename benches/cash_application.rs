//! Cash application throughput: balance transactions applied per second by
//! the worker, against a hand-written SQL baseline of the same postings
//! measured in the same run on the same PostgreSQL.
//!
//!   cargo bench --bench cash_application   (TALLY_BENCH_DATABASE_URL, else
//!                                           postgres://postgres@127.0.0.1:5432/postgres)
//!   TALLY_BENCH_ORDERS=1000000 cargo bench --bench cash_application
//!                                           (beside 1,000,000 stored orders;
//!                                           TALLY_BENCH_KEEP_DB=1 reuses them)
//!
//! For finding where the time goes (each off unless set): TALLY_BENCH_CPU
//! prints each drain's CPU time, this process's and all postgres processes';
//! TALLY_BENCH_LOG_STATEMENTS logs every statement's duration on the bench
//! database (`log_min_duration_statement = 0`, no parameters);
//! TALLY_BENCH_WINDOWS prints each drain's start and end (CLOCK_MONOTONIC,
//! for `perf report --time` of a `perf record -k CLOCK_MONOTONIC`);
//! TALLY_BENCH_KEEP keeps the database for `EXPLAIN ANALYZE`;
//! TALLY_BENCH_CREATE_OPTIONS is appended to its `CREATE DATABASE` (e.g.
//! `TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`).
//!
//! Each payout sweeps PER_PAYOUT charges, one per order (order, capture,
//! invoice submitted beforehand; not timed). Rows:
//! - tally worker: 2 loops drain every job with `App::run_jobs` (the worker's
//!   batches): claim, load facts, plan, write events, invoices, applications,
//!   fee shares, entries, lines, the balance trigger, delete the jobs; a
//!   payout takes over its orders' invoice jobs, and a merchant's payouts due
//!   together are applied together (up to 8), one transaction a batch.
//! - corrections: then a tenth of those payouts receives a new version whose
//!   facts changed (its arrival date): each is reversed (every entry
//!   mirrored, its payments taken back in its orders' cash) and applied again
//!   under fresh ids; rated per balance transaction re-derived against the
//!   baseline's per balance transaction booked.
//! - the same with every payout of one merchant: one export counter row and
//!   one fee account for all (the hot row).
//! - SQL baseline: the same entries and lines per payout (invoice and
//!   payment entry per order, fee sweep, deposit), row for row as the worker
//!   writes them (memos, source references, payout on entries, order on
//!   lines: the same indexes to maintain), inserted with one UNNEST
//!   statement each into the same tables, one transaction per payout, by 2
//!   connections: the floor for durably writing those postings.

use std::time::{Duration, Instant};

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::storage::{Store, run_migrations};
use tokio_postgres::NoTls;

#[path = "support/mod.rs"]
mod support;
use support::payouts::rec;
use support::{preload, ts, usd};

const PAYOUTS: usize = 20;
const PER_PAYOUT: usize = 100;
/// Each row's time is the median of this many rounds (the first on empty
/// tables; on this host one round in five or so is off by 10-20%).
const ROUNDS: usize = 5;

/// Every CORRECTED_EVERY-th payout receives a new version after it was
/// applied (the corrections row).
const CORRECTED_EVERY: usize = 10;

/// A later version of payout `p` whose facts changed (its arrival date): the
/// worker reverses what it booked and applies it again, 2 x PER_PAYOUT + 4
/// entries.
fn payout_correction(tag: &str, p: usize) -> pb::Record {
    let mut r = rec(
        "stripe",
        format!("po_{tag}_{p}"),
        "",
        pb::record::Kind::Payout(pb::Payout {
            amount: usd(&format!("{:.2}", 23.97 * PER_PAYOUT as f64)),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: ts(86_400),
        }),
    );
    r.source_update_time = ts(3_600);
    r
}

/// One payout's records (see `support::payouts`).
fn payout_records(tag: &str, p: usize) -> Vec<pb::Record> {
    support::payouts::payout_records(tag, p, PER_PAYOUT)
}

/// Drains every job of these merchants with 2 loops; returns the time taken.
/// CPU time (ns) of this process's threads and of every postgres process.
fn cpu_ns() -> (u64, Pg) {
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
    let mut pg = Pg::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
        if comm.trim() == "postgres" {
            pg.insert(p.file_name(), read(p.path().join("schedstat")));
        }
    }
    (me, pg)
}

/// Worker loops and baseline connections (TALLY_BENCH_LOOPS, default 2:
/// the worker's default concurrency, one per core here).
fn loops() -> usize {
    std::env::var("TALLY_BENCH_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Each postgres process's CPU time, by pid.
type Pg = std::collections::HashMap<std::ffi::OsString, u64>;

/// The postgres CPU spent between two readings: by process, so one that
/// ended in between (a closed connection) takes nothing off.
fn pg_ms(before: &Pg, after: &Pg) -> f64 {
    let ns: u64 = after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum();
    ns as f64 / 1e6
}

async fn drain(app: &App, merchants: &[String]) -> Duration {
    let cpu = std::env::var_os("TALLY_BENCH_CPU").map(|_| cpu_ns());
    let wall = std::time::SystemTime::now();
    let start = Instant::now();
    let mut ends = support::run_worker_loops(app, merchants, loops()).await;
    if std::env::var_os("TALLY_BENCH_CPU").is_some() {
        // How long the first loop to run out of work waited for the last.
        ends.sort();
        let spread = ends[ends.len() - 1].duration_since(ends[0]);
        eprintln!("LOOPS idle at the end {:.1} ms", spread.as_secs_f64() * 1e3);
    }
    if std::env::var_os("TALLY_BENCH_WINDOWS").is_some() {
        // Monotonic (for perf) and wall clock (for the statement log).
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        };
        eprintln!(
            "DRAIN {:?} {:?} wall {:.6} {:.6}",
            start,
            Instant::now(),
            unix(wall),
            unix(std::time::SystemTime::now())
        );
    }
    if let Some((me, pg)) = cpu {
        let (me2, pg2) = cpu_ns();
        eprintln!(
            "CPU {} merchants: {:.0} ms wall, client {:.1} ms, postgres {:.1} ms",
            merchants.len(),
            start.elapsed().as_secs_f64() * 1e3,
            (me2 - me) as f64 / 1e6,
            pg_ms(&pg, &pg2)
        );
    }
    start.elapsed()
}

/// One payout's postings as the worker books them, row for row: per order an
/// invoice entry (Dr receivable, Cr revenue) and a payment entry naming the
/// payout (Dr clearing, Cr receivable), then the payout's fee sweep and
/// deposit; the same memos, source references, order ids on lines and
/// UUID-based external ids, so the baseline maintains the same indexes.
#[derive(Default)]
struct BaselineRows {
    ext: Vec<String>,
    memo: Vec<String>,
    payout: Vec<Option<String>>,
    refs: Vec<String>,
    l_ext: Vec<String>,
    l_no: Vec<i32>,
    l_acc: Vec<&'static str>,
    l_amt: Vec<String>,
    l_debit: Vec<bool>,
    l_memo: Vec<String>,
    l_order: Vec<Option<String>>,
}

impl BaselineRows {
    fn entry(&mut self, memo: String, payout: Option<&str>, refs: String) -> String {
        let id = format!("b-{}", uuid::Uuid::new_v4());
        self.ext.push(id.clone());
        self.memo.push(memo);
        self.payout.push(payout.map(str::to_string));
        self.refs.push(refs);
        id
    }

    /// A two-line entry: `amount` debited to `dr`, credited to `cr`.
    fn lines(
        &mut self,
        id: &str,
        dr: &'static str,
        cr: &'static str,
        amount: &str,
        order: Option<&str>,
        cr_memo: &str,
    ) {
        for (no, acc, debit, memo) in [(0, dr, true, ""), (1, cr, false, cr_memo)] {
            self.l_ext.push(id.to_string());
            self.l_no.push(no);
            self.l_acc.push(acc);
            self.l_amt.push(amount.to_string());
            self.l_debit.push(debit);
            self.l_memo.push(memo.to_string());
            self.l_order.push(order.map(str::to_string));
        }
    }
}

fn baseline_rows(tag: &str, p: usize) -> BaselineRows {
    let mut r = BaselineRows::default();
    let po = format!("po_b{tag}_{p}");
    for i in 0..PER_PAYOUT {
        let o = format!("b{tag}-{p}-{i}");
        let inv = format!("INV-{o}");
        let id = r.entry(
            format!("Invoice {inv} for order {o}"),
            None,
            format!(r#"[{{"id": "{inv}", "kind": "invoice"}}, {{"id": "{o}", "kind": "order"}}]"#),
        );
        r.lines(&id, "accounts_receivable", "revenue", "25.00", Some(&o), "");
    }
    for i in 0..PER_PAYOUT {
        let o = format!("b{tag}-{p}-{i}");
        let (inv, ch) = (format!("INV-{o}"), format!("ch_{o}"));
        let id = r.entry(
            format!("Cash application: processor payment {ch} for order {o}"),
            Some(&po),
            format!(
                r#"[{{"id": "{ch}", "kind": "capture"}}, {{"id": "{o}", "kind": "order"}}, {{"id": "{inv}", "kind": "invoice"}}]"#
            ),
        );
        r.lines(
            &id,
            "processor_clearing",
            "accounts_receivable",
            "25.00",
            Some(&o),
            &inv,
        );
    }
    let fees = format!("{:.2}", 1.03 * PER_PAYOUT as f64);
    let net = format!("{:.2}", 23.97 * PER_PAYOUT as f64);
    let payout_ref = format!(r#"{{"id": "{po}", "kind": "payout"}}"#);
    let txn_refs: Vec<String> = (0..PER_PAYOUT)
        .map(|i| format!(r#"{{"id": "txn_b{tag}-{p}-{i}", "kind": "balance_transaction"}}"#))
        .collect();
    let sweep_refs = format!("[{payout_ref}, {}]", txn_refs.join(", "));
    let memo = format!("Processor fees of payout {po} ({PER_PAYOUT} transactions)");
    let id = r.entry(memo, Some(&po), sweep_refs);
    r.lines(
        &id,
        "processing_fees",
        "processor_clearing",
        &fees,
        None,
        "",
    );
    let id = r.entry(
        format!("Payout {po} deposited"),
        Some(&po),
        format!("[{payout_ref}]"),
    );
    r.lines(&id, "bank", "processor_clearing", &net, None, "");
    r
}

fn thin_rows(mut r: BaselineRows, tag: &str, p: usize) -> BaselineRows {
    let n = r.ext.len();
    let (ext, l_ext) = (std::mem::take(&mut r.ext), std::mem::take(&mut r.l_ext));
    let seq: std::collections::HashMap<String, usize> =
        ext.into_iter().enumerate().map(|(i, x)| (x, i)).collect();
    r.ext = (0..n).map(|e| format!("b-{tag}-{p}-{e}")).collect();
    r.l_ext = l_ext.iter().map(|x| r.ext[seq[x]].clone()).collect();
    r.memo = vec!["baseline".into(); n];
    r.payout = vec![None; n];
    r.refs = vec!["[]".into(); n];
    r.l_memo.iter_mut().for_each(String::clear);
    r.l_order.iter_mut().for_each(|o| *o = None);
    r
}

/// The baseline: the same postings by hand, one transaction per payout.
/// `thin`: the rows without memos, references, payout or order ids, and
/// with sequential external ids (the baseline before 2026-11-24, kept as a
/// row to show what those cost).
/// `spread`: payout p on merchant p % 8 (its own counter row), as the
/// worker's first row; else every payout on one merchant (one counter row).
async fn baseline(url: &str, tag: &str, thin: bool, spread: bool) -> Duration {
    let cpu = std::env::var_os("TALLY_BENCH_CPU").map(|_| cpu_ns());
    let start = Instant::now();
    let mut tasks = vec![];
    for n in 0..loops() {
        let url = url.to_string();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(conn);
            for p in (n..PAYOUTS).step_by(loops()) {
                let tx = c.transaction().await.unwrap();
                let merchant = if spread {
                    format!("base-{tag}-{}", p % 8)
                } else {
                    format!("base-{tag}")
                };
                let rows = if thin {
                    thin_rows(baseline_rows(&tag, p), &tag, p)
                } else {
                    baseline_rows(&tag, p)
                };
                let entries = rows.ext.len();
                let seq: i64 = tx
                    .query_one(
                        "INSERT INTO ledger_counters (merchant_id, next_seq) VALUES ($1, 1 + $2::bigint)
                         ON CONFLICT (merchant_id) DO UPDATE SET next_seq = ledger_counters.next_seq + $2
                         RETURNING next_seq - $2",
                        &[&merchant, &(entries as i64)],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let seqs: Vec<i64> = (0..entries as i64).map(|i| seq + i).collect();
                tx.execute(
                    "WITH e AS (
                       INSERT INTO journal_entries (merchant_id, external_id, export_seq, effective_date,
                           memo, payout_id, source_refs)
                       SELECT $1, x, s, DATE '2026-11-01', m, po, r::jsonb
                       FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                         AS t(x, s, m, po, r)
                       RETURNING entry_id, external_id)
                     INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code,
                         debit, credit, memo, order_id)
                     SELECT $1, e.entry_id, l.no, l.acc, 'USD',
                         CASE WHEN l.d THEN l.amt::numeric ELSE 0 END,
                         CASE WHEN l.d THEN 0 ELSE l.amt::numeric END, l.memo, l.o
                     FROM e JOIN UNNEST($7::text[], $8::int[], $9::text[], $10::text[], $11::bool[],
                         $12::text[], $13::text[])
                       AS l(x, no, acc, amt, d, memo, o) ON l.x = e.external_id",
                    &[
                        &merchant,
                        &rows.ext,
                        &seqs,
                        &rows.memo,
                        &rows.payout,
                        &rows.refs,
                        &rows.l_ext,
                        &rows.l_no,
                        &rows.l_acc,
                        &rows.l_amt,
                        &rows.l_debit,
                        &rows.l_memo,
                        &rows.l_order,
                    ],
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
            pg_ms(&pg, &pg2)
        );
    }
    start.elapsed()
}

/// TALLY_BENCH_PLANS: each pooled connection's prepared statements with
/// how often each was planned generic and custom (PostgreSQL 14+).
async fn print_plan_counts(app: &App) {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Counted {
        #[diesel(sql_type = BigInt)]
        generic_plans: i64,
        #[diesel(sql_type = BigInt)]
        custom_plans: i64,
        #[diesel(sql_type = Text)]
        statement: String,
    }
    let mut held = vec![];
    while let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(200), app.store().conn()).await
    {
        held.push(c);
    }
    for (i, c) in held.iter_mut().enumerate() {
        let rows: Vec<Counted> = diesel::sql_query(
            "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements
             ORDER BY custom_plans DESC",
        )
        .load(&mut **c)
        .await
        .unwrap();
        for r in rows {
            let text: String = r.statement.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!(
                "PLANS conn {i} generic {} custom {} {}",
                r.generic_plans,
                r.custom_plans,
                &text[..text.len().min(100)]
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // TALLY_BENCH_ORDERS: the payouts are applied beside that many orders
    // already stored (another merchant's, so the same payouts and postings
    // as from empty tables, into indexes of that size).
    let orders = preload::orders(0);
    let (admin, db, url, fresh) = preload::database("tally_bench_cash", orders).await;
    if std::env::var_os("TALLY_BENCH_LOG_STATEMENTS").is_some() {
        preload::log_statements(&admin, &db).await;
    }
    if fresh {
        run_migrations(&url).await.unwrap();
    }
    let store = Store::connect(&url, 8).unwrap();
    let (server, channel) = support::serve(store.clone()).await;
    let client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    if fresh && orders > 0 {
        let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        preload::load(&client, &raw, orders).await;
    }
    let app = App::new(store);
    let txns = (PAYOUTS * PER_PAYOUT) as f64;

    // Each worker row is measured against the baseline of the same shape:
    // payouts over 8 merchants (8 counter rows, the 2 connections never
    // wait for each other) or on one (one counter row, taken first and held
    // to commit, so they take turns).
    let corrected = PAYOUTS.div_ceil(CORRECTED_EVERY);
    let mut rows: Vec<(&str, Vec<Duration>, usize)> = vec![
        ("tally worker, payouts over 8 merchants", vec![], 3),
        (
            "tally worker, corrections: a tenth of those payouts changed after they were applied (reversed and applied again)",
            vec![],
            3,
        ),
        (
            "tally worker, one merchant (hot counter and fee account)",
            vec![],
            4,
        ),
        (
            "hand-written SQL, same postings, over 8 merchants (baseline)",
            vec![],
            3,
        ),
        (
            "hand-written SQL, same postings, one merchant (baseline)",
            vec![],
            4,
        ),
        (
            "hand-written SQL, one merchant, thin rows (no memo, refs, payout or order id)",
            vec![],
            4,
        ),
    ];
    // A kept database holds earlier runs' merchants: this run's are its own.
    let run = std::process::id();
    for round in 0..ROUNDS {
        let round = format!("{run}r{round}");
        // Spread: payout p belongs to merchant m{p % 8}.
        let merchants: Vec<String> = (0..8).map(|m| format!("s{round}m{m}")).collect();
        for p in 0..PAYOUTS {
            let m = &merchants[p % 8];
            support::submit_batches(&client, m, &payout_records(&format!("s{round}"), p)).await;
        }
        rows[0].1.push(drain(&app, &merchants).await);
        for p in (0..PAYOUTS).step_by(CORRECTED_EVERY) {
            let m = &merchants[p % 8];
            support::submit_batches(&client, m, &[payout_correction(&format!("s{round}"), p)])
                .await;
        }
        rows[1].1.push(drain(&app, &merchants).await);
        let hot = vec![format!("h{round}")];
        for p in 0..PAYOUTS {
            support::submit_batches(&client, &hot[0], &payout_records(&format!("h{round}"), p))
                .await;
        }
        rows[2].1.push(drain(&app, &hot).await);
        let tag = |t: &str| format!("{t}{round}");
        rows[3].1.push(baseline(&url, &tag("s"), false, true).await);
        rows[4]
            .1
            .push(baseline(&url, &tag("o"), false, false).await);
        rows[5].1.push(baseline(&url, &tag("t"), true, false).await);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let medians: Vec<Duration> = rows.iter().map(|r| median(r.1.clone())).collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\ncash application, {orders} orders stored before, median of {ROUNDS} rounds, load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| run ({PAYOUTS} payouts x {PER_PAYOUT} balance transactions) | ms | balance transactions/s | vs its baseline |"
    );
    println!("|---|---|---|---|");
    for ((i, (name, _, base)), m) in rows.iter().enumerate().zip(&medians) {
        // The corrections row re-derives `corrected` payouts: its rate and
        // ratio are per balance transaction re-derived, against the
        // baseline's per balance transaction booked.
        let n = if i == 1 {
            (corrected * PER_PAYOUT) as f64
        } else {
            txns
        };
        let per_txn = m.as_secs_f64() / n;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2}x |",
            m.as_secs_f64() * 1e3,
            1.0 / per_txn,
            medians[*base].as_secs_f64() / txns / per_txn
        );
    }
    if std::env::var_os("TALLY_BENCH_PLANS").is_some() {
        print_plan_counts(&app).await;
    }
    server.stop().await.unwrap();
    if std::env::var_os("TALLY_BENCH_KEEP").is_none() && !preload::kept(&db) {
        let _ = admin
            .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
            .await;
    }
}
