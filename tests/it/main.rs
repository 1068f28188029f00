//! Integration tests: one binary (one link step), a module per concern.

mod alerts;
mod binary;
mod cash;
mod cash_scenarios;
mod checks;
mod common;
mod contracts;
mod db_gone;
mod fixtures;
mod fuzz;
mod garbage;
mod handoffs;
mod health;
mod hostile;
mod idempotency;
mod ingest;
mod ledger_api;
mod listing;
mod matching;
mod plans;
mod seams;
mod stream;
mod telemetry;
mod validation;
mod versions;
mod workers;
