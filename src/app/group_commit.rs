//! Group commit for SubmitRecords calls in flight together: concurrent
//! callers' records are stored by one set-based submission in one
//! transaction, so eight one-record calls cost about one call's statements
//! and one disk flush, not eight of each.
//!
//! A call queues its submission; at most [`FLUSHERS`] tasks take what is
//! queued (up to [`MAX_CALLS`] calls at a time) and store it with the
//! stream's batching (`stream.rs`): calls of one merchant without a
//! request_id become one submission, a call with a request_id stays its own
//! (its stored reply is its alone). Each call still gets exactly its own
//! outcomes; if the shared transaction fails, every call is stored again
//! alone, so one call's error is never another's. A lone caller waits for
//! nobody: with nothing queued, its call is flushed at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::Instrument;

use super::App;
use super::ingest::{Method, Submitted};
use super::stream::{Chunk, OnError};
use crate::domain::record::Record;
use crate::error::{Error, Result};

/// Transactions in flight at once: while one waits for its commit's flush,
/// the other runs its statements. More would mostly add lock waits between
/// groups touching the same orders.
const FLUSHERS: usize = 2;

/// Calls stored together at most: bounds a group's transaction.
const MAX_CALLS: usize = 64;

/// One call's validated submission, owned while it waits in the queue.
pub struct Call {
    pub merchant: String,
    pub request_id: Option<String>,
    pub request_hash: [u8; 32],
    pub records: Vec<Record>,
}

struct Waiting {
    call: Call,
    reply: oneshot::Sender<Result<Submitted>>,
    /// The caller's span: a group's work is traced under its first call.
    span: tracing::Span,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Waiting>,
    flushing: usize,
}

/// The calls waiting to be stored; shared by every clone of an [`App`].
#[derive(Default, Clone)]
pub struct Queue(Arc<Mutex<State>>);

impl App {
    /// Stores one SubmitRecords call, together with calls in flight at the
    /// same time (see the module). Same outcomes as [`App::submit`].
    pub async fn submit_call(&self, call: Call) -> Result<Submitted> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.calls.0.lock().expect("queue lock");
            state.queue.push_back(Waiting {
                call,
                reply,
                span: tracing::Span::current(),
            });
            let start = state.flushing < FLUSHERS;
            if start {
                state.flushing += 1;
            }
            start
        };
        if start {
            tokio::spawn(self.clone().flush());
        }
        answer
            .await
            .map_err(|_| Error::Internal("a group commit ended without an answer".into()))?
    }

    /// Stores queued calls, a group at a time, until none is left.
    async fn flush(self) {
        let mut guard = Flusher(Some(self.clone()));
        loop {
            let group: Vec<Waiting> = {
                let mut state = self.calls.0.lock().expect("queue lock");
                if state.queue.is_empty() {
                    // Under the lock: a call queued after this sees the
                    // flusher gone and starts one.
                    state.flushing -= 1;
                    guard.0 = None;
                    return;
                }
                let n = state.queue.len().min(MAX_CALLS);
                state.queue.drain(..n).collect()
            };
            let chunks: Vec<Chunk<'_>> = group
                .iter()
                .map(|w| Chunk {
                    merchant: &w.call.merchant,
                    request_id: w.call.request_id.as_deref(),
                    request_hash: w.call.request_hash,
                    records: &w.call.records,
                })
                .collect();
            let span = group[0].span.clone();
            let answers = self
                .submit_parts(&chunks, Method::SubmitRecords, OnError::AnswerEach)
                .instrument(span)
                .await;
            drop(chunks);
            for (w, answer) in group.into_iter().zip(answers) {
                // A caller that went away needs no answer.
                let _ = w.reply.send(answer);
            }
        }
    }
}

/// A flusher that panicked still leaves its place: the calls queued behind
/// it get another flusher instead of waiting forever.
struct Flusher(Option<App>);

impl Drop for Flusher {
    fn drop(&mut self) {
        let Some(app) = self.0.take() else { return };
        let restart = {
            let Ok(mut state) = app.calls.0.lock() else {
                return;
            };
            state.flushing -= 1;
            let restart = !state.queue.is_empty() && state.flushing < FLUSHERS;
            if restart {
                state.flushing += 1;
            }
            restart
        };
        if let (true, Ok(rt)) = (restart, tokio::runtime::Handle::try_current()) {
            rt.spawn(app.flush());
        }
    }
}
