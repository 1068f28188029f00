//! The pure domain: money, records, merging and matching. No I/O here.

pub mod allocation;
pub mod cash_application;
pub mod currency;
pub mod ledger;
pub mod matching;
pub mod money;
pub mod record;
pub mod transaction;

#[cfg(test)]
pub(crate) mod testkit;
