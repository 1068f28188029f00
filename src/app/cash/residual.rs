//! A refund booked late (its credit memo arrived after the payout that paid it out): the
//! payout's clearing residual shrinks by what the refund entry took off clearing, and the
//! payout's `ledger.clearing_residual` exception is resolved by the rules once it is zero
//! (reworded with the amount still left otherwise).

use rust_decimal::Decimal;

use super::raise;
use crate::domain::cash_application::payout_state;
use crate::domain::cash_application::plan::{Problem, RESIDUAL_RULE, residual_summary};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::error::{Error, Result};
use crate::storage::{Conn, deposits, payouts};

pub(super) async fn resolve_late_refunds(
    conn: &mut Conn,
    merchant: &str,
    late: &[(String, Vec<Money>)],
) -> Result<()> {
    for (refund_id, effect) in late {
        let processor_id = payout_state::processor_id(refund_id);
        let Some(open) = payouts::residual_of_refund(conn, merchant, processor_id).await? else {
            continue;
        };
        let currency = Currency::from_code(&open.currency_code)
            .ok_or_else(|| Error::corrupt("a payout's currency", open.currency_code.clone()))?;
        let moved = effect
            .iter()
            .find(|m| m.currency == currency)
            .map_or(Decimal::ZERO, |m| m.amount);
        let left = open
            .residual
            .checked_add(moved)
            .ok_or_else(|| Error::corrupt("a payout's residual", "overflow"))?;
        payouts::set_residual(conn, merchant, &open.payout_id, left).await?;
        if left.is_zero() {
            deposits::resolve_rules(conn, merchant, &[RESIDUAL_RULE], &open.payout_id).await?;
        } else {
            let residual = [Money::new(left, currency)];
            let problem = Problem {
                rule: RESIDUAL_RULE,
                subject: open.payout_id.clone(),
                order_id: None,
                summary: residual_summary(&open.payout_id, &residual, &[]),
            };
            raise(conn, merchant, &[problem]).await?;
        }
    }
    Ok(())
}
