//! submissions: whole-request idempotency. A request_id is claimed with the
//! request's fingerprint and its method; the reply is stored as JSON the
//! use case gave (transport-neutral), in the same transaction.

use diesel::QueryableByName;
use diesel::sql_types::{Bytea, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, statement};
use crate::error::Result;

/// What a claim found.
pub enum Claim {
    /// The request_id is ours now; store the reply before committing.
    Fresh,
    /// Someone committed this request_id before: its fingerprint, method
    /// and reply.
    Taken {
        request_hash: Vec<u8>,
        method: String,
        reply: Option<serde_json::Value>,
    },
}

#[derive(QueryableByName)]
struct Inserted {
    #[diesel(sql_type = Text)]
    #[allow(dead_code)]
    request_id: String,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Bytea)]
    request_hash: Vec<u8>,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    reply: Option<serde_json::Value>,
}

/// Claims a request_id. A concurrent twin blocks on the unique key until the
/// first commits, then finds its row.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    request_id: &str,
    method: &str,
    request_hash: &[u8; 32],
) -> Result<Claim> {
    let inserted: Vec<Inserted> = statement(
        "INSERT INTO submissions (merchant_id, request_id, request_hash, method)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING request_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(request_id)
    .bind::<Bytea, _>(request_hash.to_vec())
    .bind::<Text, _>(method)
    .load(conn)
    .await?;
    if !inserted.is_empty() {
        return Ok(Claim::Fresh);
    }
    let row: Row = statement(
        "SELECT request_hash, method, reply FROM submissions WHERE merchant_id = $1 AND request_id = $2",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(request_id)
    .get_result(conn)
    .await?;
    Ok(Claim::Taken {
        request_hash: row.request_hash,
        method: row.method,
        reply: row.reply,
    })
}

pub async fn store_reply(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    request_id: &str,
    reply: serde_json::Value,
) -> Result<()> {
    statement("UPDATE submissions SET reply = $3 WHERE merchant_id = $1 AND request_id = $2")
        .bind::<Text, _>(merchant)
        .bind::<Text, _>(request_id)
        .bind::<Jsonb, _>(reply)
        .execute(conn)
        .await?;
    Ok(())
}
