//! `tally simulate` against a running Tally (the server and its cash
//! worker over a real PostgreSQL): a clean month raises nothing and leaves
//! clearing at zero; a month with every fault kind mixed is scored against
//! its ground truth: every detectable kind found on exactly the orders (or
//! payouts) it hit and nothing else raised, the absorbed kinds leave their
//! orders as a clean month would, and clearing holds exactly what the
//! faults left on it.

use std::time::Duration;

use tally::app::App;
use tally::app::worker::{self, WorkerConfig};
use tally::cli::simulate::{Api, Outcome, Run, service};
use tally::sim::faults::{Expect, FaultKind};
use tally::sim::{self, Config};
use tally::storage::Store;

use crate::common::TestApp;

/// Generates, streams to a server with its cash worker (as `tally serve`
/// runs them), and scores.
async fn simulate(orders: u64, seed: u64, rates: Vec<(FaultKind, f64)>) -> Outcome {
    let app = TestApp::start().await;
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let config = WorkerConfig {
        idle_poll: Duration::from_millis(100),
        ..WorkerConfig::default()
    };
    tokio::spawn(worker::run(
        App::new(Store::connect(&app.db.url, 4).unwrap()),
        config,
        rx,
    ));
    let month = sim::generate(&Config {
        orders,
        seed,
        rates,
    })
    .unwrap();
    let api = Api {
        channel: app.channel.clone(),
        merchant: "sim".into(),
        key: None,
    };
    let run = Run {
        lag: 2,
        wait: 120,
        chunk: 500,
        score: true,
    };
    service(&api, month, &run).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_clean_month_raises_nothing_and_clears_to_zero() {
    let out = simulate(300, 7, vec![]).await;
    let table = out.score.table("clean");
    assert!(out.score.unexplained.is_empty(), "{table}");
    assert!(
        out.score
            .rows
            .iter()
            .all(|r| r.injected == 0 && r.claimed == 0),
        "{table}"
    );
    assert!(out.clearing_ok(), "{}", out.render_clearing());
    assert!(out.expected_clearing.is_zero());
}

#[tokio::test]
async fn every_fault_kind_mixed_is_found_where_planted_and_nowhere_else() {
    let rates = FaultKind::ALL
        .iter()
        .map(|k| (*k, if k.per_payout() { 0.1 } else { 0.02 }))
        .collect();
    let out = simulate(1_000, 23, rates).await;
    let table = out.score.table("mixed");
    println!("{table}");
    assert!(out.score.unexplained.is_empty(), "{table}");
    assert!(out.score.failed_checks.is_empty(), "{table}");
    for r in &out.score.rows {
        match r.kind.expect() {
            Expect::Raised { .. } | Expect::Absorbed { .. } => {
                assert!(r.injected > 0, "{:?} never planted:\n{table}", r.kind);
                assert!(r.perfect(), "{:?}:\n{table}", r.kind);
            }
            // The service has a rule for every kind and sees all the data.
            Expect::NoRule { .. } | Expect::NotDetectable { .. } => {
                panic!("{:?} is not scored by the service:\n{table}", r.kind)
            }
        }
    }
    assert!(!out.expected_clearing.is_zero());
    assert!(out.clearing_ok(), "{}", out.render_clearing());
}

fn tally_simulate(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run tally simulate")
}

/// `--out` writes the ground truth (and the exports, audited with `--audit`), the same for the same seed; a fault
/// kind the simulator does not know is refused, naming the known ones.
#[test]
fn the_binary_writes_the_same_truth_for_a_seed_and_refuses_unknown_kinds() {
    let dir = std::env::temp_dir().join(format!("tally-sim-{}", std::process::id()));
    let read = |sub: &str| {
        let d = dir.join(sub);
        let out = tally_simulate(&[
            "--orders",
            "200",
            "--seed",
            "3",
            "--fault-rate",
            "0.2",
            "--out",
            d.to_str().unwrap(),
            "--audit",
        ]);
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The exports were audited in process and scored: every kind the
        // files show perfect (exit 0), the others listed with why.
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.contains("tally audit on the exports"), "{table}");
        assert!(
            table.contains("not detectable offline: there is no bank file"),
            "{table}"
        );
        std::fs::read_to_string(d.join("truth.csv")).unwrap()
    };
    let (a, b) = (read("a"), read("b"));
    assert_eq!(a, b);
    assert!(a.starts_with("fault,order_id,payouts\n"), "{a}");
    assert!(a.lines().count() > 10, "{a}");
    assert!(a.contains("refund_not_propagated,"), "{a}");
    let _ = std::fs::remove_dir_all(&dir);

    let bad = tally_simulate(&["--faults", "ghost_fault=0.1", "--out", "/nonexistent"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown kind 'ghost_fault'") && err.contains("refund_not_propagated"),
        "{err}"
    );
}
