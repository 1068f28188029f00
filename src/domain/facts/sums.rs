//! Sums that keep currencies apart and never overflow silently.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::money::Money;

/// A total per currency. Adding money in a new currency starts a new total
/// instead of joining another's, so mixed currencies stay visible; a total
/// that overflows is remembered as such (`get` answers None) instead of
/// panicking or wrapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    /// None marks a total that overflowed.
    totals: BTreeMap<Currency, Option<Decimal>>,
}

impl CurrencyTotals {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a Money>) -> Self {
        let mut t = CurrencyTotals::default();
        for m in items {
            t.add(m);
        }
        t
    }

    pub fn add(&mut self, m: &Money) {
        let slot = self.totals.entry(m.currency).or_insert(Some(Decimal::ZERO));
        *slot = slot.and_then(|t| t.checked_add(m.amount));
    }

    /// The total in `currency`, if any money in it was added and it did not
    /// overflow.
    pub fn get(&self, currency: Currency) -> Option<Money> {
        self.totals
            .get(&currency)
            .copied()
            .flatten()
            .map(|a| Money::new(a, currency))
    }

    pub fn currencies(&self) -> impl Iterator<Item = Currency> + '_ {
        self.totals.keys().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// More than one currency: these cannot be one figure without a rate.
    pub fn is_mixed(&self) -> bool {
        self.totals.len() > 1
    }

    /// Every total, for reporting ("10.00 USD + 5.00 EUR").
    pub fn describe(&self) -> String {
        self.totals
            .iter()
            .map(|(c, t)| match t {
                Some(a) => Money::new(*a, *c).to_string(),
                None => format!("an overflowing sum in {c}"),
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Sums the amounts that are in `currency` (or, without one, in the only
/// currency there is); others are reported by the matching rules, never
/// silently added. None when nothing is in that currency, when the
/// amounts are in several currencies and none was named, or on overflow.
pub(crate) fn sum_in<'a>(
    currency: Option<Currency>,
    items: impl IntoIterator<Item = &'a Money>,
) -> Option<Money> {
    let totals = CurrencyTotals::of(items);
    let currency = match currency {
        Some(c) => c,
        None if totals.is_mixed() => return None,
        None => totals.currencies().next()?,
    };
    totals.get(currency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str, c: &str) -> Money {
        Money::parse(s, Currency::from_code(c).unwrap()).unwrap()
    }

    #[test]
    fn currencies_are_summed_apart() {
        let t = CurrencyTotals::of(&[m("1.50", "USD"), m("2", "EUR"), m("1", "USD")]);
        assert!(t.is_mixed());
        assert_eq!(
            t.get(Currency::from_code("USD").unwrap()),
            Some(m("2.50", "USD"))
        );
        assert_eq!(t.describe(), "2.00 EUR + 2.50 USD");
        // Without a named currency, mixed amounts have no one total.
        assert_eq!(sum_in(None, &[m("1", "USD"), m("2", "EUR")]), None);
        assert_eq!(
            sum_in(None, &[m("1", "USD"), m("2", "USD")]),
            Some(m("3", "USD"))
        );
    }

    #[test]
    fn an_overflowing_sum_is_no_sum() {
        let usd = Currency::from_code("USD").unwrap();
        let big = Money::new(Decimal::MAX, usd);
        assert_eq!(sum_in(Some(usd), &[big, big]), None);
        assert!(
            CurrencyTotals::of(&[big, big])
                .describe()
                .contains("overflow")
        );
    }
}
