//! HandoffService: a merchant's handoff contracts.

use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::handoffs::{contract, tolerances};
use crate::api::names::parse_child;
use crate::api::pagination::ListScope;
use crate::api::validate::fields::{self, ETAG_MAX, OWNER_MAX};
use crate::api::validate::text::shown;
use crate::app::App;
use crate::app::handoffs::ContractChange;
use crate::domain::handoff::settings::is_webhook_uri;
use crate::domain::handoff::{contract_id, parse_contract_id};
use crate::domain::record::Handoff;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::handoff_service_server::HandoffService;
use crate::storage::page;

/// Short names (systems), and the fields' and checks' descriptions.
const NAME_MAX: usize = 63;
const PROSE_MAX: usize = 1024;
/// A webhook URI (`is_webhook_uri` says the same).
const WEBHOOK_MAX: usize = 2048;

/// The longest lag a contract may set: a year.
const MAX_LAG_SECONDS: i64 = 366 * 24 * 3600;

#[derive(Clone)]
pub struct HandoffApi {
    app: App,
}

impl HandoffApi {
    pub fn new(app: App) -> Self {
        HandoffApi { app }
    }
}

/// Splits "merchants/{m}/handoffContracts/{id}".
fn parse_name(field: &str, name: &str) -> Result<(String, Handoff)> {
    let (merchant, id) = parse_child(field, name, "handoffContracts")?;
    let handoff = parse_contract_id(&id).ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "{} is not a handoff contract name: expected \
                 merchants/{{merchant}}/handoffContracts/{{id}} with id one of order-to-fulfillment, \
                 fulfillment-to-invoice, invoice-to-payment, payment-to-cash-application, \
                 reconciliation-to-reporting",
                shown(name)
            ),
        )
    })?;
    Ok((merchant, handoff))
}

/// Every string of a contract sent for an update, masked or not (output
/// only fields included): the text check of every request string.
fn check_text(c: &pb::HandoffContract) -> Result<()> {
    let p = "handoff_contract";
    fields::id(&format!("{p}.sending_system"), &c.sending_system, NAME_MAX)?;
    fields::id(
        &format!("{p}.receiving_system"),
        &c.receiving_system,
        NAME_MAX,
    )?;
    for (i, f) in c.required_fields.iter().enumerate() {
        fields::prose(&format!("{p}.required_fields[{i}]"), f, PROSE_MAX)?;
    }
    for (i, v) in c.validations.iter().enumerate() {
        fields::prose(&format!("{p}.validations[{i}]"), v, PROSE_MAX)?;
    }
    fields::id(&format!("{p}.owner"), &c.owner, OWNER_MAX)?;
    fields::id(
        &format!("{p}.alert_webhook_uri"),
        &c.alert_webhook_uri,
        WEBHOOK_MAX,
    )?;
    for (i, t) in c.tolerances.iter().enumerate() {
        fields::id(
            &format!("{p}.tolerances[{i}].currency_code"),
            &t.currency_code,
            3,
        )?;
        fields::id(&format!("{p}.tolerances[{i}].amount"), &t.amount, 64)?;
    }
    fields::id(&format!("{p}.etag"), &c.etag, ETAG_MAX)?;
    fields::id(&format!("{p}.fx_rate_tolerance"), &c.fx_rate_tolerance, 64)?;
    Ok(())
}

