use proptest::prelude::*;

use super::*;
use crate::domain::ledger::test_support::{cur, day, m};

fn cand(id: &str, amount: &str, d: u32) -> Candidate {
    Candidate {
        id: id.into(),
        amount: m(amount),
        date: day(d),
    }
}

fn query(target: &str) -> SubsetQuery {
    SubsetQuery::new(m(target), day(1), day(10))
}

/// What a first-greedy-fit matcher does: take candidates in date order while they fit.
fn greedy(target: i128, amounts: &[i128]) -> Option<Vec<usize>> {
    let (mut left, mut taken) = (target, Vec::new());
    for (i, a) in amounts.iter().enumerate() {
        if *a <= left {
            left -= a;
            taken.push(i);
        }
    }
    (left == 0).then_some(taken)
}

#[test]
fn finds_the_unique_set_greedy_first_fit_misses() {
    // A deposit of 100.00 naming no payout; open payouts 70.00, 50.00, 50.00 by date.
    // Greedy takes 70.00 first and can never reach 100.00; the exact search finds the pair.
    let candidates = [
        cand("po_a", "70 USD", 2),
        cand("po_b", "50 USD", 3),
        cand("po_c", "50 USD", 4),
    ];
    assert_eq!(greedy(10_000, &[7_000, 5_000, 5_000]), None);
    assert_eq!(
        find_exact_subsets(&query("100 USD"), &candidates).unwrap(),
        SubsetMatch::Unique(vec!["po_b".into(), "po_c".into()])
    );
}

#[test]
fn finds_a_unique_set_among_negatives_and_distractors() {
    // A net of 12.34 made of a charge and a refund; greedy takes 20.00 and then the 9.99.
    let candidates = [
        cand("txn_1", "20.00 USD", 1),
        cand("txn_2", "-7.66 USD", 2),
        cand("txn_3", "9.99 USD", 3),
        cand("txn_4", "0.35 USD", 4),
    ];
    assert!(greedy(1_234, &[2_000, -766, 999, 35]).is_none_or(|g| g != vec![0, 1]));
    assert_eq!(
        find_exact_subsets(&query("12.34 USD"), &candidates).unwrap(),
        SubsetMatch::Unique(vec!["txn_1".into(), "txn_2".into()])
    );
}

#[test]
fn reports_every_fitting_combination_when_several_fit() {
    let candidates = [
        cand("a", "60 USD", 1),
        cand("b", "40 USD", 2),
        cand("c", "70 USD", 3),
        cand("d", "30 USD", 4),
    ];
    // Greedy first fit takes 60 + 40 and never notices 70 + 30 fits as well: it would apply
    // the deposit to payouts it cannot know are the right ones.
    assert_eq!(
        greedy(10_000, &[6_000, 4_000, 7_000, 3_000]),
        Some(vec![0, 1])
    );
    assert_eq!(
        find_exact_subsets(&query("100 USD"), &candidates).unwrap(),
        SubsetMatch::Ambiguous {
            combinations: vec![vec!["a".into(), "b".into()], vec!["c".into(), "d".into()]],
            truncated: false,
        }
    );
    let many: Vec<_> = (0..12)
        .map(|i| cand(&format!("p{i:02}"), "10 USD", 2))
        .collect();
    let SubsetMatch::Ambiguous {
        combinations,
        truncated,
    } = find_exact_subsets(&query("20 USD"), &many).unwrap()
    else {
        panic!("66 pairs fit")
    };
    assert!(truncated);
    assert_eq!(combinations.len(), 10);
}

#[test]
fn looks_only_inside_the_window_and_currency_and_is_bounded() {
    let candidates = [
        cand("late", "100 USD", 20),
        cand("eur", "100 EUR", 2),
        cand("zero", "0 USD", 2),
    ];
    assert_eq!(
        find_exact_subsets(&query("100 USD"), &candidates).unwrap(),
        SubsetMatch::NoMatch
    );
    let many: Vec<_> = (0..21)
        .map(|i| cand(&format!("p{i:02}"), "1 USD", 2))
        .collect();
    assert_eq!(
        find_exact_subsets(&query("1 USD"), &many),
        Err(SubsetError::TooManyCandidates {
            found: 21,
            limit: 20
        })
    );
    let twice = [cand("a", "1 USD", 2), cand("a", "2 USD", 3)];
    assert_eq!(
        find_exact_subsets(&query("1 USD"), &twice),
        Err(SubsetError::DuplicateCandidate("a".into()))
    );
    assert_eq!(query("1 USD").target.currency, cur("USD"));
}

#[test]
fn twenty_candidates_are_searched_exactly() {
    // Powers of two: every target below 2^20 has exactly one combination.
    let candidates: Vec<_> = (0..20)
        .map(|i| Candidate {
            id: format!("c{i:02}"),
            amount: Money::from_minor_units(1 << i, cur("USD")),
            date: day(2),
        })
        .collect();
    let target = Money::from_minor_units(0b1010_0000_0000_0000_0101, cur("USD"));
    let q = SubsetQuery::new(target, day(1), day(10));
    assert_eq!(
        find_exact_subsets(&q, &candidates).unwrap(),
        SubsetMatch::Unique(vec!["c00".into(), "c02".into(), "c17".into(), "c19".into()])
    );
}

proptest! {
    #[test]
    fn agrees_with_brute_force(
        amounts in proptest::collection::vec(-50i64..200, 0..12),
        target in -100i64..400,
    ) {
        let usd = cur("USD");
        let candidates: Vec<_> = amounts.iter().enumerate()
            .map(|(i, a)| Candidate { id: format!("c{i:02}"), amount: Money::from_minor_units(*a, usd), date: day(2) })
            .collect();
        let mut q = SubsetQuery::new(Money::from_minor_units(target, usd), day(1), day(10));
        q.max_combinations = 5000;
        let nonzero: Vec<usize> = (0..amounts.len()).filter(|i| amounts[*i] != 0).collect();
        let brute: Vec<Vec<String>> = (1u32..(1 << nonzero.len()))
            .filter(|mask| nonzero.iter().enumerate().filter(|(b, _)| mask & (1 << b) != 0).map(|(_, i)| amounts[*i]).sum::<i64>() == target)
            .map(|mask| nonzero.iter().enumerate().filter(|(b, _)| mask & (1 << b) != 0).map(|(_, i)| format!("c{i:02}")).collect())
            .collect();
        let found = find_exact_subsets(&q, &candidates).unwrap();
        match brute.len() {
            0 => prop_assert_eq!(found, SubsetMatch::NoMatch),
            1 => prop_assert_eq!(found, SubsetMatch::Unique(brute[0].clone())),
            n => {
                let SubsetMatch::Ambiguous { combinations, truncated } = found else {
                    return Err(TestCaseError::fail("expected ambiguous"));
                };
                prop_assert!(!truncated);
                prop_assert_eq!(combinations.len(), n);
                let mut a = combinations; a.sort();
                let mut b = brute; b.sort();
                prop_assert_eq!(a, b);
            }
        }
    }
}
