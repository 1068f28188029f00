//! Cash application jobs: one payout (or one order whose invoice arrived for
//! held cash) applied per database transaction, exactly once.
//!
//! Per job: claim it (`FOR UPDATE SKIP LOCKED`, filtered by merchant), then in
//! a savepoint: load facts -> plan with the pure `domain::cash_application` and
//! `domain::ledger` -> write applications, journals (checked by the
//! database's balance trigger), state and fee shares; the job row is deleted in the same
//! transaction. A failure rolls the savepoint back and counts an attempt on
//! the job (back-off, then parked with an exception); a crash rolls the whole
//! transaction back and frees the claim.

mod batch;
mod facts;

pub(crate) use facts::balance_txn;

use std::collections::BTreeMap;
use std::time::Duration;

use diesel_async::AsyncConnection;

use super::App;
use super::reconcile::exception_id;
use crate::domain::cash_application::completeness::{Completeness, payout_completeness};
use crate::domain::cash_application::plan::{
    OrderFacts, PayoutFacts, Plan, Problem, payout_orders, plan_order, plan_payout,
};
use crate::domain::matching::ExceptionType;
use crate::domain::record::{Body, Handoff, PayoutStatus};
use crate::error::{Error, Result};
use crate::storage::jobs::{self, Job};
use crate::storage::ledger::{self, PayoutRow};
use crate::storage::locks::{self, LockKey};
use crate::storage::{Conn, exceptions, record_log};

/// Job kinds (the queue is generic; these are cash application's).
pub const APPLY_PAYOUT: &str = "apply_payout";
pub const APPLY_ORDER: &str = "apply_order";

/// How failing jobs are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Failures after which a job is parked for a person.
    pub max_attempts: i32,
    /// Delay after the first failure; doubled after each, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// Back-off before the next try, after `attempts` failures so far.
    pub fn delay(&self, attempts: i32) -> Duration {
        let factor = 1u32 << attempts.clamp(0, 20);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What running one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done {
        kind: String,
        subject: String,
    },
    /// Its orders were busy with another writer: tried again shortly.
    Postponed,
    Failed {
        parked: bool,
        error: String,
    },
}

enum Work {
    /// With the subjects of the order jobs it took over (a payout's orders).
    Done(Vec<String>),
    Busy,
}

impl App {
    /// Claims and runs one due job of `merchant`; None when it has none free.
    pub async fn run_one_job(
        &self,
        merchant: &str,
        retry: &RetryPolicy,
    ) -> Result<Option<JobOutcome>> {
        let mut conn = self.store.conn().await?;
        conn.transaction(async |conn| {
            let Some(job) = jobs::claim(conn, merchant).await? else {
                return Ok(None);
            };
            Ok(Some(run_claimed(conn, &job, retry).await?.0))
        })
        .await
    }
}

/// Runs a claimed job in its own savepoint and records what came of it: a
/// failure rolls back this job's work only. Returns the outcome and the order
/// jobs its work took over.
async fn run_claimed(
    conn: &mut Conn,
    job: &Job,
    retry: &RetryPolicy,
) -> Result<(JobOutcome, Vec<String>)> {
    let work = conn
        .transaction(async |conn| run_job(conn, job).await)
        .await;
    Ok(match work {
        Ok(Work::Done(absorbed)) => {
            jobs::complete(conn, job).await?;
            (done(job), absorbed)
        }
        Ok(Work::Busy) => {
            jobs::postpone(conn, job, 100).await?;
            (JobOutcome::Postponed, vec![])
        }
        // Nothing can be recorded without the database: the claim is
        // freed by the rollback and the job runs again.
        Err(e @ Error::DatabaseUnavailable { .. }) => return Err(e),
        Err(e) => (failed(conn, job, &e, retry).await?, vec![]),
    })
}

fn done(job: &Job) -> JobOutcome {
    JobOutcome::Done {
        kind: job.kind.clone(),
        subject: job.subject_id.clone(),
    }
}

async fn failed(conn: &mut Conn, job: &Job, e: &Error, retry: &RetryPolicy) -> Result<JobOutcome> {
    let error = e.to_string();
    let delay = i64::try_from(retry.delay(job.attempts).as_millis()).unwrap_or(i64::MAX);
    let parked = jobs::fail(conn, job, &error, delay, retry.max_attempts).await?;
    tracing::warn!(merchant = %job.merchant_id, kind = %job.kind, subject = %job.subject_id,
        attempts = job.attempts + 1, parked, %error, "cash application job failed");
    if parked {
        if job.kind == APPLY_PAYOUT {
            ledger::park_payout(conn, &job.merchant_id, &job.subject_id).await?;
        }
        let problem = Problem {
            rule: "cash.job_parked",
            subject: format!("{}/{}", job.kind, job.subject_id),
            order_id: (job.kind == APPLY_ORDER).then(|| job.subject_id.clone()),
            summary: format!(
                "{} {} failed {} times and is parked: {error}",
                job.kind,
                job.subject_id,
                job.attempts + 1
            ),
        };
        exceptions::upsert(
            conn,
            &job.merchant_id,
            &[exception(&job.merchant_id, &problem)],
        )
        .await?;
    }
    Ok(JobOutcome::Failed { parked, error })
}

