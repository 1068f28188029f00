//! Handoff contracts: reading a merchant's five, changing one (etag
//! checked), installing the configuration file's defaults; and late
//! handoffs: the deadlines the write path sets and the sweeper that raises
//! LATE_HANDOFF when one passes.

use diesel_async::AsyncConnection;

use std::collections::BTreeMap;

use super::App;
use crate::domain::handoff::expect::open_handoffs;
use crate::domain::handoff::{ContractSettings, Defaults};
use crate::domain::matching::ExceptionType;
use crate::domain::policy::MatchPolicy;
use crate::domain::record::Handoff;
use crate::domain::transaction::StoredRecord;
use crate::error::{Error, Result};
use crate::storage::contracts::{self, StoredContract};
use crate::storage::locks::{self, LockKey};
use crate::storage::{Conn, exceptions, expectations, rechecks};

/// The fields of a contract a merchant may set; `None` leaves one as it is.
pub type ContractChange = ContractSettings;

impl App {
    /// Writes the configuration's contract defaults (all five, complete),
    /// replacing earlier ones; `replace` false only fills what is missing.
    pub async fn install_handoff_defaults(&self, d: &Defaults, replace: bool) -> Result<()> {
        let mut conn = self.store().conn().await?;
        let all: Vec<_> = Handoff::ALL.into_iter().map(|h| d.contract(h)).collect();
        contracts::write_defaults(&mut conn, &all, replace).await
    }

    pub async fn list_handoff_contracts(&self, merchant: &str) -> Result<Vec<StoredContract>> {
        let conn = self.store().conn().await?;
        Ok(contracts::load(&conn, merchant, false)
            .await?
            .into_values()
            .collect())
    }

    pub async fn get_handoff_contract(
        &self,
        merchant: &str,
        handoff: Handoff,
    ) -> Result<StoredContract> {
        let conn = self.store().conn().await?;
        let mut all = contracts::load(&conn, merchant, false).await?;
        all.remove(&handoff)
            .ok_or_else(|| Error::Internal("a handoff without a contract".into()))
    }

    /// Applies `change` to the merchant's own settings of one contract.
    /// With `etag`, fails with `StaleEtag` unless it is the current one.
    pub async fn update_handoff_contract(
        &self,
        merchant: &str,
        handoff: Handoff,
        change: &ContractChange,
        etag: Option<i64>,
    ) -> Result<StoredContract> {
        // A webhook aimed inside is refused here, to whoever set it, and
        // again at each delivery (`egress.rs`).
        if let Some(uri) = change
            .alert_webhook_uri
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            self.webhooks().vet_uri(uri).await.map_err(|why| {
                Error::invalid(
                    "handoff_contract.alert_webhook_uri",
                    format!("cannot be delivered to: {why}"),
                )
            })?;
        }
        let mut conn = self.store().conn().await?;
        conn.transaction(async |conn| {
            let current = contracts::load(conn, merchant, true).await?;
            let before = &current[&handoff];
            if let Some(sent) = etag
                && sent != before.version
            {
                return Err(Error::StaleEtag {
                    what: format!("handoff contract {}", handoff.as_str()),
                    sent: sent.to_string(),
                });
            }
            let mut own = before.own.clone();
            if change.max_lag_seconds.is_some() {
                own.max_lag_seconds = change.max_lag_seconds;
            }
            if change.owner.is_some() {
                own.owner.clone_from(&change.owner);
            }
            if change.alert_webhook_uri.is_some() {
                own.alert_webhook_uri.clone_from(&change.alert_webhook_uri);
            }
            if change.tolerances.is_some() {
                own.tolerances.clone_from(&change.tolerances);
            }
            if change.fx_rate_tolerance.is_some() {
                own.fx_rate_tolerance = change.fx_rate_tolerance;
            }
            contracts::save(conn, merchant, handoff, &own).await?;
            let mut after = contracts::load(conn, merchant, false).await?;
            let saved = after
                .remove(&handoff)
                .ok_or_else(|| Error::Internal("a handoff without a contract".into()))?;
            debug_assert_eq!(saved.version, before.version + 1);
            Ok::<_, Error>(saved)
        })
        .await
    }
}

