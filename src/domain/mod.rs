//! The pure domain: money, records, merging and matching. No I/O here.
//!
//! Dependencies run one way: currency/money -> record (journal) -> facts
//! -> transaction -> matching (its rules, then `evaluate`).

pub mod access;
pub mod allocation;
pub mod canonical;
pub mod cash_application;
pub mod currency;
pub mod facts;
pub mod handoff;
pub mod journal;
pub mod ledger;
pub mod matching;
pub mod money;
pub mod policy;
pub mod record;
pub mod report;
pub mod transaction;
pub mod versions;

#[cfg(test)]
pub(crate) mod testkit;
