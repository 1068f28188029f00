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

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::InvalidArgument { reason, violations } => invalid_argument(reason, &violations),
            Error::NotFound(what) => Status::with_error_details(
                Code::NotFound,
                format!("{what} not found"),
                details("NOT_FOUND"),
            ),
            Error::AlreadyExists(m) => {
                Status::with_error_details(Code::AlreadyExists, m, details("ALREADY_EXISTS"))
            }
            Error::FailedPrecondition(m) => Status::with_error_details(
                Code::FailedPrecondition,
                m,
                details("FAILED_PRECONDITION"),
            ),
            Error::Aborted(m) => {
                Status::with_error_details(Code::Aborted, m, details("CONCURRENT_UPDATE"))
            }
            Error::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "database unavailable",
                    details("DATABASE_UNAVAILABLE"),
                )
            }
            Error::Internal(m) => {
                // The cause goes to the log, not to the caller.
                tracing::error!(error = %m, "internal error");
                Status::with_error_details(Code::Internal, "internal error", details("INTERNAL"))
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
