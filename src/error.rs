//! The one error type of Tally, by meaning: each variant says what went
//! wrong, not which gRPC code it becomes. Transport maps it to a status in
//! one place (`api::status`); nothing else builds a `tonic::Status`.
//!
//! Database errors are classified by their SQLSTATE, as the driver reports
//! it (diesel's `DatabaseErrorKind` for the eight codes diesel-async names,
//! the code itself, `DatabaseErrorInformation::sqlstate`, for the rest),
//! never by message text.

use diesel::result::{SqlState, SqlStateClass};

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
    /// Lost a race with a concurrent writer (SQLSTATE 40001, a deadlock
    /// 40P01, a lock not available 55P03, or a lock a submission could not
    /// take without risking a deadlock); retried whole by the use case, and
    /// retryable by the caller (ABORTED).
    #[error("lost a race with a concurrent update")]
    ConcurrentUpdate {
        #[source]
        source: Cause,
    },
    /// The database ended the work for a reason that passes, and said so
    /// with a SQLSTATE, which means it rolled the transaction back: a
    /// cancelled statement (57014: statement_timeout, pg_cancel_backend),
    /// exhausted resources (class 53: a full lock table, too many
    /// connections), a shutdown under way (57P01-57P03), an idle session
    /// ended (57P05), a connection exception (class 08). Retried whole by
    /// the use case, like a lost race; UNAVAILABLE to the caller.
    #[error("the database interrupted the work")]
    DatabaseInterrupted {
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

    /// Whether the whole unit of work may simply run again: the database
    /// rolled it back for a reason that passes.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::ConcurrentUpdate { .. } | Error::DatabaseInterrupted { .. }
        )
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
    if let Some(code) = info.sqlstate() {
        message.push_str(&format!(" [SQLSTATE {code}]"));
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
                    _ => match info.sqlstate() {
                        Some(code) => by_sqlstate(code, &*info, source),
                        None => Error::Internal(format!("database: {}", info.message())),
                    },
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

/// What a SQLSTATE diesel names no kind for means (diesel-async names eight
/// and reports every other one as `Unknown`, with its code).
fn by_sqlstate(
    code: SqlState,
    info: &(dyn diesel::result::DatabaseErrorInformation + Send + Sync),
    source: Cause,
) -> Error {
    use diesel::pg::sql_state as pg;
    match code {
        // A lock wait that would never end, or that may not wait: a race
        // for a lock, as 40001. Citus reports its distributed deadlocks as
        // 40P01 too.
        pg::T_R_DEADLOCK_DETECTED | pg::LOCK_NOT_AVAILABLE => Error::ConcurrentUpdate { source },
        // The database dropped: nothing to retry against.
        pg::DATABASE_DROPPED => Error::DatabaseUnavailable { source },
        pg::QUERY_CANCELED
        | pg::ADMIN_SHUTDOWN
        | pg::CRASH_SHUTDOWN
        | pg::CANNOT_CONNECT_NOW
        | pg::IDLE_SESSION_TIMEOUT => Error::DatabaseInterrupted { source },
        // Class 53, insufficient resources (disk full, out of memory or of
        // shared memory for locks, too many connections); class 08,
        // connection exceptions.
        c if c.class() == SqlStateClass::CONNECTION_EXCEPTION || c.class().as_str() == "53" => {
            Error::DatabaseInterrupted { source }
        }
        _ => Error::Internal(format!("database: {} (SQLSTATE {code})", info.message())),
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

    /// A database error as diesel-async reports a SQLSTATE it names no kind
    /// for: `Unknown`, with the code.
    struct Coded(&'static str, &'static str);

    impl diesel::result::DatabaseErrorInformation for Coded {
        fn message(&self) -> &str {
            self.1
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
        fn sqlstate(&self) -> Option<SqlState> {
            self.0.parse().ok()
        }
    }

    fn coded(code: &'static str, message: &'static str) -> Error {
        D::DatabaseError(K::Unknown, Box::new(Coded(code, message))).into()
    }

    #[test]
    fn a_deadlock_or_a_lock_not_available_is_a_lost_race() {
        for code in ["40P01", "55P03"] {
            let e = coded(code, "boom");
            assert!(matches!(e, Error::ConcurrentUpdate { .. }), "{code}: {e:?}");
            assert!(e.is_retryable(), "{code}");
            // The code is kept for the log.
            assert!(format!("{:?}", e).contains(code), "{code}: {e:?}");
        }
    }

    #[test]
    fn what_passes_is_an_interruption_retried_whole() {
        for code in [
            "57014", // query_canceled: statement_timeout, pg_cancel_backend
            "57P01", // admin_shutdown: pg_terminate_backend, a fast shutdown
            "57P02", // crash_shutdown
            "57P03", // cannot_connect_now
            "57P05", // idle_session_timeout
            "53000", // insufficient_resources
            "53100", // disk_full
            "53200", // out_of_memory: the lock table full too
            "53300", // too_many_connections
            "53400", // configuration_limit_exceeded
            "08000", // connection_exception
            "08006", // connection_failure
            "08P01", // protocol_violation
        ] {
            let e = coded(code, "boom");
            assert!(
                matches!(e, Error::DatabaseInterrupted { .. }),
                "{code}: {e:?}"
            );
            assert!(e.is_retryable(), "{code}");
        }
    }

    #[test]
    fn a_dropped_database_is_unavailable_and_not_retried() {
        let e = coded("57P04", "boom");
        assert!(matches!(e, Error::DatabaseUnavailable { .. }), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn any_other_code_is_a_fault_and_never_retried() {
        // Syntax, undefined column, numeric overflow, internal error, a
        // code of no class Tally knows, a transaction already aborted.
        for code in [
            "42601", "42703", "22003", "XX000", "P0001", "25P02", "40003",
        ] {
            let e = coded(code, "boom");
            assert!(matches!(e, Error::Internal(_)), "{code}: {e:?}");
            assert!(!e.is_retryable(), "{code}");
        }
    }

    #[test]
    fn the_code_decides_never_the_text() {
        // A message that reads like a deadlock, without a code, is a fault;
        // a deadlock's code with any message is a deadlock.
        let e: Error =
            D::DatabaseError(K::Unknown, Box::new("deadlock detected".to_string())).into();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        assert!(matches!(
            coded("40P01", "syntax error at or near \"SELEC\""),
            Error::ConcurrentUpdate { .. }
        ));
        assert!(matches!(
            coded("42601", "deadlock detected"),
            Error::Internal(_)
        ));
    }
}
