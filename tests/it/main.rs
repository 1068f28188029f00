//! Integration tests: one binary (one link step), a module per concern.

mod binary;
mod cash;
mod cash_scenarios;
mod checks;
mod common;
mod fixtures;
mod garbage;
mod health;
mod idempotency;
mod ingest;
mod ledger_api;
mod listing;
mod matching;
mod seams;
mod stream;
mod validation;
mod workers;
