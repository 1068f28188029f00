//! Handoff contracts: reading a merchant's five, changing one (etag
//! checked), and installing the configuration file's defaults.

use diesel_async::AsyncConnection;

use super::App;
use crate::domain::handoff::{ContractSettings, Defaults};
use crate::domain::record::Handoff;
use crate::error::{Error, Result};
use crate::storage::contracts::{self, StoredContract};

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
        let mut conn = self.store().conn().await?;
        Ok(contracts::load(&mut conn, merchant, false)
            .await?
            .into_values()
            .collect())
    }

    pub async fn get_handoff_contract(
        &self,
        merchant: &str,
        handoff: Handoff,
    ) -> Result<StoredContract> {
        let mut conn = self.store().conn().await?;
        let mut all = contracts::load(&mut conn, merchant, false).await?;
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
        let mut conn = self.store().conn().await?;
        conn.transaction(async |conn| {
            {
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
                contracts::save(conn, merchant, handoff, &own).await?;
                let mut after = contracts::load(conn, merchant, false).await?;
                let saved = after
                    .remove(&handoff)
                    .ok_or_else(|| Error::Internal("a handoff without a contract".into()))?;
                debug_assert_eq!(saved.version, before.version + 1);
                Ok::<_, Error>(saved)
            }
        })
        .await
    }
}
