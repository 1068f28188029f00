//! One payout's job: what it books is derived from the current versions of
//! its record and of the balance transactions that name it, whatever order
//! they arrived in.
//!
//! - Same facts as booked (its stored basis): nothing to do (exactly once).
//! - Applied, and its facts changed: what it booked is reversed
//!   (`failure::reverse_payout`), then
//! - failed or canceled at the processor: nothing booked, state `failed`,
//!   an exception saying so (and naming the deposit the bank already showed);
//! - paid: applied from the facts as they stand, in the next round, or
//!   waiting while its transactions do not make its amount.

use std::collections::BTreeMap;

use super::failure::{self, Reversal};
use super::tie::{Tied, tied_txns};
use super::{APPLY_ORDER, Work, batch, facts, fees, group, links, load_orders, plan_error};
use super::{raise, stored_events, waiting};
use crate::domain::cash_application::completeness::{Completeness, payout_completeness};
use crate::domain::cash_application::payout_state::{self, BookingAction, PayoutState, is_failed};
use crate::domain::cash_application::plan::{PayoutFacts, Problem, payout_orders, plan_payout};
use crate::domain::money::Money;
use crate::domain::record::{Body, Payout, Record};
use crate::error::{Error, Result};
use crate::storage::ledger;
use crate::storage::payout_facts::{self, Booking, PayoutFactRecords, PayoutRow, StoredPayout};
use crate::storage::{Conn, deposits, jobs, locks};

/// A payout the processor says failed or was canceled: nothing of it is
/// booked, and its money is not where the books would otherwise say.
pub const FAILED_RULE: &str = "cash.payout_failed";
/// A payout whose deposit the bank already showed, and whose facts now
/// disagree with it (it failed, or its amount changed).
pub const DEPOSIT_RULE: &str = "cash.deposited_payout_changed";

/// `at_deadline`: run by the payout's deadline check, so an incomplete payout is overdue.
pub(super) async fn apply_payout(
    conn: &mut Conn,
    merchant: &str,
    payout_id: &str,
    at_deadline: bool,
) -> Result<Work> {
    // Before any write: a journal naming this payout being ingested now is
    // seen once it commits (see `fees`).
    if !locks::try_lock_all(conn, merchant, &[fees::lock_key(payout_id)]).await? {
        return Ok(Work::Busy);
    }
    let stored = payout_facts::stored_payout(conn, merchant, payout_id).await?;
    let recs = payout_facts::payout_records(conn, merchant, payout_id).await?;
    let Some(payout) = recs.payouts.last() else {
        // Its transactions came first; the payout's own arrival enqueues it again.
        return Ok(Work::Done(vec![]));
    };
    let Body::Payout(p) = &payout.body else {
        return Err(Error::corrupt("a payout record", "not a payout"));
    };
    // A transaction that moved here from another payout: until that payout
    // is derived again (its job is due), the money stands booked under it,
    // and applying this one now would book nothing for it, for good. It
    // waits; a parked job does not hold it (its residual is then raised).
    let txn_ids: Vec<&str> = recs.txns.iter().map(|r| r.source_id.as_str()).collect();
    if !payout_facts::moved_from_due(conn, merchant, &txn_ids, payout_id)
        .await?
        .is_empty()
    {
        return Ok(Work::Busy);
    }
    // What each transaction is tied to is a fact too: an order arriving after
    // its charge changes what the payout books.
    let refs: Vec<String> = recs.txns.iter().flat_map(facts::lookup_ids).collect();
    let order_of = ledger::orders_of_refs(conn, merchant, &refs).await?;
    let ties: Vec<Option<String>> = recs.txns.iter().map(|r| facts::tie(r, &order_of)).collect();
    let basis = payout_state::basis(payout, &recs.txns, &ties);
    let job = PayoutJob {
        merchant,
        payout_id,
        payout,
        p,
        recs: &recs,
        order_of: &order_of,
        basis: &basis,
    };
    let state = stored.as_ref().map(|s| s.state);
    if matches!(state, Some(PayoutState::Applied | PayoutState::Failed))
        && stored.as_ref().and_then(|s| s.basis.as_deref()) == Some(basis.as_str())
    {
        // Booked from these very facts already: a late duplicate changes nothing.
        return Ok(Work::Done(vec![]));
    }
    let mut round = stored.as_ref().map_or(0, |s| s.round);
    if state == Some(PayoutState::Applied) {
        let Some(entries) = job.reverse(conn).await? else {
            return Ok(Work::Busy);
        };
        round += 1;
        job.write_reversed(conn, round, entries).await?;
    }
    if is_failed(p.status) {
        job.write_failed(conn, round, stored.as_ref()).await?;
        return Ok(Work::Done(vec![]));
    }
    deposits::resolve_rules(conn, merchant, &[FAILED_RULE], payout_id).await?;
    // A payout reversed to incomplete is judged by its deadline like any
    // other (from its own creation time), so whether it is named does not
    // depend on the order its versions arrived in.
    job.apply(conn, round, state, at_deadline).await
}

