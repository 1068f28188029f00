//! The ledger (pure core): the chart of accounts, balanced journal entries, the posting
//! rules of the booking table, balances and the clearing check, and the NetSuite export.
//!
//! Nothing here does I/O. The cash-application worker gathers a payout's facts, plans the
//! applications with `domain::cash_application`, books them with `posting`, checks
//! `balances::check_clearing`, and stores the entries in one transaction.

pub mod accounts;
pub mod balances;
pub mod journal;
pub mod netsuite;
pub mod posting;

pub use accounts::{AccountOverride, AccountRole, ChartConfig, ChartError, ChartOfAccounts};
pub use balances::{ClearingCheck, check_clearing, trial_balance};
pub use journal::{
    EntryDraft, ExternalId, JournalLine, LedgerEntry, LedgerError, SourceKind, SourceRef,
};
pub use netsuite::{NetsuiteOptions, netsuite_csv};

#[cfg(test)]
pub(crate) mod test_support;
