//! Stripe: the itemized balance reports (v3 balance change from activity,
//! v5 payout reconciliation), the Dashboard's default balance download, the
//! older balance history export, and API objects. Report CSVs are in major
//! units with lowercase currencies and negative amounts for money out; API
//! objects are in minor units (zero- and three-decimal currencies too).
//!
//! A charge or refund whose order is known (payment metadata, or an order
//! name in its description) is a processor payment of that order; one with
//! no order is kept as a balance transaction, which ties itself to an order
//! through its source charge. Payouts are payouts; every other category
//! (fees, adjustments, disputes) is a balance transaction.

use chrono::{DateTime, Utc};

use super::csv_read::Row;
use super::{Id, Item, Parsed, RowError, RowReader, ids_in, order_id};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::*;

pub const SYSTEM: &str = "stripe";

// The columns each field is read from, newest report first: public, so
// that a writer of the reports (the simulator's) names them as read here.
pub const ID: &[&str] = &["balance_transaction_id", "id"];
pub const CREATED: &[&str] = &["created_utc", "created (utc)", "created"];
pub const AVAILABLE: &[&str] = &["available_on_utc", "available on (utc)", "available_on"];
pub const GROSS: &[&str] = &["gross", "amount"];
pub const CATEGORY: &[&str] = &["reporting_category", "type"];
pub const SOURCE: &[&str] = &["source_id", "source"];
pub const PAYOUT: &[&str] = &["automatic_payout_id", "transfer"];
pub const ORDER: &[&str] = &[
    "payment_metadata[order_id]",
    "payment_metadata[order_name]",
    "payment_metadata[order]",
    "payment_metadata[order_number]",
    "payment_metadata[shopify_order_name]",
    "payment_metadata[shopify_order_id]",
];

/// One balance transaction as the reports and the API both describe it.
#[derive(Debug, Clone)]
pub struct Activity {
    pub txn_id: String,
    pub category: String,
    pub created: DateTime<Utc>,
    pub available: Option<DateTime<Utc>>,
    pub gross: Money,
    pub fee: Option<Money>,
    pub net: Option<Money>,
    pub source: Option<String>,
    pub charge_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub payout_id: Option<String>,
    pub order_id: Option<String>,
    /// What the customer paid, when it is another currency than the
    /// balance's: the payment's own money.
    pub customer_facing: Option<Money>,
}

impl Activity {
    /// The record this balance transaction is, for matching.
    pub fn into_record(mut self) -> Record {
        let mut category = std::mem::take(&mut self.category);
        category.make_ascii_lowercase();
        let is_payment = matches!(category.as_str(), "charge" | "payment");
        let is_refund = matches!(category.as_str(), "refund" | "payment_refund");
        let charge = self.charge_id.clone().or_else(|| {
            self.source
                .clone()
                .filter(|s| s.starts_with("ch_") || s.starts_with("py_"))
        });
        if category == "payout" {
            return self.payout();
        }
        if (is_payment || is_refund) && self.order_id.is_some() {
            return self.payment(is_refund, charge);
        }
        let amount = self.gross;
        Record {
            source_id: self.txn_id.clone(),
            source_system: SYSTEM.into(),
            order_id: None,
            references: vec![],
            event_time: self.created,
            source_update_time: None,
            body: Body::BalanceTransaction(BalanceTransaction {
                reporting_category: category,
                amount,
                fee: self.fee,
                net: self.net,
                exchange_rate: None,
                source: charge.or(self.source),
                payout_id: self.payout_id,
                available_time: self.available,
            }),
        }
    }

    fn payout(self) -> Record {
        let id = self.source.clone().unwrap_or_else(|| self.txn_id.clone());
        Record {
            source_id: id,
            source_system: SYSTEM.into(),
            order_id: None,
            references: vec![],
            event_time: self.created,
            source_update_time: None,
            body: Body::Payout(Payout {
                // Money out of the balance is negative in the report; the
                // payout itself is the positive amount sent to the bank.
                amount: Money::new(self.gross.amount.abs(), self.gross.currency),
                status: PayoutStatus::Paid,
                arrival_time: self.available,
            }),
        }
    }

