//! Bank deposits matched to payouts (pure).
//!
//! A deposit on the bank statement is the payout's net arriving. It names its payout(s) when
//! the bank passes the processor's reference through; then the named payouts' nets must make
//! the deposit to the cent. A deposit naming none is matched by amount and date with the
//! exact subset search over the open payouts (applied, not yet deposited) in a window around
//! its date (a bank may batch several payouts into one deposit), and only a unique fit is
//! taken. Anything else is a problem for a person, never a guess.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::plan::Problem;
use super::subset::{
    Candidate, SubsetError, SubsetMatch, SubsetQuery, find_exact_subsets, window_around,
};
use crate::domain::money::Money;

/// Days before the deposit a payout may have been sent (weekends, bank holidays).
pub const WINDOW_BEFORE_DAYS: u64 = 7;
/// Days after: a payout's expected arrival may be a day later than the bank's booking date.
pub const WINDOW_AFTER_DAYS: u64 = 1;

pub const RULE_MISMATCH: &str = "cash.deposit_amount_mismatch";
pub const RULE_NO_PAYOUT: &str = "cash.deposit_without_payout";
pub const RULE_AMBIGUOUS: &str = "cash.deposit_ambiguous";
/// Every rule a deposit can raise: all are resolved once it matches.
pub const RULES: [&str; 3] = [RULE_MISMATCH, RULE_NO_PAYOUT, RULE_AMBIGUOUS];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositFacts {
    pub deposit_id: String,
    pub amount: Money,
    pub date: NaiveDate,
    /// Payout ids the deposit names (its references).
    pub named: Vec<String>,
}

/// A payout as a deposit sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutAtBank {
    pub payout_id: String,
    /// What the bank should receive (the payout's net).
    pub net: Money,
    /// Its expected arrival (or creation) date.
    pub date: NaiveDate,
    /// Applied and not failed: its money can be at the bank.
    pub applied: bool,
    /// The deposit it was matched to already, if any.
    pub deposit_id: Option<String>,
    /// The round its bookings are keyed with (`payout_state::round_id`).
    pub round: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepositMatch {
    /// These payouts made the deposit, to the cent.
    Matched(Vec<String>),
    Unmatched(Problem),
}

/// The date window unnamed deposits search in.
/// The dates of the deposits that can be a payout's of `date`: the mirror
/// of [`window`] (a deposit takes payouts dated from 7 days before it to a
/// day after).
pub fn deposits_window(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    window_around(date, WINDOW_AFTER_DAYS, WINDOW_BEFORE_DAYS)
}

