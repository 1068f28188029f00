//! Shopify: the Payments transactions export, the payouts export, the
//! orders export (one row per line item, the order's own fields on its
//! first row only) and Admin API bodies (orders, transactions, payouts).
//!
//! Money: a transaction's own money is the presentment amount (what the
//! customer paid, in the order's currency) when the export has it, the
//! shop's otherwise. Times carry the shop's offset and are read as such.

use chrono::{DateTime, Utc};

use super::csv_read::Row;
use super::{Id, Item, Parsed, RowError, RowReader, ids_in, order_id};
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::*;

pub const SYSTEM: &str = "shopify";

/// Columns where a processor's id may stand, newest export first.
const REFERENCE: &[&str] = &[
    "payment reference",
    "authorization",
    "gateway reference",
    "transaction id",
    "receipt",
    "checkout",
];

fn record(id: String, order: Option<String>, when: DateTime<Utc>, body: Body) -> Record {
    Record {
        source_id: id,
        source_system: SYSTEM.into(),
        order_id: order,
        references: vec![],
        event_time: when,
        source_update_time: None,
        body,
    }
}

/// A processor id in one of the reference columns, recognised by shape
/// (a Shopify checkout token is not one).
fn processor_reference(row: &Row<'_>) -> Option<String> {
    REFERENCE.iter().find_map(|c| {
        let v = row.get(std::slice::from_ref(c))?;
        ids_in(v).find_map(|id| match id {
            Id::Processor(p) => Some(p.to_string()),
            Id::Order(_) => None,
        })
    })
}

fn txn_kind(kind: &str) -> Option<TxnKind> {
    match kind.to_ascii_lowercase().as_str() {
        "charge" | "sale" => Some(TxnKind::Sale),
        "capture" => Some(TxnKind::Capture),
        "authorization" => Some(TxnKind::Authorization),
        "refund" => Some(TxnKind::Refund),
        "void" => Some(TxnKind::Void),
        _ => None,
    }
}

/// payment_transactions_export_*.csv
pub struct PaymentsReader;

impl RowReader for PaymentsReader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        match payment(row) {
            Ok(Some(r)) => out.push(Item::Record(Parsed {
                line: row.line,
                record: r,
            })),
            // Adjustments, reserves, chargebacks: balance movements of no
            // storefront payment.
            Ok(None) => {}
            Err(e) => out.push(Item::Error(e)),
        }
    }
}

fn payment(row: &Row<'_>) -> Result<Option<Record>, RowError> {
    let kind_text = row.req(&["type"])?;
    let Some(kind) = txn_kind(kind_text) else {
        return Ok(None);
    };
    let name = row.req(&["order"])?;
    let order = order_id(name).ok_or_else(|| row.err("order", "not an order name"))?;
    let when = row.time_req(&["transaction date"])?;
    let amount = match row.get(&["presentment currency"]) {
        Some(code) if row.get(&["presentment amount"]).is_some() => {
            let c = Currency::parse_lenient(code).ok_or_else(|| {
                row.err(
                    "presentment currency",
                    format!("'{code}' is not an ISO 4217 currency"),
                )
            })?;
            row.amount_req(&["presentment amount"], c)?
        }
        _ => {
            let c = row.currency(&["currency"])?;
            row.amount_req(&["amount"], c)?
        }
    };
    let id = format!("{order}-{}-{}", kind.as_str(), when.timestamp());
    Ok(Some(record(
        id,
        Some(order),
        when,
        Body::StorefrontTransaction(StorefrontTransaction {
            kind,
            status: TxnStatus::Success,
            gateway: "shopify_payments".into(),
            amount: Money::new(amount.amount.abs(), amount.currency),
            parent_id: None,
            processor_reference: processor_reference(row),
        }),
    )))
}

/// The payouts export.
pub struct PayoutsReader;

impl RowReader for PayoutsReader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        out.push(match payout(row) {
            Ok(r) => Item::Record(Parsed {
                line: row.line,
                record: r,
            }),
            Err(e) => Item::Error(e),
        });
    }
}

