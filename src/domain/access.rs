//! Who may do what: API keys, their scopes and the merchants they act for.
//!
//! A key reads `tally_<key id>_<secret>`: the key id (16 hex digits) is
//! public and finds the stored row, the secret (64 hex digits, 256 random
//! bits) is only ever stored as its SHA-256 and compared in constant time.
//! A plain hash is enough: the secret is random, not a password a
//! dictionary could guess.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// What a key may do, each a family of RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// IngestService: SubmitRecords, StreamRecords.
    Submit,
    /// Every Get, List and Watch.
    Read,
    /// Working exceptions: Acknowledge, Assign, Resolve (and closing).
    Work,
    /// Changing configuration: handoff contracts.
    Admin,
    /// Naming the person a call is made for (`x-tally-actor`): for a UI
    /// behind single sign-on that calls for its users.
    ActAs,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Submit,
        Scope::Read,
        Scope::Work,
        Scope::Admin,
        Scope::ActAs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Read => "read",
            Scope::Work => "work",
            Scope::Admin => "admin",
            Scope::ActAs => "act_as",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }

    /// "submit,read" -> both; an unknown name is the error.
    pub fn parse_list(s: &str) -> Result<BTreeSet<Scope>, String> {
        let mut out = BTreeSet::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            out.insert(Scope::parse(part).ok_or_else(|| {
                format!(
                    "'{}' is not a scope: expected submit, read, work, admin or act_as",
                    part.trim()
                )
            })?);
        }
        if out.is_empty() {
            return Err("at least one scope is needed".into());
        }
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller: a key (or a client certificate mapped to one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    /// Recorded as the actor of what the caller changes.
    pub name: String,
    pub merchants: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
}

impl Principal {
    pub fn may_act_for(&self, merchant: &str) -> bool {
        self.merchants.contains(merchant)
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A stored key: what authenticating needs.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub principal: Principal,
    pub secret_sha256: [u8; 32],
    pub expire_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// Why a presented key is not accepted. Never says which part was wrong
/// to the caller (`api::auth` answers one UNAUTHENTICATED for all), but the
/// log may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl StoredKey {
    /// The principal, if `secret` is this key's and it is live at `now`.
    pub fn check(&self, secret: &str, now: DateTime<Utc>) -> Result<&Principal, Rejected> {
        if !constant_time_eq(&sha256(secret), &self.secret_sha256) {
            return Err(Rejected::Unknown);
        }
        self.live(now)
    }

    /// The principal, if the key is neither revoked nor expired at `now`
    /// (a client certificate, already verified, needs no secret).
    pub fn live(&self, now: DateTime<Utc>) -> Result<&Principal, Rejected> {
        if self.revoke_time.is_some_and(|t| t <= now) {
            return Err(Rejected::Revoked);
        }
        if self.expire_time.is_some_and(|t| t <= now) {
            return Err(Rejected::Expired);
        }
        Ok(&self.principal)
    }
}

pub const KEY_PREFIX: &str = "tally_";
const KEY_ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;

/// A key as presented: its id and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub key_id: String,
    pub secret: String,
}

/// Never printed: a Debug that shows the secret would put it in a log.
impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({}, <secret>)", self.key_id)
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl PresentedKey {
    pub fn parse(key: &str) -> Result<PresentedKey, Rejected> {
        let rest = key.strip_prefix(KEY_PREFIX).ok_or(Rejected::Malformed)?;
        let (id, secret) = rest.split_once('_').ok_or(Rejected::Malformed)?;
        if !lower_hex(id, KEY_ID_HEX) || !lower_hex(secret, SECRET_HEX) {
            return Err(Rejected::Malformed);
        }
        Ok(PresentedKey {
            key_id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}

/// A new key from 8 + 32 random bytes: the id and the secret, and the
/// whole key to show once.
pub fn new_key(random: &[u8; 40]) -> (PresentedKey, String) {
    let key_id = hex::encode(&random[..8]);
    let secret = hex::encode(&random[8..]);
    let whole = format!("{KEY_PREFIX}{key_id}_{secret}");
    (PresentedKey { key_id, secret }, whole)
}

pub fn sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal in time that does not depend on where the first difference is.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box: the compiler may not turn the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(secret: &str) -> StoredKey {
        StoredKey {
            principal: Principal {
                key_id: "0123456789abcdef".into(),
                name: "erp".into(),
                merchants: ["acme".to_string()].into(),
                scopes: [Scope::Read].into(),
            },
            secret_sha256: sha256(secret),
            expire_time: None,
            revoke_time: None,
        }
    }

    #[test]
    fn keys_round_trip_and_only_their_secret_matches() {
        let (presented, whole) = new_key(&[7; 40]);
        assert_eq!(PresentedKey::parse(&whole).unwrap(), presented);
        assert!(!format!("{presented:?}").contains(&presented.secret));
        let key = stored(&presented.secret);
        let now = Utc::now();
        assert!(key.check(&presented.secret, now).is_ok());
        assert_eq!(
            key.check(&"0".repeat(64), now).unwrap_err(),
            Rejected::Unknown
        );
        let revoked = StoredKey {
            revoke_time: Some(now),
            ..key.clone()
        };
        assert_eq!(
            revoked.check(&presented.secret, now).unwrap_err(),
            Rejected::Revoked
        );
        let expired = StoredKey {
            expire_time: Some(now - chrono::Duration::seconds(1)),
            ..key
        };
        assert_eq!(
            expired.check(&presented.secret, now).unwrap_err(),
            Rejected::Expired
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "tally_",
            "tally_0123456789abcdef",
            "tally_0123456789abcdef_",
            "tally_0123456789ABCDEF_0000000000000000000000000000000000000000000000000000000000000000",
            "bearer_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
            "tally_0123456789abcdef_000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert_eq!(
                PresentedKey::parse(bad).unwrap_err(),
                Rejected::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn scopes_parse_by_name() {
        assert_eq!(
            Scope::parse_list("submit, read,act_as").unwrap(),
            [Scope::Submit, Scope::Read, Scope::ActAs].into()
        );
        assert!(Scope::parse_list("read,root").unwrap_err().contains("root"));
        assert!(Scope::parse_list("").is_err());
    }
}
