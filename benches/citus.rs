//! Tally on a Citus cluster against a single PostgreSQL: the same load for
//! 8 merchants on both, in the same run, rounds interleaved. The ratio is
//! the cost of routing (every statement planned on the coordinator and
//! sent to one worker) on one machine; it says nothing of the gain of more
//! machines (docs/citus.md reasons about that from these figures).
//!
//!   bash scripts/citus-cluster.sh up
//!   cargo bench --bench citus
//!
//! TALLY_BENCH_DATABASE_URL: the single PostgreSQL (default
//! postgres://postgres@127.0.0.1:5432/postgres); TALLY_BENCH_CITUS_URL: the
//! coordinator (default postgres://postgres@127.0.0.1:9700/postgres) and
//! TALLY_BENCH_CITUS_WORKERS its workers (default
//! 127.0.0.1:9701,127.0.0.1:9702). Without a reachable Citus coordinator
//! the bench says so and measures nothing.
//!
//! Rows, each the median of ROUNDS rounds:
//! - ingest: 8 clients, one per merchant, each submitting its merchant's
//!   payouts (orders, captures, invoices, balance transactions, the
//!   payout) in calls of 1,000 records; records stored per second.
//! - worker: then 2 loops (the worker's default concurrency) drain every
//!   job of the 8 merchants with `App::run_jobs`: each payout applied
//!   (entries, lines, cash applications, the balance trigger); balance
//!   transactions applied per second.

use std::time::{Duration, Instant};

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::storage::{Store, run_migrations};
use tokio_postgres::{Client, NoTls};

#[path = "support/mod.rs"]
mod support;
use support::{median, url_for};

const MERCHANTS: usize = 8;
/// Payouts per merchant and round, and balance transactions per payout.
const PAYOUTS: usize = 4;
const PER_PAYOUT: usize = 50;
const ROUNDS: usize = 5;
/// Tally's pool per server (API and worker share it here).
const POOL: usize = 8;

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// A database on one server or on every node of the cluster, dropped at
/// the end.
struct Target {
    name: &'static str,
    /// Every node's admin URL, the one Tally connects to first.
    nodes: Vec<String>,
    db: String,
    url: String,
}

impl Target {
    async fn postgres() -> Target {
        let admin = std::env::var("TALLY_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db = format!("tally_bench_citus_pg_{}", std::process::id());
        connect(&admin)
            .await
            .expect("connect to PostgreSQL")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        Target {
            name: "PostgreSQL",
            url: url_for(&admin, &db),
            nodes: vec![admin],
            db,
        }
    }

    /// The coordinator and its workers, when a Citus coordinator answers.
    async fn citus() -> Option<Target> {
        let admin = std::env::var("TALLY_BENCH_CITUS_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:9700/postgres".into());
        let workers = std::env::var("TALLY_BENCH_CITUS_WORKERS")
            .unwrap_or_else(|_| "127.0.0.1:9701,127.0.0.1:9702".into());
        let coordinator = match connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("no Citus coordinator at {admin} ({e}): skipping the Citus bench");
                return None;
            }
        };
        let has_citus = coordinator
            .query_opt(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'citus'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .is_some();
        if !has_citus {
            eprintln!("{admin} has no citus extension: skipping the Citus bench");
            return None;
        }
        let workers: Vec<(String, i32)> = workers
            .split(',')
            .map(|w| {
                let (h, p) = w.trim().rsplit_once(':').expect("host:port");
                (h.to_string(), p.parse().expect("a port"))
            })
            .collect();
        let db = format!("tally_bench_citus_{}", std::process::id());
        let mut nodes = vec![admin.clone()];
        nodes.extend(
            workers
                .iter()
                .map(|(h, p)| format!("postgres://postgres@{h}:{p}/postgres")),
        );
        // Citus does not propagate CREATE DATABASE: the database and the
        // extension on every node, then the workers added from it.
        for node in &nodes {
            connect(node)
                .await
                .expect("connect to a Citus node")
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .unwrap();
            connect(&url_for(node, &db))
                .await
                .unwrap()
                .batch_execute("CREATE EXTENSION citus")
                .await
                .unwrap();
        }
        let url = url_for(&admin, &db);
        let c = connect(&url).await.unwrap();
        let (host, port) = host_port(&admin);
        c.execute("SELECT citus_set_coordinator_host($1, $2)", &[&host, &port])
            .await
            .unwrap();
        for (h, p) in &workers {
            c.execute("SELECT citus_add_node($1, $2)", &[h, p])
                .await
                .unwrap();
        }
        Some(Target {
            name: "Citus",
            nodes,
            db,
            url,
        })
    }

