//! Many `tally worker` processes over one backlog: each payout applied
//! exactly once, and a worker killed with SIGKILL loses and doubles nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tally::proto::tally::v1 as pb;

use crate::binary::{SpawnStopped, Stopped};
use crate::cash::{account_balance, assert_ledger_sound, bt, capture, inv, payout};
use crate::common::*;

const PAYOUTS: usize = 40;
const ORDERS_PER_PAYOUT: usize = 3;

/// Payout `p` with its orders: each order, capture, invoice and balance
/// transaction, then the payout (shared with the Citus shard-move test).
pub(crate) fn backlog(p: usize) -> Vec<pb::Record> {
    let mut records = vec![];
    for k in 0..ORDERS_PER_PAYOUT {
        let o = format!("{}", 10_000 + p * 10 + k);
        let ch = format!("ch_{o}");
        records.push(order(&o, "25.00"));
        records.push(capture(&o, &ch, "25.00"));
        records.push(inv(
            &o,
            &format!("INV-{o}"),
            "25.00",
            "2026-11-02T12:00:00Z",
        ));
        records.push(bt(
            &format!("txn_{o}"),
            "charge",
            &ch,
            "25.00",
            "1.03",
            &format!("po_{p}"),
        ));
    }
    // 3 x (25.00 - 1.03)
    records.push(payout(&format!("po_{p}"), "71.91"));
    records
}

/// A `tally worker` process (2 loops) over `db_url`.
pub(crate) fn worker(db_url: &str) -> Stopped {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["worker", "--concurrency", "2"])
        .env("DATABASE_URL", db_url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_stopped()
}

/// Payouts whose records change after they were applied: a tenth of the
/// backlog fails at the processor and is paid again (later versions).
const CORRECTED: [usize; 4] = [0, 10, 20, 30];

fn corrections() -> Vec<pb::Record> {
    let version = |p: usize, status: pb::PayoutStatus, when: &str| {
        crate::cash_scenarios::payout_version(&format!("po_{p}"), "71.91", status, when)
    };
    let failed: Vec<pb::Record> = CORRECTED
        .iter()
        .map(|p| version(*p, pb::PayoutStatus::Failed, "2026-11-05T08:00:00Z"))
        .collect();
    let paid = CORRECTED
        .iter()
        .map(|p| version(*p, pb::PayoutStatus::Paid, "2026-11-06T08:00:00Z"));
    failed.into_iter().chain(paid).collect()
}

/// Jobs asked for: rows of `jobs`, or signals not folded yet, once each.
const QUEUED: &str = "SELECT count(*) FROM (SELECT kind, subject_id FROM jobs
    UNION SELECT kind, subject_id FROM job_signals) q";

