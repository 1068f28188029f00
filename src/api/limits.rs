//! The largest message a call may send, and the status a caller sees past
//! it: RESOURCE_EXHAUSTED naming the limit.
//!
//! tonic refuses a message over its decoding limit with OUT_OF_RANGE
//! ("decoded message length too large"), a code meant for iterating past
//! the end of something. Where it says so depends on the call: a unary
//! call's request is decoded before our handler runs, so the status leaves
//! as the response's headers, and `MessageLimit` rewrites it there; a
//! streaming call's messages are decoded while our handler reads them, so
//! the handler passes each read's error through `inbound`. Tally's own
//! OUT_OF_RANGE (a watch cursor past the end) always carries ErrorInfo
//! details (`api::status`); tonic's refusal carries none, which is what
//! `MessageLimit` tells them apart by. `inbound` sees only tonic's errors.

use std::convert::Infallible;

use tonic::Code;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Context, Poll, Service, http};
use tonic::server::NamedService;

use crate::error::Error;

/// The largest request message, in bytes (8 MiB): a 1,000-record batch of
/// detailed orders fits several times over; past it the caller splits the
/// batch. Documented in the README and the proto.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// The status for a message past the limit.
fn too_large() -> Status {
    Error::MessageTooLarge {
        limit_bytes: MAX_MESSAGE_BYTES,
    }
    .into()
}

/// A streamed message as read: tonic's refusal of an oversized one
/// becomes RESOURCE_EXHAUSTED; anything else is left as it is.
pub fn inbound<T>(message: Result<T, Status>) -> Result<T, Status> {
    message.map_err(|s| {
        if s.code() == Code::OutOfRange {
            too_large()
        } else {
            s
        }
    })
}

/// Wraps a generated service: its decoding limit is set to
/// `MAX_MESSAGE_BYTES` by the caller, and a unary call refused for it
/// answers RESOURCE_EXHAUSTED.
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
}

impl<S> MessageLimit<S> {
    pub fn new(inner: S) -> Self {
        MessageLimit { inner }
    }
}

impl<S: NamedService> NamedService for MessageLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for MessageLimit<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A trailers-only response carries its status in the headers;
            // tonic's refusal has no details, Tally's statuses always do.
            let headers = response.headers();
            let refused = headers
                .get("grpc-status")
                .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
                == Some(Code::OutOfRange as i32)
                && !headers.contains_key("grpc-status-details-bin");
            Ok(if refused {
                too_large().into_http()
            } else {
                response
            })
        })
    }
}
