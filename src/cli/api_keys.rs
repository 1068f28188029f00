//! `tally keys create | list | revoke`: API keys, managed by operators on
//! the database directly (there is no RPC that makes keys: a leaked key
//! cannot mint more).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::DatabaseArgs;
use crate::api::names::valid_merchant;
use crate::app::keys::NewKey;
use crate::domain::access::Scope;
use crate::storage::api_keys::KeyInfo;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; prints it once, on stdout (only its hash is stored)
    Create(CreateArgs),
    /// List keys (never their secrets)
    List(ListArgs),
    /// Revoke a key by its id: refused everywhere within seconds
    Revoke(RevokeArgs),
}

impl KeysCommand {
    pub fn database(&self) -> &DatabaseArgs {
        match self {
            KeysCommand::Create(c) => &c.database,
            KeysCommand::List(l) => &l.database,
            KeysCommand::Revoke(r) => &r.database,
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A merchant the key acts for (repeatable)
    #[arg(long, required = true, value_name = "MERCHANT")]
    pub merchant: Vec<String>,
    /// What it may do: submit, read, work, admin, act_as (comma-separated)
    #[arg(long, value_name = "SCOPES")]
    pub scopes: String,
    /// Who calls with it: the actor recorded for what it changes [default: key-<id>]
    #[arg(long)]
    pub name: Option<String>,
    /// When it stops working: an RFC 3339 time, or a span from now (90d, 12h)
    #[arg(long, value_name = "WHEN")]
    pub expires: Option<String>,
    /// A client certificate common name (CN) that authenticates as this key over mutual TLS
    #[arg(long, value_name = "CN")]
    pub client_cn: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The key id (the 16 hex digits after `tally_`, as `keys list` shows)
    pub key_id: String,
}

/// 1-128 of [A-Za-z0-9._@:-]: shown in histories as is; not "rules", the
/// rule engine's name.
pub fn valid_key_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:-".contains(&b))
        && !name.eq_ignore_ascii_case("rules")
}

/// "2027-01-01T00:00:00Z", or "90d" / "12h" / "30m" from `now`.
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let bad =
        || format!("--expires: '{s}' is not an RFC 3339 time or a span such as 90d, 12h, 30m");
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let span = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    now.checked_add_signed(span).ok_or_else(bad)
}

/// The key `create` asks for, checked.
pub fn new_key(args: &CreateArgs, now: DateTime<Utc>) -> Result<NewKey, String> {
    let merchants: BTreeSet<String> = args.merchant.iter().map(|m| m.trim().to_string()).collect();
    if let Some(bad) = merchants.iter().find(|m| !valid_merchant(m)) {
        return Err(format!(
            "--merchant: '{bad}' is not a merchant id (1-63 of [a-z0-9-])"
        ));
    }
    let scopes = Scope::parse_list(&args.scopes).map_err(|e| format!("--scopes: {e}"))?;
    if let Some(name) = &args.name
        && !valid_key_name(name)
    {
        return Err(format!(
            "--name: '{name}' is not a key name (1-128 of [A-Za-z0-9._@:-], not \"rules\")"
        ));
    }
    let expire_time = args
        .expires
        .as_deref()
        .map(|e| parse_expiry(e, now))
        .transpose()?;
    if expire_time.is_some_and(|t| t <= now) {
        return Err("--expires: the time is already past".into());
    }
    if let Some(cn) = &args.client_cn
        && (cn.is_empty() || cn.len() > 255 || cn.chars().any(char::is_control))
    {
        return Err("--client-cn: 1-255 printable characters".into());
    }
    Ok(NewKey {
        name: args.name.clone(),
        merchants,
        scopes,
        expire_time,
        client_cn: args.client_cn.clone(),
    })
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per key for `keys list`: id, name, state, merchants, scopes,
/// times. Never the secret (only its hash exists).
pub fn describe(k: &KeyInfo, now: DateTime<Utc>) -> String {
    let key = &k.key;
    let p = &key.principal;
    let state = match (key.revoke_time, key.expire_time) {
        (Some(t), _) => format!("revoked {}", t.to_rfc3339()),
        (None, Some(t)) if t <= now => format!("expired {}", t.to_rfc3339()),
        (None, Some(t)) => format!("live until {}", t.to_rfc3339()),
        (None, None) => "live".to_string(),
    };
    let cn = k
        .client_cn
        .as_deref()
        .map(|c| format!("\tclient_cn={c}"))
        .unwrap_or_default();
    format!(
        "{}\t{}\t{state}\tmerchants={}\tscopes={}{cn}\tcreated {}",
        p.key_id,
        p.name,
        join(&p.merchants),
        join(&p.scopes),
        k.create_time.to_rfc3339()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(
        merchants: &[&str],
        scopes: &str,
        name: Option<&str>,
        expires: Option<&str>,
    ) -> CreateArgs {
        CreateArgs {
            database: DatabaseArgs::default(),
            merchant: merchants.iter().map(|m| m.to_string()).collect(),
            scopes: scopes.into(),
            name: name.map(Into::into),
            expires: expires.map(Into::into),
            client_cn: None,
        }
    }

    #[test]
    fn create_checks_what_it_is_given() {
        let now = Utc::now();
        let k = new_key(
            &args(&["acme", "globex"], "read,submit", Some("erp"), Some("90d")),
            now,
        )
        .unwrap();
        assert_eq!(k.merchants.len(), 2);
        assert_eq!(k.scopes, [Scope::Submit, Scope::Read].into());
        assert_eq!(k.expire_time, Some(now + chrono::Duration::days(90)));
        for (a, needle) in [
            (args(&["Acme"], "read", None, None), "--merchant"),
            (args(&["acme"], "read,root", None, None), "--scopes"),
            (args(&["acme"], "read", Some("rules"), None), "--name"),
            (args(&["acme"], "read", Some("a b"), None), "--name"),
            (
                args(&["acme"], "read", None, Some("2001-01-01T00:00:00Z")),
                "past",
            ),
            (args(&["acme"], "read", None, Some("soon")), "--expires"),
        ] {
            let e = new_key(&a, now).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
