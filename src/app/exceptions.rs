//! The exception lifecycle: OPEN -> ACKNOWLEDGED -> RESOLVED by a person
//! (with a note) or by the rules, assignment, and the history. Every change
//! checks the caller's etag (AIP-154) against the row locked for update, so
//! concurrent changes never lose one: the second gets `StaleEtag`.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::App;
use crate::error::{Error, Result};
use crate::storage::exception_events::{self, EventRow};
use crate::storage::exceptions::{ExceptionRow, ExceptionState};

/// An exception with every change made to it.
#[derive(Debug, Clone)]
pub struct ExceptionDetail {
    pub exception: ExceptionRow,
    pub history: Vec<EventRow>,
}

/// What a person does to an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Assign { owner: String },
    Resolve,
}

/// Whether `action` is allowed in `state`; the message says why not.
pub fn check_transition(action: &Action, state: ExceptionState) -> Result<()> {
    let allowed = match action {
        Action::Acknowledge => state == ExceptionState::Open,
        Action::Assign { .. } | Action::Resolve => state != ExceptionState::Resolved,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::InvalidState {
            what: format!(
                "cannot {} an exception that is {}",
                match action {
                    Action::Acknowledge => "acknowledge",
                    Action::Assign { .. } => "assign",
                    Action::Resolve => "resolve",
                },
                state.as_str()
            ),
        })
    }
}

/// The etag of an exception at `version`.
pub fn etag(version: i64) -> String {
    version.to_string()
}

fn not_found(merchant: &str, id: Uuid) -> Error {
    Error::not_found(format!("merchants/{merchant}/exceptions/{id}"))
}

impl App {
    pub async fn get_exception(&self, merchant: &str, id: Uuid) -> Result<ExceptionDetail> {
        let mut conn = self.store().conn().await?;
        let exception = exception_events::get(&mut conn, merchant, id, false)
            .await?
            .ok_or_else(|| not_found(merchant, id))?;
        let history = exception_events::history(&mut conn, merchant, id).await?;
        Ok(ExceptionDetail { exception, history })
    }

    /// Applies a person's `action`, as `actor`, with `note` (required to
    /// resolve). `etag`, when given, must be the current one.
    pub async fn work_exception(
        &self,
        merchant: &str,
        id: Uuid,
        actor: &str,
        action: &Action,
        etag_sent: Option<&str>,
        note: &str,
    ) -> Result<ExceptionDetail> {
        let mut conn = self.store().conn().await?;
        conn.transaction(async |conn| {
            let row = exception_events::get(conn, merchant, id, true)
                .await?
                .ok_or_else(|| not_found(merchant, id))?;
            if let Some(sent) = etag_sent
                && sent != etag(row.work.version)
            {
                return Err(Error::StaleEtag {
                    what: format!("merchants/{merchant}/exceptions/{id}"),
                    sent: sent.to_string(),
                });
            }
            check_transition(action, row.state)?;
            exception_events::act_as(conn, actor, note).await?;
            let (state, owner, resolution) = match action {
                Action::Acknowledge => (Some(ExceptionState::Acknowledged), None, None),
                Action::Assign { owner } => (None, Some(owner.as_str()), None),
                Action::Resolve => (Some(ExceptionState::Resolved), None, Some(note)),
            };
            exception_events::change(conn, merchant, id, state, owner, resolution).await?;
            Ok::<_, Error>(())
        })
        .await?;
        self.get_exception(merchant, id).await
    }

    /// The merchant's exception events after `after`, at most `limit`.
    pub async fn exception_events(
        &self,
        merchant: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let mut conn = self.store().conn().await?;
        exception_events::after(&mut conn, merchant, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        use ExceptionState::*;
        let assign = Action::Assign { owner: "a".into() };
        assert!(check_transition(&Action::Acknowledge, Open).is_ok());
        assert!(check_transition(&Action::Acknowledge, Acknowledged).is_err());
        assert!(check_transition(&Action::Acknowledge, Resolved).is_err());
        assert!(check_transition(&Action::Resolve, Open).is_ok());
        assert!(check_transition(&Action::Resolve, Acknowledged).is_ok());
        assert!(check_transition(&Action::Resolve, Resolved).is_err());
        assert!(check_transition(&assign, Acknowledged).is_ok());
        assert!(check_transition(&assign, Resolved).is_err());
    }
}
