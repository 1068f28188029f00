//! FEE_UNALLOCATED at payout level: the ERP booked a payout's net as sales
//! and the fees it swept reach no journal (`domain::cash_application::
//! payout_fee`). Checked where both sides are known: when the payout is
//! applied (its bridge is final), and again by a `check_payout_fees` job
//! whenever a journal naming an applied payout arrives, which also settles
//! the exception by the rules once a corrected version or a fee journal is in.
//!
//! An ingest of such a journal and the payout's application serialise on the
//! payout's fee lock (the ingest waits, the application only tries), so one
//! of them always sees the other: the application reads the committed
//! journal, or the ingest finds the payout applied and enqueues the check.

use super::{CHECK_PAYOUT_FEES, Work};
use crate::app::reconcile::{from_finding, open_found};
use crate::domain::cash_application::payout_fee::{self, PayoutFees};
use crate::domain::policy::TolerancePolicy;
use crate::domain::record::{Body, Handoff, Record, RefKind};
use crate::error::Result;
use crate::storage::locks::LockKey;
use crate::storage::{Conn, contracts, deposits, jobs, payout_journals};

/// The lock id a payout's fee check and the journals naming it share.
pub(crate) fn lock_id(payout_id: &str) -> String {
    format!("\u{1f}payout-fees\u{1f}{payout_id}")
}

pub(super) fn lock_key(payout_id: &str) -> LockKey {
    LockKey::Ref(lock_id(payout_id))
}

/// The fee lock ids an ingest of `r` takes: one per payout a journal may name.
pub(crate) fn lock_ids(r: &Record) -> Vec<String> {
    payout_fee::named_payouts(r)
        .iter()
        .map(|p| lock_id(p))
        .collect()
}

/// Newly accepted journals: their payout references kept, and a check
/// enqueued for each applied payout they may name.
pub(super) async fn journals_arrived(
    conn: &mut Conn,
    merchant: &str,
    new_records: &[(i64, &Record)],
) -> Result<()> {
    let (mut refs, mut named) = (vec![], vec![]);
    for (record_id, r) in new_records {
        if matches!(r.body, Body::JournalEntry(_)) {
            refs.extend(
                r.ids_of(RefKind::Payout)
                    .map(|p| (p.to_string(), *record_id)),
            );
            named.extend(payout_fee::named_payouts(r));
        }
    }
    if named.is_empty() {
        return Ok(());
    }
    payout_journals::add(conn, merchant, &refs).await?;
    named.sort();
    named.dedup();
    let ready = payout_journals::applied_among(conn, merchant, &named).await?;
    jobs::enqueue(conn, merchant, CHECK_PAYOUT_FEES, &ready).await
}

/// The `check_payout_fees` job: an applied payout checked against the
/// journals naming it now.
pub(super) async fn check_job(conn: &mut Conn, merchant: &str, payout_id: &str) -> Result<Work> {
    let Some(figures) = payout_journals::applied(conn, merchant, payout_id).await? else {
        return Ok(Work::Done(vec![]));
    };
    let Some(payout) = payout_journals::payout_record(conn, merchant, payout_id).await? else {
        return Ok(Work::Done(vec![]));
    };
    let p = PayoutFees {
        payout: &payout,
        gross: figures.gross,
        fees: figures.fees,
        net: figures.net,
    };
    evaluate(conn, merchant, &p).await?;
    Ok(Work::Done(vec![]))
}

/// Raises the exception, or settles it by the rules when the journals
/// naming the payout now allocate its fees (or book its gross).
pub(super) async fn evaluate(conn: &mut Conn, merchant: &str, p: &PayoutFees<'_>) -> Result<()> {
    let tolerance = tolerance(conn, merchant).await?;
    evaluate_all(conn, merchant, std::slice::from_ref(p), &tolerance).await
}

/// The payment-to-cash-application contract's tolerance, which the fee check uses.
pub(super) async fn tolerance(conn: &mut Conn, merchant: &str) -> Result<TolerancePolicy> {
    Ok(contracts::load(conn, merchant, false)
        .await?
        .remove(&Handoff::PaymentToCashApplication)
        .map(|c| c.contract.tolerance)
        .unwrap_or_default())
}

/// [`evaluate`] for several payouts, with the tolerance read already: one
/// read of the journals naming them, one write for those settled.
pub(super) async fn evaluate_all(
    conn: &mut Conn,
    merchant: &str,
    payouts: &[PayoutFees<'_>],
    tolerance: &TolerancePolicy,
) -> Result<()> {
    let settled = check_all(conn, merchant, payouts, tolerance).await?;
    let settled: Vec<&str> = settled.iter().map(String::as_str).collect();
    deposits::resolve_rules_of(conn, merchant, &[payout_fee::RULE], &settled).await
}

/// The payouts' fee checks: raised where unallocated (a person's
/// resolution of the same evidence stands); the ids of those whose fees
/// are allocated, for the caller to settle their exceptions by the rules.
pub(super) async fn check_all(
    conn: &mut Conn,
    merchant: &str,
    payouts: &[PayoutFees<'_>],
    tolerance: &TolerancePolicy,
) -> Result<Vec<String>> {
    let ids: Vec<String> = payouts.iter().map(|p| p.payout.source_id.clone()).collect();
    let mut journals = payout_journals::journals_of(conn, merchant, &ids).await?;
    let (mut found, mut settled) = (vec![], vec![]);
    for p in payouts {
        let payout_id = p.payout.source_id.as_str();
        let named = journals.remove(payout_id).unwrap_or_default();
        let named: Vec<&Record> = named.iter().collect();
        match payout_fee::unallocated(p, &named, tolerance) {
            Some(f) => found.push(from_finding(merchant, None, &f)),
            None => settled.push(payout_id.to_string()),
        }
    }
    if !found.is_empty() {
        open_found(conn, merchant, found).await?;
    }
    Ok(settled)
}
