//! Cash application (pure planning): which invoice each cent of a payout pays.
//!
//! - `order`: captures and tenders applied to an order's invoices oldest first, cash held as
//!   unapplied until its invoice exists, refunds matched to credit memos, reversals.
//! - `subset`: exact subset-sum matching for money that names no payout or order.
//! - `orphans`: charges that name no order, split over the open invoices they uniquely fit.
//! - `completeness`: whether a payout's balance transactions account for it yet.
//! - `payout_fee`: a payout's fees that no journal naming it carries (FEE_UNALLOCATED).
//! - splits: `domain::allocation` (largest remainder in minor units), re-exported here.
//!
//! No I/O: the worker loads the facts, calls these, books the results with
//! `domain::ledger::posting` and stores everything in one transaction.

pub mod completeness;
pub mod deposit;
pub mod order;
pub mod orphans;
pub mod payout_fee;
pub mod payout_state;
pub mod plan;
mod pool;
pub mod subset;

pub use crate::domain::allocation::{AllocationError, allocate_money, allocate_units};
pub use crate::domain::ledger::posting::Tender;
pub use completeness::{BalanceTxn, Completeness, PayoutBridge, PayoutError, payout_completeness};
pub use order::{
    Application, CashError, CashPosition, Document, OrderCash, Payment, PaymentOutcome,
    RefundApplication, RefundOutcome, RefundReversal, ReversalOutcome,
};
pub use subset::{Candidate, SubsetError, SubsetMatch, SubsetQuery, find_exact_subsets};

#[cfg(test)]
mod flow_tests;
