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
mod deposit;
mod deposit_due;
mod enqueue;
mod facts;
mod failure;
mod fees;
mod group;
mod payout;
mod residual;
mod spans;
mod tie;
mod waiting;

pub(crate) use enqueue::{Arrivals, enqueue_for};
pub(crate) use facts::balance_txn;
pub(crate) use fees::lock_ids as fee_lock_ids;
use spans::{journal_span, links};

use std::collections::BTreeMap;
use std::time::Duration;

use diesel_async::AsyncConnection;
use tracing::Instrument;

use super::App;
use super::reconcile::exception_id;
use crate::domain::cash_application::payout_state;
use crate::domain::cash_application::plan::{OrderFacts, Plan, Problem, plan_order};
use crate::domain::matching::ExceptionType;
use crate::domain::record::Handoff;
use crate::error::{Error, Result};
use crate::storage::jobs::{self, Job};
use crate::storage::ledger;
use crate::storage::locks::{self, LockKey};
use crate::storage::{Conn, deposits, exceptions, payout_facts};

/// Cash application's job kinds (the queue is generic: alerts have theirs).
/// Each has a handler in `run_job`, which matches on every one of them, so a
/// kind without a handler does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CashJob {
    /// A payout (or a balance transaction naming it) arrived or changed.
    ApplyPayout,
    /// A waiting payout's deadline: applied if complete by then, else an exception.
    CheckPayout,
    /// An invoice, credit memo or liability tender of an order arrived.
    ApplyOrder,
    /// A bank deposit arrived (or a payout it may be waiting for was applied).
    ApplyDeposit,
    /// An applied payout checked again against the journals naming it (fees unallocated).
    CheckPayoutFees,
    /// An applied payout's deadline for its bank deposit (`deposit_due`).
    CheckDeposit,
}

impl CashJob {
    pub const ALL: [CashJob; 6] = [
        CashJob::ApplyPayout,
        CashJob::CheckPayout,
        CashJob::ApplyOrder,
        CashJob::ApplyDeposit,
        CashJob::CheckPayoutFees,
        CashJob::CheckDeposit,
    ];

    /// The kind as stored in the queue.
    pub const fn key(self) -> &'static str {
        match self {
            CashJob::ApplyPayout => "apply_payout",
            CashJob::CheckPayout => "check_payout",
            CashJob::ApplyOrder => "apply_order",
            CashJob::ApplyDeposit => "apply_deposit",
            CashJob::CheckPayoutFees => "check_payout_fees",
            CashJob::CheckDeposit => "check_deposit",
        }
    }

    pub fn from_key(key: &str) -> Option<CashJob> {
        CashJob::ALL.into_iter().find(|k| k.key() == key)
    }
}

pub const APPLY_PAYOUT: &str = CashJob::ApplyPayout.key();
pub const APPLY_ORDER: &str = CashJob::ApplyOrder.key();
pub const APPLY_DEPOSIT: &str = CashJob::ApplyDeposit.key();
pub const CHECK_PAYOUT: &str = CashJob::CheckPayout.key();
pub const CHECK_PAYOUT_FEES: &str = CashJob::CheckPayoutFees.key();
pub const CHECK_DEPOSIT: &str = CashJob::CheckDeposit.key();

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
    /// Nothing to do before this time: the job runs again then.
    Later(chrono::DateTime<chrono::Utc>),
}

impl App {
    /// Claims and runs one due job of `merchant`; None when it has none free.
    pub async fn run_one_job(
        &self,
        merchant: &str,
        retry: &RetryPolicy,
    ) -> Result<Option<JobOutcome>> {
        let mut conn = self.store.conn().await?;
        batch::fold_signals(&mut conn, merchant).await?;
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
            if job.attempts > 0 || job.failed_before {
                // It failed before (perhaps parked): what the exception said
                // no longer holds.
                let subject = parked_subject(job);
                deposits::resolve_rules(conn, &job.merchant_id, &[PARKED_RULE], &subject).await?;
            }
            (done(job), absorbed)
        }
        Ok(Work::Busy) => {
            jobs::postpone(conn, job, 100).await?;
            (JobOutcome::Postponed, vec![])
        }
        Ok(Work::Later(at)) => {
            let wait = (at - chrono::Utc::now()).num_milliseconds().max(0);
            jobs::postpone(conn, job, wait).await?;
            (JobOutcome::Postponed, vec![])
        }
        // Nothing can be recorded without the database, nor is an
        // interruption (a cancel, a shutdown, resources run out) the job's
        // fault: the claim is freed by the rollback and the job runs again.
        Err(e @ (Error::DatabaseUnavailable { .. } | Error::DatabaseInterrupted { .. })) => {
            return Err(e);
        }
        Err(e) => (failed(conn, job, &e, retry).await?, vec![]),
    })
}

