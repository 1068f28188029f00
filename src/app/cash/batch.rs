//! Running a merchant's due jobs in batches: one transaction, so one commit,
//! for several jobs, each still applied exactly once and never half-applied.
//!
//! The merchant's job signals are folded into jobs first (writers only
//! append them: `storage::jobs::enqueue`). A batch is claimed with one
//! `FOR UPDATE SKIP LOCKED` query. Payout jobs run
//! first: together when several are plain (`group`: one savepoint, one
//! statement per table), else each in its own savepoint (a failure rolls back
//! that job only and is counted against it); a payout takes over the order
//! jobs of its own orders.
//! The order jobs left are planned together and written with one statement
//! per table; if any of them fails or finds an order busy, that savepoint is
//! rolled back and they run one by one, each in its own savepoint, as alone.

use std::collections::{BTreeMap, BTreeSet};

use diesel_async::AsyncConnection;
use tracing::Instrument;

use super::{
    APPLY_DEPOSIT, APPLY_ORDER, APPLY_PAYOUT, CHECK_DEPOSIT, CHECK_PAYOUT, CHECK_PAYOUT_FEES,
    JobOutcome, RetryPolicy, Work, done, group, links, load_orders, lock_orders, plan_error,
    residual, run_claimed, stored_events, write_plan,
};
use crate::app::App;
use crate::domain::cash_application::plan::{OrderFacts, Plan, plan_order};
use crate::error::{Error, Result};
use crate::storage::Conn;
use crate::storage::job_signals;
use crate::storage::jobs::{self, Job};
use crate::storage::locks::{self, LockKey};

/// Held by the merchant's running batch, for its transaction.
fn batch_lock() -> LockKey {
    LockKey::Ref("\u{1f}cash-batch".to_string())
}

impl App {
    /// Claims up to `limit` due jobs of `merchant` and runs them in one
    /// transaction; their outcomes (empty when it has none free, or another
    /// batch of the merchant is running). Jobs taken over by a payout of the
    /// batch have no outcome of their own.
    pub async fn run_jobs(
        &self,
        merchant: &str,
        retry: &RetryPolicy,
        limit: usize,
    ) -> Result<Vec<JobOutcome>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.store.conn().await?;
        fold_signals(&mut conn, merchant).await?;
        conn.transaction(async |conn| {
            // One batch of a merchant at a time. Two would meet at the
            // export counter anyway (each booking takes it to commit), and
            // the one waiting there kept its orders locked meanwhile, so
            // ingest of those orders queued behind both (seen for seconds
            // at 100,000 orders a month, behind a payout of 3,300 orders).
            // A loop that finds the merchant busy goes on to another.
            if !locks::try_lock_all(conn, merchant, &[batch_lock()]).await? {
                return Ok(vec![]);
            }
            // One statement claims the batch. Order jobs no older than a
            // pending payout wait for it: it may take them over. Deadline
            // checks wait for nothing. Fee checks and deposits wait for the
            // payouts made ready before them (a deposit, matched by amount,
            // must see every payout it could be), judged, like the orders',
            // on the queue before this batch's payout ran: those made ready
            // after it, or by this batch's work, are the next batch's. So
            // no claim follows the batch's journal insert, which holds the
            // merchant's export counter to commit.
            let kinds = [
                (APPLY_PAYOUT, group::MAX_PAYOUTS.min(limit), None),
                (APPLY_ORDER, limit, Some(APPLY_PAYOUT)),
                (CHECK_PAYOUT, limit, None),
                (CHECK_PAYOUT_FEES, limit, Some(APPLY_PAYOUT)),
                (APPLY_DEPOSIT, limit, Some(APPLY_PAYOUT)),
                // A payout's deposit deadline waits for the deposits made
                // ready before it: one of them may be its deposit.
                (CHECK_DEPOSIT, limit, Some(APPLY_DEPOSIT)),
            ];
            let claimed = jobs::claim_kinds(conn, merchant, &kinds).await?;
            let (payouts, rest): (Vec<Job>, Vec<Job>) =
                claimed.into_iter().partition(|j| j.kind == APPLY_PAYOUT);
            let (orders, rest): (Vec<Job>, Vec<Job>) =
                rest.into_iter().partition(|j| j.kind == APPLY_ORDER);
            let mut outcomes = Vec::new();
            let mut absorbed = BTreeSet::new();
            let (fresh, retried): (Vec<Job>, Vec<Job>) =
                payouts.into_iter().partition(|j| j.attempts == 0);
            let together = run_together(conn, merchant, &fresh).await?;
            let (applied, took) = together.map_or((0, vec![]), |t| (t.applied, t.absorbed));
            outcomes.extend(fresh[..applied].iter().map(done));
            absorbed.extend(took);
            let alone: Vec<Job> = fresh.into_iter().skip(applied).chain(retried).collect();
            for job in &alone {
                let (outcome, took) = run_claimed(conn, job, retry).await?;
                outcomes.push(outcome);
                absorbed.extend(took);
            }
            let orders: Vec<Job> = orders
                .into_iter()
                .filter(|j| !absorbed.contains(&j.subject_id))
                .collect();
            outcomes.extend(run_orders(conn, merchant, &orders, retry).await?);
            // Deadline and fee checks and deposits (in the kinds' order):
            // few, each on its own.
            for job in &rest {
                outcomes.push(run_claimed(conn, job, retry).await?.0);
            }
            Ok(outcomes)
        })
        .await
    }
}

