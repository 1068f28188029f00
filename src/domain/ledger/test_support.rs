//! Short constructors for the ledger and cash-application tests.

use chrono::NaiveDate;

use crate::domain::currency::Currency;
use crate::domain::money::Money;

pub fn cur(code: &str) -> Currency {
    Currency::from_code(code).unwrap()
}

/// `m("19.99 USD")`
pub fn m(s: &str) -> Money {
    let (amount, code) = s.split_once(' ').unwrap();
    let currency = cur(code);
    let amount = crate::domain::money::parse_decimal(amount, Some(currency)).unwrap();
    Money::new(amount, currency)
}

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}