/// What a parked payout's transactions bring (gross, fees, net), as its
/// bridge shows them; None when they do not add up in its currency.
async fn parked_figures(
    conn: &mut Conn,
    merchant: &str,
    payout_id: &str,
) -> Result<Option<payout_facts::Figures>> {
    let recs = payout_facts::payout_records(conn, merchant, payout_id).await?;
    let Some(crate::domain::record::Body::Payout(p)) = recs.payouts.last().map(|r| &r.body) else {
        return Ok(None);
    };
    let txns: Vec<_> = recs
        .txns
        .iter()
        .filter_map(|r| Some(balance_txn(r)?.0))
        .collect();
    let bridge = crate::domain::cash_application::completeness::bridge(p.amount.currency, &txns);
    Ok(bridge.ok().map(|b| payout_facts::Figures {
        gross: b.gross.amount,
        fees: b.fees.amount,
        net: b.net.amount,
    }))
}

/// A job that failed too often, parked for a person.
const PARKED_RULE: &str = "cash.job_parked";

fn parked_subject(job: &Job) -> String {
    format!("{}/{}", job.kind, job.subject_id)
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
            let figures = parked_figures(conn, &job.merchant_id, &job.subject_id).await?;
            payout_facts::park_payout(conn, &job.merchant_id, &job.subject_id, figures).await?;
        }
        let problem = Problem {
            rule: PARKED_RULE,
            subject: parked_subject(job),
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

/// One job inside its span (`tally.cash.apply`), which links to the
/// stored spans of the records it consumes (see [`links`]).
async fn run_job(conn: &mut Conn, job: &Job) -> Result<Work> {
    let span = if crate::telemetry::enabled() {
        tracing::info_span!(target: "tally::cash", "cash_apply",
            otel.name = "tally.cash.apply",
            tally.merchant = %job.merchant_id,
            tally.job_kind = %job.kind,
            tally.subject_id = %job.subject_id,
            tally.attempt = job.attempts + 1,
            tally.orders = tracing::field::Empty,
            tally.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty)
    } else {
        tracing::Span::none()
    };
    let start = std::time::Instant::now();
    let work = async {
        let (merchant, subject) = (job.merchant_id.as_str(), job.subject_id.as_str());
        let Some(kind) = CashJob::from_key(&job.kind) else {
            return Err(Error::Internal(format!(
                "no handler for job kind {}",
                job.kind
            )));
        };
        match kind {
            CashJob::ApplyPayout => payout::apply_payout(conn, merchant, subject, false).await,
            CashJob::CheckPayout => payout::apply_payout(conn, merchant, subject, true).await,
            CashJob::ApplyOrder => apply_order(conn, merchant, subject).await,
            CashJob::ApplyDeposit => deposit::apply_deposit(conn, merchant, subject).await,
            CashJob::CheckPayoutFees => fees::check_job(conn, merchant, subject).await,
            CashJob::CheckDeposit => deposit_due::check_job(conn, merchant, subject).await,
        }
    }
    .instrument(span.clone())
    .await;
    let outcome = match &work {
        Ok(Work::Done(_)) => "done",
        Ok(Work::Busy) => "busy",
        Ok(Work::Later(_)) => "later",
        Err(_) => {
            span.record("otel.status_code", "error");
            "failed"
        }
    };
    span.record("tally.outcome", outcome);
    crate::telemetry::metrics::global().job_finished(&job.kind, outcome, start.elapsed());
    work
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
        None => facts::order_records(conn, merchant, orders, false).await?,
    };
    let mut events = ledger::load_events(conn, merchant, orders).await?;
    // Refunds a newly arrived credit memo may book late need their processor conversion.
    let awaiting: Vec<String> = orders
        .iter()
        .flat_map(|o| {
            let recs = records.get(o).map(Vec::as_slice).unwrap_or(&[]);
            facts::refunds_awaiting_memo(recs, events.get(o).map(Vec::as_slice).unwrap_or(&[]))
        })
        .map(|id| payout_state::processor_id(&id).to_string())
        .collect();
    let settlements: BTreeMap<String, _> = if awaiting.is_empty() {
        BTreeMap::new()
    } else {
        crate::storage::payouts::refund_txns(conn, merchant, &awaiting)
            .await?
            .iter()
            .filter_map(facts::refund_settlement)
            .collect()
    };
    let mut out = BTreeMap::new();
    for o in orders {
        let recs = records.get(o).map(Vec::as_slice).unwrap_or(&[]);
        let evs = events.remove(o).unwrap_or_default();
        let mine = evs
            .iter()
            .filter_map(|e| {
                let settlement = settlements.get(payout_state::processor_id(&e.ref_id))?;
                Some((e.ref_id.clone(), *settlement))
            })
            .collect();
        if let Some(f) = facts::order_facts(o, recs, evs, fallback, mine) {
            out.insert(o.clone(), f);
        }
    }
    Ok((records, out))
}

