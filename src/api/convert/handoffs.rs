//! Handoff contracts and exception workflow values <-> proto.

use rust_decimal::Decimal;

use super::timestamp;
use crate::api::names::exception_name;
use crate::domain::currency::Currency;
use crate::domain::handoff::contract_id;
use crate::domain::handoff::settings::{MAX_TOLERANCE_UNITS, is_tolerance};
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::storage::contracts::StoredContract;
use crate::storage::exception_events::EventRow;
use crate::storage::exceptions::ExceptionState;

pub fn contract_name(merchant: &str, c: &StoredContract) -> String {
    format!(
        "merchants/{merchant}/handoffContracts/{}",
        contract_id(c.contract.handoff)
    )
}

pub fn contract(merchant: &str, s: &StoredContract) -> pb::HandoffContract {
    let c = &s.contract;
    pb::HandoffContract {
        name: contract_name(merchant, s),
        handoff: pb::Handoff::from(c.handoff) as i32,
        sending_system: c.sending_system.clone(),
        receiving_system: c.receiving_system.clone(),
        required_fields: c.required_fields.clone(),
        validations: c.validations.clone(),
        max_lag: Some(prost_types::Duration {
            seconds: c.max_lag.num_seconds(),
            nanos: 0,
        }),
        owner: c.owner.clone(),
        alert_webhook_uri: c.alert_webhook_uri.clone(),
        tolerances: c
            .tolerance
            .per_currency
            .iter()
            .map(|(cur, d)| pb::CurrencyTolerance {
                currency_code: cur.code().to_string(),
                amount: d.normalize().to_string(),
            })
            .collect(),
        etag: s.version.to_string(),
        update_time: s.update_time.map(timestamp),
        fx_rate_tolerance: c.fx_rate_tolerance.normalize().to_string(),
    }
}

/// A request's tolerances, each checked and named by its index.
pub fn tolerances(
    list: &[pb::CurrencyTolerance],
) -> Result<std::collections::BTreeMap<Currency, Decimal>> {
    let mut out = std::collections::BTreeMap::new();
    for (i, t) in list.iter().enumerate() {
        let field = format!("handoff_contract.tolerances[{i}]");
        let currency =
            Currency::from_code(&t.currency_code.to_ascii_uppercase()).ok_or_else(|| {
                Error::invalid(format!("{field}.currency_code"), "not an ISO 4217 code")
            })?;
        let amount: Decimal = t
            .amount
            .parse()
            .ok()
            .filter(|d: &Decimal| is_tolerance(*d))
            .ok_or_else(|| {
                Error::invalid(
                    format!("{field}.amount"),
                    format!(
                        "expected a decimal from 0 to {MAX_TOLERANCE_UNITS} (major units of \
                         the currency) such as \"0.01\""
                    ),
                )
            })?;
        if out.insert(currency, amount).is_some() {
            return Err(Error::invalid(
                format!("{field}.currency_code"),
                "a currency given twice",
            ));
        }
    }
    Ok(out)
}

fn action(a: &str) -> pb::ExceptionAction {
    match a {
        "opened" => pb::ExceptionAction::Opened,
        "reopened" => pb::ExceptionAction::Reopened,
        "acknowledged" => pb::ExceptionAction::Acknowledged,
        "assigned" => pb::ExceptionAction::Assigned,
        "resolved" => pb::ExceptionAction::Resolved,
        _ => pb::ExceptionAction::Unspecified,
    }
}

pub fn event(merchant: &str, e: &EventRow) -> pb::ExceptionEvent {
    pb::ExceptionEvent {
        sequence: e.sequence,
        exception: exception_name(merchant, &e.exception_id),
        action: action(&e.action) as i32,
        actor: e.actor.clone(),
        state: ExceptionState::parse(&e.state)
            .map(|s| pb::ExceptionState::from(s) as i32)
            .unwrap_or_default(),
        owner: e.owner.clone().unwrap_or_default(),
        note: e.note.clone().unwrap_or_default(),
        event_time: Some(timestamp(e.event_time)),
    }
}