fn payout_status(s: &str) -> PayoutStatus {
    match s.to_ascii_lowercase().replace(' ', "_").as_str() {
        "scheduled" | "pending" => PayoutStatus::Pending,
        "in_transit" => PayoutStatus::InTransit,
        "failed" => PayoutStatus::Failed,
        "canceled" | "cancelled" => PayoutStatus::Canceled,
        _ => PayoutStatus::Paid,
    }
}

fn payout(row: &Row<'_>) -> Result<Record, RowError> {
    let when = row.time_req(&["payout date"])?;
    let c = row.currency(&["currency"])?;
    let total = row.amount_req(&["total"], c)?;
    let id = row
        .get(&["payout id", "id"])
        .map(String::from)
        .unwrap_or_else(|| format!("payout-{}", when.format("%Y-%m-%d")));
    Ok(record(
        id,
        None,
        when,
        Body::Payout(Payout {
            amount: total,
            status: payout_status(row.get(&["status"]).unwrap_or("paid")),
            arrival_time: Some(when),
        }),
    ))
}

/// The orders export: rows of one order follow each other, the first with
/// the order's own fields; the order is complete when the name changes.
#[derive(Default)]
pub struct OrdersReader {
    current: Option<(u64, Record, Option<Record>)>,
}

impl RowReader for OrdersReader {
    fn row(&mut self, row: &Row<'_>, out: &mut Vec<Item>) {
        let Some(name) = row.get(&["name"]) else {
            out.push(Item::Error(row.err("name", "a value is required here")));
            return;
        };
        let same = matches!(&self.current, Some((_, Record { body: Body::StorefrontOrder(o), .. }, _)) if o.name == name);
        if !same {
            self.finish(out);
            match order_head(row, name) {
                Ok((order, refund)) => self.current = Some((row.line, order, refund)),
                Err(e) => {
                    out.push(Item::Error(e));
                    return;
                }
            }
        }
        let Some((
            _,
            Record {
                body: Body::StorefrontOrder(o),
                ..
            },
            _,
        )) = &mut self.current
        else {
            return;
        };
        match line_item(row, o.total.currency) {
            Ok(Some(l)) => o.line_items.push(l),
            Ok(None) => {}
            Err(e) => out.push(Item::Error(e)),
        }
    }

    fn finish(&mut self, out: &mut Vec<Item>) {
        if let Some((line, order, refund)) = self.current.take() {
            out.push(Item::Record(Parsed {
                line,
                record: order,
            }));
            if let Some(r) = refund {
                out.push(Item::Record(Parsed { line, record: r }));
            }
        }
    }
}

fn tender_type(method: &str) -> TenderType {
    let m = method.to_ascii_lowercase();
    if m.contains("gift card") && !m.contains('+') {
        TenderType::GiftCard
    } else if m.contains("cash") {
        TenderType::Cash
    } else if m.contains("store credit") {
        TenderType::StoreCredit
    } else {
        TenderType::Card
    }
}

/// The order's own fields, from its first row; and a refund transaction
/// when the order says money went back.
fn order_head(row: &Row<'_>, name: &str) -> Result<(Record, Option<Record>), RowError> {
    let order = order_id(name).ok_or_else(|| row.err("name", "not an order name"))?;
    let c = row.currency(&["currency"])?;
    let total = row.amount_req(&["total"], c)?;
    let when = row.time_req(&["created at", "paid at"])?;
    let discount = row.amount(&["discount amount"], c)?;
    let reference = processor_reference(row);
    let method = row.get(&["payment method", "gateway"]).unwrap_or("");
    let discounts = match (row.get(&["discount code"]), discount) {
        (Some(code), Some(amount)) if !amount.amount.is_zero() => vec![Discount {
            code: code.to_string(),
            amount,
        }],
        _ => vec![],
    };
    let tenders = if method.is_empty() && reference.is_none() {
        vec![]
    } else {
        vec![Tender {
            tender_type: tender_type(method),
            gateway: method.to_string(),
            amount: total,
            processor_reference: reference.clone(),
        }]
    };
    let id = row.get(&["id"]).map_or_else(|| order.clone(), String::from);
    let refunded = row
        .amount(&["refunded amount"], c)?
        .filter(|m| !m.amount.is_zero());
    let refund = refunded.map(|amount| {
        let at = row
            .time(&["refunded at", "cancelled at"])
            .ok()
            .flatten()
            .unwrap_or(when);
        record(
            format!("{id}-refund"),
            Some(order.clone()),
            at,
            Body::StorefrontTransaction(StorefrontTransaction {
                kind: TxnKind::Refund,
                status: TxnStatus::Success,
                gateway: method.to_string(),
                amount: Money::new(amount.amount.abs(), c),
                parent_id: None,
                processor_reference: reference.clone(),
            }),
        )
    });
    let body = Body::StorefrontOrder(StorefrontOrder {
        name: name.to_string(),
        total,
        subtotal: row.amount(&["subtotal"], c)?,
        total_discount: discount,
        total_tax: row.amount(&["taxes"], c)?,
        total_shipping: row.amount(&["shipping"], c)?,
        line_items: vec![],
        discounts,
        tenders,
    });
    let mut r = record(id, Some(order.clone()), when, body);
    // The order's own id, so a journal line naming "#1001" finds it.
    r.references.push(Reference {
        kind: RefKind::Order,
        id: order,
    });
    Ok((r, refund))
}

