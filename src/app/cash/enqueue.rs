//! What newly accepted records make ready for cash application.

use super::{APPLY_DEPOSIT, APPLY_ORDER, APPLY_PAYOUT};
use crate::domain::record::Body;
use crate::error::Result;
use crate::storage::{Conn, jobs, payout_facts};

/// What an ingest stored, as cash application sees it.
pub(crate) struct Arrivals<'a> {
    /// The records stored (new keys and new versions), with their record ids.
    pub new_records: &'a [(i64, &'a crate::domain::record::Record)],
    /// Balance transactions of which these are new versions.
    pub moved_txns: &'a [&'a str],
    /// Records stored before that gained an order with these (their charge's
    /// order arrived only now).
    pub relinked: &'a [i64],
    /// The orders these records touched (their own and those they link to).
    pub orders: &'a [String],
}

/// Enqueues the cash application these newly accepted records make ready: a
/// payout, or a balance transaction naming one, readies that payout; an
/// invoice or credit memo (or an order with gift card tenders) readies its
/// order, so held cash is applied without waiting for another payout.
/// Kinds are always enqueued in the same order, so concurrent ingests lock
/// job rows in one order. A payout is derived again when what it was booked
/// from changes: a new version of one of its balance transactions (and the
/// payout an earlier version named: a transaction that moved leaves one
/// payout for another), or one of its transactions gaining an order.
pub(crate) async fn enqueue_for(conn: &mut Conn, merchant: &str, a: &Arrivals<'_>) -> Result<()> {
    let new_records = a.new_records;
    let (mut orders, mut payouts, mut deposits) = (vec![], vec![], vec![]);
    for (_, r) in new_records {
        match &r.body {
            Body::Payout(_) => payouts.push(r.source_id.clone()),
            Body::BalanceTransaction(b) => payouts.extend(b.payout_id.clone()),
            Body::BankDeposit(_) => deposits.push(r.source_id.clone()),
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
    if !a.moved_txns.is_empty() {
        payouts.extend(payout_facts::payouts_named_before(conn, merchant, a.moved_txns).await?);
    }
    if !a.relinked.is_empty() {
        payouts.extend(payout_facts::payouts_of_records(conn, merchant, a.relinked).await?);
    }
    jobs::enqueue(conn, merchant, APPLY_ORDER, &orders).await?;
    jobs::enqueue(conn, merchant, APPLY_PAYOUT, &payouts).await?;
    jobs::enqueue(conn, merchant, APPLY_DEPOSIT, &deposits).await?;
    // A payout parked on its orders' facts (a currency unknown until the
    // storefront order arrives) is tried again when they change.
    jobs::wake_parked_payouts_of(conn, merchant, APPLY_PAYOUT, a.orders).await?;
    // Last, in the same order every time: an applied payout a journal names.
    super::fees::journals_arrived(conn, merchant, new_records).await
}
