//! A payout applied whose money the bank never showed. Cash application books
//! a paid payout's bank entry from the payout itself, so without this check a
//! deposit that never arrives (money lost between processor and bank, a
//! payout to a closed account) would leave the books saying the money is in
//! the bank with nothing to say otherwise.
//!
//! Applying a payout schedules a `check_deposit` job at its deadline
//! (`deposit::deposit_deadline`: the end of its arrival date plus the
//! payment-to-cash-application contract's lag). At the deadline the job
//! raises LATE_HANDOFF `cash.deposit_missing` unless a deposit was matched to
//! it, provided the bank feed shows deposits dated on or after the payout's
//! date (a merchant that sends no bank feed is told nothing; one whose feed
//! lags is checked again when a later deposit arrives). A deposit matched
//! later, or the payout failing, settles the exception by the rules.

use chrono::{NaiveDate, Utc};

use super::{CHECK_DEPOSIT, Work, raise};
use crate::domain::cash_application::deposit::deposit_deadline;
use crate::domain::cash_application::plan::Problem;
use crate::domain::record::Handoff;
use crate::error::Result;
use crate::storage::{Conn, contracts, deposits, jobs};

/// The exception for an applied payout no deposit was matched to by its deadline.
pub const MISSING_RULE: &str = "cash.deposit_missing";

/// The payment-to-cash-application contract's lag for this merchant.
async fn lag(conn: &mut Conn, merchant: &str) -> Result<chrono::Duration> {
    Ok(contracts::load(conn, merchant, false)
        .await?
        .remove(&Handoff::PaymentToCashApplication)
        .map(|c| c.contract.max_lag)
        .unwrap_or_else(|| chrono::Duration::days(7)))
}

/// Schedules the deposit check of these payouts (id, arrival date), just
/// applied or just untied from a deposit, unless one is scheduled already
/// (it looks at the payout's deadline itself when it runs, so its time
/// need not change). Inserted if absent, never updated: a deposit's job
/// scheduling hundreds of checks must not wait for, or lock, a check row
/// another worker has claimed (that is how the first version deadlocked).
pub(super) async fn expect(
    conn: &mut Conn,
    merchant: &str,
    payouts: &[(&str, NaiveDate)],
) -> Result<()> {
    if payouts.is_empty() {
        return Ok(());
    }
    let lag = lag(conn, merchant).await?;
    let due: Vec<(&str, chrono::DateTime<Utc>)> = payouts
        .iter()
        .map(|(id, date)| (*id, deposit_deadline(*date, lag)))
        .collect();
    jobs::schedule_if_absent(conn, merchant, CHECK_DEPOSIT, &due).await
}

/// [`expect`] for payouts just applied, those the bank feed has passed
/// only: the rest are checked when a deposit dated after them arrives
/// ([`recheck_passed`]), so a merchant without a bank feed has no checks queued.
pub(super) async fn expect_applied(
    conn: &mut Conn,
    merchant: &str,
    payouts: &[(&str, NaiveDate)],
) -> Result<()> {
    let mut fed = Vec::with_capacity(payouts.len());
    for (id, date) in payouts {
        if deposits::feed_reaches(conn, merchant, *date).await? {
            fed.push((*id, *date));
        }
    }
    expect(conn, merchant, &fed).await
}

/// The `check_deposit` job.
pub(super) async fn check_job(conn: &mut Conn, merchant: &str, payout_id: &str) -> Result<Work> {
    let Some(p) = deposits::payouts(conn, merchant, &[payout_id.to_string()])
        .await?
        .pop()
    else {
        return Ok(Work::Done(vec![]));
    };
    if !p.applied || p.deposit_id.is_some() || p.net.amount <= rust_decimal::Decimal::ZERO {
        // Deposited; failed (`cash.payout_failed` says so); or nothing to
        // deposit (a payout of refunds and fees debits the bank instead).
        deposits::resolve_rules(conn, merchant, &[MISSING_RULE], payout_id).await?;
        return Ok(Work::Done(vec![]));
    }
    let due = deposit_deadline(p.date, lag(conn, merchant).await?);
    if Utc::now() < due {
        return Ok(Work::Later(due));
    }
    // A deposit waiting to be matched may be this payout's (records of a
    // month imported at once arrive in any order): it goes first.
    if jobs::any_ready(conn, merchant, super::APPLY_DEPOSIT).await? {
        return Ok(Work::Busy);
    }
    // Without a bank feed past this date there is no evidence either way; a
    // deposit arriving later checks this payout again (`recheck_passed`).
    if !deposits::feed_reaches(conn, merchant, p.date).await? {
        return Ok(Work::Done(vec![]));
    }
    // A deposit the bank showed that matched nothing may be this payout's:
    // its exception names the amounts, and one problem is raised, not two.
    if deposits::unmatched_near(conn, merchant, payout_id, p.date).await? {
        return Ok(Work::Done(vec![]));
    }
    let problem = Problem {
        rule: MISSING_RULE,
        subject: payout_id.to_string(),
        order_id: None,
        summary: format!(
            "payout {payout_id} of {} (arriving {}) was applied, but no bank deposit was matched to it by {}",
            p.net,
            p.date,
            due.to_rfc3339()
        ),
    };
    raise(conn, merchant, &[problem]).await?;
    Ok(Work::Done(vec![]))
}

/// How many undeposited payouts one deposit wakes for their check.
const RECHECK_LIMIT: i64 = 500;

/// A deposit dated `date` shows the feed has passed the payouts dated up to
/// it: those still without a deposit are checked again (each at its
/// deadline, so none is judged early).
pub(super) async fn recheck_passed(conn: &mut Conn, merchant: &str, date: NaiveDate) -> Result<()> {
    let open = deposits::undeposited_until(conn, merchant, date, RECHECK_LIMIT).await?;
    let open: Vec<(&str, NaiveDate)> = open.iter().map(|(id, d)| (id.as_str(), *d)).collect();
    expect(conn, merchant, &open).await
}
