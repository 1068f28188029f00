//! Largest-remainder allocation in whole minor units.
//!
//! One payment paying several invoices, one payout-level fee spread over orders, one refund
//! across tenders: every split must give back exactly the total, or a cent appears in one
//! ledger and not the other (seed 004's "rounding and currency" leak). Everything here is
//! integer arithmetic on minor units with checked operations, so a split is exact, never
//! panics, and is the same on every machine and every run.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::currency::Currency;
use super::money::Money;

/// Why a split could not be made. Each is the caller's data, never a bug to panic on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("nothing to split by: there are no weights")]
    NoWeights,
    #[error("weight {index} is negative")]
    NegativeWeight { index: usize },
    #[error("the weights sum to zero: nothing to split by")]
    ZeroWeights,
    #[error("{0} has more decimal places than its currency's minor unit")]
    TooPrecise(String),
    #[error("the split overflows exact arithmetic")]
    Overflow,
}

/// Splits `total` minor units across non-negative `weights` so the parts sum to `total`
/// exactly and each part is within one unit of its exact share `total * w / sum(w)`.
///
/// Each part first gets the floor of its share; the units left over go one each to the
/// largest remainders, ties to the earlier weight, so the result depends only on the input.
/// A negative total is split as its magnitude and negated, so a refund splits the same way
/// as the payment it reverses.
pub fn allocate_units(total: i128, weights: &[i128]) -> Result<Vec<i128>, AllocationError> {
    if weights.is_empty() {
        return Err(AllocationError::NoWeights);
    }
    if let Some(index) = weights.iter().position(|w| *w < 0) {
        return Err(AllocationError::NegativeWeight { index });
    }
    let sum = weights
        .iter()
        .try_fold(0i128, |acc, w| acc.checked_add(*w))
        .ok_or(AllocationError::Overflow)?;
    if sum == 0 {
        return Err(AllocationError::ZeroWeights);
    }
    let magnitude = total.checked_abs().ok_or(AllocationError::Overflow)?;
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, w) in weights.iter().enumerate() {
        let scaled = magnitude.checked_mul(*w).ok_or(AllocationError::Overflow)?;
        parts.push(scaled / sum);
        remainders.push((scaled % sum, index));
    }
    let floors: i128 = parts.iter().sum();
    // Floors never exceed the total and the leftover is below the number of parts, because
    // every remainder is below `sum`; the loop below therefore always places every unit.
    let mut left = magnitude - floors;
    debug_assert!((0..weights.len() as i128).contains(&left));
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, index) in remainders {
        if left == 0 {
            break;
        }
        parts[index] += 1;
        left -= 1;
    }
    if total < 0 {
        parts.iter_mut().for_each(|p| *p = -*p);
    }
    debug_assert_eq!(parts.iter().sum::<i128>(), total, "a split lost a unit");
    Ok(parts)
}

/// `amount` as a whole number of `currency` minor units (19.99 USD is 1999).
pub fn to_units(amount: Decimal, currency: Currency) -> Result<i128, AllocationError> {
    let scaled = amount
        .checked_mul(Decimal::from(10i64.pow(currency.exponent())))
        .ok_or(AllocationError::Overflow)?;
    if !scaled.fract().is_zero() {
        return Err(AllocationError::TooPrecise(format!("{amount} {currency}")));
    }
    scaled.to_i128().ok_or(AllocationError::Overflow)
}

/// Minor units back to an amount of `currency` (1999 USD units is 19.99).
pub fn from_units(units: i128, currency: Currency) -> Result<Money, AllocationError> {
    let amount = Decimal::try_from_i128_with_scale(units, currency.exponent())
        .map_err(|_| AllocationError::Overflow)?;
    Ok(Money::new(amount.normalize(), currency))
}

