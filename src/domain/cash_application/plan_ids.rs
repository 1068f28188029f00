//! Which id processor money stands under in an order's cash. Money a payout
//! booked and then took back (its `payout-failed:` reversal) is retired; when
//! booked again it takes the next free id (`ch_1`, `ch_1@r1`...), so the
//! order's cash keeps both and the entries keyed by them never collide.

use super::{CashEvent, EventKind};
use crate::domain::cash_application::payout_state::round_id;

/// Whether processor money booked under `id` was taken back with its payout (a payout
/// derived again books it under a fresh id): a payment or refund reversed by a
/// `payout-failed:` reversal, or a partial-capture reversal of such a payment.
pub(super) fn retired(events: &[CashEvent], kind: EventKind, id: &str) -> bool {
    let taken_back = |undo: EventKind, target: &str| {
        events.iter().any(|e| {
            e.kind == undo
                && e.ref_id.starts_with(PAYOUT_REVERSAL_PREFIX)
                && e.target_id.as_deref() == Some(target)
        })
    };
    match kind {
        EventKind::Payment => taken_back(EventKind::Reversal, id),
        EventKind::Refund => taken_back(EventKind::RefundReversal, id),
        EventKind::Reversal => events
            .iter()
            .filter(|e| e.kind == EventKind::Reversal && e.ref_id == id)
            .filter_map(|e| e.target_id.as_deref())
            .any(|target| taken_back(EventKind::Reversal, target)),
        _ => false,
    }
}

/// The id processor money the processor calls `base` stands under in an order's
/// events: the newest of `base`, `base@r1`... that is not retired.
pub fn live_id(events: &[CashEvent], kind: EventKind, base: &str) -> Option<String> {
    let known = |id: &str| events.iter().any(|e| e.kind == kind && e.ref_id == id);
    (0..)
        .map(|round| round_id(base, round))
        .take_while(|id| known(id))
        .filter(|id| !retired(events, kind, id))
        .last()
}

/// How the events that take money back with its payout are named.
pub const PAYOUT_REVERSAL_PREFIX: &str = "payout-failed:";
