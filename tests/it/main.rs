//! Integration tests: one binary (one link step), a module per concern.

mod common;
mod health;
mod idempotency;
mod ingest;
mod listing;
mod matching;
mod stream;
mod validation;