/// When the bank should have shown a payout's money: the end of its
/// arrival date plus the payment-to-cash-application contract's lag (whose
/// default, 7 days, spans the deposit matching window). A function of the
/// payout's facts, not of when Tally learned them, so whether a deposit is
/// overdue does not depend on the order records arrived in. Saturates
/// instead of overflowing: a date at the end of time is never due.
pub fn deposit_deadline(date: NaiveDate, lag: Duration) -> DateTime<Utc> {
    date.succ_opt()
        .map(|next| next.and_time(chrono::NaiveTime::MIN).and_utc())
        .and_then(|end| end.checked_add_signed(lag))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub fn window(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    window_around(date, WINDOW_BEFORE_DAYS, WINDOW_AFTER_DAYS)
}

/// Matches a deposit. `named` are the rows of the payouts it names (missing ones absent);
/// `open` the open payouts in its window, used only when it names none.
pub fn match_deposit(
    d: &DepositFacts,
    named: &[PayoutAtBank],
    open: &[PayoutAtBank],
) -> Result<DepositMatch, SubsetError> {
    if d.named.is_empty() {
        return by_amount(d, open);
    }
    let problem = |rule, summary| Ok(DepositMatch::Unmatched(problem(d, rule, summary)));
    let mut total = Money::zero(d.amount.currency);
    for id in &d.named {
        let usable = named.iter().find(|p| {
            &p.payout_id == id
                && p.applied
                && p.deposit_id.as_ref().is_none_or(|x| x == &d.deposit_id)
        });
        let Some(p) = usable else {
            return problem(
                RULE_NO_PAYOUT,
                format!(
                    "deposit {} of {} names payout {id}, which is not an applied payout still to be deposited",
                    d.deposit_id, d.amount
                ),
            );
        };
        match total.checked_add(&p.net) {
            Some(t) => total = t,
            None => {
                return problem(
                    RULE_MISMATCH,
                    format!(
                        "deposit {} of {} names payouts in other currencies or too large to add",
                        d.deposit_id, d.amount
                    ),
                );
            }
        }
    }
    if total != d.amount {
        return problem(
            RULE_MISMATCH,
            format!(
                "deposit {} of {} names payouts {} whose net is {}",
                d.deposit_id,
                d.amount,
                d.named.join(", "),
                total
            ),
        );
    }
    Ok(DepositMatch::Matched(d.named.clone()))
}

fn by_amount(d: &DepositFacts, open: &[PayoutAtBank]) -> Result<DepositMatch, SubsetError> {
    let (earliest, latest) = window(d.date);
    let candidates: Vec<Candidate> = open
        .iter()
        .filter(|p| p.applied && p.deposit_id.is_none())
        .map(|p| Candidate {
            id: p.payout_id.clone(),
            amount: p.net,
            date: p.date,
        })
        .collect();
    let query = SubsetQuery::new(d.amount, earliest, latest);
    let found = match find_exact_subsets(&query, &candidates) {
        Err(SubsetError::TooManyCandidates { found, limit }) => {
            return Ok(DepositMatch::Unmatched(problem(
                d,
                RULE_AMBIGUOUS,
                format!(
                    "deposit {} of {} names no payout and {found} open payouts are in its window ({earliest} to {latest}), more than the {limit} searched exactly",
                    d.deposit_id, d.amount
                ),
            )));
        }
        other => other?,
    };
    Ok(match found {
        SubsetMatch::Unique(ids) => DepositMatch::Matched(ids),
        SubsetMatch::NoMatch => DepositMatch::Unmatched(problem(
            d,
            RULE_NO_PAYOUT,
            format!(
                "deposit {} of {} names no payout and no combination of the {} open payouts from {earliest} to {latest} makes it",
                d.deposit_id,
                d.amount,
                candidates.len()
            ),
        )),
        SubsetMatch::Ambiguous {
            combinations,
            truncated,
        } => {
            let listed: Vec<String> = combinations
                .iter()
                .map(|c| format!("[{}]", c.join(" + ")))
                .collect();
            DepositMatch::Unmatched(problem(
                d,
                RULE_AMBIGUOUS,
                format!(
                    "deposit {} of {} names no payout and several combinations of open payouts make it: {}{}",
                    d.deposit_id,
                    d.amount,
                    listed.join(", "),
                    if truncated { ", and more" } else { "" }
                ),
            ))
        }
    })
}

fn problem(d: &DepositFacts, rule: &'static str, summary: String) -> Problem {
    Problem {
        rule,
        subject: d.deposit_id.clone(),
        order_id: None,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::test_support::{day, m};

    fn po(id: &str, net: &str, d: u32) -> PayoutAtBank {
        PayoutAtBank {
            round: 0,
            payout_id: id.into(),
            net: m(net),
            date: day(d),
            applied: true,
            deposit_id: None,
        }
    }

    fn dep(amount: &str, named: &[&str]) -> DepositFacts {
        DepositFacts {
            deposit_id: "dep_1".into(),
            amount: m(amount),
            date: day(10),
            named: named.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rule(m: DepositMatch) -> &'static str {
        match m {
            DepositMatch::Unmatched(p) => p.rule,
            DepositMatch::Matched(ids) => panic!("matched {ids:?}"),
        }
    }

    #[test]
    fn a_named_payout_matches_on_its_net_and_a_wrong_amount_is_a_mismatch() {
        let named = [po("po_1", "97.00 USD", 9)];
        assert_eq!(
            match_deposit(&dep("97.00 USD", &["po_1"]), &named, &[]).unwrap(),
            DepositMatch::Matched(vec!["po_1".into()])
        );
        let DepositMatch::Unmatched(p) =
            match_deposit(&dep("96.00 USD", &["po_1"]), &named, &[]).unwrap()
        else {
            panic!("mismatch")
        };
        assert_eq!(p.rule, RULE_MISMATCH);
        assert!(p.summary.contains("96.00 USD") && p.summary.contains("97.00 USD"));
        // Named but unknown, or deposited by another deposit already.
        assert_eq!(
            rule(match_deposit(&dep("97.00 USD", &["po_2"]), &named, &[]).unwrap()),
            RULE_NO_PAYOUT
        );
        let mut taken = named.clone();
        taken[0].deposit_id = Some("dep_0".into());
        assert_eq!(
            rule(match_deposit(&dep("97.00 USD", &["po_1"]), &taken, &[]).unwrap()),
            RULE_NO_PAYOUT
        );
    }

    #[test]
    fn an_unnamed_deposit_takes_only_a_unique_fit_in_its_window() {
        let open = [
            po("po_a", "70.00 USD", 8),
            po("po_b", "50.00 USD", 9),
            po("po_c", "50.00 USD", 9),
            // Outside the window: never part of a combination.
            po("po_old", "30.00 USD", 1),
        ];
        assert_eq!(
            match_deposit(&dep("100.00 USD", &[]), &[], &open).unwrap(),
            DepositMatch::Matched(vec!["po_b".into(), "po_c".into()])
        );
        let DepositMatch::Unmatched(p) =
            match_deposit(&dep("120.00 USD", &[]), &[], &open).unwrap()
        else {
            panic!("ambiguous")
        };
        assert_eq!(p.rule, RULE_AMBIGUOUS);
        assert!(
            p.summary.contains("[po_a + po_b]") && p.summary.contains("[po_a + po_c]"),
            "{}",
            p.summary
        );
        assert_eq!(
            rule(match_deposit(&dep("30.00 USD", &[]), &[], &open).unwrap()),
            RULE_NO_PAYOUT
        );
    }

    #[test]
    fn a_deposit_is_due_the_lag_after_the_end_of_the_arrival_date() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 3).unwrap();
        let due = deposit_deadline(d, Duration::days(7));
        assert_eq!(due.to_rfc3339(), "2026-11-11T00:00:00+00:00");
        assert_eq!(
            deposit_deadline(d, Duration::seconds(5)).to_rfc3339(),
            "2026-11-04T00:00:05+00:00"
        );
        // The end of time saturates rather than overflowing.
        assert_eq!(
            deposit_deadline(NaiveDate::MAX, Duration::days(7)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(deposit_deadline(d, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
