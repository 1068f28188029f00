//! API keys: creating one (shown once), listing, revoking, and
//! authenticating a presented key, with a short cache.
//!
//! The cache holds what the database said about a key id for `KEY_CACHE_TTL`
//! (found or not): a busy caller costs one query per few seconds, not one
//! per call, and a revocation reaches every replica within that time, since
//! each replica's entry expires on its own. Expiry is checked at every call
//! against the cached expire time, so it is exact.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::App;
use crate::domain::access::{self, PresentedKey, Principal, Rejected, Scope, StoredKey};
use crate::error::{Error, Result};
use crate::storage::Store;
use crate::storage::api_keys::{self, KeyInfo};

/// How long a key's row is trusted without asking the database again: the
/// most a revocation takes to apply everywhere.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(3);
/// The most key ids remembered: a caller trying random ids cannot grow it
/// past this.
const MAX_CACHED: usize = 10_000;

/// What a new key is to hold.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// None: "key-<key id>".
    pub name: Option<String>,
    pub merchants: BTreeSet<String>,
    pub scopes: BTreeSet<Scope>,
    pub expire_time: Option<DateTime<Utc>>,
    /// A client certificate CN that authenticates as this key (mutual TLS).
    pub client_cn: Option<String>,
}

impl App {
    /// Stores a new key; returns it with the whole key, which is shown once
    /// and kept nowhere.
    pub async fn create_key(&self, new: NewKey) -> Result<(KeyInfo, String)> {
        let mut random = [0u8; 40];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut random)
            .map_err(|_| Error::Internal("no secure random numbers".into()))?;
        let (presented, whole) = access::new_key(&random);
        let key = StoredKey {
            principal: Principal {
                key_id: presented.key_id.clone(),
                name: new
                    .name
                    .unwrap_or_else(|| format!("key-{}", presented.key_id)),
                merchants: new.merchants,
                scopes: new.scopes,
            },
            secret_sha256: access::sha256(&presented.secret),
            expire_time: new.expire_time,
            revoke_time: None,
        };
        let mut conn = self.store().conn().await?;
        api_keys::insert(&mut conn, &key, new.client_cn.as_deref()).await?;
        let info = api_keys::get(&mut conn, &presented.key_id)
            .await?
            .ok_or_else(|| Error::Internal("a key just stored is gone".into()))?;
        Ok((info, whole))
    }

    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut conn = self.store().conn().await?;
        api_keys::list(&mut conn).await
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        let mut conn = self.store().conn().await?;
        if api_keys::revoke(&mut conn, key_id).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("key {key_id}")))
        }
    }
}

/// How a key is found: by the id of a presented key, or by the CN of a
/// verified client certificate.
#[derive(Clone, Copy)]
enum Lookup<'a> {
    Id(&'a str),
    ClientCn(&'a str),
}

/// "id:<key id>" or "cn:<common name>" -> when it was read, and the stored key (None: no such key).
type Cache = HashMap<String, (Instant, Option<Arc<StoredKey>>)>;

/// Authenticates presented keys against the database, through the cache.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    ttl: Duration,
    cache: Arc<Mutex<Cache>>,
}

impl Authenticator {
    pub fn new(store: Store) -> Authenticator {
        Authenticator::with_ttl(store, KEY_CACHE_TTL)
    }

    pub fn with_ttl(store: Store, ttl: Duration) -> Authenticator {
        Authenticator {
            store,
            ttl,
            cache: Arc::default(),
        }
    }

    /// The principal of `key` (the bearer token as sent), or why not. The
    /// error is `Unauthenticated` whatever was wrong with the key, and
    /// never quotes it.
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        let rejected = |why: Rejected| {
            tracing::debug!(?why, "API key refused");
            Error::Unauthenticated
        };
        let presented = PresentedKey::parse(key).map_err(rejected)?;
        let stored = self.stored(Lookup::Id(&presented.key_id)).await?;
        let stored = stored.ok_or_else(|| rejected(Rejected::Unknown))?;
        stored
            .check(&presented.secret, Utc::now())
            .cloned()
            .map_err(rejected)
    }

    /// The principal a verified client certificate's common name maps to
    /// (`tally keys create --client-cn`), if its key is live.
    pub async fn authenticate_client(&self, cn: &str) -> Result<Principal> {
        let stored = self.stored(Lookup::ClientCn(cn)).await?;
        let stored = stored.ok_or_else(|| {
            tracing::debug!(%cn, "no key for this client certificate");
            Error::Unauthenticated
        })?;
        stored.live(Utc::now()).cloned().map_err(|why| {
            tracing::debug!(?why, %cn, "client certificate's key refused");
            Error::Unauthenticated
        })
    }

    async fn stored(&self, lookup: Lookup<'_>) -> Result<Option<Arc<StoredKey>>> {
        let now = Instant::now();
        let cache_key = match lookup {
            Lookup::Id(id) => format!("id:{id}"),
            Lookup::ClientCn(cn) => format!("cn:{cn}"),
        };
        if let Some((at, hit)) = self.lock().get(&cache_key)
            && now.duration_since(*at) < self.ttl
        {
            return Ok(hit.clone());
        }
        let found = {
            let mut conn = self.store.conn().await?;
            match lookup {
                Lookup::Id(id) => api_keys::get(&mut conn, id).await?,
                Lookup::ClientCn(cn) => api_keys::get_by_client_cn(&mut conn, cn).await?,
            }
            .map(|i| Arc::new(i.key))
        };
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(cache_key, (now, found.clone()));
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic elsewhere while holding it leaves a map that is still
        // consistent (every write is one insert).
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
