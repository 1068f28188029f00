//! Handoff contracts: per handoff, who sends, who receives, what must
//! arrive and by when, who owns a breach and where they are told. Pure:
//! the built-in defaults, the settings that override them (from the
//! configuration file, then per merchant), and what is still expected of
//! an order.

pub mod expect;
pub mod fields;
pub mod settings;
pub mod trace;

use std::collections::BTreeMap;

use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::currency::Currency;
use super::policy::TolerancePolicy;
use super::record::Handoff;

/// The public id of a handoff's contract ("order-to-fulfillment").
pub fn contract_id(h: Handoff) -> &'static str {
    match h {
        Handoff::OrderToFulfillment => "order-to-fulfillment",
        Handoff::FulfillmentToInvoice => "fulfillment-to-invoice",
        Handoff::InvoiceToPayment => "invoice-to-payment",
        Handoff::PaymentToCashApplication => "payment-to-cash-application",
        Handoff::ReconciliationToReporting => "reconciliation-to-reporting",
    }
}

pub fn parse_contract_id(id: &str) -> Option<Handoff> {
    Handoff::ALL.into_iter().find(|h| contract_id(*h) == id)
}

/// One handoff's contract as it applies to a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    pub handoff: Handoff,
    pub sending_system: String,
    pub receiving_system: String,
    /// The fields the receiving system needs, and their formats.
    pub required_fields: Vec<String>,
    /// The checks that prove the data arrived intact; the field rules'
    /// texts among them.
    pub validations: Vec<String>,
    /// The required fields and formats matching enforces (VALIDATION_FAILED).
    pub field_rules: Vec<fields::FieldRule>,
    /// How long the next step may take before the handoff is late.
    pub max_lag: Duration,
    /// The team that owns a breach.
    pub owner: String,
    /// Where the owner is told; empty for nowhere.
    pub alert_webhook_uri: String,
    /// How far two figures may differ and still agree.
    pub tolerance: TolerancePolicy,
    /// How far the processor's exchange rate may stray from the ERP's
    /// daily rate, as a fraction of the ERP's (FX_VARIANCE beyond).
    pub fx_rate_tolerance: Decimal,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The contract every merchant starts with (seed 000's handoff ownership
/// document, with the lags DOMAIN.md lists as typical).
pub fn builtin(h: Handoff) -> Contract {
    let (from, to, fields, checks, lag, owner): (_, _, &[&str], &[&str], _, _) = match h {
        Handoff::OrderToFulfillment => (
            "storefront",
            "erp",
            &[
                "order_id: [A-Za-z0-9._~-]{1,128}",
                "line_items[].sku",
                "line_items[].quantity > 0",
            ],
            &[
                "every shipped SKU was ordered",
                "shipped units do not exceed ordered units",
            ],
            Duration::hours(24),
            "fulfillment-ops",
        ),
        Handoff::FulfillmentToInvoice => (
            "erp",
            "erp",
            &["fulfillment id", "order_id", "shipped lines"],
            &[
                "the invoice follows the shipment",
                "invoice total equals the order total",
            ],
            Duration::hours(1),
            "billing",
        ),
        Handoff::InvoiceToPayment => (
            "erp",
            "processor",
            &[
                "invoice id",
                "payment_intent or charge id",
                "amount (Money)",
                "currency (ISO 4217)",
            ],
            &[
                "captured equals invoiced within tolerance",
                "one currency per payment",
            ],
            Duration::hours(24),
            "payments",
        ),
        Handoff::PaymentToCashApplication => (
            "processor",
            "erp",
            &[
                "balance transaction id (txn_)",
                "payout id (po_)",
                "fee",
                "net = amount - fee",
            ],
            &[
                "net equals amount minus fee",
                "a payout equals its balance transactions",
            ],
            Duration::days(7),
            "treasury",
        ),
        Handoff::ReconciliationToReporting => (
            "tally",
            "reporting",
            &["as-of knowledge time", "period"],
            &["a report as of a time gives the same numbers whenever run"],
            Duration::days(31),
            "finance-controller",
        ),
    };
    Contract {
        handoff: h,
        sending_system: from.into(),
        receiving_system: to.into(),
        required_fields: strings(fields),
        validations: strings(checks)
            .into_iter()
            .chain(
                fields::FieldRule::of(h)
                    .iter()
                    .map(|r| r.as_str().to_string()),
            )
            .collect(),
        field_rules: fields::FieldRule::of(h),
        max_lag: lag,
        owner: owner.into(),
        alert_webhook_uri: String::new(),
        tolerance: TolerancePolicy::default(),
        fx_rate_tolerance: crate::domain::policy::MatchPolicy::DEFAULT_FX_RATE_TOLERANCE,
    }
}

/// Settings that override a contract, field by field; what is unset is
/// inherited. Stored as JSON (the configuration's defaults, a merchant's
/// own settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook_uri: Option<String>,
    /// Tolerance per currency code, replacing the whole map when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerances: Option<BTreeMap<Currency, Decimal>>,
    /// The exchange-rate tolerance, a fraction ("0.005" is half a percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx_rate_tolerance: Option<Decimal>,
}

