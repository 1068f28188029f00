//! Exact money: a decimal amount tied to its currency. Never a float.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use super::allocation::AllocationError;
use super::currency::Currency;

/// Why an amount string was refused. Each maps to a field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is required")]
    Missing,
    #[error("'{0}' is not a decimal number (digits, an optional '-' and one '.')")]
    NotDecimal(String),
    #[error("'{value}' has more decimal places than {currency} allows ({allowed})")]
    TooPrecise {
        value: String,
        currency: &'static str,
        allowed: u32,
    },
    #[error("'{0}' is out of range (at most 28 significant digits)")]
    OutOfRange(String),
    #[error("unknown ISO 4217 currency code '{0}'")]
    UnknownCurrency(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    pub fn zero(currency: Currency) -> Self {
        Money::new(Decimal::ZERO, currency)
    }

    /// Parses a decimal string for `currency`, refusing more fraction digits
    /// than its minor unit holds. Trailing zeros do not count: "10.000" USD
    /// is ten dollars, not a precision claim.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, AmountError> {
        Ok(Money::new(parse_decimal(amount, Some(currency))?, currency))
    }

    /// From an integer count of minor units, as processor APIs send money:
    /// 1999 USD cents is 19.99, 1500 JPY is 1500 (no minor unit), 1250 KWD
    /// fils is 1.250.
    pub fn from_minor_units(units: i64, currency: Currency) -> Money {
        Money::new(
            Decimal::new(units, currency.exponent()).normalize(),
            currency,
        )
    }

    /// Whether two figures agree within one minor unit of their currency
    /// (0.01 USD, 1 JPY, 0.001 KWD); see `policy::TolerancePolicy` to
    /// configure it.
    pub fn agrees_with(&self, other: &Money) -> bool {
        self.abs_diff(other)
            .is_some_and(|d| d.amount <= self.currency.minor_unit())
    }

    /// The sum, or None when the currencies differ or the sum overflows:
    /// money in two currencies is never added without a rate.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_add(other.amount))
            .flatten()
            .map(|a| Money::new(a, self.currency))
    }

    /// The difference, or None when the currencies differ or it overflows.
    pub fn checked_sub(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_sub(other.amount))
            .flatten()
            .map(|a| Money::new(a, self.currency))
    }

    /// How far apart two figures of one currency are; None across currencies.
    pub fn abs_diff(&self, other: &Money) -> Option<Money> {
        self.checked_sub(other)
            .map(|d| Money::new(d.amount.abs(), d.currency))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            format_amount(self.amount, self.currency),
            self.currency
        )
    }
}

/// Renders with exactly the currency's minor-unit digits ("100.00", "1500",
/// "1.250"), which is how every source system prints it.
pub fn format_amount(amount: Decimal, currency: Currency) -> String {
    let mut d = amount.normalize();
    if d.scale() < currency.exponent() {
        d.rescale(currency.exponent());
    }
    d.to_string()
}

/// Parses a plain decimal string. With a currency, enforces its minor unit.
pub fn parse_decimal(s: &str, currency: Option<Currency>) -> Result<Decimal, AmountError> {
    if s.is_empty() {
        return Err(AmountError::Missing);
    }
    // Decimal::from_str accepts "1_000" and "1e5"; money from a ledger never
    // looks like that, so only digits, one '.', and a leading '-' pass.
    let body = s.strip_prefix('-').unwrap_or(s);
    let mut dots = 0;
    let valid = !body.is_empty()
        && body.chars().all(|c| {
            if c == '.' {
                dots += 1;
                true
            } else {
                c.is_ascii_digit()
            }
        })
        && dots <= 1
        && !body.starts_with('.')
        && !body.ends_with('.');
    if !valid {
        return Err(AmountError::NotDecimal(s.to_string()));
    }
    // Well-formed but beyond the 28 significant digits exact decimals hold.
    // Exact: `from_str` would round digits past the 28th away silently, so
    // "0.00000000000000000000000000001" USD would pass as zero.
    let d = Decimal::from_str_exact(s).map_err(|_| AmountError::OutOfRange(s.to_string()))?;
    if let Some(c) = currency
        && d.normalize().scale() > c.exponent()
    {
        return Err(AmountError::TooPrecise {
            value: s.to_string(),
            currency: c.code(),
            allowed: c.exponent(),
        });
    }
    Ok(d.normalize())
}

