//! gRPC transport: thin adapters from wire messages to the domain and
//! storage, and back.

pub mod auth;
pub mod convert;
pub mod exceptions;
pub mod guard;
pub mod handoffs;
#[cfg(test)]
mod hostile_bytes;
pub mod ingest;
pub mod ledger;
pub mod limits;
pub mod names;
pub mod pagination;
pub mod rate;
pub mod reports;
pub mod shed;
pub mod status;
pub mod transactions;
pub mod validate;