#[tokio::test]
async fn three_worker_processes_apply_each_payout_once_even_when_one_is_killed() {
    let t = TestApp::start().await;
    for chunk in (0..PAYOUTS).collect::<Vec<_>>().chunks(10) {
        let records = chunk.iter().flat_map(|p| backlog(*p)).collect();
        t.submit(records).await.unwrap();
    }
    assert_eq!(t.count(QUEUED).await, PAYOUTS as i64 * 4);

    let mut workers: Vec<Stopped> = (0..3).map(|_| worker(&t.db.url)).collect();
    // Kill one as soon as the backlog is being worked on, whatever it holds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while t
        .count("SELECT count(*) FROM payouts WHERE state = 'applied'")
        .await
        < 3
    {
        assert!(Instant::now() < deadline, "workers never started applying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally::embedded_pg::sys::kill(workers[0].id(), tally::embedded_pg::sys::Signal::Kill);
    let _ = workers[0].wait();
    // A restart picks up where it left off, alongside the other two.
    workers[0] = worker(&t.db.url);
    let drained = || async {
        while t.count(QUEUED).await > 0 {
            assert!(Instant::now() < deadline, "the backlog was never drained");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    drained().await;
    // Corrections while the workers run: each corrected payout failed at the
    // processor, then paid again. Its first booking is reversed once and it
    // is applied again once: the ledger ends as if it had been paid once.
    let all = corrections();
    let (failed, paid) = all.split_at(CORRECTED.len());
    t.submit(failed.to_vec()).await.unwrap();
    t.submit(paid.to_vec()).await.unwrap();
    drained().await;
    for w in &mut workers {
        tally::embedded_pg::sys::kill(w.id(), tally::embedded_pg::sys::Signal::Terminate);
        let _ = w.wait();
    }

    // Each payout applied once at first; a corrected one reversed and applied
    // again once if a worker saw it failed, not at all if it saw the paid
    // version first (the same facts as booked: nothing to book).
    let histories =
        t.db.client()
            .await
            .query(
                "SELECT payout_id, string_agg(action, ',' ORDER BY booking_no) FROM payout_bookings
             GROUP BY payout_id",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(histories.len(), PAYOUTS);
    for row in histories {
        let (payout, history): (String, String) = (row.get(0), row.get(1));
        let corrected = CORRECTED.iter().any(|p| payout == format!("po_{p}"));
        let allowed: &[&str] = if corrected {
            &["applied", "applied,reversed,reapplied"]
        } else {
            &["applied"]
        };
        assert!(allowed.contains(&history.as_str()), "{payout}: {history}");
    }
    assert_balances(&t, PAYOUTS).await;
}

/// Every payout of the backlog applied once: its entries, applications and
/// cash events exactly once, the export sequence gapless, the ledger sound.
pub(crate) async fn assert_applied_once(t: &TestApp, payouts: usize) {
    let n = payouts as i64;
    let orders = n * ORDERS_PER_PAYOUT as i64;
    // Per order an invoice and a payment entry; per payout a fee sweep and a deposit.
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries").await,
        2 * orders + 2 * n
    );
    assert_eq!(
        t.count("SELECT count(*) FROM cash_applications").await,
        orders
    );
    assert_eq!(
        t.count("SELECT count(*) FROM order_cash_events").await,
        2 * orders
    );
    assert_balances(t, payouts).await;
}

/// The balances a backlog of `payouts` paid once ends with, however often
/// each was booked: every cent applied, deposited and swept once.
async fn assert_balances(t: &TestApp, payouts: usize) {
    let orders = payouts * ORDERS_PER_PAYOUT;
    assert_eq!(
        t.count("SELECT count(*) FROM payouts WHERE state = 'applied' AND residual = 0")
            .await,
        payouts as i64
    );
    assert_eq!(
        t.count("SELECT count(*) FROM journal_entries WHERE export_seq BETWEEN 1 AND (SELECT count(*) FROM journal_entries)")
            .await,
        t.count("SELECT count(*) FROM journal_entries").await,
        "the export sequence has a gap or a repeat"
    );
    assert_ledger_sound(t).await;
    assert_eq!(account_balance(t, "processor_clearing").await, "0.00");
    assert_eq!(account_balance(t, "accounts_receivable").await, "0.00");
    assert_eq!(
        account_balance(t, "bank").await,
        format!("{:.2}", 71.91 * payouts as f64)
    );
    assert_eq!(
        account_balance(t, "processing_fees").await,
        format!("{:.2}", 1.03 * (orders as f64))
    );
    assert_eq!(
        t.count("SELECT count(*) FROM invoices WHERE applied <> total")
            .await,
        0
    );
}

/// The kill lands inside a payout's transaction for certain: the export
/// counter row is held by the test, so the worker stops at its journal
/// insert, the last write of a transaction that has already claimed its
/// jobs and written invoices, applications and cash events. Killed there,
/// it commits nothing; a restart applies every payout once.
#[tokio::test]
async fn a_worker_killed_inside_a_payout_transaction_commits_nothing() {
    const N: usize = 3;
    let t = TestApp::start().await;
    let records = (0..N).flat_map(backlog).collect();
    t.submit(records).await.unwrap();
    let jobs = t.count(QUEUED).await;
    assert_eq!(jobs, N as i64 * 4);

    let holder = t.db.client().await;
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute(
            "INSERT INTO ledger_counters (merchant_id, next_seq) VALUES ('acme', 1)",
            &[],
        )
        .await
        .unwrap();
    let mut w = worker(&t.db.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    // The insert, as the worker's session runs it (the regular expression
    // does not match its own text), waiting for a lock. On Citus the wait
    // is on the node of the merchant's shard, in a statement of its own
    // (the counter's upsert, planned apart from the entries' insert):
    // Citus's lock graph names the statement the worker sent.
    let journal_insert = "'INSERT INTO (public\\.)?journal_entries'";
    let (activity, waiting) = if crate::citus_nodes::workers().is_some() {
        (
            "citus_stat_activity",
            format!(
                "SELECT count(*) FROM citus_lock_waits WHERE blocked_statement ~ {journal_insert}"
            ),
        )
    } else {
        (
            "pg_stat_activity",
            format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query ~ {journal_insert} AND xact_start IS NOT NULL"
            ),
        )
    };
    while t.count(&waiting).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the worker never reached its journal insert"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tally::embedded_pg::sys::kill(w.id(), tally::embedded_pg::sys::Signal::Kill);
    let _ = w.wait();
    // Let the orphaned backend through: it finishes its insert, finds its
    // client gone and rolls back.
    holder.batch_execute("ROLLBACK").await.unwrap();
    while t
        .count(&format!(
            "SELECT count(*) FROM {activity} WHERE datname = current_database() \
             AND query ~ {journal_insert}"
        ))
        .await
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "the killed worker's backend lingered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for table in [
        "journal_entries",
        "cash_applications",
        "order_cash_events",
        "ledger_counters",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(t.count(&sql).await, 0, "{table} after the kill");
    }
    assert_eq!(t.count(QUEUED).await, jobs);
    assert_eq!(
        t.count("SELECT count(*) FROM payouts WHERE state = 'applied'")
            .await,
        0
    );

    let mut w = worker(&t.db.url);
    while t.count(QUEUED).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the restart never drained the backlog"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tally::embedded_pg::sys::kill(w.id(), tally::embedded_pg::sys::Signal::Terminate);
    let _ = w.wait();
    assert_applied_once(&t, N).await;
}

#[tokio::test]
async fn journals_export_writes_netsuite_csv_after_a_cursor() {
    let t = TestApp::start().await;
    t.submit(crate::cash::realistic_batch()).await.unwrap();
    crate::cash::drain(
        &tally::app::App::new(tally::storage::Store::connect(&t.db.url, 2).unwrap()),
        "acme",
    )
    .await;
    let export = |after: &str, config: Option<&std::path::Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
        cmd.args([
            "journals",
            "export",
            "--format",
            "netsuite-csv",
            "--merchant",
            "acme",
            "--after",
            after,
        ])
        .env("DATABASE_URL", &t.db.url)
        .env("RUST_LOG", "warn");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.output().unwrap()
    };
    let run = |after: &str| export(after, None);
    let out = run("0");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("External ID,"), "{csv}");
    let total_lines = t.count("SELECT count(*) FROM journal_lines").await;
    assert_eq!(lines.count() as i64, total_lines, "{csv}");
    assert!(
        csv.contains(",1150,"),
        "clearing is exported under its code: {csv}"
    );
    let entries = t.count("SELECT count(*) FROM journal_entries").await;
    let cursor = String::from_utf8(out.stderr).unwrap();
    assert!(cursor.contains(&format!("--after {entries}")), "{cursor}");
    // Nothing new after the cursor: the header only.
    let again = run(&entries.to_string());
    assert_eq!(String::from_utf8(again.stdout).unwrap().lines().count(), 1);
    // The configuration file's [accounts] renumbers what is exported; a
    // code given to two roles is refused, naming the file.
    let dir = std::env::temp_dir().join(format!("tally-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[accounts]\nprocessor_clearing = { code = \"1999\" }\n",
    )
    .unwrap();
    let renumbered = export("0", Some(&good));
    assert!(renumbered.status.success(), "{renumbered:?}");
    let csv = String::from_utf8(renumbered.stdout).unwrap();
    assert!(csv.contains(",1999,") && !csv.contains(",1150,"), "{csv}");
    let bad_chart = dir.join("bad.toml");
    std::fs::write(
        &bad_chart,
        "[accounts]\nprocessor_clearing = { code = \"1000\" }\nbank = { code = \"1000\" }\n",
    )
    .unwrap();
    let refused = export("0", Some(&bad_chart));
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("bad.toml") && why.contains("1000"), "{why}");
    let _ = std::fs::remove_dir_all(&dir);
    // An unknown format is a usage error.
    let bad = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "journals",
            "export",
            "--format",
            "xlsx",
            "--merchant",
            "acme",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
