//! The deposit job: a bank deposit matched to its payout(s), the money booked
//! from clearing to the bank, or an exception naming the amounts.

use super::{Work, facts, raise};
use crate::domain::cash_application::deposit::{
    self, DepositFacts, DepositMatch, PayoutAtBank, match_deposit,
};
use crate::domain::cash_application::payout_state::round_entry;
use crate::domain::ledger::posting::book_payout_deposit;
use crate::domain::record::{Body, RefKind};
use crate::error::{Error, Result};
use crate::storage::{Conn, deposits, ledger, locks};

/// Open payouts read for one search: more than it searches (20), so a crowded
/// window is reported as crowded instead of searched over a cut list.
const CANDIDATE_READ_LIMIT: i64 = 64;

/// How many waiting deposits an applied payout wakes.
const WAKE_LIMIT: i64 = 100;

/// One deposit at a time per merchant: two searching at once could both
/// count on the same open payout.
fn deposit_lock() -> locks::LockKey {
    locks::LockKey::Ref("\u{1f}bank-deposits".to_string())
}

pub(super) async fn apply_deposit(
    conn: &mut Conn,
    merchant: &str,
    deposit_id: &str,
) -> Result<Work> {
    let Some(record) = deposits::deposit_record(conn, merchant, deposit_id).await? else {
        return Ok(Work::Done(vec![]));
    };
    let Body::BankDeposit(b) = &record.body else {
        return Err(Error::corrupt("a deposit record", "not a bank deposit"));
    };
    if !locks::try_lock_all(conn, merchant, &[deposit_lock()]).await? {
        return Ok(Work::Busy);
    }
    // Matched from its current version, as if for the first time: a new
    // version (another amount, other payouts named) is judged afresh.
    // Payouts it no longer brings wait for a deposit again (below).
    let released = deposits::release(conn, merchant, deposit_id).await?;
    let mut named: Vec<String> = record.ids_of(RefKind::Payout).map(str::to_string).collect();
    named.sort();
    named.dedup();
    let d = DepositFacts {
        deposit_id: deposit_id.to_string(),
        amount: b.amount,
        date: facts::date(&record),
        named,
    };
    let (named_rows, open) = if d.named.is_empty() {
        let open = deposits::open_payouts(
            conn,
            merchant,
            d.amount.currency,
            deposit::window(d.date),
            CANDIDATE_READ_LIMIT,
        )
        .await?;
        (vec![], open)
    } else {
        (deposits::payouts(conn, merchant, &d.named).await?, vec![])
    };
    let found = match_deposit(&d, &named_rows, &open)
        .map_err(|e| Error::invalid(format!("deposits/{deposit_id}"), e.to_string()))?;
    match found {
        DepositMatch::Matched(ids) => {
            let rows: Vec<&PayoutAtBank> = named_rows
                .iter()
                .chain(open.iter())
                .filter(|p| ids.contains(&p.payout_id))
                .collect();
            if deposits::mark_deposited(conn, merchant, deposit_id, &ids).await? != ids.len() {
                // One failed or was deposited by another deposit meanwhile:
                // search again from what is now committed.
                return Ok(Work::Busy);
            }
            deposits::upsert_deposit(conn, merchant, &d, Some(&ids)).await?;
            deposits::resolve_rules(conn, merchant, &deposit::RULES, deposit_id).await?;
            let found: Vec<&str> = ids.iter().map(String::as_str).collect();
            deposits::resolve_rules_of(conn, merchant, &[super::deposit_due::MISSING_RULE], &found)
                .await?;
            expect_again(conn, merchant, &released, &ids).await?;
            book(conn, merchant, &d, &rows).await?;
        }
        DepositMatch::Unmatched(problem) => {
            deposits::upsert_deposit(conn, merchant, &d, None).await?;
            // A deposit's problem is one at a time: the one it has now.
            let others: Vec<&str> = deposit::RULES
                .into_iter()
                .filter(|r| *r != problem.rule)
                .collect();
            deposits::resolve_rules(conn, merchant, &others, deposit_id).await?;
            raise(conn, merchant, &[problem]).await?;
            expect_again(conn, merchant, &released, &[]).await?;
        }
    }
    super::deposit_due::recheck_passed(conn, merchant, d.date).await?;
    Ok(Work::Done(vec![]))
}

/// Dr bank / Cr clearing for each payout, unless its application booked it
/// (a paid payout books its deposit when applied; the entry's id is the
/// payout's, so it is never booked twice).
async fn book(
    conn: &mut Conn,
    merchant: &str,
    d: &DepositFacts,
    payouts: &[&PayoutAtBank],
) -> Result<()> {
    let mut entries = Vec::new();
    for p in payouts {
        let entry = book_payout_deposit(merchant, &p.payout_id, d.date, p.net)
            .and_then(|e| e.map(|e| round_entry(merchant, e, p.round)).transpose())
            .map_err(|e| Error::invalid(format!("deposits/{}", d.deposit_id), e.to_string()))?;
        entries.extend(entry.map(|e| (p.payout_id.as_str(), e)));
    }
    let ids: Vec<String> = entries
        .iter()
        .map(|(_, e)| e.external_id().as_str().to_string())
        .collect();
    let booked = deposits::booked(conn, merchant, &ids).await?;
    for (payout_id, e) in entries {
        if !booked.contains(e.external_id().as_str()) {
            ledger::insert_entries(conn, merchant, &[e], Some(payout_id)).await?;
        }
    }
    Ok(())
}

/// The payouts a deposit brought before and no longer brings (not among
/// `kept`) wait for a deposit again, by their deadlines.
async fn expect_again(
    conn: &mut Conn,
    merchant: &str,
    released: &[(String, chrono::NaiveDate)],
    kept: &[String],
) -> Result<()> {
    let untied: Vec<(&str, chrono::NaiveDate)> = released
        .iter()
        .filter(|(id, _)| !kept.contains(id))
        .map(|(id, d)| (id.as_str(), *d))
        .collect();
    super::deposit_due::expect(conn, merchant, &untied).await
}

/// Deposits still looking for their payout, woken when a payout is applied.
pub(super) async fn wake_unmatched(conn: &mut Conn, merchant: &str) -> Result<()> {
    let waiting = deposits::unmatched(conn, merchant, WAKE_LIMIT).await?;
    crate::storage::jobs::enqueue(conn, merchant, super::APPLY_DEPOSIT, &waiting).await
}
