//! A rate limit per API key: a token bucket of `per_second` tokens a
//! second, holding at most one second's worth, per key id. A call without
//! a token is RESOURCE_EXHAUSTED with a RetryInfo saying when the next one
//! is due. Runs after authentication (it needs the key); without
//! authentication there is no key and no limit. Each replica counts its
//! own calls, so the limit a key sees is per replica.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::codegen::BoxFuture;

use crate::domain::access::Principal;
use crate::error::Error;

/// The most keys tracked: full buckets are forgotten past it.
const MAX_TRACKED: usize = 10_000;

/// Tokens per key id.
#[derive(Debug)]
pub struct Buckets {
    per_second: f64,
    state: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    pub fn new(per_second: u32) -> Buckets {
        Buckets {
            per_second: f64::from(per_second.max(1)),
            state: Mutex::default(),
        }
    }

    /// Takes a token of `key`'s at `now`; Err(how long until one is due).
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let burst = self.per_second;
        if state.len() >= MAX_TRACKED && !state.contains_key(key) {
            let rate = self.per_second;
            state.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = state.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[derive(Clone, Default)]
pub struct RateLayer {
    buckets: Option<Arc<Buckets>>,
}

impl RateLayer {
    /// `per_second` calls a second per key; None: no limit.
    pub fn new(per_second: Option<u32>) -> RateLayer {
        RateLayer {
            buckets: per_second.map(|n| Arc::new(Buckets::new(n))),
        }
    }
}

impl<S> tower::Layer<S> for RateLayer {
    type Service = Rate<S>;

    fn layer(&self, inner: S) -> Rate<S> {
        Rate {
            inner,
            buckets: self.buckets.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Rate<S> {
    inner: S,
    buckets: Option<Arc<Buckets>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Rate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: Default + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let key = request
            .extensions()
            .get::<Principal>()
            .map(|p| p.key_id.clone());
        if let (Some(buckets), Some(key)) = (&self.buckets, key)
            && let Err(retry_after) = buckets.take(&key, Instant::now())
        {
            let status = Status::from(Error::RateLimited { retry_after });
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_rate_and_is_told_when_to_return() {
        let b = Buckets::new(2);
        let t0 = Instant::now();
        assert!(b.take("k", t0).is_ok());
        assert!(b.take("k", t0).is_ok());
        let wait = b.take("k", t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(b.take("other", t0).is_ok());
        assert!(b.take("k", t0 + Duration::from_millis(500)).is_ok());
        // Idle time refills to one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take("k", later).is_ok());
        assert!(b.take("k", later).is_ok());
        assert!(b.take("k", later).is_err());
    }
}