    fn payment(self, refund: bool, charge: Option<String>) -> Record {
        let (amount, exchange_rate) = match self.customer_facing {
            Some(cf) if cf.currency != self.gross.currency && !cf.amount.is_zero() => {
                let rate = self
                    .gross
                    .amount
                    .abs()
                    .checked_div(cf.amount.abs())
                    .map(|r| r.round_dp(6));
                (cf, rate)
            }
            _ => (self.gross, None),
        };
        let own_id = if refund {
            self.source
                .clone()
                .filter(|s| s.starts_with("re_") || s.starts_with("pyr_"))
        } else {
            charge.clone()
        };
        Record {
            source_id: own_id.unwrap_or_else(|| self.txn_id.clone()),
            source_system: SYSTEM.into(),
            order_id: self.order_id,
            references: vec![],
            event_time: self.created,
            source_update_time: None,
            body: Body::ProcessorPayment(ProcessorPayment {
                payment_type: if refund {
                    PaymentType::Refund
                } else {
                    PaymentType::Charge
                },
                amount: Money::new(amount.amount.abs(), amount.currency),
                fee: self.fee.filter(|f| !f.amount.is_zero() || !refund),
                exchange_rate,
                payment_intent_id: self.payment_intent_id,
                charge_id: if refund { charge } else { None },
                balance_transaction_id: Some(self.txn_id),
            }),
        }
    }
}

/// Reads the report CSVs; columns by name cover every version.
pub struct CsvReader;

impl RowReader for CsvReader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        out.push(match activity(row) {
            Ok(a) => Item::Record(Parsed {
                line: row.line,
                record: a.into_record(),
            }),
            Err(e) => Item::Error(e),
        });
    }
}

fn activity(row: &Row<'_>) -> Result<Activity, RowError> {
    let txn_id = row.req(ID)?.to_string();
    let currency = row.currency(&["currency"])?;
    let customer_facing = match row.get(&["customer_facing_currency"]) {
        Some(code) => {
            let c = Currency::parse_lenient(code).ok_or_else(|| {
                row.err(
                    "customer_facing_currency",
                    format!("'{code}' is not an ISO 4217 currency"),
                )
            })?;
            row.amount(&["customer_facing_amount"], c)?
        }
        None => None,
    };
    let description = row.get(&["description"]).unwrap_or("");
    let (mut charge_in_text, mut order_in_text) = (None, None);
    for id in ids_in(description) {
        match id {
            Id::Processor(p) if p.starts_with("ch_") || p.starts_with("py_") => {
                charge_in_text.get_or_insert(p)
            }
            Id::Order(o) => order_in_text.get_or_insert(o),
            Id::Processor(p) => p,
        };
    }
    let order = row.get(ORDER).or(order_in_text).and_then(order_id);
    Ok(Activity {
        txn_id,
        category: row.req(CATEGORY)?.to_string(),
        created: row.time_req(CREATED)?,
        available: row.time(AVAILABLE)?,
        gross: row.amount_req(GROSS, currency)?,
        fee: row.amount(&["fee"], currency)?,
        net: row.amount(&["net"], currency)?,
        source: row.get(SOURCE).map(String::from),
        charge_id: row.get(&["charge_id"]).or(charge_in_text).map(String::from),
        payment_intent_id: row.get(&["payment_intent_id"]).map(String::from),
        payout_id: row.get(PAYOUT).map(String::from),
        order_id: order,
        customer_facing,
    })
}

/// A Stripe API object, if it is one of the money objects this reads.
pub fn from_json(
    file: &str,
    path: &str,
    v: &serde_json::Value,
) -> Option<Result<Record, RowError>> {
    let object = v.get("object")?.as_str()?;
    let err = |field: &str, why: &str| RowError::at(file, 0, 0, &format!("{path}.{field}"), why);
    let result = match object {
        "balance_transaction" => json_balance(v, &err).map(Activity::into_record),
        "charge" | "refund" | "payout" | "dispute" => json_object(object, v, &err),
        _ => return None,
    };
    Some(result)
}

type Err<'a> = &'a dyn Fn(&str, &str) -> RowError;

fn str_of(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        // An expanded object: its id.
        serde_json::Value::Object(o) => o.get("id")?.as_str().map(String::from),
        _ => None,
    }
}