/// The matching policy of a merchant's contracts.
pub(crate) fn match_policy(contracts: &BTreeMap<Handoff, StoredContract>) -> MatchPolicy {
    match (
        contracts.get(&Handoff::InvoiceToPayment),
        contracts.get(&Handoff::PaymentToCashApplication),
    ) {
        (Some(pay), Some(cash)) => {
            crate::domain::handoff::match_policy(&pay.contract, &cash.contract)
        }
        _ => MatchPolicy::default(),
    }
}

/// The id of the LATE_HANDOFF exception of one order's handoff.
fn late_id(merchant: &str, order_id: &str, handoff: &str) -> uuid::Uuid {
    super::reconcile::exception_id(merchant, &["late_handoff", order_id, handoff])
}

/// Called by reconcile for the orders it re-matched (the caller holds their
/// locks): writes the deadline of each open handoff (from the contract in
/// force now), removes those met, and resolves their LATE_HANDOFF
/// exceptions ("rules": the late record arrived).
pub(crate) async fn track(
    conn: &Conn,
    merchant: &str,
    orders: &[String],
    by_order: &BTreeMap<String, Vec<StoredRecord>>,
    contracts: &BTreeMap<Handoff, StoredContract>,
    matched: &std::collections::BTreeSet<&str>,
    event_times: &BTreeMap<String, chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    if orders.is_empty() {
        return Ok(());
    }
    let mut open = vec![];
    for (order_id, records) in by_order {
        let kinds = records.iter().map(|r| r.record.kind()).collect();
        for e in open_handoffs(&kinds, matched.contains(order_id.as_str())) {
            // What is at risk: the newest amount of the step that was sent.
            let at_risk = records
                .iter()
                .filter(|r| r.record.kind() == e.sent_by)
                .max_by_key(|r| r.record.event_time)
                .and_then(|r| r.record.headline_amount())
                .map(|m| serde_json::json!({"amount": m.amount.abs(), "currency": m.currency}));
            open.push(expectations::Open {
                order_id: order_id.clone(),
                handoff: e.handoff.as_str(),
                expected_kind: e.expected.as_str(),
                lag_seconds: contracts[&e.handoff].contract.max_lag.num_seconds(),
                at_risk,
            });
        }
    }
    let synced = expectations::sync(conn, merchant, orders, &open).await?;
    // Completeness in period reports moves with the expectations, at each
    // order's event time (an order no longer merged: as stored).
    let mut times = event_times.clone();
    let unmerged: Vec<String> = orders
        .iter()
        .filter(|o| !times.contains_key(*o))
        .cloned()
        .collect();
    let changed = !synced.met.is_empty() || !synced.opened.is_empty();
    if changed && !unmerged.is_empty() {
        times.extend(expectations::order_event_times(conn, merchant, &unmerged).await?);
    }
    let now_open: Vec<(&str, &str)> = open
        .iter()
        .map(|o| (o.order_id.as_str(), o.handoff))
        .collect();
    let deltas = super::reports::deltas::handoff_deltas(orders, &now_open, &synced, &times);
    let keep: Vec<uuid::Uuid> = open
        .iter()
        .map(|o| late_id(merchant, &o.order_id, o.handoff))
        .collect();
    let late = [ExceptionType::LateHandoff.as_str()];
    // Independent writes, pipelined in this order.
    let ((), resolved) = futures::try_join!(
        crate::storage::reports::add(conn, merchant, deltas),
        exceptions::resolve_others(conn, merchant, orders, &late, &keep,),
    )?;
    crate::telemetry::metrics::global().exceptions_resolved(&resolved);
    Ok(())
}

