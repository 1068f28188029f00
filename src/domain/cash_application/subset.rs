//! Exact subset-sum matching for money with no usable reference: a bank deposit naming no
//! payout, a balance transaction whose charge names no order.
//!
//! Ledgers that take the first greedy fit (Blnk, Lerian's Matcher) miss the right set when an
//! early candidate is part of no exact combination, and never notice when two sets fit. Here
//! every combination of the candidates in the window is considered, exactly, by meet in the
//! middle: the candidates are split in two halves, every subset sum of one half is indexed,
//! and every subset of the other half looks up its complement. With the candidate count
//! bounded (20 by default) that is at most 2 x 1,024 subsets, whatever the amounts.
//! Money is applied only on a unique fit; otherwise the caller raises an exception listing
//! the combinations.

use std::collections::{BTreeSet, HashMap};

use chrono::{Days, NaiveDate};

use crate::domain::allocation::{AllocationError, to_units};
use crate::domain::money::Money;

/// The dates `[date - before days, date + after days]`, saturating at the calendar's ends.
pub fn window_around(date: NaiveDate, before: u64, after: u64) -> (NaiveDate, NaiveDate) {
    (
        date.checked_sub_days(Days::new(before))
            .unwrap_or(NaiveDate::MIN),
        date.checked_add_days(Days::new(after))
            .unwrap_or(NaiveDate::MAX),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub amount: Money,
    pub date: NaiveDate,
}

/// The search: what to reach, where to look, and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetQuery {
    pub target: Money,
    pub earliest: NaiveDate,
    pub latest: NaiveDate,
    /// More candidates than this in the window is refused rather than searched slowly or
    /// approximately; the caller narrows the window or raises an exception.
    pub max_candidates: usize,
    /// How many combinations an ambiguous answer lists.
    pub max_combinations: usize,
}

impl SubsetQuery {
    pub fn new(target: Money, earliest: NaiveDate, latest: NaiveDate) -> Self {
        SubsetQuery {
            target,
            earliest,
            latest,
            max_candidates: 20,
            max_combinations: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubsetMatch {
    /// Exactly one combination of candidates sums to the target: safe to apply.
    Unique(Vec<String>),
    /// Several fit; `truncated` when more exist than are listed.
    Ambiguous {
        combinations: Vec<Vec<String>>,
        truncated: bool,
    },
    NoMatch,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubsetError {
    #[error("{found} candidates in the window, more than the {limit} searched exactly")]
    TooManyCandidates { found: usize, limit: usize },
    #[error("candidate {0} appears twice")]
    DuplicateCandidate(String),
    #[error(transparent)]
    Amount(#[from] AllocationError),
}

/// Finds every set of candidates (in the target's currency, dated within the window, of
/// non-zero amount) that sums exactly to the target. Zero amounts are left out because they
/// would make every fit ambiguous while explaining no money. Combinations list ids in
/// (date, id) order and come shortest first, so the answer never depends on input order.
pub fn find_exact_subsets(
    query: &SubsetQuery,
    candidates: &[Candidate],
) -> Result<SubsetMatch, SubsetError> {
    let pool = eligible(query, candidates)?;
    if pool.len() > query.max_candidates || pool.len() > 30 {
        return Err(SubsetError::TooManyCandidates {
            found: pool.len(),
            limit: query.max_candidates.min(30),
        });
    }
    let target = to_units(query.target.amount, query.target.currency)?;
    let amounts = pool
        .iter()
        .map(|c| to_units(c.amount.amount, c.amount.currency))
        .collect::<Result<Vec<_>, _>>()?;
    // At least two, or an ambiguous fit would look unique.
    let limit = query.max_combinations.max(1).saturating_add(1);
    let masks = matching_masks(&amounts, target, limit);
    let mut combos: Vec<Vec<usize>> = masks.iter().map(|m| indexes(*m)).collect();
    combos.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    let ids = |combo: &Vec<usize>| combo.iter().map(|i| pool[*i].id.clone()).collect();
    Ok(match combos.len() {
        0 => SubsetMatch::NoMatch,
        1 => SubsetMatch::Unique(ids(&combos[0])),
        n => SubsetMatch::Ambiguous {
            truncated: n > query.max_combinations,
            combinations: combos
                .iter()
                .take(query.max_combinations)
                .map(ids)
                .collect(),
        },
    })
}

fn eligible<'a>(
    query: &SubsetQuery,
    candidates: &'a [Candidate],
) -> Result<Vec<&'a Candidate>, SubsetError> {
    let mut seen = BTreeSet::new();
    for c in candidates {
        if !seen.insert(c.id.as_str()) {
            return Err(SubsetError::DuplicateCandidate(c.id.clone()));
        }
    }
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.amount.currency == query.target.currency)
        .filter(|c| (query.earliest..=query.latest).contains(&c.date))
        .filter(|c| !c.amount.amount.is_zero())
        .collect();
    pool.sort_by(|a, b| (a.date, &a.id).cmp(&(b.date, &b.id)));
    Ok(pool)
}

/// Non-empty subsets (as bit masks over `amounts`) summing to `target`, at most `limit`.
/// Sums stay exact: at most 30 amounts of at most 2^96 units each fit in i128.
fn matching_masks(amounts: &[i128], target: i128, limit: usize) -> Vec<u32> {
    let half = amounts.len() / 2;
    let (low, high) = amounts.split_at(half);
    let mut by_sum: HashMap<i128, Vec<u32>> = HashMap::new();
    for (mask, sum) in subset_sums(high) {
        by_sum.entry(sum).or_default().push(mask);
    }
    let mut found = Vec::new();
    for (low_mask, low_sum) in subset_sums(low) {
        let Some(highs) = by_sum.get(&(target - low_sum)) else {
            continue;
        };
        for high_mask in highs {
            let mask = low_mask | (high_mask << half);
            if mask != 0 {
                found.push(mask);
                if found.len() >= limit {
                    return found;
                }
            }
        }
    }
    found
}

/// Every subset of `amounts` with its sum, in mask order (so results are deterministic).
fn subset_sums(amounts: &[i128]) -> Vec<(u32, i128)> {
    let mut sums = vec![(0u32, 0i128)];
    for (i, amount) in amounts.iter().enumerate() {
        let extended: Vec<(u32, i128)> =
            sums.iter().map(|(m, s)| (m | 1 << i, s + amount)).collect();
        sums.extend(extended);
    }
    sums.sort_by_key(|(m, _)| *m);
    sums
}

fn indexes(mask: u32) -> Vec<usize> {
    (0..32).filter(|i| mask & (1 << i) != 0).collect()
}

#[cfg(test)]
#[path = "subset_tests.rs"]
mod tests;