async fn run_job(conn: &mut Conn, job: &Job) -> Result<Work> {
    match job.kind.as_str() {
        APPLY_PAYOUT => apply_payout(conn, &job.merchant_id, &job.subject_id).await,
        APPLY_ORDER => apply_order(conn, &job.merchant_id, &job.subject_id).await,
        other => Err(Error::Internal(format!("no handler for job kind {other}"))),
    }
}

/// Waits never: a worker that waited for an order held by an ingest (which
/// may in turn wait for this job's row) could deadlock. Busy orders postpone.
async fn lock_orders(conn: &mut Conn, merchant: &str, orders: &[String]) -> Result<bool> {
    let keys: Vec<LockKey> = orders.iter().cloned().map(LockKey::Order).collect();
    locks::try_lock_all(conn, merchant, &keys).await
}

type StoredByOrder = BTreeMap<String, Vec<crate::domain::transaction::StoredRecord>>;

/// The orders' facts; their records are read unless the caller has them already.
async fn load_orders(
    conn: &mut Conn,
    merchant: &str,
    orders: &[String],
    fallback: Option<crate::domain::currency::Currency>,
    loaded: Option<StoredByOrder>,
) -> Result<(StoredByOrder, BTreeMap<String, OrderFacts>)> {
    let records = match loaded {
        Some(r) => r,
        None => record_log::load_records(conn, merchant, orders).await?,
    };
    let mut events = ledger::load_events(conn, merchant, orders).await?;
    let mut out = BTreeMap::new();
    for o in orders {
        let recs = records.get(o).map(Vec::as_slice).unwrap_or(&[]);
        let evs = events.remove(o).unwrap_or_default();
        if let Some(f) = facts::order_facts(o, recs, evs, fallback) {
            out.insert(o.clone(), f);
        }
    }
    Ok((records, out))
}

async fn apply_order(conn: &mut Conn, merchant: &str, order_id: &str) -> Result<Work> {
    let orders = vec![order_id.to_string()];
    if !lock_orders(conn, merchant, &orders).await? {
        return Ok(Work::Busy);
    }
    let (_, facts) = load_orders(conn, merchant, &orders, None, None).await?;
    let Some(f) = facts.get(order_id) else {
        return Ok(Work::Done(vec![]));
    };
    let plan = plan_order(merchant, f).map_err(|e| plan_error(order_id, e))?;
    write_plan(conn, merchant, &plan, None).await?;
    Ok(Work::Done(vec![]))
}

fn plan_error(subject: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(subject.to_string(), e.to_string())
}

async fn apply_payout(conn: &mut Conn, merchant: &str, payout_id: &str) -> Result<Work> {
    if matches!(
        ledger::payout_state(conn, merchant, payout_id)
            .await?
            .as_deref(),
        Some("applied" | "reversed")
    ) {
        // Applied already (exactly once): a late duplicate arrival changes nothing.
        return Ok(Work::Done(vec![]));
    }
    let (payouts, txn_records) = ledger::payout_records(conn, merchant, payout_id).await?;
    let Some(payout) = payouts.first() else {
        // Its transactions came first; the payout's own arrival enqueues it again.
        return Ok(Work::Done(vec![]));
    };
    let Body::Payout(p) = &payout.body else {
        return Err(Error::corrupt("a payout record", "not a payout"));
    };
    let refs: Vec<String> = txn_records.iter().flat_map(facts::lookup_ids).collect();
    let order_of = ledger::orders_of_refs(conn, merchant, &refs).await?;
    let candidate_orders: Vec<String> = {
        let mut v: Vec<String> = order_of.values().cloned().collect();
        v.extend(txn_records.iter().filter_map(|r| r.order_id.clone()));
        v.sort();
        v.dedup();
        v
    };
    if !lock_orders(conn, merchant, &candidate_orders).await? {
        return Ok(Work::Busy);
    }
    let stored = record_log::load_records(conn, merchant, &candidate_orders).await?;
    let (txns, plain) = facts::payout_txns(&txn_records, &order_of, &stored)?;
    let completeness = payout_completeness(p.amount, &plain)
        .map_err(|e| Error::invalid(format!("payouts/{payout_id}"), e.to_string()))?;
    let bridge = match completeness {
        Completeness::Waiting { bridge, missing } => {
            let row = PayoutRow {
                payout_id,
                state: "waiting",
                amount: p.amount,
                gross: bridge.gross.amount,
                fees: bridge.fees.amount,
                net: bridge.net.amount,
                missing: missing.amount,
                residual: rust_decimal::Decimal::ZERO,
            };
            ledger::upsert_payout(conn, merchant, &row).await?;
            return Ok(Work::Done(vec![]));
        }
        Completeness::Complete(bridge) => bridge,
    };
    let facts = PayoutFacts {
        merchant_id: merchant.to_string(),
        payout_id: payout_id.to_string(),
        amount: p.amount,
        date: facts::date(payout),
        deposited: !matches!(p.status, PayoutStatus::Failed | PayoutStatus::Canceled),
        txns,
        bridge: bridge.clone(),
    };
    let orders = payout_orders(&facts.txns);
    // Their pending order jobs are taken over and run first, here, as they
    // would have alone: a payout and its orders commit once.
    let absorbed = jobs::absorb(conn, merchant, APPLY_ORDER, &orders).await?;
    let (_, mut order_facts) = load_orders(
        conn,
        merchant,
        &orders,
        Some(p.amount.currency),
        Some(stored),
    )
    .await?;
    let early = batch::catch_up_first(conn, merchant, &absorbed, &mut order_facts).await?;
    let plan = plan_payout(&facts, &order_facts)
        .map_err(|e| plan_error(&format!("payouts/{payout_id}"), e))?;
    let residual = plan
        .residual
        .iter()
        .find(|m| m.currency == p.amount.currency)
        .map_or(rust_decimal::Decimal::ZERO, |m| m.amount);
    let row = PayoutRow {
        payout_id,
        state: "applied",
        amount: p.amount,
        gross: bridge.gross.amount,
        fees: bridge.fees.amount,
        net: bridge.net.amount,
        missing: rust_decimal::Decimal::ZERO,
        residual,
    };
    ledger::upsert_payout(conn, merchant, &row).await?;
    ledger::insert_fee_shares(conn, merchant, payout_id, &plan.fee_shares).await?;
    write_records(conn, merchant, &plan, Some(payout_id)).await?;
    // The orders' entries first, as if their jobs had committed before; one
    // statement, so the export counter is taken once, last.
    let groups = [(&early[..], None), (&plan.entries[..], Some(payout_id))];
    ledger::insert_entry_groups(conn, merchant, &groups).await?;
    Ok(Work::Done(absorbed))
}

