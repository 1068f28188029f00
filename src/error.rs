//! The one error type of Tally, by meaning: each variant says what went
//! wrong, not which gRPC code it becomes. Transport maps it to a status in
//! one place (`api::status`); nothing else builds a `tonic::Status`.
//!
//! Database errors are classified by their SQLSTATE class, as the driver
//! reports it (diesel's `DatabaseErrorKind`, which diesel-async derives
//! from tokio-postgres' `SqlState`), never by message text.

/// Any underlying cause, kept for the log.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

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
    /// Malformed input. `reason` is the ErrorInfo reason (UPPER_SNAKE_CASE):
    /// INVALID_FIELD, INVALID_RECORDS, ...
    #[error("invalid argument: {}", describe(.violations))]
    InvalidArgument {
        reason: &'static str,
        violations: Vec<FieldViolation>,
    },
    /// A request message larger than the server takes (RESOURCE_EXHAUSTED).
    #[error("a request message is at most {limit_bytes} bytes")]
    MessageTooLarge { limit_bytes: usize },
    /// A position past the end of what exists, or not in it (a watch's
    /// cursor that names no event of the merchant): OUT_OF_RANGE.
    #[error("{what}")]
    OutOfRange { what: String },
    /// A named resource that does not exist ("merchants/acme/transactions/1").
    #[error("{what} not found")]
    NotFound { what: String },
    /// A request_id already answered for another request or another method.
    #[error("request_id {request_id} was already used {how}")]
    RequestIdReused { request_id: String, how: String },
    /// A write the database refused as a duplicate of existing data
    /// (SQLSTATE 23505).
    #[error("already exists: {what}")]
    Conflict {
        what: String,
        #[source]
        source: Cause,
    },
    /// A write the database refused by a constraint (SQLSTATE 23xxx other
    /// than 23505): data that passed validation but breaks an invariant.
    #[error("rejected by a database constraint: {what}")]
    ConstraintViolated {
        what: String,
        #[source]
        source: Cause,
    },
    /// Lost a race with a concurrent writer (SQLSTATE 40001, or a lock a
    /// submission could not take without risking a deadlock); retried
    /// whole by the use case, and retryable by the caller.
    #[error("lost a race with a concurrent update")]
    ConcurrentUpdate {
        #[source]
        source: Cause,
    },
    /// The database cannot be reached: the pool cannot give a connection,
    /// the connection closed, or the server refuses work.
    #[error("database unavailable")]
    DatabaseUnavailable {
        #[source]
        source: Cause,
    },
    /// Stored data the current code cannot read.
    #[error("stored data unreadable: {what}")]
    CorruptData {
        what: String,
        #[source]
        source: Cause,
    },
    /// A request the resource's state does not allow (resolving an
    /// exception twice, acknowledging a resolved one).
    #[error("{what}")]
    InvalidState { what: String },
    /// The caller's etag is not the resource's current one: someone else
    /// changed it since the caller read it (AIP-154).
    #[error("{what} changed since it was read (etag {sent} is not current)")]
    StaleEtag { what: String, sent: String },
    /// No credentials, or none that are valid (missing, malformed,
    /// unknown, revoked or expired key: the caller is not told which, and
    /// the key is never quoted).
    #[error("a valid API key is required: send 'authorization: Bearer <key>'")]
    Unauthenticated,
    /// An authenticated caller asking for what its key does not grant: a
    /// merchant outside its merchants, or an RPC outside its scopes.
    #[error("{what}")]
    PermissionDenied { what: String },
    /// The server has as many calls in progress as it takes: shed, to be
    /// retried after `retry_after` (RESOURCE_EXHAUSTED with RetryInfo).
    #[error("the server is at its limit of calls in progress; retry in {} ms", retry_after.as_millis())]
    Overloaded { retry_after: std::time::Duration },
    /// The caller's key made more calls than its rate allows; the next is
    /// allowed after `retry_after` (RESOURCE_EXHAUSTED with RetryInfo).
    #[error("this key's rate limit is reached; retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: std::time::Duration },
    /// The process is misconfigured (an environment variable, a path).
    #[error("configuration: {0}")]
    Configuration(String),
    /// A fault of Tally itself, or of the machine it runs on.
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

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    pub fn corrupt(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::CorruptData {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Whether the whole unit of work may simply run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::ConcurrentUpdate { .. })
    }
}

/// A database error as text, kept as the cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct DbCause {
    message: String,
}

fn cause(info: &(dyn diesel::result::DatabaseErrorInformation + Send + Sync)) -> Cause {
    let mut message = info.message().to_string();
    if let Some(d) = info.details() {
        message.push_str(&format!(" ({d})"));
    }
    Box::new(DbCause { message })
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as D};
        match e {
            D::DatabaseError(kind, info) => {
                let what = info
                    .constraint_name()
                    .unwrap_or_else(|| info.table_name().unwrap_or("a row"))
                    .to_string();
                let source = cause(info.as_ref());
                match kind {
                    // 40001.
                    K::SerializationFailure => Error::ConcurrentUpdate { source },
                    // No SQLSTATE at all: the connection is gone (closed
                    // socket, "connection closed" from the driver).
                    K::ClosedConnection | K::UnableToSendCommand => {
                        Error::DatabaseUnavailable { source }
                    }
                    // 25006: a read-only standby took the write.
                    K::ReadOnlyTransaction => Error::DatabaseUnavailable { source },
                    // 23505.
                    K::UniqueViolation => Error::Conflict { what, source },
                    // 23514, 23503, 23502, 23001, 23P01.
                    K::CheckViolation
                    | K::ForeignKeyViolation
                    | K::NotNullViolation
                    | K::RestrictViolation
                    | K::ExclusionViolation => Error::ConstraintViolated { what, source },
                    _ => Error::Internal(format!("database: {}", info.message())),
                }
            }
            D::NotFound => Error::not_found("row"),
            D::BrokenTransactionManager => Error::DatabaseUnavailable {
                source: Box::new(e),
            },
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for Error {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Error::DatabaseUnavailable {
            source: Box::new(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind as K, Error as D};

    fn db(kind: K) -> Error {
        D::DatabaseError(kind, Box::new("boom".to_string())).into()
    }

    #[test]
    fn database_errors_are_classified_by_kind() {
        assert!(matches!(
            db(K::SerializationFailure),
            Error::ConcurrentUpdate { .. }
        ));
        assert!(matches!(
            db(K::ClosedConnection),
            Error::DatabaseUnavailable { .. }
        ));
        assert!(matches!(
            db(K::UnableToSendCommand),
            Error::DatabaseUnavailable { .. }
        ));
        assert!(matches!(db(K::UniqueViolation), Error::Conflict { .. }));
        assert!(matches!(
            db(K::CheckViolation),
            Error::ConstraintViolated { .. }
        ));
        // Text never decides: a message that reads like a deadlock is not
        // taken for one.
        let e: Error =
            D::DatabaseError(K::Unknown, Box::new("deadlock detected".to_string())).into();
        assert!(matches!(e, Error::Internal(_)));
        assert!(db(K::SerializationFailure).is_retryable());
        assert!(!db(K::UniqueViolation).is_retryable());
    }
}