fn line_item(row: &Row<'_>, c: Currency) -> Result<Option<LineItem>, RowError> {
    let Some(q) = row.get(&["lineitem quantity"]) else {
        return Ok(None);
    };
    let quantity: i64 = q
        .parse()
        .map_err(|_| row.err("lineitem quantity", format!("'{q}' is not a whole number")))?;
    let sku = row
        .get(&["lineitem sku", "lineitem name"])
        .unwrap_or("")
        .to_string();
    Ok(Some(LineItem {
        sku,
        quantity,
        unit_price: row.amount(&["lineitem price"], c)?,
        discount: row.amount(&["lineitem discount"], c)?,
        tax: None,
    }))
}

/// An Admin API object under `key` ("order", "transaction", "payout", or
/// their plurals' elements), if it is one this reads.
pub fn from_json(
    file: &str,
    path: &str,
    key: &str,
    v: &serde_json::Value,
) -> Option<Result<Record, RowError>> {
    let err = |field: &str, why: &str| RowError::at(file, 0, 0, &format!("{path}.{field}"), why);
    let r = match key {
        "order" | "orders" => json_order(v, &err),
        "transaction" | "transactions" => json_transaction(v, &err)?,
        "payout" | "payouts" => json_payout(v, &err),
        _ => return None,
    };
    Some(r)
}

type Err<'a> = &'a dyn Fn(&str, &str) -> RowError;

fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time(v: &serde_json::Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.get(key)?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn money(
    v: &serde_json::Value,
    key: &str,
    c: Currency,
    err: Err<'_>,
) -> Result<Option<Money>, RowError> {
    let Some(s) = text(v, key) else {
        return Ok(None);
    };
    super::csv_read::parse_amount(&s, c)
        .map(|d| Some(Money::new(d, c)))
        .map_err(|why| err(key, &why))
}

fn currency(v: &serde_json::Value, err: Err<'_>) -> Result<Currency, RowError> {
    let code = text(v, "currency").unwrap_or_else(|| "USD".into());
    Currency::parse_lenient(&code).ok_or_else(|| err("currency", "not an ISO 4217 currency"))
}

fn json_order(v: &serde_json::Value, err: Err<'_>) -> Result<Record, RowError> {
    let c = currency(v, err)?;
    let id = text(v, "id").ok_or_else(|| err("id", "required"))?;
    let total = money(v, "total_price", c, err)?.ok_or_else(|| err("total_price", "required"))?;
    let when = time(v, "processed_at")
        .or_else(|| time(v, "created_at"))
        .ok_or_else(|| err("created_at", "an RFC 3339 time is required"))?;
    let mut line_items = vec![];
    for l in v
        .get("line_items")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        line_items.push(LineItem {
            sku: text(l, "sku")
                .or_else(|| text(l, "title"))
                .unwrap_or_default(),
            quantity: l.get("quantity").and_then(|q| q.as_i64()).unwrap_or(0),
            unit_price: money(l, "price", c, err)?,
            discount: money(l, "total_discount", c, err)?,
            tax: None,
        });
    }
    let mut discounts = vec![];
    for d in v
        .get("discount_codes")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
    {
        if let (Some(code), Some(amount)) = (text(d, "code"), money(d, "amount", c, err)?) {
            discounts.push(Discount { code, amount });
        }
    }
    let mut r = record(
        id.clone(),
        Some(id),
        when,
        Body::StorefrontOrder(StorefrontOrder {
            name: text(v, "name").unwrap_or_default(),
            total,
            subtotal: money(v, "subtotal_price", c, err)?,
            total_discount: money(v, "total_discounts", c, err)?,
            total_tax: money(v, "total_tax", c, err)?,
            total_shipping: None,
            line_items,
            discounts,
            tenders: vec![],
        }),
    );
    r.source_update_time = time(v, "updated_at");
    Ok(r)
}