/// Splits `total` across `weights` so the parts sum to `total` exactly,
/// in units of the currency's minor unit (largest remainder method): no
/// cent is created or lost when one payment pays several invoices. Ties go
/// to the earlier part, so results are deterministic. Weights that are
/// empty, negative or all zero, a total finer than the minor unit, or
/// figures beyond exact arithmetic are refused, never guessed at.
pub fn allocate(total: Money, weights: &[Decimal]) -> Result<Vec<Money>, AllocationError> {
    super::allocation::allocate_by_decimals(total, weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::from_code(c).unwrap()
    }

    #[test]
    fn parses_within_minor_unit() {
        assert_eq!(
            Money::parse("19.99", cur("USD")).unwrap().amount,
            Decimal::new(1999, 2)
        );
        assert_eq!(
            Money::parse("1500", cur("JPY")).unwrap().amount,
            Decimal::new(1500, 0)
        );
        assert_eq!(
            Money::parse("1.250", cur("KWD")).unwrap().amount,
            Decimal::new(125, 2)
        );
        assert_eq!(
            Money::parse("-5.00", cur("USD")).unwrap().amount,
            Decimal::new(-5, 0)
        );
        // Trailing zeros carry no value.
        assert_eq!(
            Money::parse("10.000", cur("USD")).unwrap().amount,
            Decimal::new(10, 0)
        );
    }

    #[test]
    fn digits_beyond_exact_decimals_are_refused_not_rounded_away() {
        assert!(matches!(
            parse_decimal("0.00000000000000000000000000001", Some(cur("USD"))),
            Err(AmountError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_decimal("1.00000000000000000000000000001", None),
            Err(AmountError::OutOfRange(_))
        ));
        // Negative zero is zero, whichever way it is written.
        for z in ["-0", "-0.00", "0.000"] {
            let d = parse_decimal(z, Some(cur("USD"))).unwrap();
            assert!(d.is_zero() && !d.is_sign_negative(), "{z}");
        }
    }

    #[test]
    fn refuses_more_precision_than_the_currency_has() {
        assert!(matches!(
            Money::parse("19.999", cur("USD")),
            Err(AmountError::TooPrecise { allowed: 2, .. })
        ));
        assert!(matches!(
            Money::parse("1500.5", cur("JPY")),
            Err(AmountError::TooPrecise { allowed: 0, .. })
        ));
        assert!(Money::parse("1.2345", cur("KWD")).is_err());
    }

    #[test]
    fn refuses_anything_but_plain_decimals() {
        for bad in [
            "", "abc", "1e5", "1_000", "1,00", ".5", "5.", "--1", "1.2.3", " 1", "+1", "NaN",
        ] {
            assert!(
                parse_decimal(bad, None).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn too_many_digits_is_out_of_range_not_malformed() {
        assert!(matches!(
            parse_decimal("99999999999999999999999999999.99", None),
            Err(AmountError::OutOfRange(_))
        ));
    }

    #[test]
    fn minor_units_follow_the_currency_exponent() {
        assert_eq!(
            Money::from_minor_units(1999, cur("USD")).amount,
            Decimal::new(1999, 2)
        );
        assert_eq!(
            Money::from_minor_units(1500, cur("JPY")).amount,
            Decimal::new(1500, 0)
        );
        assert_eq!(
            Money::from_minor_units(1250, cur("KWD")).amount,
            Decimal::new(125, 2)
        );
        assert_eq!(
            Money::from_minor_units(-300, cur("EUR")).amount,
            Decimal::new(-3, 0)
        );
    }

    #[test]
    fn tolerance_is_one_cent_inclusive() {
        let a = Money::parse("100.00", cur("USD")).unwrap();
        assert!(a.agrees_with(&Money::parse("100.01", cur("USD")).unwrap()));
        assert!(!a.agrees_with(&Money::parse("100.02", cur("USD")).unwrap()));
        assert!(!a.agrees_with(&Money::parse("100.00", cur("EUR")).unwrap()));
    }

    #[test]
    fn arithmetic_is_checked_and_single_currency() {
        let max = Money::new(Decimal::MAX, cur("USD"));
        let one = Money::parse("1", cur("USD")).unwrap();
        assert_eq!(max.checked_add(&one), None);
        assert_eq!(max.checked_sub(&max), Some(Money::zero(cur("USD"))));
        assert_eq!(
            one.checked_add(&Money::parse("1", cur("EUR")).unwrap()),
            None
        );
        assert_eq!(
            one.abs_diff(&Money::parse("3", cur("USD")).unwrap()),
            Some(Money::parse("2", cur("USD")).unwrap())
        );
    }

    #[test]
    fn formats_with_the_minor_unit() {
        assert_eq!(format_amount(Decimal::new(100, 0), cur("USD")), "100.00");
        assert_eq!(format_amount(Decimal::new(1500, 0), cur("JPY")), "1500");
        assert_eq!(format_amount(Decimal::new(125, 2), cur("KWD")), "1.250");
        assert_eq!(format_amount(Decimal::new(-2, 2), cur("USD")), "-0.02");
    }

    #[test]
    fn allocation_conserves_every_cent() {
        let total = Money::parse("100.00", cur("USD")).unwrap();
        let parts = allocate(total, &[Decimal::ONE, Decimal::ONE, Decimal::ONE]).unwrap();
        let amounts: Vec<_> = parts.iter().map(|m| m.amount).collect();
        assert_eq!(
            amounts,
            vec![
                Decimal::new(3334, 2),
                Decimal::new(3333, 2),
                Decimal::new(3333, 2)
            ]
        );
        assert_eq!(amounts.iter().copied().sum::<Decimal>(), total.amount);

        let yen = Money::parse("1000", cur("JPY")).unwrap();
        let parts = allocate(yen, &[Decimal::new(1, 0), Decimal::new(2, 0)]).unwrap();
        assert_eq!(
            parts.iter().map(|m| m.amount).sum::<Decimal>(),
            Decimal::new(1000, 0)
        );
        assert_eq!(parts[1].amount, Decimal::new(667, 0));
    }
}
