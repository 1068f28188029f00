//! The use cases: what Tally decides, each owning its database transaction.
//! `api` validates and maps; `storage` runs SQL; `domain` computes. Here:
//! ingest (judging records, conflicts, request idempotency, stream
//! batching), reconcile (re-merge, re-match, exceptions, state) and the
//! queries. Later the payout worker's jobs live here too.

pub mod alerts;
pub mod cash;
pub mod exceptions;
pub mod handoffs;
pub mod ingest;
pub mod ledger;
pub mod queries;
pub mod reconcile;
mod settle;
pub mod stream;
pub mod trace;
pub mod worker;

pub use ingest::{Method, Outcome, RecordOutcome, Submission, Submitted};

use crate::storage::Store;

/// The use cases over one store: cheap to clone, shared by every service.
#[derive(Clone)]
pub struct App {
    store: Store,
}

impl App {
    pub fn new(store: Store) -> App {
        App { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
