//! HandoffService: a merchant's handoff contracts.

use tonic::{Request, Response, Status};

use crate::api::convert::handoffs::{contract, tolerances};
use crate::api::names::parse_parent;
use crate::app::App;
use crate::app::handoffs::ContractChange;
use crate::domain::handoff::parse_contract_id;
use crate::domain::handoff::settings::is_webhook_uri;
use crate::domain::record::Handoff;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::handoff_service_server::HandoffService;

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
    let bad = || {
        Error::invalid(
            field,
            format!(
                "'{name}' is not a handoff contract name: expected \
                 merchants/{{merchant}}/handoffContracts/{{id}} with id one of order-to-fulfillment, \
                 fulfillment-to-invoice, invoice-to-payment, payment-to-cash-application, \
                 reconciliation-to-reporting"
            ),
        )
    };
    let (parent, id) = name.rsplit_once("/handoffContracts/").ok_or_else(bad)?;
    let merchant = parse_parent(field, parent).map_err(|_| bad())?;
    let handoff = parse_contract_id(id).ok_or_else(bad)?;
    Ok((merchant, handoff))
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
    for p in paths {
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
                let o = c.owner.trim();
                if o.is_empty() || o.len() > 128 {
                    return Err(Error::invalid(
                        "handoff_contract.owner",
                        "expected 1-128 characters",
                    ));
                }
                out.owner = Some(o.to_string());
            }
            "alert_webhook_uri" => {
                if !is_webhook_uri(&c.alert_webhook_uri) {
                    return Err(Error::invalid(
                        "handoff_contract.alert_webhook_uri",
                        "expected an http:// or https:// URI, or empty for none",
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
                    "update_mask",
                    format!(
                        "'{other}' cannot be updated: expected max_lag, owner, alert_webhook_uri, tolerances or fx_rate_tolerance"
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
        let merchant = parse_parent("parent", &request.get_ref().parent)?;
        let all = self.app.list_handoff_contracts(&merchant).await?;
        Ok(Response::new(pb::ListHandoffContractsResponse {
            handoff_contracts: all.iter().map(|c| contract(&merchant, c)).collect(),
            next_page_token: String::new(),
        }))
    }

    async fn get_handoff_contract(
        &self,
        request: Request<pb::GetHandoffContractRequest>,
    ) -> Result<Response<pb::GetHandoffContractResponse>, Status> {
        let (merchant, handoff) = parse_name("name", &request.get_ref().name)?;
        let c = self.app.get_handoff_contract(&merchant, handoff).await?;
        Ok(Response::new(pb::GetHandoffContractResponse {
            handoff_contract: Some(contract(&merchant, &c)),
        }))
    }

    async fn update_handoff_contract(
        &self,
        request: Request<pb::UpdateHandoffContractRequest>,
    ) -> Result<Response<pb::UpdateHandoffContractResponse>, Status> {
        let req = request.into_inner();
        let c = req
            .handoff_contract
            .as_ref()
            .ok_or_else(|| Error::invalid("handoff_contract", "required"))?;
        let (merchant, handoff) = parse_name("handoff_contract.name", &c.name)?;
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
