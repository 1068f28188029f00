//! Where a payout stands, and the facts its bookings were derived from.
//!
//! The ledger is a function of the current facts: a payout's bookings (its
//! applications, fee sweep and deposit entry) follow from the current version
//! of its record and of each balance transaction naming it. The worker stores
//! the [`basis`] of what it booked; a job that finds another basis derives
//! the payout again: what it booked is reversed and what the facts call for
//! now is booked, keyed with the next [`round`](round_id) so nothing collides
//! with the round it replaces.

use sha2::{Digest, Sha256};

use crate::domain::ledger::{ExternalId, LedgerEntry, LedgerError};
use crate::domain::record::{Body, PayoutStatus, Record};

/// A payout's state, stored in one place (`storage`) and mapped to the API in
/// one place (`api::convert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayoutState {
    /// Its balance transactions do not account for its amount yet.
    Waiting,
    /// Applied and booked from the facts as they stand.
    Applied,
    /// Its job failed too often; an exception says why.
    Parked,
    /// The processor says it failed or was canceled: nothing of it is booked
    /// (what it had booked is reversed) and an exception says so.
    Failed,
}

impl PayoutState {
    pub const ALL: [PayoutState; 4] = [
        PayoutState::Waiting,
        PayoutState::Applied,
        PayoutState::Parked,
        PayoutState::Failed,
    ];

    pub fn key(self) -> &'static str {
        match self {
            PayoutState::Waiting => "waiting",
            PayoutState::Applied => "applied",
            PayoutState::Parked => "parked",
            PayoutState::Failed => "failed",
        }
    }

    pub fn from_key(key: &str) -> Option<PayoutState> {
        PayoutState::ALL.into_iter().find(|s| s.key() == key)
    }
}

/// What a booking of a payout did, as its history shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction {
    /// Applied for the first time.
    Applied,
    /// What it had booked was reversed (it failed, or its facts changed).
    Reversed,
    /// Applied again from facts that changed since it was last booked.
    Reapplied,
}

impl BookingAction {
    pub fn key(self) -> &'static str {
        match self {
            BookingAction::Applied => "applied",
            BookingAction::Reversed => "reversed",
            BookingAction::Reapplied => "reapplied",
        }
    }

    pub fn from_key(key: &str) -> Option<BookingAction> {
        [
            BookingAction::Applied,
            BookingAction::Reversed,
            BookingAction::Reapplied,
        ]
        .into_iter()
        .find(|a| a.key() == key)
    }
}

/// Whether the processor says the payout's money never reached the bank.
pub fn is_failed(status: PayoutStatus) -> bool {
    matches!(status, PayoutStatus::Failed | PayoutStatus::Canceled)
}

/// The facts a payout's bookings depend on, as one digest: its amount, whether
/// it failed, its arrival date, and each balance transaction's money and the
/// order it is tied to (`ties`, one per transaction: an order that arrives
/// after its charge changes what the payout books), in id order, so the order
/// they were received in does not matter. Descriptions and times that change
/// nothing booked are left out, so a new version that changes only them books
/// nothing.
pub fn basis(payout: &Record, txns: &[Record], ties: &[Option<String>]) -> String {
    assert_eq!(txns.len(), ties.len(), "one tie per balance transaction");
    let mut h = Sha256::new();
    if let Body::Payout(p) = &payout.body {
        let arrival = p.arrival_time.map(|t| t.date_naive().to_string());
        h.update(format!(
            "payout|{}|{}|{}|{}\n",
            payout.source_id,
            p.amount,
            is_failed(p.status),
            arrival.unwrap_or_default()
        ));
    }
    let mut lines: Vec<String> = txns
        .iter()
        .zip(ties)
        .filter_map(|(r, tie)| match &r.body {
            Body::BalanceTransaction(b) => Some(format!(
                "txn|{}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{}\n",
                r.source_id,
                tie.as_deref().unwrap_or(""),
                r.references,
                r.event_time.date_naive(),
                b.reporting_category,
                b.amount,
                b.fee,
                b.net,
                b.exchange_rate,
                b.source.as_deref().unwrap_or(""),
            )),
            _ => None,
        })
        .collect();
    lines.sort();
    for l in lines {
        h.update(l);
    }
    hex::encode(h.finalize())
}

/// The id a re-application (round > 0) gives a payment, refund or reversal it
/// books again: the order's cash keeps each round's events apart, and the
/// entries keyed by them never collide with the round they replace. Round 0
/// keeps the processor's own id.
pub fn round_id(id: &str, round: u32) -> String {
    if round == 0 {
        id.to_string()
    } else {
        format!("{id}@r{round}")
    }
}

/// The processor's own id of a payment or refund booked in some round (the
/// inverse of [`round_id`]): what the processor's records are looked up by.
pub fn processor_id(id: &str) -> &str {
    match id.rsplit_once("@r") {
        Some((base, round)) if !round.is_empty() && round.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => id,
    }
}

/// A payout's entry as its `round` keys it: round 0 keeps the entry's own id,
/// later rounds an id derived from it and the round (the fee sweep and the
/// deposit are keyed by the payout, so a re-application would collide).
pub fn round_entry(
    merchant: &str,
    entry: LedgerEntry,
    round: u32,
) -> Result<LedgerEntry, LedgerError> {
    if round == 0 {
        return Ok(entry);
    }
    let id = ExternalId::derive(
        merchant,
        "payout-round",
        &[entry.external_id().as_str(), &round.to_string()],
    );
    entry.with_external_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_keys() {
        for s in PayoutState::ALL {
            assert_eq!(PayoutState::from_key(s.key()), Some(s));
        }
        assert_eq!(PayoutState::from_key("reversed"), None);
    }

    #[test]
    fn round_zero_keeps_the_processor_id() {
        assert_eq!(round_id("ch_1", 0), "ch_1");
        assert_eq!(round_id("ch_1", 2), "ch_1@r2");
        assert_eq!(processor_id("ch_1@r2"), "ch_1");
        assert_eq!(processor_id("ch_1"), "ch_1");
        assert_eq!(processor_id("a@rb"), "a@rb");
    }
}
