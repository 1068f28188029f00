//! Integration tests: one binary (one link step), a module per concern.

mod alerts;
mod binary;
mod checks;
mod common;
mod contracts;
mod fixtures;
mod garbage;
mod handoffs;
mod health;
mod idempotency;
mod ingest;
mod listing;
mod matching;
mod seams;
mod stream;
mod validation;
