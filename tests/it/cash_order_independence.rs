//! The ledger is a function of the current facts (issue 18), as a property:
//! for the same set of record versions, the final ledger (balance per
//! account and currency, amount open per invoice, each payout's state, the
//! open exceptions) is the same whatever the arrival order, the batching and
//! the number of workers.
//!
//! Each case is a generated month in small: charges captured at checkout and
//! invoiced at shipment, refunds with their credit memos, a dispute, an EUR
//! order settled in USD, payouts paid / failed / paid again, payout amounts
//! corrected, balance transactions that learn their payout late or move
//! between payouts, deposits before and after their payout. Every version of
//! every record goes through the real ingest path, worker and database, in
//! several shuffled orders and batchings, with one to three workers.
//!
//! The seed is printed; `TALLY_PROPERTY_SEED=<n>` replays one case,
//! `TALLY_PROPERTY_CASES` sets how many run (default 6: the suite stays fast).

use rust_decimal::Decimal;
use tally::app::App;
use tally::app::cash::JobOutcome;
use tally::proto::tally::v1 as pb;

use crate::cash::{bt, capture, drain, eur_sale, fast_retry, inv, worker};
use crate::cash_deposits::deposit;
use crate::cash_scenarios::{credit_memo, payout_version, processor_refund};
use crate::common::*;
use crate::ledger_state::LedgerState;

/// A small deterministic generator (xorshift64*): the seed alone replays a case.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn with_time(mut r: pb::Record, when: &str) -> pb::Record {
    r.source_update_time = ts(when);
    r
}

fn set_payout(mut r: pb::Record, payout: &str) -> pb::Record {
    if let Some(pb::record::Kind::BalanceTransaction(b)) = &mut r.kind {
        b.payout_id = payout.into();
    }
    r
}

/// One generated case: every version of every record, and what a payout's
/// transactions net to in their final versions.
struct Case {
    records: Vec<pb::Record>,
}

const PAYOUTS: [&str; 3] = ["po_a", "po_b", "po_c"];