fn json_transaction(v: &serde_json::Value, err: Err<'_>) -> Option<Result<Record, RowError>> {
    if v.get("kind").is_none() && v.get("type").is_some() {
        return Some(json_balance(v, err));
    }
    let kind = txn_kind(&text(v, "kind")?)?;
    Some((|| {
        let c = currency(v, err)?;
        let id = text(v, "id").ok_or_else(|| err("id", "required"))?;
        let order = text(v, "order_id").ok_or_else(|| err("order_id", "required"))?;
        let amount = money(v, "amount", c, err)?.ok_or_else(|| err("amount", "required"))?;
        let when = time(v, "processed_at")
            .or_else(|| time(v, "created_at"))
            .ok_or_else(|| err("created_at", "an RFC 3339 time is required"))?;
        let status = match text(v, "status").as_deref() {
            Some("pending") => TxnStatus::Pending,
            Some("failure") => TxnStatus::Failure,
            Some("error") => TxnStatus::Error,
            _ => TxnStatus::Success,
        };
        let reference = text(v, "authorization").and_then(|a| {
            ids_in(&a).find_map(|i| match i {
                Id::Processor(p) => Some(p.to_string()),
                Id::Order(_) => None,
            })
        });
        Ok(record(
            id,
            Some(order),
            when,
            Body::StorefrontTransaction(StorefrontTransaction {
                kind,
                status,
                gateway: text(v, "gateway").unwrap_or_default(),
                amount: Money::new(amount.amount.abs(), c),
                parent_id: text(v, "parent_id"),
                processor_reference: reference,
            }),
        ))
    })())
}

fn json_payout(v: &serde_json::Value, err: Err<'_>) -> Result<Record, RowError> {
    let c = currency(v, err)?;
    let id = text(v, "id").ok_or_else(|| err("id", "required"))?;
    let amount = money(v, "amount", c, err)?.ok_or_else(|| err("amount", "required"))?;
    let when = text(v, "date")
        .and_then(|d| super::csv_read::parse_time(&d))
        .ok_or_else(|| err("date", "a date is required"))?;
    Ok(record(
        id,
        None,
        when,
        Body::Payout(Payout {
            amount,
            status: payout_status(&text(v, "status").unwrap_or_default()),
            arrival_time: Some(when),
        }),
    ))
}

/// A Shopify Payments balance transaction (`payouts/{id}/transactions`):
/// money moving through the balance, tied to its order's transaction.
fn json_balance(v: &serde_json::Value, err: Err<'_>) -> Result<Record, RowError> {
    let c = currency(v, err)?;
    let id = text(v, "id").ok_or_else(|| err("id", "required"))?;
    let amount = money(v, "amount", c, err)?.ok_or_else(|| err("amount", "required"))?;
    let when = time(v, "processed_at")
        .ok_or_else(|| err("processed_at", "an RFC 3339 time is required"))?;
    Ok(record(
        id,
        None,
        when,
        Body::BalanceTransaction(BalanceTransaction {
            reporting_category: text(v, "type").unwrap_or_default(),
            amount,
            fee: money(v, "fee", c, err)?,
            net: money(v, "net", c, err)?,
            exchange_rate: None,
            source: text(v, "source_order_transaction_id").or_else(|| text(v, "source_id")),
            payout_id: text(v, "payout_id"),
            available_time: None,
        }),
    ))
}