/// The change an update asks for: only the masked fields, each checked.
fn change(
    c: &pb::HandoffContract,
    mask: Option<&prost_types::FieldMask>,
) -> Result<ContractChange> {
    const ALL: [&str; 4] = ["max_lag", "owner", "alert_webhook_uri", "tolerances"];
    let paths: Vec<&str> = match mask {
        Some(m) if !m.paths.is_empty() && m.paths != ["*"] => {
            m.paths.iter().map(String::as_str).collect()
        }
        // Without a mask, an empty rate tolerance (a client that predates
        // it) leaves it as it is.
        _ if c.fx_rate_tolerance.is_empty() => ALL.to_vec(),
        _ => ALL.into_iter().chain(["fx_rate_tolerance"]).collect(),
    };
    let mut out = ContractChange::default();
    for (i, p) in paths.into_iter().enumerate() {
        match p {
            "max_lag" => {
                let d = c.max_lag.as_ref().ok_or_else(|| {
                    Error::invalid("handoff_contract.max_lag", "required by the update mask")
                })?;
                if d.nanos != 0 || d.seconds <= 0 || d.seconds > MAX_LAG_SECONDS {
                    return Err(Error::invalid(
                        "handoff_contract.max_lag",
                        "expected whole seconds, more than 0 and at most a year",
                    ));
                }
                out.max_lag_seconds = Some(d.seconds);
            }
            "owner" => {
                fields::required_id("handoff_contract.owner", &c.owner, OWNER_MAX)?;
                out.owner = Some(c.owner.clone());
            }
            "alert_webhook_uri" => {
                if !is_webhook_uri(&c.alert_webhook_uri) {
                    return Err(Error::invalid(
                        "handoff_contract.alert_webhook_uri",
                        "expected an http:// or https:// URI with a host, or empty for none",
                    ));
                }
                out.alert_webhook_uri = Some(c.alert_webhook_uri.clone());
            }
            "tolerances" => out.tolerances = Some(tolerances(&c.tolerances)?),
            "fx_rate_tolerance" => {
                let f = c
                    .fx_rate_tolerance
                    .trim()
                    .parse::<rust_decimal::Decimal>()
                    .ok()
                    .filter(|d| !d.is_sign_negative() && *d < rust_decimal::Decimal::ONE)
                    .ok_or_else(|| {
                        Error::invalid(
                            "handoff_contract.fx_rate_tolerance",
                            "expected a decimal fraction from 0 to below 1, such as \"0.005\"",
                        )
                    })?;
                out.fx_rate_tolerance = Some(f);
            }
            other => {
                return Err(Error::invalid(
                    format!("update_mask.paths[{i}]"),
                    format!(
                        "{} cannot be updated: expected max_lag, owner, alert_webhook_uri, tolerances or fx_rate_tolerance",
                        shown(other)
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl HandoffService for HandoffApi {
    async fn list_handoff_contracts(
        &self,
        request: Request<pb::ListHandoffContractsRequest>,
    ) -> Result<Response<pb::ListHandoffContractsResponse>, Status> {
        let scope = ListScope::of(&request)?;
        // No filter: the token is bound to the list and the merchant, and
        // holds the contract id the page ends on.
        let page_start = scope.resume::<String>(&())?;
        let after = page_start
            .after
            .as_deref()
            .map(|id| {
                parse_contract_id(id).ok_or_else(|| {
                    Error::invalid(
                        "page_token",
                        "malformed page token; start again without one",
                    )
                })
            })
            .transpose()?;
        // In handoff order, after the token's.
        let all: Vec<_> = self
            .app
            .list_handoff_contracts(&scope.merchant)
            .await?
            .into_iter()
            .filter(|c| after.is_none_or(|a| c.contract.handoff > a))
            .collect();
        let (items, next) = page(all, scope.limit, |c| {
            contract_id(c.contract.handoff).to_string()
        });
        Ok(Response::new(pb::ListHandoffContractsResponse {
            handoff_contracts: items.iter().map(|c| contract(&scope.merchant, c)).collect(),
            next_page_token: page_start.next_token(next),
        }))
    }

    async fn get_handoff_contract(
        &self,
        request: Request<pb::GetHandoffContractRequest>,
    ) -> Result<Response<pb::GetHandoffContractResponse>, Status> {
        let (merchant, handoff) = parse_name("name", &request.get_ref().name)?;
        let merchant = auth::tenant(&request, merchant)?;
        let c = self.app.get_handoff_contract(&merchant, handoff).await?;
        Ok(Response::new(pb::GetHandoffContractResponse {
            handoff_contract: Some(contract(&merchant, &c)),
        }))
    }

    async fn update_handoff_contract(
        &self,
        request: Request<pb::UpdateHandoffContractRequest>,
    ) -> Result<Response<pb::UpdateHandoffContractResponse>, Status> {
        let c = request
            .get_ref()
            .handoff_contract
            .as_ref()
            .ok_or_else(|| Error::invalid("handoff_contract", "required"))?;
        let (merchant, handoff) = parse_name("handoff_contract.name", &c.name)?;
        let merchant = auth::tenant(&request, merchant)?;
        let req = request.into_inner();
        let c = req
            .handoff_contract
            .as_ref()
            .ok_or_else(|| Error::invalid("handoff_contract", "required"))?;
        check_text(c)?;
        let change = change(c, req.update_mask.as_ref())?;
        // An etag that is not a number can never be current.
        let etag = match c.etag.as_str() {
            "" => None,
            e => Some(e.parse::<i64>().unwrap_or(-1)),
        };
        let saved = self
            .app
            .update_handoff_contract(&merchant, handoff, &change, etag)
            .await?;
        Ok(Response::new(pb::UpdateHandoffContractResponse {
            handoff_contract: Some(contract(&merchant, &saved)),
        }))
    }
}