/// Writes a plan; the journal entries last (they take the merchant's export
/// counter, which orders commits).
async fn write_plan(
    conn: &mut Conn,
    merchant: &str,
    plan: &Plan,
    payout_id: Option<&str>,
) -> Result<()> {
    write_records(conn, merchant, plan, payout_id).await?;
    // The database's balance trigger runs with this statement, inside the
    // job's savepoint, so an unbalanced entry fails (and counts against) the job.
    ledger::insert_entries(conn, merchant, &plan.entries, payout_id).await
}

/// A plan's events, invoices, applications and exceptions: all but its entries.
async fn write_records(
    conn: &mut Conn,
    merchant: &str,
    plan: &Plan,
    payout_id: Option<&str>,
) -> Result<()> {
    ledger::insert_events(conn, merchant, &plan.events).await?;
    ledger::record_invoices(
        conn,
        merchant,
        &plan.invoices,
        &plan.applications,
        payout_id,
    )
    .await?;
    let found: Vec<_> = plan
        .problems
        .iter()
        .map(|p| exception(merchant, p))
        .collect();
    exceptions::upsert(conn, merchant, &found).await?;
    Ok(())
}

/// Enqueues the cash application these newly accepted records make ready: a
/// payout, or a balance transaction naming one, readies that payout; an
/// invoice or credit memo (or an order with gift card tenders) readies its
/// order, so held cash is applied without waiting for another payout.
/// Kinds are always enqueued in the same order, so concurrent ingests lock
/// job rows in one order.
pub(crate) async fn enqueue_for(
    conn: &mut Conn,
    merchant: &str,
    new_records: &[(i64, &crate::domain::record::Record)],
) -> Result<()> {
    let (mut orders, mut payouts) = (vec![], vec![]);
    for (_, r) in new_records {
        match &r.body {
            Body::Payout(_) => payouts.push(r.source_id.clone()),
            Body::BalanceTransaction(b) => payouts.extend(b.payout_id.clone()),
            Body::Invoice(_) | Body::CreditMemo(_) => orders.extend(r.order_id.clone()),
            Body::StorefrontOrder(o)
                if o.tenders.iter().any(|t| {
                    matches!(
                        t.tender_type,
                        crate::domain::record::TenderType::GiftCard
                            | crate::domain::record::TenderType::StoreCredit
                    )
                }) =>
            {
                orders.extend(r.order_id.clone())
            }
            _ => {}
        }
    }
    jobs::enqueue(conn, merchant, APPLY_ORDER, &orders).await?;
    jobs::enqueue(conn, merchant, APPLY_PAYOUT, &payouts).await
}

fn exception(merchant: &str, p: &Problem) -> exceptions::NewException {
    let exception_type = match p.rule {
        "cash.refund_without_credit_memo" => ExceptionType::NotPropagated,
        "ledger.clearing_residual" => ExceptionType::AmountMismatch,
        _ => ExceptionType::ValidationFailed,
    };
    exceptions::NewException {
        id: exception_id(merchant, &[p.rule, &p.subject]),
        order_id: p.order_id.clone(),
        exception_type,
        handoff: Handoff::PaymentToCashApplication,
        rule: p.rule.to_string(),
        subject: p.subject.clone(),
        summary: p.summary.clone(),
        details: serde_json::json!({}),
    }
}
