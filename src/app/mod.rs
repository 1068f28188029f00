//! The use cases: what Tally decides, each owning its database transaction.
//! `api` validates and maps; `storage` runs SQL; `domain` computes. Here:
//! ingest (judging records, conflicts, request idempotency, stream
//! batching), reconcile (re-merge, re-match, exceptions, state) and the
//! queries. Later the payout worker's jobs live here too.

pub mod alerts;
pub mod cash;
pub mod egress;
pub mod exceptions;
pub mod group_commit;
pub mod handoffs;
pub mod ingest;
mod judge;
pub mod keys;
pub mod ledger;
pub mod queries;
pub mod reconcile;
pub mod reports;
pub mod stream;
pub mod trace;
pub mod webhook;
pub mod worker;

pub use ingest::{Method, Outcome, RecordOutcome, Submission, Submitted};

use crate::storage::Store;

/// The use cases over one store: cheap to clone, shared by every service.
#[derive(Clone)]
pub struct App {
    store: Store,
    /// The client alerts are delivered with (the worker's).
    webhooks: webhook::Webhooks,
    /// The chart of accounts reads name codes from: the built-in one,
    /// overridden by the configuration file's `[accounts]`.
    chart: std::sync::Arc<crate::domain::ledger::ChartOfAccounts>,
    /// SubmitRecords calls waiting to share a commit (`group_commit.rs`).
    calls: group_commit::Queue,
}

impl App {
    /// Alerts trust Mozilla's roots only; see [`App::with_webhooks`].
    pub fn new(store: Store) -> App {
        App {
            store,
            webhooks: webhook::Webhooks::default(),
            chart: Default::default(),
            calls: Default::default(),
        }
    }

    /// The same, naming accounts from `chart` (the configured one).
    pub fn with_chart(self, chart: crate::domain::ledger::ChartOfAccounts) -> App {
        App {
            chart: std::sync::Arc::new(chart),
            ..self
        }
    }

    pub fn chart(&self) -> &crate::domain::ledger::ChartOfAccounts {
        &self.chart
    }

    /// The same, delivering alerts with `webhooks` (a private CA trusted).
    pub fn with_webhooks(self, webhooks: webhook::Webhooks) -> App {
        App { webhooks, ..self }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn webhooks(&self) -> &webhook::Webhooks {
        &self.webhooks
    }
}
