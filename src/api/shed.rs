//! Load shedding: at most `max` calls in progress at once; past that a call
//! is answered at once with RESOURCE_EXHAUSTED and a RetryInfo, instead of
//! queueing until every caller times out together. Health and reflection
//! are never shed: a probe must see a busy server as alive.
//!
//! A call holds its place until its handler has answered (for a stream:
//! until the stream starts; its messages then flow under the stream's own
//! back-pressure).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tonic::Status;
use tonic::codegen::BoxFuture;

use crate::error::Error;

/// When a shed caller is told to come back: soon, so that a short burst
/// costs little; its client's back-off spreads the retries.
pub const SHED_RETRY_AFTER: Duration = Duration::from_millis(500);

/// Calls that are never shed or limited.
pub fn is_exempt(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

#[derive(Clone, Default)]
pub struct ShedLayer {
    permits: Option<Arc<Semaphore>>,
}

impl ShedLayer {
    /// At most `max` calls at once; None: no limit.
    pub fn new(max: Option<usize>) -> ShedLayer {
        ShedLayer {
            permits: max.map(|n| Arc::new(Semaphore::new(n))),
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Option<Arc<Semaphore>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Shed<S>
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
        let permits = match &self.permits {
            Some(p) if !is_exempt(request.uri().path()) => p.clone(),
            _ => return Box::pin(inner.call(request)),
        };
        match permits.try_acquire_owned() {
            Ok(permit) => Box::pin(async move {
                let response = inner.call(request).await;
                drop(permit);
                response
            }),
            Err(_) => {
                tracing::warn!(path = %request.uri().path(), "shed a call: at the limit of calls in progress");
                let status = Status::from(Error::Overloaded {
                    retry_after: SHED_RETRY_AFTER,
                });
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