/// At most this many deadlines are raised per merchant per transaction.
const SWEEP_BATCH: i64 = 500;

fn late_exception(merchant: &str, d: &expectations::Due) -> Option<exceptions::NewException> {
    let handoff = Handoff::parse(&d.handoff)?;
    Some(exceptions::NewException {
        id: late_id(merchant, &d.order_id, &d.handoff),
        order_id: Some(d.order_id.clone()),
        exception_type: ExceptionType::LateHandoff,
        handoff,
        rule: "late_handoff".into(),
        subject: format!("{}/{}", d.order_id, d.handoff),
        summary: format!(
            "order {}: no {} arrived by {} (the {} contract's max lag)",
            d.order_id,
            d.expected_kind,
            d.due_time.to_rfc3339(),
            crate::domain::handoff::contract_id(handoff)
        ),
        details: serde_json::json!({
            "observations": [],
            "difference": d.at_risk,
            "expected_kind": d.expected_kind,
            "due_time": d.due_time,
        }),
    })
}

impl App {
    /// Raises LATE_HANDOFF for every expectation past its deadline; returns
    /// how many. Each merchant's batch is one transaction.
    pub async fn sweep_late_handoffs(&self) -> Result<usize> {
        let mut conn = self.store().conn().await?;
        let merchants = expectations::merchants_due(&mut conn).await?;
        let mut raised = 0;
        for merchant in merchants {
            loop {
                let n = conn
                    .transaction(async |conn| {
                        let due = expectations::claim_due(conn, &merchant, SWEEP_BATCH).await?;
                        let rows: Vec<_> = due
                            .iter()
                            .filter_map(|d| late_exception(&merchant, d))
                            .collect();
                        exceptions::upsert(conn, &merchant, &rows).await?;
                        Ok::<_, Error>(due.len())
                    })
                    .await?;
                raised += n;
                if (n as i64) < SWEEP_BATCH {
                    break;
                }
            }
        }
        Ok(raised + self.recheck_due().await?)
    }

    /// Matches again the orders whose held comparisons' deadlines have
    /// passed (a refund never propagated, captures still short after the
    /// lag); returns how many. Each merchant's batch is one transaction
    /// under the locks of the orders that are free, taken before the
    /// recheck rows so the sweeper and a write lock in the same order. It
    /// never waits for a lock: waiting on one order a worker batch holds
    /// while keeping the others made every writer of those queue behind
    /// the sweep (a convoy, seen at 50 s). A busy order stays due for the
    /// next pass.
    pub async fn recheck_due(&self) -> Result<usize> {
        let mut conn = self.store().conn().await?;
        let due = rechecks::due(&mut conn, SWEEP_BATCH).await?;
        let mut by_merchant: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (m, o) in due {
            by_merchant.entry(m).or_default().push(o);
        }
        let mut done = 0;
        for (merchant, orders) in by_merchant {
            done += conn
                .transaction(async |conn| {
                    let keys: Vec<LockKey> = orders.iter().cloned().map(LockKey::Order).collect();
                    let free: Vec<String> = locks::try_lock_each(conn, &merchant, &keys)
                        .await?
                        .into_iter()
                        .filter_map(|k| match k {
                            LockKey::Order(o) => Some(o),
                            LockKey::Ref(_) => None,
                        })
                        .collect();
                    let taken = rechecks::take(conn, &merchant, &free).await?;
                    super::reconcile::reconcile(conn, &merchant, &taken, &[]).await?;
                    Ok::<_, Error>(taken.len())
                })
                .await?;
        }
        Ok(done)
    }

    /// Sweeps every `every` until dropped; errors are logged and retried.
    pub async fn run_sweeper(self, every: std::time::Duration) {
        loop {
            match self.sweep_late_handoffs().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(raised = n, "late handoffs raised"),
                Err(e) => tracing::warn!(error = %e, "late-handoff sweep failed; retrying"),
            }
            tokio::time::sleep(every).await;
        }
    }
}