    async fn remove(&self) {
        for node in &self.nodes {
            if let Ok(c) = connect(node).await {
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
                    .await;
            }
        }
    }
}

fn host_port(url: &str) -> (String, i32) {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap();
    let (h, p) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    (h.to_string(), p.parse().unwrap())
}

/// Which database server a backend serves, from its postmaster's data
/// directory: the Citus nodes live in `.../coord`, `.../w1`, `.../w2`
/// (scripts/citus-cluster.sh); anything else is the single PostgreSQL.
fn role(ppid: &str) -> &'static str {
    let cmdline = std::fs::read_to_string(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
    let dir = cmdline
        .split('\0')
        .skip_while(|a| *a != "-D")
        .nth(1)
        .unwrap_or("");
    if dir.ends_with("/coord") {
        "coordinator"
    } else if dir.ends_with("/w1") || dir.ends_with("/w2") {
        "workers"
    } else {
        "postgres"
    }
}

/// CPU time (ns) so far of every backend of the bench's databases (its
/// process title names the database), by pid, with its server's role:
/// other databases' sessions on the same servers are not counted.
fn pg_cpu(dbs: &[&str]) -> std::collections::HashMap<std::ffi::OsString, (u64, &'static str)> {
    let mut out = std::collections::HashMap::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let read = |f: &str| std::fs::read_to_string(p.path().join(f)).unwrap_or_default();
        if read("comm").trim() != "postgres" {
            continue;
        }
        let title = read("cmdline");
        if !dbs
            .iter()
            .any(|db| title.split([' ', '\0']).any(|w| w == *db))
        {
            continue;
        }
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let status = read("status");
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .unwrap_or("")
            .trim();
        out.insert(p.file_name(), (ns, role(ppid)));
    }
    out
}

