//! Transaction-scoped advisory locks that serialise writers of the same
//! orders and of the same external ids (rows may not exist yet, so row locks
//! cannot). Keys are namespaced by what they lock and lead with the
//! merchant.

use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::statement::{Bind, statement};
use crate::error::Result;

/// What a lock key stands for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockKey {
    /// An order: its projection, exceptions and merge.
    Order(String),
    /// An external id (a charge, a payment intent): the refs and links that
    /// name it.
    Ref(String),
}

fn text(merchant: &str, key: &LockKey) -> String {
    match key {
        LockKey::Order(o) => format!("{merchant}\u{1f}order\u{1f}{o}"),
        LockKey::Ref(r) => format!("{merchant}\u{1f}ref\u{1f}{r}"),
    }
}

/// Waits for every lock, taken in one global order (by hash), so two
/// writers that know their keys up front can never deadlock on them.
pub async fn lock_all(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    keys: &[LockKey],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = keys.iter().map(|k| text(merchant, k)).collect();
    statement(
        "SELECT pg_advisory_xact_lock(k) FROM (
           SELECT DISTINCT hashtextextended(x, 0) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS s",
    )
    .bind::<Array<Text>, _>(keys)
    .execute(&mut conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Granted {
    #[diesel(sql_type = Bool)]
    granted: bool,
}

/// Takes the locks only if none is held by another transaction: for keys
/// found late (after other locks are held), where waiting could deadlock.
/// Returns whether all were taken; a caller that gets `false` retries with
/// the keys among those it locks up front.
pub async fn try_lock_all(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    keys: &[LockKey],
) -> Result<bool> {
    if keys.is_empty() {
        return Ok(true);
    }
    let keys: Vec<String> = keys.iter().map(|k| text(merchant, k)).collect();
    let rows: Vec<Granted> = statement(
        "SELECT bool_and(pg_try_advisory_xact_lock(k)) AS granted FROM (
           SELECT DISTINCT hashtextextended(x, 0) AS k FROM unnest($1::text[]) AS x ORDER BY 1) AS s",
    )
    .bind::<Array<Text>, _>(keys)
    .load(&mut conn)
    .await?;
    Ok(rows.into_iter().next().is_some_and(|r| r.granted))
}

#[derive(QueryableByName)]
struct Index {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    i: i64,
}

/// Takes each lock that is free and returns the keys it got, in the order
/// given; never waits. For a pass over many independent keys (the sweeper's
/// rechecks) that must not queue behind a worker holding one of them, nor
/// make writers of the others queue behind itself: a busy key is left for
/// the next pass.
pub async fn try_lock_each(
    mut conn: &AsyncPgConnection,
    merchant: &str,
    keys: &[LockKey],
) -> Result<Vec<LockKey>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<String> = keys.iter().map(|k| text(merchant, k)).collect();
    // `g` calls a volatile function, so PostgreSQL evaluates it once, as
    // written (never inlined): each distinct hash is tried exactly once.
    let rows: Vec<Index> = statement(
        "WITH k AS (
           SELECT i, hashtextextended(x, 0) AS h FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i)),
         g AS (
           SELECT h FROM (SELECT DISTINCT h FROM k ORDER BY h) AS s WHERE pg_try_advisory_xact_lock(h))
         SELECT k.i FROM k JOIN g USING (h) ORDER BY k.i",
    )
    .bind::<Array<Text>, _>(texts)
    .load(&mut conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            usize::try_from(r.i - 1)
                .ok()
                .and_then(|i| keys.get(i).cloned())
                .ok_or_else(|| crate::error::Error::Internal("lock index out of range".into()))
        })
        .collect()
}
