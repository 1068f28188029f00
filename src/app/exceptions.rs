//! The exception lifecycle: OPEN -> ACKNOWLEDGED -> RESOLVED by a person
//! (with a note) or by the rules, assignment, and the history. Every change
//! checks the caller's etag (AIP-154) against the row locked for update, so
//! concurrent changes never lose one: the second gets `StaleEtag`.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use super::App;
use crate::error::{Error, Result};
use std::collections::{HashSet, VecDeque};

use crate::storage::exception_events::{self, EventRow, Writer};
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

    /// A watch of the merchant's exception events after event `after` (0:
    /// from the first). A cursor that names no committed event of the
    /// merchant (past the end, or another merchant's) is OUT_OF_RANGE,
    /// never a replay from the start.
    pub async fn watch_exceptions(&self, merchant: &str, after: i64) -> Result<Watch> {
        if after != 0 {
            let mut conn = self.store().conn().await?;
            if !exception_events::exists(&mut conn, merchant, after).await? {
                return Err(Error::OutOfRange {
                    what: format!(
                        "after_sequence {after} is not an event of merchants/{merchant}: \
                         resume from a sequence this watch delivered, or 0 for the start"
                    ),
                });
            }
        }
        Ok(Watch {
            merchant: merchant.to_string(),
            cursor: after,
            settled: after,
            samples: VecDeque::new(),
        })
    }

    /// The watch's next events, at most `limit`, in sequence order; empty
    /// when none is settled yet.
    pub async fn next_events(&self, w: &mut Watch, limit: i64) -> Result<Vec<EventRow>> {
        let mut conn = self.store().conn().await?;
        // A sample (numbers drawn, then who may still commit) of the node
        // holding the merchant's events, then, in a later snapshot, the
        // events themselves.
        let Some((drawn, writers)) = exception_events::settling(&mut conn, &w.merchant).await?
        else {
            return Ok(vec![]);
        };
        let upto = w.settle(drawn, writers.into_iter().collect());
        if upto <= w.cursor {
            return Ok(vec![]);
        }
        let events = exception_events::after(&mut conn, &w.merchant, w.cursor, upto, limit).await?;
        if let Some(last) = events.last() {
            w.cursor = last.sequence;
        }
        Ok(events)
    }
}

/// The most samples a watch keeps while writers it saw are still open.
const MAX_SAMPLES: usize = 64;

/// A watcher's place: the last event delivered, and samples of how far
/// numbers were drawn and who could still commit at the time.
///
/// Event numbers are drawn when an event is inserted, not when its
/// transaction commits, so number order is not commit order: a reader by
/// number alone could pass an event that commits late. A sample (N, W)
/// reads N, the numbers drawn, then W, the transactions holding the write
/// lock on `exception_events` (taken before a number is drawn, held to the
/// end). Once no transaction of W holds the lock any more, every event
/// numbered at most N is settled, committed or rolled back, and visible to
/// any later snapshot: events up to N are read in number order. So nothing
/// is skipped and, the cursor only growing, nothing repeated. Only writers
/// of events in this database hold a watch back (briefly: an ingest
/// transaction), not an idle session or another database's transactions.
/// Samples slide: a busy merchant's watch advances to the newest sample
/// whose writers are all gone, even while newer writers keep coming.
pub struct Watch {
    merchant: String,
    cursor: i64,
    /// Every number at most this is settled (it only grows).
    settled: i64,
    samples: VecDeque<(i64, HashSet<Writer>)>,
}

impl Watch {
    /// The last event delivered (the cursor a watcher resumes from).
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Takes a sample (drawn, writers now) and returns the highest number
    /// below which every event is settled.
    fn settle(&mut self, drawn: i64, now: HashSet<Writer>) -> i64 {
        self.samples.push_back((drawn, now.clone()));
        // A prepared transaction's locks move to another id: it settles
        // nothing until it is gone.
        let prepared = now.iter().any(|w| w.prepared);
        let mut upto = self.settled.max(self.cursor);
        let mut settled = 0;
        for (i, (n, writers)) in self.samples.iter().enumerate() {
            if !prepared && writers.iter().all(|w| !now.contains(w)) {
                upto = upto.max(*n);
                settled = i + 1;
            }
        }
        // Samples up to the newest settled one are spent.
        self.samples.drain(..settled);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.settled = upto;
        upto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(vxid: &str) -> Writer {
        Writer {
            vxid: vxid.into(),
            prepared: false,
        }
    }

    #[test]
    fn a_watch_passes_no_number_a_writer_may_still_commit() {
        let mut watch = Watch {
            merchant: "acme".into(),
            cursor: 0,
            settled: 0,
            samples: VecDeque::new(),
        };
        // Nobody writing: everything drawn is settled.
        assert_eq!(watch.settle(5, HashSet::new()), 5);
        // 3/1 holds the lock: numbers up to 9 may be its own.
        assert_eq!(watch.settle(9, [w("3/1")].into()), 5);
        // Still there, a newer writer too: nothing more.
        assert_eq!(watch.settle(12, [w("3/1"), w("4/7")].into()), 5);
        // 3/1 gone: up to 9 (its sample's draw); 4/7 holds 12 back.
        assert_eq!(watch.settle(14, [w("4/7"), w("5/2")].into()), 9);
        // Both gone: the newest sample without a live writer.
        assert_eq!(watch.settle(20, HashSet::new()), 20);
        // A prepared transaction holds everything back until it is gone.
        let prepared = Writer {
            vxid: "-1/900".into(),
            prepared: true,
        };
        watch.cursor = 20;
        assert_eq!(watch.settle(25, [prepared.clone()].into()), 20);
        assert_eq!(watch.settle(26, HashSet::new()), 26);
    }

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
