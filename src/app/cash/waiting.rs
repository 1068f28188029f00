//! A payout whose balance transactions do not yet account for its amount waits; past the
//! payment-to-cash-application contract's lag (from the payout's own time) it is an
//! exception naming what is missing. The deadline is a `check_payout` job due then, which
//! runs the payout again: applied if complete by then, else the exception is raised.
//! Applying the payout later settles the exception by the rules.

use chrono::{DateTime, Utc};

use super::{CHECK_PAYOUT, raise};
use crate::domain::cash_application::completeness::PayoutBridge;
use crate::domain::cash_application::plan::Problem;
use crate::domain::money::Money;
use crate::domain::record::Handoff;
use crate::error::Result;
use crate::storage::{Conn, contracts, jobs};

/// The exception for a payout still incomplete past its lag.
pub const INCOMPLETE_RULE: &str = "cash.payout_incomplete";

pub(super) struct Waiting<'a> {
    pub payout_id: &'a str,
    pub created: DateTime<Utc>,
    pub amount: Money,
    pub bridge: &'a PayoutBridge,
    pub missing: Money,
    pub txns: usize,
    /// The queue ran this at the deadline (the check job): the lag has passed.
    pub at_deadline: bool,
}

pub(super) async fn check(conn: &mut Conn, merchant: &str, w: &Waiting<'_>) -> Result<()> {
    let contract = contracts::load(conn, merchant, false).await?;
    let lag = contract
        .get(&Handoff::PaymentToCashApplication)
        .map(|c| c.contract.max_lag)
        .unwrap_or_else(|| chrono::Duration::days(7));
    let deadline = w
        .created
        .checked_add_signed(lag)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if !w.at_deadline && Utc::now() < deadline {
        return jobs::schedule(conn, merchant, CHECK_PAYOUT, w.payout_id, deadline).await;
    }
    let problem = Problem {
        rule: INCOMPLETE_RULE,
        subject: w.payout_id.to_string(),
        order_id: None,
        summary: format!(
            "payout {} of {} is still incomplete past its {}-hour lag (due {}): its {} balance transactions net {}; {} is missing",
            w.payout_id,
            w.amount,
            lag.num_hours(),
            deadline.to_rfc3339(),
            w.txns,
            w.bridge.net,
            w.missing
        ),
    };
    raise(conn, merchant, &[problem]).await?;
    Ok(())
}