/// One payout's job, with the facts it was read with.
struct PayoutJob<'a> {
    merchant: &'a str,
    payout_id: &'a str,
    payout: &'a Record,
    p: &'a Payout,
    recs: &'a PayoutFactRecords,
    /// The order each of its transactions' ids belongs to, read once.
    order_of: &'a BTreeMap<String, String>,
    basis: &'a str,
}

impl PayoutJob<'_> {
    /// The bank sees the money on its arrival date; a deposit is searched for around it.
    fn arrival(&self) -> chrono::NaiveDate {
        self.p
            .arrival_time
            .map_or_else(|| facts::date(self.payout), |t| t.date_naive())
    }

    fn booking(&self, action: BookingAction, entries: usize) -> Booking {
        Booking {
            action,
            cause_record_id: self.recs.newest_record,
            entries,
        }
    }

    /// A row with no money booked: a payout failed, or reversed pending what
    /// comes next in this job.
    fn bare_row(&self, state: PayoutState, round: u32, reason: String) -> PayoutRow<'_> {
        let zero = rust_decimal::Decimal::ZERO;
        PayoutRow {
            payout_id: self.payout_id,
            date: self.arrival(),
            state,
            amount: self.p.amount,
            gross: zero,
            fees: zero,
            net: zero,
            missing: zero,
            residual: zero,
            basis: None,
            round,
            reason,
            booking: None,
        }
    }

    /// Reverses what the payout booked; None when an order is busy.
    async fn reverse(&self, conn: &mut Conn) -> Result<Option<usize>> {
        let merchant = self.merchant;
        let tied = tied_txns(
            conn,
            merchant,
            &self.recs.txns,
            self.order_of,
            Some(self.payout_id),
        )
        .await?;
        let Some(tied) = tied else {
            return Ok(None);
        };
        let what = if is_failed(self.p.status) {
            "failed"
        } else {
            "changed"
        };
        // Each correction names the record version that caused it.
        let why = format!("{what} (per {})", self.recs.cause);
        let reversal = Reversal {
            payout_id: self.payout_id,
            date: facts::date(self.payout),
            txns: &tied.txns,
            why: &why,
            currency: self.p.amount.currency,
        };
        failure::reverse_payout(conn, merchant, &reversal).await
    }

    /// The reversal in the payout's history; its row waits for what follows.
    async fn write_reversed(&self, conn: &mut Conn, round: u32, entries: usize) -> Result<()> {
        let mut row = self.bare_row(
            PayoutState::Waiting,
            round,
            "its facts changed after it was applied".to_string(),
        );
        row.booking = Some(self.booking(BookingAction::Reversed, entries));
        payout_facts::upsert_payout(conn, self.merchant, &row).await
    }

    /// Failed or canceled: nothing booked, and an exception that says so,
    /// naming the deposit the bank already showed for it, if any.
    async fn write_failed(
        &self,
        conn: &mut Conn,
        round: u32,
        stored: Option<&StoredPayout>,
    ) -> Result<()> {
        let status = format!("{:?}", self.p.status).to_lowercase();
        let reason = format!("the processor reports it {status}");
        let mut row = self.bare_row(PayoutState::Failed, round, reason);
        row.basis = Some(self.basis);
        payout_facts::upsert_payout(conn, self.merchant, &row).await?;
        let was = match stored.map(|s| s.state) {
            Some(PayoutState::Applied) => {
                "; what it had applied is reversed and its invoices are open again"
            }
            _ => "",
        };
        let mut problems = vec![Problem {
            rule: FAILED_RULE,
            subject: self.payout_id.to_string(),
            order_id: None,
            summary: format!(
                "payout {} of {} is {status} at the processor: nothing of it is booked{was}",
                self.payout_id, self.p.amount
            ),
        }];
        problems.extend(self.deposit_disagrees(conn, None).await?);
        raise(conn, self.merchant, &problems).await?;
        // A failed payout has nothing to deposit: `cash.payout_failed` says what is wrong.
        deposits::resolve_rules(
            conn,
            self.merchant,
            &[waiting::INCOMPLETE_RULE, super::deposit_due::MISSING_RULE],
            self.payout_id,
        )
        .await
    }

    /// The exception for a deposit the bank showed for this payout that its
    /// facts now disagree with: failed (`booked` None) or booked at another
    /// amount. Resolved when they agree again.
    async fn deposit_disagrees(
        &self,
        conn: &mut Conn,
        booked: Option<Money>,
    ) -> Result<Option<Problem>> {
        let Some(deposit) =
            deposits::deposit_of_payout(conn, self.merchant, self.payout_id).await?
        else {
            return Ok(None);
        };
        let (deposit_id, amount) = deposit;
        let what = match booked {
            Some(net) if net == amount => {
                deposits::resolve_rules(conn, self.merchant, &[DEPOSIT_RULE], self.payout_id)
                    .await?;
                return Ok(None);
            }
            Some(net) => format!("is now booked at {net}"),
            None => "failed: its bank entry is reversed".to_string(),
        };
        Ok(Some(Problem {
            rule: DEPOSIT_RULE,
            subject: self.payout_id.to_string(),
            order_id: None,
            summary: format!(
                "bank deposit {deposit_id} of {amount} was matched to payout {}, which {what}: the bank statement and the ledger disagree by the deposit until someone corrects one of them",
                self.payout_id
            ),
        }))
    }

    /// Applies the payout from the facts as they stand, in `round`.
    async fn apply(
        &self,
        conn: &mut Conn,
        round: u32,
        state: Option<PayoutState>,
        at_deadline: bool,
    ) -> Result<Work> {
        let (merchant, payout_id) = (self.merchant, self.payout_id);
        let tied = tied_txns(conn, merchant, &self.recs.txns, self.order_of, None).await?;
        let Some(tied) = tied else {
            return Ok(Work::Busy);
        };
        let Tied {
            txns,
            plain,
            stored,
            orphan_notes,
        } = tied;
        let completeness = payout_completeness(self.p.amount, &plain)
            .map_err(|e| Error::invalid(format!("payouts/{payout_id}"), e.to_string()))?;
        let bridge = match completeness {
            Completeness::Waiting { bridge, missing } => {
                let mut row = self.bare_row(
                    PayoutState::Waiting,
                    round,
                    format!("its balance transactions are {missing} short of its amount"),
                );
                (row.gross, row.fees, row.net) =
                    (bridge.gross.amount, bridge.fees.amount, bridge.net.amount);
                row.missing = missing.amount;
                payout_facts::upsert_payout(conn, merchant, &row).await?;
                let w = waiting::Waiting {
                    payout_id,
                    created: self.payout.event_time,
                    amount: self.p.amount,
                    bridge: &bridge,
                    missing,
                    txns: plain.len(),
                    at_deadline,
                };
                waiting::check(conn, merchant, &w).await?;
                return Ok(Work::Done(vec![]));
            }
            Completeness::Complete(bridge) => bridge,
        };
        let facts = PayoutFacts {
            merchant_id: merchant.to_string(),
            payout_id: payout_id.to_string(),
            amount: self.p.amount,
            date: facts::date(self.payout),
            deposited: true,
            txns,
            bridge: bridge.clone(),
            orphan_notes,
            round,
        };
        let orders = payout_orders(&facts.txns);
        // Their pending order jobs are taken over and run first, here, as they
        // would have alone: a payout and its orders commit once.
        let absorbed = jobs::absorb(conn, merchant, APPLY_ORDER, &orders).await?;
        let (_, mut order_facts) = load_orders(
            conn,
            merchant,
            &orders,
            Some(self.p.amount.currency),
            Some(stored),
        )
        .await?;
        let numbered = stored_events(&order_facts);
        let early = batch::catch_up_first(conn, merchant, &absorbed, &mut order_facts).await?;
        let mut plan = plan_payout(&facts, &order_facts)
            .map_err(|e| plan_error(&format!("payouts/{payout_id}"), e))?;
        if round > 0 {
            // Only a payout applied before can have been matched to a deposit.
            let deposit = self.deposit_disagrees(conn, Some(self.p.amount)).await?;
            plan.problems.extend(deposit);
        }
        let applied = group::Applied {
            payout: self.payout,
            payout_id,
            amount: self.p.amount,
            date: self.arrival(),
            bridge,
            // Any payout seen before may have been named incomplete (a
            // reversal leaves it incomplete for a moment): settled now.
            was_waiting: state.is_some(),
            plan,
            links: links(conn, merchant, &orders, Some(payout_id)).await?,
            basis: self.basis.to_string(),
            cause_record_id: self.recs.newest_record,
        };
        group::write_applied(conn, merchant, &early, &[applied], &numbered).await?;
        Ok(Work::Done(absorbed))
    }
}