impl ContractSettings {
    /// `self` with every field `over` sets replaced.
    pub fn overlay(mut self, over: &ContractSettings) -> ContractSettings {
        if over.max_lag_seconds.is_some() {
            self.max_lag_seconds = over.max_lag_seconds;
        }
        if over.owner.is_some() {
            self.owner.clone_from(&over.owner);
        }
        if over.alert_webhook_uri.is_some() {
            self.alert_webhook_uri.clone_from(&over.alert_webhook_uri);
        }
        if let Some(t) = &over.tolerances {
            let mut merged = self.tolerances.take().unwrap_or_default();
            merged.extend(t.iter().map(|(c, d)| (*c, *d)));
            self.tolerances = Some(merged);
        }
        if over.fx_rate_tolerance.is_some() {
            self.fx_rate_tolerance = over.fx_rate_tolerance;
        }
        self
    }
}

impl Contract {
    /// The contract with `s` applied.
    pub fn with(mut self, s: &ContractSettings) -> Contract {
        if let Some(secs) = s.max_lag_seconds {
            self.max_lag = Duration::seconds(secs);
        }
        if let Some(o) = &s.owner {
            self.owner.clone_from(o);
        }
        if let Some(u) = &s.alert_webhook_uri {
            self.alert_webhook_uri.clone_from(u);
        }
        if let Some(t) = &s.tolerances {
            for (c, d) in t {
                self.tolerance = self.tolerance.with(*c, *d);
            }
        }
        if let Some(f) = s.fx_rate_tolerance {
            self.fx_rate_tolerance = f;
        }
        self
    }

    /// Every setting of this contract, as the defaults table holds them.
    pub fn settings(&self) -> ContractSettings {
        ContractSettings {
            max_lag_seconds: Some(self.max_lag.num_seconds()),
            owner: Some(self.owner.clone()),
            alert_webhook_uri: Some(self.alert_webhook_uri.clone()),
            tolerances: Some(self.tolerance.per_currency.clone()),
            fx_rate_tolerance: Some(self.fx_rate_tolerance),
        }
    }
}

/// What matching is told by a merchant's contracts. Matching compares the
/// storefront, the ERP invoice and the processor, so the invoice-to-payment
/// contract's tolerance and lag govern it: its tolerance is the amount
/// tolerance, its max lag how long a refund may take to reach the next
/// system and how long the last captures of an order shipped in full may
/// take; the payment-to-cash-application contract's rate tolerance judges
/// the ERP's exchange rates (all default to what `MatchPolicy::default()`
/// says: one minor unit, a day, half a percent).
pub fn match_policy(
    invoice_to_payment: &Contract,
    payment_to_cash: &Contract,
) -> crate::domain::policy::MatchPolicy {
    debug_assert_eq!(invoice_to_payment.handoff, Handoff::InvoiceToPayment);
    debug_assert_eq!(payment_to_cash.handoff, Handoff::PaymentToCashApplication);
    crate::domain::policy::MatchPolicy {
        tolerance: invoice_to_payment.tolerance.clone(),
        refund_propagation: invoice_to_payment.max_lag,
        capture_lag: invoice_to_payment.max_lag,
        fx_rate_tolerance: payment_to_cash.fx_rate_tolerance,
        // Every contract's field rules: they are built in, the same for
        // every merchant.
        field_rules: Handoff::ALL
            .into_iter()
            .flat_map(|h| builtin(h).field_rules)
            .collect(),
    }
}

/// The contracts every merchant starts with: built-in, then the
/// configuration file's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub per_handoff: BTreeMap<Handoff, ContractSettings>,
}

impl Defaults {
    pub fn contract(&self, h: Handoff) -> Contract {
        match self.per_handoff.get(&h) {
            Some(s) => builtin(h).with(s),
            None => builtin(h),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_defaults_are_complete() {
        for h in Handoff::ALL {
            assert_eq!(parse_contract_id(contract_id(h)), Some(h));
            let c = builtin(h);
            assert!(c.max_lag > Duration::zero());
            assert!(!c.owner.is_empty() && !c.required_fields.is_empty());
        }
        assert_eq!(parse_contract_id("order_to_fulfillment"), None);
    }

    #[test]
    fn the_builtin_contract_gives_the_default_match_policy() {
        assert_eq!(
            match_policy(
                &builtin(Handoff::InvoiceToPayment),
                &builtin(Handoff::PaymentToCashApplication)
            ),
            crate::domain::policy::MatchPolicy::default()
        );
    }

    #[test]
    fn settings_override_field_by_field() {
        let kwd = Currency::from_code("KWD").unwrap();
        let s = ContractSettings {
            owner: Some("warehouse".into()),
            tolerances: Some([(kwd, Decimal::new(5, 3))].into()),
            ..Default::default()
        };
        let c = builtin(Handoff::OrderToFulfillment).with(&s);
        assert_eq!(c.owner, "warehouse");
        assert_eq!(c.max_lag, Duration::hours(24));
        assert_eq!(c.tolerance.for_currency(kwd), Decimal::new(5, 3));
        let later = s.clone().overlay(&ContractSettings {
            max_lag_seconds: Some(60),
            ..Default::default()
        });
        assert_eq!(later.owner.as_deref(), Some("warehouse"));
        assert_eq!(
            builtin(Handoff::OrderToFulfillment).with(&later).max_lag,
            Duration::seconds(60)
        );
    }
}