/// Payout jobs never tried before, the plain ones at their head applied
/// together (`group`); None to run them all one by one (a failure is
/// rolled back and found there, alone).
async fn run_together(
    conn: &mut Conn,
    merchant: &str,
    jobs: &[Job],
) -> Result<Option<group::Together>> {
    if jobs.len() < 2 {
        return Ok(None);
    }
    let ids: Vec<String> = jobs.iter().map(|j| j.subject_id.clone()).collect();
    let start = std::time::Instant::now();
    let span = group_span(merchant, &ids);
    let together = conn
        .transaction(async |conn| group::apply_together(conn, merchant, &ids).await)
        .instrument(span.clone())
        .await;
    let done = match together {
        Ok(Some(done)) => done,
        Ok(None) => return Ok(None),
        Err(e @ (Error::DatabaseUnavailable { .. } | Error::DatabaseInterrupted { .. })) => {
            return Err(e);
        }
        Err(e) => {
            tracing::debug!(merchant, error = %e, "payouts applied one by one after a group failed");
            return Ok(None);
        }
    };
    span.record("tally.outcome", "done");
    span.record("tally.payouts", done.applied);
    let each = start.elapsed() / u32::try_from(done.applied.max(1)).unwrap_or(u32::MAX);
    for _ in 0..done.applied {
        crate::telemetry::metrics::global().job_finished(APPLY_PAYOUT, "done", each);
    }
    Ok(Some(done))
}

/// `tally.cash.apply` for a group: its payouts' ids; linked, like a single
/// job's, to the records it consumes.
fn group_span(merchant: &str, ids: &[String]) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(target: "tally::cash", "cash_apply",
        otel.name = "tally.cash.apply",
        tally.merchant = %merchant,
        tally.job_kind = APPLY_PAYOUT,
        tally.subject_id = %ids.join(","),
        tally.payouts = tracing::field::Empty,
        tally.orders = tracing::field::Empty,
        tally.outcome = tracing::field::Empty)
}

