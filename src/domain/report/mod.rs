//! Period reports (issue 20): every figure is a sum of signed deltas keyed
//! by event time and knowledge time, so a report as of a knowledge time
//! counts exactly what Tally knew then and is the same whenever it runs.
//!
//! `figures`: what a record contributes; `period`: periods, zones and
//! buckets; `sheet`: a report's lines, the figures derived from them, and
//! its digest; `diff`: what moved between two knowledge times, checked
//! against the facts that moved it.

pub mod diff;
pub mod figures;
pub mod period;
pub mod sheet;

pub use figures::{Contribution, Figure, contributions};
pub use period::{Period, PeriodError, bucket};
pub use sheet::{GhostCategory, Line, Sheet};
