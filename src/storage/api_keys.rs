//! api_keys and api_key_merchants: keys by id (only their secret's hash),
//! and the merchants each acts for.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bytea, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;

use super::Conn;
use super::statement::{Bind, statement};
use crate::domain::access::{Principal, Scope, StoredKey};
use crate::error::{Error, Result};

#[derive(QueryableByName)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bytea)]
    secret_sha256: Vec<u8>,
    #[diesel(sql_type = Array<Text>)]
    scopes: Vec<String>,
    #[diesel(sql_type = Array<Text>)]
    merchants: Vec<String>,
    #[diesel(sql_type = Nullable<Text>)]
    client_cn: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    create_time: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expire_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    revoke_time: Option<DateTime<Utc>>,
}

/// A key as `tally keys list` shows it (no hash).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub key: StoredKey,
    /// The client certificate CN that authenticates as this key.
    pub client_cn: Option<String>,
    pub create_time: DateTime<Utc>,
}

impl TryFrom<KeyRow> for KeyInfo {
    type Error = Error;

    fn try_from(r: KeyRow) -> Result<KeyInfo> {
        let scopes = r
            .scopes
            .iter()
            .map(|s| Scope::parse(s).ok_or_else(|| Error::corrupt("api key scope", s.clone())))
            .collect::<Result<BTreeSet<_>>>()?;
        let secret_sha256 = <[u8; 32]>::try_from(r.secret_sha256.as_slice())
            .map_err(|_| Error::corrupt("api key hash", "not 32 bytes"))?;
        Ok(KeyInfo {
            key: StoredKey {
                principal: Principal {
                    key_id: r.key_id,
                    name: r.name,
                    merchants: r.merchants.into_iter().collect(),
                    scopes,
                },
                secret_sha256,
                expire_time: r.expire_time,
                revoke_time: r.revoke_time,
            },
            client_cn: r.client_cn,
            create_time: r.create_time,
        })
    }
}

const SELECT: &str =
    "SELECT k.key_id, k.name, k.secret_sha256, k.scopes, k.client_cn, k.create_time,
        k.expire_time, k.revoke_time,
        ARRAY(SELECT m.merchant_id FROM api_key_merchants m
              WHERE m.key_id = k.key_id ORDER BY m.merchant_id) AS merchants
     FROM api_keys k";

pub async fn get(conn: &mut Conn, key_id: &str) -> Result<Option<KeyInfo>> {
    let rows: Vec<KeyRow> = statement(format!("{SELECT} WHERE k.key_id = $1"))
        .bind::<Text, _>(key_id)
        .load(conn)
        .await?;
    rows.into_iter().next().map(KeyInfo::try_from).transpose()
}

/// The key a client certificate's common name authenticates as.
pub async fn get_by_client_cn(conn: &mut Conn, cn: &str) -> Result<Option<KeyInfo>> {
    let rows: Vec<KeyRow> = statement(format!("{SELECT} WHERE k.client_cn = $1"))
        .bind::<Text, _>(cn)
        .load(conn)
        .await?;
    rows.into_iter().next().map(KeyInfo::try_from).transpose()
}

pub async fn list(conn: &mut Conn) -> Result<Vec<KeyInfo>> {
    let rows: Vec<KeyRow> = statement(format!("{SELECT} ORDER BY k.create_time, k.key_id"))
        .load(conn)
        .await?;
    rows.into_iter().map(KeyInfo::try_from).collect()
}

/// Stores a new key (its hash) and its merchants, in one statement.
pub async fn insert(conn: &mut Conn, key: &StoredKey, client_cn: Option<&str>) -> Result<()> {
    let p = &key.principal;
    let scopes: Vec<&str> = p.scopes.iter().map(|s| s.as_str()).collect();
    let merchants: Vec<&str> = p.merchants.iter().map(String::as_str).collect();
    statement(
        "WITH k AS (
             INSERT INTO api_keys (key_id, name, secret_sha256, scopes, expire_time, client_cn)
             VALUES ($1, $2, $3, $4, $5, $7) RETURNING key_id)
         INSERT INTO api_key_merchants (merchant_id, key_id)
         SELECT m, k.key_id FROM k, unnest($6::text[]) m",
    )
    .bind::<Text, _>(&p.key_id)
    .bind::<Text, _>(&p.name)
    .bind::<Bytea, _>(key.secret_sha256.as_slice())
    .bind::<Array<Text>, _>(scopes)
    .bind::<Nullable<Timestamptz>, _>(key.expire_time)
    .bind::<Array<Text>, _>(merchants)
    .bind::<Nullable<Text>, _>(client_cn)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes a key from now on; false when there is no such key. A key
/// revoked already keeps its first revocation time.
pub async fn revoke(conn: &mut Conn, key_id: &str) -> Result<bool> {
    let n =
        statement("UPDATE api_keys SET revoke_time = coalesce(revoke_time, $2) WHERE key_id = $1")
            .bind::<Text, _>(key_id)
            // A parameter, not now(): Citus refuses now() inside COALESCE.
            .bind::<Timestamptz, _>(Utc::now())
            .execute(conn)
            .await?;
    Ok(n == 1)
}