fn generate(seed: u64) -> Case {
    let mut rng = Rng(seed.max(1));
    let mut records = vec![];
    // (balance transaction without its payout, its net), per final payout.
    let mut txns: Vec<(pb::Record, Decimal, usize)> = vec![];
    let orders = 2 + rng.below(3);
    for i in 0..orders {
        let id = format!("80{i}");
        let total =
            [dec("100.00"), dec("45.50"), dec("19.99"), dec("250.00")][rng.below(4) as usize];
        let fee = (total * dec("0.029") + dec("0.30")).round_dp(2);
        let ch = format!("ch_{id}");
        records.push(order(&id, &total.to_string()));
        records.push(capture(&id, &ch, &total.to_string()));
        records.push(inv(
            &id,
            &format!("INV-{id}"),
            &total.to_string(),
            "2026-11-02T12:00:00Z",
        ));
        let t = bt(
            &format!("txn_{id}"),
            "charge",
            &ch,
            &total.to_string(),
            &fee.to_string(),
            "",
        );
        txns.push((t, total - fee, rng.below(3) as usize));
        if rng.chance(35) {
            let refund = (total / dec("4")).round_dp(2);
            let re = format!("re_{id}");
            records.push(processor_refund(&id, &re, &refund.to_string()));
            records.push(credit_memo(&id, &format!("CM-{id}"), &refund.to_string()));
            let t = bt(
                &format!("txn_r{id}"),
                "refund",
                &re,
                &(-refund).to_string(),
                "0.00",
                "",
            );
            txns.push((t, -refund, rng.below(3) as usize));
        }
    }
    if rng.chance(50) {
        // An EUR order settled in USD at the processor's rate.
        let [o, c, i] = eur_sale("8090");
        records.extend([o, c, i]);
        let mut t = bt("txn_8090", "charge", "ch_8090", "110.00", "3.50", "");
        if let Some(pb::record::Kind::BalanceTransaction(b)) = &mut t.kind {
            b.exchange_rate = "1.1".into();
        }
        txns.push((t, dec("106.50"), rng.below(3) as usize));
    }
    if rng.chance(30) {
        // A lost dispute on the first order's charge, with its fee.
        let mut t = bt("txn_d800", "dispute", "dp_800", "-20.00", "15.00", "");
        t.references = vec![pb::ExternalReference {
            r#type: pb::ReferenceType::Charge as i32,
            id: "ch_800".into(),
        }];
        txns.push((t, dec("-35.00"), rng.below(3) as usize));
    }
    let mut nets = [Decimal::ZERO; 3];
    for (t, net, p) in txns {
        nets[p] += net;
        let final_payout = PAYOUTS[p];
        if rng.chance(25) {
            // Learned late: a first version names no payout.
            records.push(with_time(t.clone(), "2026-11-03T08:00:00Z"));
        } else if rng.chance(20) {
            // Moved: a first version names another payout.
            let other = PAYOUTS[(p + 1 + rng.below(2) as usize) % 3];
            records.push(with_time(
                set_payout(t.clone(), other),
                "2026-11-03T08:00:00Z",
            ));
        }
        records.push(with_time(
            set_payout(t, final_payout),
            "2026-11-03T09:00:00Z",
        ));
    }
    for (p, id) in PAYOUTS.iter().enumerate() {
        if nets[p].is_zero() {
            continue;
        }
        let amount = nets[p].to_string();
        let status = pb::PayoutStatus::Paid;
        let final_failed = rng.chance(15);
        if rng.chance(30) {
            // Paid, failed, then (unless it stays failed) paid again.
            records.push(payout_version(id, &amount, status, "2026-11-04T08:00:00Z"));
            records.push(payout_version(
                id,
                &amount,
                pb::PayoutStatus::Failed,
                "2026-11-04T09:00:00Z",
            ));
        } else if rng.chance(25) {
            // First reported with a wrong amount, then corrected.
            let wrong = (nets[p] + dec("1.00")).to_string();
            records.push(payout_version(id, &wrong, status, "2026-11-04T08:00:00Z"));
        }
        let last = if final_failed {
            pb::PayoutStatus::Failed
        } else {
            status
        };
        records.push(payout_version(id, &amount, last, "2026-11-04T10:00:00Z"));
        if !final_failed && nets[p] > Decimal::ZERO && rng.chance(50) {
            records.push(deposit(&format!("dep_{id}"), &nets[p].to_string(), &[id]));
        }
    }
    Case { records }
}

