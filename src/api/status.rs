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

/// The most of one text an error carries: a field path, a description or
/// a message. Whatever a caller sent and an error quotes is cut here, in
/// one place, so no error can outgrow gRPC's 16 KiB of metadata (the
/// message is percent-encoded in `grpc-message`, the details base64 in
/// `grpc-status-details-bin`, both headers of a failed unary call).
pub const MAX_ERROR_TEXT: usize = 512;
/// The most bytes of field paths and descriptions one error lists (about
/// 11 KiB once base64-encoded); the violations past it are counted, not
/// listed. A batch of 1,000 bad records lists what fits.
pub const VIOLATIONS_BUDGET: usize = 8192;

/// `s` cut to `MAX_ERROR_TEXT` characters, marked when cut.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ERROR_TEXT) {
        None => s.to_string(),
        Some((at, _)) => format!("{}... ({} bytes in all)", &s[..at], s.len()),
    }
}

/// The status for malformed input, with a BadRequest naming every field
/// (as many as fit `VIOLATIONS_BUDGET`, and how many more there are).
pub fn invalid_argument(reason: &str, violations: &[FieldViolation]) -> Status {
    let mut d = details(reason);
    let mut listed = vec![];
    let mut used = 0;
    for v in violations {
        let (field, description) = (clip(&v.field), clip(&v.description));
        used += field.len() + description.len();
        if used > VIOLATIONS_BUDGET && !listed.is_empty() {
            break;
        }
        listed.push(tonic_types::FieldViolation::new(field, description));
    }
    if listed.len() < violations.len() {
        let more = violations.len() - listed.len();
        listed.push(tonic_types::FieldViolation::new(
            "",
            format!("and {more} more violations not listed"),
        ));
    }
    d.set_bad_request(listed);
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
    Status::with_error_details(Code::InvalidArgument, clip(&message), d)
}

fn status(code: Code, message: impl Into<String>, reason: &str) -> Status {
    Status::with_error_details(code, clip(&message.into()), details(reason))
}

/// RESOURCE_EXHAUSTED that says when to come back (google.rpc.RetryInfo),
/// which gRPC clients' retry policies and people both read.
fn retry_later(message: String, reason: &str, after: std::time::Duration) -> Status {
    let mut d = details(reason);
    d.set_retry_info(Some(after));
    Status::with_error_details(Code::ResourceExhausted, clip(&message), d)
}

/// Every variant, exhaustively: a new one does not compile until it has a
/// status. Causes go to the log, not to the caller. Tally's OUT_OF_RANGE
/// carries ErrorInfo like every status here; tonic's refusal of an
/// oversized message does not, which is how `api::limits` tells them apart.
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
            Error::OutOfRange { what } => status(Code::OutOfRange, what, "OUT_OF_RANGE"),
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
            // Interrupted: still so after the use case's own retries.
            Error::DatabaseUnavailable { ref source }
            | Error::DatabaseInterrupted { ref source } => {
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
            Error::Overloaded { retry_after } => {
                retry_later(e.to_string(), "OVERLOADED", retry_after)
            }
            Error::RateLimited { retry_after } => {
                retry_later(e.to_string(), "RATE_LIMITED", retry_after)
            }
            Error::Unauthenticated => {
                status(Code::Unauthenticated, e.to_string(), "UNAUTHENTICATED")
            }
            Error::PermissionDenied { what } => {
                status(Code::PermissionDenied, what, "PERMISSION_DENIED")
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn an_error_never_carries_unbounded_input() {
        // 1,000 violations each quoting 20 KB: clipped, and counted past
        // the budget, so the whole error stays far inside 16 KiB.
        let huge = "é".repeat(20_000);
        let violations: Vec<FieldViolation> = (0..1000)
            .map(|i| FieldViolation::new(format!("records[{i}].memo"), huge.clone()))
            .collect();
        let s = invalid_argument("INVALID_RECORDS", &violations);
        assert!(
            s.message().len() < 2 * MAX_ERROR_TEXT + 100,
            "{}",
            s.message().len()
        );
        assert!(
            s.details().len() < VIOLATIONS_BUDGET + 4096,
            "{}",
            s.details().len()
        );
        let listed = s
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert!(listed.len() < violations.len());
        assert!(
            listed
                .last()
                .unwrap()
                .description
                .contains("more violations not listed")
        );
        // A few short ones are listed whole.
        let few = [FieldViolation::new(
            "owner",
            "must not contain control characters",
        )];
        let s = invalid_argument("INVALID_FIELD", &few);
        let listed = s
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].description, "must not contain control characters");
        let s: Status = Error::not_found(huge).into();
        assert!(s.message().len() < 2 * MAX_ERROR_TEXT + 100);
    }

    #[test]
    fn database_errors_that_pass_are_unavailable_or_aborted_never_internal() {
        let cause = || -> crate::error::Cause { "boom".into() };
        let s: Status = Error::DatabaseInterrupted { source: cause() }.into();
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(
            s.get_error_details().error_info().unwrap().reason,
            "DATABASE_UNAVAILABLE"
        );
        let s: Status = Error::ConcurrentUpdate { source: cause() }.into();
        assert_eq!(s.code(), Code::Aborted);
        let s: Status = Error::Internal("a fault".into()).into();
        assert_eq!(s.code(), Code::Internal);
    }
}