/// How many cash events each order had when its facts were read (under its
/// lock): where its new events are numbered from.
fn stored_events(facts: &BTreeMap<String, OrderFacts>) -> BTreeMap<String, usize> {
    facts
        .iter()
        .map(|(o, f)| (o.clone(), f.events.len()))
        .collect()
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
    let stored = links(conn, merchant, &orders, None).await?;
    write_plan(conn, merchant, &plan, None, &stored, &stored_events(&facts)).await?;
    Ok(Work::Done(vec![]))
}

fn plan_error(subject: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(subject.to_string(), e.to_string())
}

/// Writes a plan; the journal entries last (they take the merchant's export
/// counter, which orders commits), in a `tally.journal.write` span linked,
/// like its job's, to the records they book.
async fn write_plan(
    conn: &mut Conn,
    merchant: &str,
    plan: &Plan,
    payout_id: Option<&str>,
    links: &[(String, String)],
    numbered: &BTreeMap<String, usize>,
) -> Result<()> {
    write_records(conn, merchant, &[(plan, payout_id)], numbered).await?;
    // The database's balance trigger runs with this statement, inside the
    // job's savepoint, so an unbalanced entry fails (and counts against) the job.
    let (orders_own, payouts_own) = plan
        .entries
        .split_at(payout_entries_from(plan, payout_id.is_some()));
    let groups = [(orders_own, None), (payouts_own, payout_id)];
    ledger::insert_entry_groups(conn, merchant, &groups)
        .instrument(journal_span(merchant, payout_id, plan.entries.len(), links))
        .await?;
    residual::resolve_late_refunds(conn, merchant, &plan.late_refunds).await
}

/// Where a plan's own entries end and its payout's begin: the orders' own
/// entries (caught up on the way) belong to no payout, so a failure of the
/// payout mirrors only what the payout itself booked.
fn payout_entries_from(plan: &Plan, for_payout: bool) -> usize {
    if for_payout {
        plan.payout_entries_from.min(plan.entries.len())
    } else {
        plan.entries.len()
    }
}

/// Plans' events, invoices, applications and exceptions: all but their
/// entries, each plan with the payout it belongs to (or none). One statement
/// per table for all; exceptions plan by plan, in order, as a later plan may
/// raise again what an earlier one settled.
async fn write_records(
    conn: &mut Conn,
    merchant: &str,
    plans: &[(&Plan, Option<&str>)],
    numbered: &BTreeMap<String, usize>,
) -> Result<()> {
    let events: Vec<_> = plans.iter().map(|(p, _)| &p.events[..]).collect();
    ledger::insert_events(conn, merchant, &events, numbered).await?;
    let booked: Vec<_> = plans.iter().map(|(p, _)| &p.invoices[..]).collect();
    let applied: Vec<_> = plans
        .iter()
        .map(|(p, payout)| (&p.applications[..], *payout))
        .collect();
    ledger::record_invoices(conn, merchant, &booked, &applied).await?;
    raise_and_resolve(conn, merchant, plans).await
}

/// The plans' exceptions, plan by plan, in order (a later plan may raise
/// again what an earlier one settled): raised, and resolved by the rules.
async fn raise_and_resolve(
    conn: &mut Conn,
    merchant: &str,
    plans: &[(&Plan, Option<&str>)],
) -> Result<()> {
    for (plan, _) in plans {
        raise(conn, merchant, &plan.problems).await?;
        for (rule, subject) in &plan.resolved {
            crate::storage::deposits::resolve_rules(conn, merchant, &[rule], subject).await?;
        }
    }
    Ok(())
}

/// Raises what a cash job found as exceptions. A person's resolution of the
/// same evidence stands (`respect_people`: the job planning an order again
/// finds its problems again), while new evidence (another amount) is an
/// exception of its own; each one opened, new or reopened by the rules, is
/// counted.
async fn raise(conn: &mut Conn, merchant: &str, problems: &[Problem]) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let found = problems.iter().map(|p| exception(merchant, p)).collect();
    super::reconcile::open_found(conn, merchant, found).await?;
    Ok(())
}

fn exception(merchant: &str, p: &Problem) -> exceptions::NewException {
    let exception_type = match p.rule {
        "ledger.clearing_residual" | "cash.deposit_amount_mismatch" | "cash.overpayment" => {
            ExceptionType::AmountMismatch
        }
        waiting::INCOMPLETE_RULE | deposit_due::MISSING_RULE => ExceptionType::LateHandoff,
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
        // The evidence a person's resolution is judged against: the summary
        // names every amount and id the problem was found on.
        details: serde_json::json!({ "evidence": p.summary }),
    }
}