/// Runs every due job with all the workers at once until nothing is due or
/// about to be (a job postponed because another worker held its order comes
/// back within a second; a payout's deadline check, days away, does not).
async fn settle(t: &TestApp, apps: &[App]) {
    let retry = fast_retry();
    for _ in 0..500 {
        let runs = apps.iter().map(|a| a.run_jobs("acme", &retry, 16));
        let outcomes: Vec<_> = futures::future::join_all(runs)
            .await
            .into_iter()
            .flat_map(|o| o.unwrap())
            .collect();
        if outcomes.is_empty() {
            let soon = t
                .count(
                    "SELECT count(*) FROM jobs WHERE state = 'ready'
                       AND run_after <= now() + interval '1 second'",
                )
                .await;
            if soon == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        }
        if outcomes.iter().all(|o| *o == JobOutcome::Postponed) {
            // An order busy with another worker: its job comes back shortly.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }
    panic!("the queue never empties");
}

/// One arrival: the case's versions shuffled, sent in batches of random
/// size, the workers running between some batches; the final ledger.
async fn run(case: &Case, rng: &mut Rng) -> LedgerState {
    let t = TestApp::start().await;
    let workers = 1 + rng.below(3) as usize;
    let mut apps = vec![];
    for _ in 0..workers {
        apps.push(worker(&t).await);
    }
    let mut records = case.records.clone();
    rng.shuffle(&mut records);
    let mut rest = &records[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(6) as usize).min(rest.len());
        // One record per key in a batch: the versions of a key arrive apart.
        let (batch, later) = rest.split_at(n);
        let mut send: Vec<pb::Record> = vec![];
        let mut held: Vec<pb::Record> = vec![];
        for r in batch {
            if send.iter().any(|s| s.source_id == r.source_id) {
                held.push(r.clone());
            } else {
                send.push(r.clone());
            }
        }
        t.submit(send).await.unwrap();
        if !held.is_empty() {
            t.submit(held).await.unwrap();
        }
        if rng.chance(50) {
            settle(&t, &apps).await;
        }
        rest = later;
    }
    settle(&t, &apps).await;
    drain(&apps[0], "acme").await;
    if std::env::var("TALLY_PROPERTY_DEBUG").is_ok() {
        for r in t.db.client().await.query("SELECT record_id::text || ' ' || source_id || ' ' || outcome || ' ' || is_current::text || ' ' || coalesce(payload->>'source_update_time','') || ' ' || coalesce(payload->'body'->>'status','') || coalesce(payload->'body'->>'payout_id','') FROM record_log WHERE kind IN ('payout','balance_transaction') ORDER BY record_id", &[]).await.unwrap() {
            eprintln!("  {}", r.get::<_, String>(0));
        }
        for r in t.db.client().await.query("SELECT payout_id || ' ' || action || ' ' || round || ' cause ' || cause_record_id FROM payout_bookings ORDER BY payout_id, booking_no", &[]).await.unwrap() {
            eprintln!("  booking {}", r.get::<_, String>(0));
        }
        for r in
            t.db.client()
                .await
                .query(
                    "SELECT rule || ': ' || summary FROM exceptions WHERE rule LIKE 'cash.%'",
                    &[],
                )
                .await
                .unwrap()
        {
            eprintln!("  exception {}", r.get::<_, String>(0));
        }
        for r in t.db.client().await.query("SELECT e.export_seq::text || ' ' || coalesce(e.payout_id,'-') || ' ' || e.memo || ' ' || string_agg(l.account || ':' || l.debit::text || '/' || l.credit::text, ' ') FROM journal_entries e JOIN journal_lines l USING (merchant_id, entry_id) WHERE e.memo LIKE '%80%' GROUP BY e.entry_id, e.export_seq, e.payout_id, e.memo ORDER BY e.export_seq", &[]).await.unwrap() {
            eprintln!("  entry {}", r.get::<_, String>(0));
        }
        for r in t.db.client().await.query("SELECT order_id || ' ' || event_no::text || ' ' || kind || ' ' || ref_id || ' ' || coalesce(target_id,'') || ' ' || amount::text FROM order_cash_events ORDER BY order_id, event_no", &[]).await.unwrap() {
            eprintln!("  event {}", r.get::<_, String>(0));
        }
        eprintln!("---");
    }
    LedgerState::read(&t).await
}

/// The seeds of a property's cases: `TALLY_PROPERTY_SEED` alone, else
/// `TALLY_PROPERTY_CASES` (default `default`) from the clock.
pub(crate) fn seeds(default: u64) -> Vec<u64> {
    let fixed: Option<u64> = std::env::var("TALLY_PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok());
    let cases: u64 = std::env::var("TALLY_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let first = fixed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    (0..if fixed.is_some() { 1 } else { cases })
        .map(|k| first.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect()
}

#[tokio::test]
async fn the_same_facts_give_the_same_ledger_in_any_arrival_order() {
    // Cases that once failed run every time: a charge that moved to a payout
    // applied before the payout it left had taken it back (once booked nowhere).
    const REGRESSIONS: [u64; 1] = [3_459_873_818_658_731_489];
    let mut all = seeds(6);
    if std::env::var("TALLY_PROPERTY_SEED").is_err() {
        all.splice(0..0, REGRESSIONS);
    }
    for seed in all {
        eprintln!("order independence: case seed {seed} (TALLY_PROPERTY_SEED={seed} replays it)");
        let case = generate(seed);
        let mut rng = Rng(seed ^ 0xA5A5_A5A5);
        let reference = run(&case, &mut rng).await;
        for arrival in 1..3 {
            let other = run(&case, &mut rng).await;
            assert_eq!(
                other, reference,
                "seed {seed}: arrival order {arrival} gives another ledger than the first"
            );
        }
        // Nothing lost between the runs: every invoice is there, every payout has a state.
        assert!(!reference.invoices.is_empty(), "seed {seed}");
    }
}
