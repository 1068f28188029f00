//! The one error type of Tally. Transport maps it to a gRPC status in one
//! place (`api::status`); nothing else builds a `tonic::Status`.

/// A field that is wrong, named by its path in the request
/// ("records[3].invoice.total.amount").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input. `reason` is the ErrorInfo reason (UPPER_SNAKE_CASE).
    #[error("invalid argument: {}", describe(.violations))]
    InvalidArgument {
        reason: &'static str,
        violations: Vec<FieldViolation>,
    },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Lost a race with a concurrent writer; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument {
            reason: "INVALID_FIELD",
            violations: vec![FieldViolation::new(field, description)],
        }
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match e {
            D::NotFound => Error::NotFound("row".into()),
            D::DatabaseError(K::SerializationFailure, info) => {
                Error::Aborted(info.message().to_string())
            }
            D::DatabaseError(K::ClosedConnection, info) => {
                Error::Unavailable(info.message().to_string())
            }
            D::DatabaseError(K::UniqueViolation, info) => {
                Error::AlreadyExists(info.message().to_string())
            }
            D::DatabaseError(K::CheckViolation, info) => Error::FailedPrecondition(format!(
                "rejected by a database constraint: {}",
                info.message()
            )),
            D::DatabaseError(_, info) if info.message().contains("deadlock detected") => {
                Error::Aborted(info.message().to_string())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Error::Unavailable(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
