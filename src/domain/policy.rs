//! How matching judges figures: the named knobs later issues configure
//! (handoff contracts carry an amount tolerance per currency).

use std::collections::BTreeMap;

use chrono::Duration;
use rust_decimal::Decimal;

use super::currency::Currency;
use super::money::Money;

/// How far apart two figures of one currency may be and still agree.
/// By default one minor unit of their currency (0.01 USD, 1 JPY,
/// 0.001 KWD): a flat 0.01 would let a KWD invoice 5 fils off pass and
/// call a JPY invoice 1 yen off a mismatch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TolerancePolicy {
    /// Tolerances that replace the default for one currency, inclusive.
    pub per_currency: BTreeMap<Currency, Decimal>,
}

impl TolerancePolicy {
    /// The policy with `tolerance` for `currency` instead of its minor unit.
    pub fn with(mut self, currency: Currency, tolerance: Decimal) -> Self {
        debug_assert!(
            !tolerance.is_sign_negative(),
            "a tolerance is never negative"
        );
        self.per_currency.insert(currency, tolerance.abs());
        self
    }

    pub fn for_currency(&self, currency: Currency) -> Decimal {
        self.per_currency
            .get(&currency)
            .copied()
            .unwrap_or_else(|| currency.minor_unit())
    }

    /// Whether `a` and `b` are in one currency and differ by no more than
    /// its tolerance. Figures in two currencies never agree.
    pub fn agree(&self, a: &Money, b: &Money) -> bool {
        a.abs_diff(b)
            .is_some_and(|d| d.amount <= self.for_currency(d.currency))
    }

    /// Whether `a` exceeds `b` by more than the tolerance (an over-billing
    /// or over-capture). False across currencies: that is reported apart.
    pub fn exceeds(&self, a: &Money, b: &Money) -> bool {
        a.checked_sub(b)
            .is_some_and(|d| d.amount > self.for_currency(d.currency))
    }
}

/// Everything matching can be told; `MatchPolicy::default()` is what
/// `matching::evaluate` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPolicy {
    pub tolerance: TolerancePolicy,
    /// How long a refund seen only at the processor may take to reach the
    /// storefront or the ERP before it is NOT_PROPAGATED rather than
    /// pending. Measured by event time: from the processor refund to the
    /// newest record of the order (or the evaluation's "as of" time, when
    /// later). The handoff-contracts issue will configure it per handoff.
    pub refund_propagation: Duration,
    /// How long after an order shipped in full (or its last capture) the
    /// remaining captures of a multicapture may take: short captures are
    /// pending until then, AMOUNT_MISMATCH after.
    pub capture_lag: Duration,
    /// How far the processor's exchange rate may stray from the ERP's rate
    /// of the same day, as a fraction of the ERP's rate, before it is
    /// FX_VARIANCE.
    pub fx_rate_tolerance: Decimal,
    /// The contracts' required fields and formats (VALIDATION_FAILED).
    pub field_rules: Vec<super::handoff::fields::FieldRule>,
}

impl MatchPolicy {
    /// A day: storefronts learn of a processor refund by webhook within
    /// minutes, ERPs by a nightly sync.
    pub const DEFAULT_REFUND_PROPAGATION: Duration = Duration::hours(24);
    /// Half a percent: processors add a margin of about that to the
    /// market rate an ERP loads daily; more is a mapping failure.
    pub const DEFAULT_FX_RATE_TOLERANCE: Decimal = Decimal::from_parts(5, 0, 0, false, 3);
}

impl Default for MatchPolicy {
    fn default() -> Self {
        MatchPolicy {
            tolerance: TolerancePolicy::default(),
            refund_propagation: Self::DEFAULT_REFUND_PROPAGATION,
            capture_lag: Self::DEFAULT_REFUND_PROPAGATION,
            fx_rate_tolerance: Self::DEFAULT_FX_RATE_TOLERANCE,
            field_rules: super::handoff::fields::FieldRule::ALL.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str, c: &str) -> Money {
        Money::parse(s, Currency::from_code(c).unwrap()).unwrap()
    }

    #[test]
    fn default_tolerance_is_one_minor_unit() {
        let p = TolerancePolicy::default();
        assert!(p.agree(&m("100.00", "USD"), &m("100.01", "USD")));
        assert!(!p.agree(&m("100.00", "USD"), &m("100.02", "USD")));
        assert!(p.agree(&m("1000", "JPY"), &m("1001", "JPY")));
        assert!(!p.agree(&m("1000", "JPY"), &m("1002", "JPY")));
        assert!(p.agree(&m("1.000", "KWD"), &m("1.001", "KWD")));
        assert!(!p.agree(&m("1.000", "KWD"), &m("1.005", "KWD")));
        assert!(!p.agree(&m("1.00", "USD"), &m("1.00", "EUR")));
    }

    #[test]
    fn a_currency_can_be_given_its_own_tolerance() {
        let usd = Currency::from_code("USD").unwrap();
        let p = TolerancePolicy::default().with(usd, Decimal::new(5, 2));
        assert!(p.agree(&m("100.00", "USD"), &m("100.05", "USD")));
        assert!(!p.agree(&m("100.00", "USD"), &m("100.06", "USD")));
        assert!(p.exceeds(&m("100.06", "USD"), &m("100.00", "USD")));
        assert!(!p.exceeds(&m("100.00", "USD"), &m("100.06", "USD")));
        // Others keep their minor unit.
        assert!(!p.agree(&m("1.00", "EUR"), &m("1.02", "EUR")));
    }
}
