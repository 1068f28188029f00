//! handoff_defaults and handoff_contracts: the configuration's contract
//! settings for every merchant, and each merchant's own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::Conn;
use super::statement::{Bind, statement};
use crate::domain::handoff::{Contract, ContractSettings, builtin};
use crate::domain::record::Handoff;
use crate::error::{Error, Result};

/// Writes every handoff's default settings (built-in, then the file's).
/// `replace` false keeps rows already there: a server started without a
/// configuration file does not undo one started with it.
pub async fn write_defaults(conn: &mut Conn, contracts: &[Contract], replace: bool) -> Result<()> {
    let handoffs: Vec<&str> = contracts.iter().map(|c| c.handoff.as_str()).collect();
    let settings: Vec<serde_json::Value> = contracts
        .iter()
        .map(|c| serde_json::to_value(c.settings()).map_err(|e| Error::Internal(e.to_string())))
        .collect::<Result<_>>()?;
    let on_conflict = if replace {
        "DO UPDATE SET settings = EXCLUDED.settings, update_time = EXCLUDED.update_time"
    } else {
        "DO NOTHING"
    };
    statement(format!(
        "INSERT INTO handoff_defaults (handoff, settings)
         SELECT * FROM UNNEST($1::text[], $2::jsonb[])
         ON CONFLICT (handoff) {on_conflict}"
    ))
    .bind::<Array<Text>, _>(handoffs)
    .bind::<Array<Jsonb>, _>(settings)
    .execute(conn)
    .await?;
    Ok(())
}

/// A merchant's contract as stored: the effective contract, and the
/// merchant's own row (its settings, version and time) if it has one.
#[derive(Debug, Clone)]
pub struct StoredContract {
    pub contract: Contract,
    pub own: ContractSettings,
    pub version: i64,
    pub update_time: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    handoff: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    defaults: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    own: Option<serde_json::Value>,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    update_time: Option<DateTime<Utc>>,
}

fn settings(v: Option<serde_json::Value>) -> Result<ContractSettings> {
    v.map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::corrupt("a handoff contract's settings", e))
        .map(Option::unwrap_or_default)
}

/// The merchant's five contracts; `lock` takes the merchant's rows for
/// update (an update reads, checks the etag, then writes).
pub async fn load(
    mut conn: &Conn,
    merchant: &str,
    lock: bool,
) -> Result<BTreeMap<Handoff, StoredContract>> {
    let mut out: BTreeMap<Handoff, StoredContract> = Handoff::ALL
        .into_iter()
        .map(|h| {
            let s = StoredContract {
                contract: builtin(h),
                own: ContractSettings::default(),
                version: 0,
                update_time: None,
            };
            (h, s)
        })
        .collect();
    if lock {
        // A row may not exist yet, so a row lock cannot serialise writers.
        statement("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtext('handoff_contracts'), hashtext($1))) l")
            .bind::<Text, _>(merchant)
            .execute(&mut conn)
            .await?;
    }
    let rows: Vec<Row> = statement(
        "SELECT h.handoff, d.settings AS defaults, c.settings AS own,
                coalesce(c.version, 0) AS version, c.update_time
         FROM UNNEST($2::text[]) AS h(handoff)
         LEFT JOIN handoff_defaults d ON d.handoff = h.handoff
         LEFT JOIN handoff_contracts c ON c.merchant_id = $1 AND c.handoff = h.handoff",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(Handoff::ALL.map(Handoff::as_str).to_vec())
    .load(&mut conn)
    .await?;
    for r in rows {
        let h = Handoff::parse(&r.handoff).ok_or_else(|| {
            Error::corrupt("a handoff contract", format!("handoff {}", r.handoff))
        })?;
        let own = settings(r.own)?;
        let contract = builtin(h).with(&settings(r.defaults)?).with(&own);
        out.insert(
            h,
            StoredContract {
                contract,
                own,
                version: r.version,
                update_time: r.update_time,
            },
        );
    }
    Ok(out)
}

/// Stores a merchant's own settings of one contract, one version on.
pub async fn save(
    conn: &mut Conn,
    merchant: &str,
    handoff: Handoff,
    own: &ContractSettings,
) -> Result<()> {
    let json = serde_json::to_value(own).map_err(|e| Error::Internal(e.to_string()))?;
    statement(
        "INSERT INTO handoff_contracts (merchant_id, handoff, settings) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id, handoff) DO UPDATE SET settings = EXCLUDED.settings,
             version = handoff_contracts.version + 1, update_time = EXCLUDED.update_time",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(handoff.as_str())
    .bind::<Jsonb, _>(json)
    .execute(conn)
    .await?;
    Ok(())
}