/// Backend CPU (ms) spent between two readings, by role; by process, so
/// one that ended in between takes nothing off.
fn pg_cpu_by_role(
    before: &std::collections::HashMap<std::ffi::OsString, (u64, &'static str)>,
    after: &std::collections::HashMap<std::ffi::OsString, (u64, &'static str)>,
) -> std::collections::HashMap<&'static str, f64> {
    let mut out = std::collections::HashMap::new();
    for (pid, (t, role)) in after {
        let spent = t.saturating_sub(before.get(pid).map_or(0, |b| b.0));
        *out.entry(*role).or_insert(0.0) += spent as f64 / 1e6;
    }
    out
}

/// A server over the target and the worker's App: what one round drives.
struct Running {
    server: tally::server::Running,
    client: IngestServiceClient<tonic::transport::Channel>,
    app: App,
}

async fn start(target: &Target) -> Running {
    run_migrations(&target.url).await.unwrap();
    let store = Store::connect(&target.url, POOL).unwrap();
    let (server, channel) = support::serve(store.clone()).await;
    Running {
        server,
        client: IngestServiceClient::new(channel),
        app: App::new(store),
    }
}

/// Every merchant's payouts, one client per merchant at once.
async fn ingest(r: &Running, merchants: &[String]) -> Duration {
    let start = Instant::now();
    let mut tasks = vec![];
    for merchant in merchants {
        let (client, merchant) = (r.client.clone(), merchant.clone());
        tasks.push(tokio::spawn(async move {
            let records: Vec<pb::Record> = (0..PAYOUTS)
                .flat_map(|p| support::payouts::payout_records(&merchant, p, PER_PAYOUT))
                .collect();
            support::submit_batches(&client, &merchant, &records).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// Drains every job of the merchants with 2 loops, as the worker does.
async fn drain(app: &App, merchants: &[String]) -> Duration {
    let start = Instant::now();
    support::run_worker_loops(app, merchants, 2).await;
    start.elapsed()
}

/// What a round left: every payout applied, none twice.
async fn check(url: &str, merchants: &[String]) {
    let c = connect(url).await.unwrap();
    let applied: i64 = c
        .query_one(
            "SELECT count(*) FROM payouts WHERE merchant_id = ANY($1) AND state = 'applied'",
            &[&merchants],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, (MERCHANTS * PAYOUTS) as i64, "payouts not applied");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(citus) = Target::citus().await else {
        return;
    };
    let pg = Target::postgres().await;
    let targets = [pg, citus];
    let mut running = vec![];
    for t in &targets {
        let started = Instant::now();
        running.push(start(t).await);
        eprintln!(
            "{}: migrated in {:.1} s",
            t.name,
            started.elapsed().as_secs_f64()
        );
    }
    // [target][ingest, worker] -> one duration a round, and the database
    // CPU (ms) by role summed over the rounds.
    let mut times = [[vec![], vec![]], [vec![], vec![]]];
    let mut cpu: [[std::collections::HashMap<&str, f64>; 2]; 2] = Default::default();
    let dbs = [targets[0].db.as_str(), targets[1].db.as_str()];
    for round in 0..ROUNDS {
        for (i, (t, r)) in targets.iter().zip(&running).enumerate() {
            let merchants: Vec<String> = (0..MERCHANTS).map(|m| format!("r{round}m{m}")).collect();
            let before = pg_cpu(&dbs);
            times[i][0].push(ingest(r, &merchants).await);
            let between = pg_cpu(&dbs);
            times[i][1].push(drain(&r.app, &merchants).await);
            let after = pg_cpu(&dbs);
            for (phase, (a, b)) in [(&before, &between), (&between, &after)]
                .into_iter()
                .enumerate()
            {
                for (role, ms) in pg_cpu_by_role(a, b) {
                    *cpu[i][phase].entry(role).or_insert(0.0) += ms;
                }
            }
            check(&t.url, &merchants).await;
            eprintln!(
                "round {round} {}: ingest {:.0} ms, worker {:.0} ms",
                t.name,
                times[i][0][round].as_secs_f64() * 1e3,
                times[i][1][round].as_secs_f64() * 1e3
            );
        }
    }
    let records = (MERCHANTS * PAYOUTS * (PER_PAYOUT * 4 + 1)) as f64;
    let txns = (MERCHANTS * PAYOUTS * PER_PAYOUT) as f64;
    let rows = [
        (
            "ingest, records stored/s (8 clients)",
            "1,000 records",
            records,
        ),
        (
            "worker, balance transactions applied/s (2 loops)",
            "1,000 balance transactions",
            txns,
        ),
    ];
    println!(
        "| run ({MERCHANTS} merchants x {PAYOUTS} payouts x {PER_PAYOUT} balance transactions) | single PostgreSQL (baseline) | Citus, coordinator + 2 workers | Citus / PostgreSQL |"
    );
    println!("|---|---:|---:|---:|");
    for (row, (what, _, n)) in rows.iter().enumerate() {
        let rate = |i: usize| n / median(times[i][row].clone()).as_secs_f64();
        println!(
            "| {what} | {:.0} | {:.0} | {:.2}x |",
            rate(0),
            rate(1),
            rate(1) / rate(0)
        );
    }
    // Where the database time goes: per unit of work, all rounds.
    println!();
    println!(
        "| backend CPU of the bench's databases, ms per unit | single PostgreSQL | Citus coordinator | Citus workers (both) |"
    );
    println!("|---|---:|---:|---:|");
    for (row, (_, unit, n)) in rows.iter().enumerate() {
        let per = |i: usize, role: &str| {
            cpu[i][row].get(role).copied().unwrap_or(0.0) / (n * ROUNDS as f64 / 1000.0)
        };
        println!(
            "| {unit} | {:.0} | {:.0} | {:.0} |",
            per(0, "postgres"),
            per(1, "coordinator"),
            per(1, "workers")
        );
    }
    for (t, r) in targets.iter().zip(running) {
        r.server.stop().await.unwrap();
        drop(r.app);
        t.remove().await;
    }
}
