//! The one mapping from Tally's errors to gRPC statuses.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, FieldViolation};

/// ErrorInfo.domain for every error Tally returns.
pub const ERROR_DOMAIN: &str = "tally.v1";

fn details(reason: &str) -> ErrorDetails {
    ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new())
}

/// The status for malformed input, with a BadRequest naming every field.
pub fn invalid_argument(reason: &str, violations: &[FieldViolation]) -> Status {
    let mut d = details(reason);
    d.set_bad_request(
        violations
            .iter()
            .map(|v| tonic_types::FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    let message = match violations {
        [one] => format!("{}: {}", one.field, one.description),
        many => format!(
            "{} invalid fields, first {}: {}",
            many.len(),
            many.first().map(|v| v.field.as_str()).unwrap_or_default(),
            many.first()
                .map(|v| v.description.as_str())
                .unwrap_or_default()
        ),
    };
    Status::with_error_details(Code::InvalidArgument, message, d)
}

fn status(code: Code, message: impl Into<String>, reason: &str) -> Status {
    Status::with_error_details(code, message.into(), details(reason))
}

/// Every variant, exhaustively: a new one does not compile until it has a
/// status. Causes go to the log, not to the caller. Nothing maps to
/// OUT_OF_RANGE: `api::limits` relies on that code being tonic's alone.
impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::InvalidArgument { reason, violations } => invalid_argument(reason, &violations),
            Error::MessageTooLarge { limit_bytes } => status(
                Code::ResourceExhausted,
                format!(
                    "the request message is larger than the server accepts: at most {limit_bytes} bytes ({} MiB); split the batch",
                    limit_bytes >> 20
                ),
                "MESSAGE_TOO_LARGE",
            ),
            Error::NotFound { what } => {
                status(Code::NotFound, format!("{what} not found"), "NOT_FOUND")
            }
            Error::RequestIdReused { .. } => {
                status(Code::AlreadyExists, e.to_string(), "REQUEST_ID_REUSED")
            }
            Error::Conflict {
                ref what,
                ref source,
            } => {
                tracing::warn!(error = %source, "write refused as a duplicate");
                status(
                    Code::AlreadyExists,
                    format!("{what} already exists"),
                    "ALREADY_EXISTS",
                )
            }
            Error::ConstraintViolated {
                ref what,
                ref source,
            } => {
                tracing::warn!(error = %source, "write refused by a constraint");
                status(
                    Code::FailedPrecondition,
                    format!("rejected by a database constraint: {what}"),
                    "CONSTRAINT_VIOLATED",
                )
            }
            Error::InvalidState { ref what } => {
                status(Code::FailedPrecondition, what.clone(), "INVALID_STATE")
            }
            Error::StaleEtag { .. } => status(Code::Aborted, e.to_string(), "STALE_ETAG"),
            Error::ConcurrentUpdate { ref source } => {
                tracing::info!(error = %source, "lost a race with a concurrent update");
                status(
                    Code::Aborted,
                    "lost a race with a concurrent update; retry",
                    "CONCURRENT_UPDATE",
                )
            }
            Error::DatabaseUnavailable { ref source } => {
                tracing::warn!(error = %source, "database unavailable");
                status(
                    Code::Unavailable,
                    "database unavailable",
                    "DATABASE_UNAVAILABLE",
                )
            }
            Error::CorruptData {
                ref what,
                ref source,
            } => {
                tracing::error!(error = %source, %what, "stored data unreadable");
                status(Code::Internal, "internal error", "INTERNAL")
            }
            Error::Configuration(ref m) | Error::Internal(ref m) => {
                tracing::error!(error = %m, "internal error");
                status(Code::Internal, "internal error", "INTERNAL")
            }
        }
    }
}

/// The google.rpc.Status carried inside a response (a stream's per-record
/// result): the same bytes a failed call would have sent as its details.
pub fn to_rpc_status(status: &Status) -> tonic_types::pb::Status {
    use prost::Message;
    tonic_types::pb::Status::decode(status.details()).unwrap_or_else(|_| tonic_types::pb::Status {
        code: status.code() as i32,
        message: status.message().to_string(),
        details: vec![],
    })
}