fn json_money(
    v: &serde_json::Value,
    key: &str,
    c: Currency,
    err: Err<'_>,
) -> Result<Money, RowError> {
    let units = v
        .get(key)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| err(key, "an integer amount in minor units is required"))?;
    Ok(Money::from_minor_units(units, c))
}

fn json_currency(v: &serde_json::Value, err: Err<'_>) -> Result<Currency, RowError> {
    let code = str_of(v, "currency").unwrap_or_default();
    Currency::parse_lenient(&code).ok_or_else(|| err("currency", "not an ISO 4217 currency"))
}

fn json_time(v: &serde_json::Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(v.get(key)?.as_i64()?, 0)
}

fn json_order(v: &serde_json::Value) -> Option<String> {
    let meta = v.get("metadata")?;
    ["order_id", "order_name", "order", "order_number"]
        .iter()
        .find_map(|k| meta.get(*k)?.as_str())
        .and_then(order_id)
}

fn json_balance(v: &serde_json::Value, err: Err<'_>) -> Result<Activity, RowError> {
    let c = json_currency(v, err)?;
    let source = str_of(v, "source");
    Ok(Activity {
        txn_id: str_of(v, "id").ok_or_else(|| err("id", "required"))?,
        category: str_of(v, "reporting_category")
            .or_else(|| str_of(v, "type"))
            .unwrap_or_default(),
        created: json_time(v, "created")
            .ok_or_else(|| err("created", "a unix time is required"))?,
        available: json_time(v, "available_on"),
        gross: json_money(v, "amount", c, err)?,
        fee: Some(json_money(v, "fee", c, err)?),
        net: Some(json_money(v, "net", c, err)?),
        charge_id: source
            .clone()
            .filter(|s| s.starts_with("ch_") || s.starts_with("py_")),
        source,
        payment_intent_id: None,
        payout_id: None,
        order_id: None,
        customer_facing: None,
    })
}

fn json_object(object: &str, v: &serde_json::Value, err: Err<'_>) -> Result<Record, RowError> {
    let c = json_currency(v, err)?;
    let id = str_of(v, "id").ok_or_else(|| err("id", "required"))?;
    let created =
        json_time(v, "created").ok_or_else(|| err("created", "a unix time is required"))?;
    let amount = json_money(v, "amount", c, err)?;
    let charge = str_of(v, "charge");
    let order = json_order(v);
    let record = |order_id: Option<String>, body: Body| Record {
        source_id: id.clone(),
        source_system: SYSTEM.into(),
        order_id,
        references: vec![],
        event_time: created,
        source_update_time: None,
        body,
    };
    let body = match object {
        "payout" => Body::Payout(Payout {
            amount,
            status: match str_of(v, "status").as_deref() {
                Some("pending") => PayoutStatus::Pending,
                Some("in_transit") => PayoutStatus::InTransit,
                Some("failed") => PayoutStatus::Failed,
                Some("canceled") => PayoutStatus::Canceled,
                _ => PayoutStatus::Paid,
            },
            arrival_time: json_time(v, "arrival_date"),
        }),
        "charge" | "refund" if order.is_some() => Body::ProcessorPayment(ProcessorPayment {
            payment_type: if object == "refund" {
                PaymentType::Refund
            } else {
                PaymentType::Charge
            },
            amount,
            fee: None,
            exchange_rate: None,
            payment_intent_id: str_of(v, "payment_intent"),
            charge_id: charge,
            balance_transaction_id: str_of(v, "balance_transaction"),
        }),
        // No order to belong to: kept as the balance movement it is, tied
        // to an order later through the charge it names.
        _ => Body::BalanceTransaction(BalanceTransaction {
            reporting_category: object.to_string(),
            amount: if object == "charge" {
                amount
            } else {
                Money::new(-amount.amount, c)
            },
            fee: None,
            net: None,
            exchange_rate: None,
            source: charge.or_else(|| (object == "charge").then(|| id.clone())),
            payout_id: None,
            available_time: None,
        }),
    };
    let order = matches!(body, Body::ProcessorPayment(_))
        .then_some(order)
        .flatten();
    Ok(record(order, body))
}