/// Splits `total` across decimal weights of any scale: they are brought to one scale and
/// split as integers, so a weight of 0.1 and one of 10 compare exactly.
pub fn allocate_by_decimals(
    total: Money,
    weights: &[Decimal],
) -> Result<Vec<Money>, AllocationError> {
    let scale = weights.iter().map(|w| w.scale()).max().unwrap_or(0);
    let units = weights
        .iter()
        .map(|w| {
            let mut w = *w;
            w.rescale(scale);
            if w.scale() == scale {
                Ok(w.mantissa())
            } else {
                Err(AllocationError::Overflow)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parts = allocate_units(to_units(total.amount, total.currency)?, &units)?;
    parts
        .into_iter()
        .map(|u| from_units(u, total.currency))
        .collect()
}

/// Splits money across money-valued weights (invoice totals, order grosses) in minor units.
pub fn allocate_money(total: Money, weights: &[Money]) -> Result<Vec<Money>, AllocationError> {
    let units = weights
        .iter()
        .map(|w| to_units(w.amount, w.currency))
        .collect::<Result<Vec<_>, _>>()?;
    let parts = allocate_units(to_units(total.amount, total.currency)?, &units)?;
    parts
        .into_iter()
        .map(|u| from_units(u, total.currency))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn usd() -> Currency {
        Currency::from_code("USD").unwrap()
    }

    #[test]
    fn leftover_units_go_to_the_largest_remainders_then_the_earliest() {
        assert_eq!(allocate_units(100, &[1, 1, 1]).unwrap(), vec![34, 33, 33]);
        // 10 * 2/7 = 2.857, 10 * 5/7 = 7.142: the first has the larger remainder.
        assert_eq!(allocate_units(10, &[2, 5]).unwrap(), vec![3, 7]);
        assert_eq!(
            allocate_units(-100, &[1, 1, 1]).unwrap(),
            vec![-34, -33, -33]
        );
        assert_eq!(allocate_units(0, &[3, 4]).unwrap(), vec![0, 0]);
    }

    #[test]
    fn refuses_what_it_cannot_split() {
        assert_eq!(allocate_units(5, &[]), Err(AllocationError::NoWeights));
        assert_eq!(
            allocate_units(5, &[0, 0]),
            Err(AllocationError::ZeroWeights)
        );
        assert_eq!(
            allocate_units(5, &[1, -1]),
            Err(AllocationError::NegativeWeight { index: 1 })
        );
        assert_eq!(
            allocate_units(i128::MAX, &[i128::MAX, 1]),
            Err(AllocationError::Overflow)
        );
    }

    #[test]
    fn converts_money_to_units_and_back() {
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(to_units(Decimal::new(1250, 3), kwd), Ok(1250));
        assert_eq!(to_units(Decimal::new(1999, 2), usd()), Ok(1999));
        assert_eq!(to_units(Decimal::new(-5, 0), usd()), Ok(-500));
        assert!(to_units(Decimal::new(19999, 3), usd()).is_err());
        assert_eq!(
            from_units(1999, usd()).unwrap().amount,
            Decimal::new(1999, 2)
        );
    }

    #[test]
    fn splits_money_by_money() {
        let total = Money::new(Decimal::new(10000, 2), usd());
        let weights = [
            Money::new(Decimal::new(3000, 2), usd()),
            Money::new(Decimal::new(4000, 2), usd()),
            Money::new(Decimal::new(2000, 2), usd()),
        ];
        let parts = allocate_money(total, &weights).unwrap();
        let amounts: Vec<_> = parts.iter().map(|m| m.amount).collect();
        // Exact shares 3333.33, 4444.44, 2222.22 cents: the one leftover cent goes to the
        // largest remainder (.44), the second part.
        assert_eq!(
            amounts,
            vec![
                Decimal::new(3333, 2),
                Decimal::new(4445, 2),
                Decimal::new(2222, 2)
            ]
        );
    }

    proptest! {
        #[test]
        fn parts_sum_to_the_total_and_stay_within_a_unit_of_the_exact_share(
            total in -10_000_000_000i128..10_000_000_000i128,
            weights in proptest::collection::vec(0i128..1_000_000_000, 1..40),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = allocate_units(total, &weights).unwrap();
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().sum::<i128>(), total);
            let sum: i128 = weights.iter().sum();
            for (part, w) in parts.iter().zip(&weights) {
                // |part - total*w/sum| < 1  <=>  |part*sum - total*w| < sum
                prop_assert!((part * sum - total * w).abs() < sum);
            }
            // Deterministic: the same input gives the same split.
            prop_assert_eq!(allocate_units(total, &weights).unwrap(), parts);
        }
    }
}