/// Order jobs together when they all go through, else one by one.
async fn run_orders(
    conn: &mut Conn,
    merchant: &str,
    orders: &[Job],
    retry: &RetryPolicy,
) -> Result<Vec<JobOutcome>> {
    if orders.len() > 1 {
        let subjects: Vec<String> = orders.iter().map(|j| j.subject_id.clone()).collect();
        let together = conn
            .transaction(async |conn| apply_orders(conn, merchant, &subjects).await)
            .await;
        match together {
            Ok(Work::Done(_)) => {
                jobs::complete_all(conn, merchant, APPLY_ORDER, &subjects).await?;
                return Ok(orders.iter().map(done).collect());
            }
            Err(e @ (Error::DatabaseUnavailable { .. } | Error::DatabaseInterrupted { .. })) => {
                return Err(e);
            }
            // Rolled back: which job failed, or which order is busy, is
            // found (and recorded against that job alone) one by one.
            Ok(Work::Busy | Work::Later(_)) | Err(_) => {}
        }
    }
    let mut outcomes = Vec::with_capacity(orders.len());
    for job in orders {
        outcomes.push(run_claimed(conn, job, retry).await?.0);
    }
    Ok(outcomes)
}

/// Several order jobs as one: the same plans `apply_order` makes for each
/// (their orders are distinct, so no plan depends on another's writes),
/// written together. Busy if any order is held by another writer.
async fn apply_orders(conn: &mut Conn, merchant: &str, orders: &[String]) -> Result<Work> {
    if !lock_orders(conn, merchant, orders).await? {
        return Ok(Work::Busy);
    }
    let (_, facts) = load_orders(conn, merchant, orders, None, None).await?;
    let mut plan = Plan::default();
    for (order_id, f) in &facts {
        let p = plan_order(merchant, f).map_err(|e| plan_error(order_id, e))?;
        merge(&mut plan, p);
    }
    let links = links(conn, merchant, orders, None).await?;
    write_plan(conn, merchant, &plan, None, &links, &stored_events(&facts)).await?;
    Ok(Work::Done(vec![]))
}

/// The order jobs a payout took over, run before it as they would have run
/// alone: planned together and returned unwritten, but for their late
/// refunds (settled now, as each job would have), for the payout to write
/// with its own, ahead of it (their entries are the orders', not the
/// payout's). Their new events are added to `facts` as a reload would find
/// them, so the payout's plan starts where they left off.
pub(super) async fn catch_up_first(
    conn: &mut Conn,
    merchant: &str,
    absorbed: &[String],
    facts: &mut BTreeMap<String, OrderFacts>,
) -> Result<Plan> {
    let mut plan = Plan::default();
    for order_id in absorbed {
        let Some(f) = facts.get_mut(order_id) else {
            continue;
        };
        let p = plan_order(merchant, f).map_err(|e| plan_error(order_id, e))?;
        f.events.extend(p.events.iter().map(|(_, e)| e.clone()));
        merge(&mut plan, p);
    }
    residual::resolve_late_refunds(conn, merchant, &plan.late_refunds).await?;
    Ok(plan)
}

/// Appends an order plan to the batch's (order plans have no fee shares or residual).
fn merge(into: &mut Plan, p: Plan) {
    into.entries.extend(p.entries);
    into.events.extend(p.events);
    into.applications.extend(p.applications);
    into.invoices.extend(p.invoices);
    into.problems.extend(p.problems);
    into.resolved.extend(p.resolved);
    into.awaiting_memo.extend(p.awaiting_memo);
    into.late_refunds.extend(p.late_refunds);
    into.payout_entries_from = into.entries.len();
    debug_assert!(p.fee_shares.is_empty() && p.residual.is_empty());
}

/// Signals folded per batch: a fold is one short transaction of its own.
const FOLD_LIMIT: i64 = 10_000;

/// The merchant's job signals folded into ready jobs before a claim
/// (`storage::job_signals`). A fold that gave up waiting on a row another
/// transaction is inserting leaves its signals for the next batch: only a
/// database that went away is an error of the batch.
pub(super) async fn fold_signals(conn: &mut Conn, merchant: &str) -> Result<()> {
    if !job_signals::any(conn, merchant).await? {
        return Ok(());
    }
    match job_signals::fold(conn, merchant, FOLD_LIMIT).await {
        Ok(_) => Ok(()),
        Err(e @ (Error::DatabaseUnavailable { .. } | Error::DatabaseInterrupted { .. })) => Err(e),
        Err(e) => {
            tracing::warn!(merchant, error = %e, "job signals not folded this batch");
            Ok(())
        }
    }
}
