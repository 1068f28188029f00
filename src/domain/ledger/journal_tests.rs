use super::*;
use crate::domain::ledger::test_support::{cur, day, m};

fn draft(lines: Vec<JournalLine>) -> EntryDraft {
    EntryDraft {
        external_id: ExternalId::derive("m1", "test", &["1"]),
        merchant_id: "m1".into(),
        effective_date: day(3),
        memo: "test".into(),
        source_refs: vec![SourceRef::new(SourceKind::Payout, "po_1")],
        lines,
    }
}

fn debit(role: AccountRole, s: &str) -> JournalLine {
    JournalLine::debit(role, m(s))
}

fn credit(role: AccountRole, s: &str) -> JournalLine {
    JournalLine::credit(role, m(s))
}

#[test]
fn a_balanced_entry_is_accepted_and_reads_back() {
    let entry = LedgerEntry::new(draft(vec![
        debit(AccountRole::Bank, "97.00 USD"),
        debit(AccountRole::ProcessingFees, "3.00 USD"),
        credit(AccountRole::ProcessorClearing, "100.00 USD"),
    ]))
    .unwrap();
    assert_eq!(
        entry.totals()[&cur("USD")],
        (m("100 USD").amount, m("100 USD").amount)
    );
    assert_eq!(
        entry
            .balance(AccountRole::ProcessorClearing, cur("USD"))
            .unwrap(),
        m("-100 USD").amount
    );
    assert_eq!(entry.currencies(), vec![cur("USD")]);
}

#[test]
fn an_unbalanced_entry_is_refused_with_its_totals() {
    let err = LedgerEntry::new(draft(vec![
        debit(AccountRole::Bank, "97.00 USD"),
        credit(AccountRole::ProcessorClearing, "97.01 USD"),
    ]))
    .unwrap_err();
    assert!(matches!(err, LedgerError::Unbalanced { currency, .. } if currency == cur("USD")));
}

#[test]
fn balance_is_per_currency_not_across_currencies() {
    // 100 USD of debits against 100 EUR of credits sums to zero numerically, but is two
    // unbalanced currencies.
    let err = LedgerEntry::new(draft(vec![
        debit(AccountRole::Bank, "100 USD"),
        credit(AccountRole::ProcessorClearing, "100 EUR"),
    ]))
    .unwrap_err();
    assert!(matches!(err, LedgerError::Unbalanced { .. }));
    // With a conversion leg in each currency it balances.
    assert!(
        LedgerEntry::new(draft(vec![
            debit(AccountRole::Bank, "108 USD"),
            credit(AccountRole::FxGainLoss, "108 USD"),
            debit(AccountRole::FxGainLoss, "100 EUR"),
            credit(AccountRole::ProcessorClearing, "100 EUR"),
        ]))
        .is_ok()
    );
}

#[test]
fn refuses_malformed_lines() {
    let one = draft(vec![debit(AccountRole::Bank, "1 USD")]);
    assert_eq!(LedgerEntry::new(one), Err(LedgerError::TooFewLines(1)));

    let mut both = debit(AccountRole::Bank, "1 USD");
    both.credit = m("1 USD");
    let err = LedgerEntry::new(draft(vec![both, credit(AccountRole::Rounding, "0 USD")]));
    assert_eq!(err, Err(LedgerError::BothSides { line: 0 }));

    let neither = draft(vec![
        debit(AccountRole::Bank, "1 USD"),
        credit(AccountRole::Rounding, "1 USD"),
        debit(AccountRole::Bank, "0 USD"),
    ]);
    assert_eq!(
        LedgerEntry::new(neither),
        Err(LedgerError::NeitherSide { line: 2 })
    );

    let negative = draft(vec![
        debit(AccountRole::Bank, "-1 USD"),
        credit(AccountRole::Rounding, "-1 USD"),
    ]);
    assert_eq!(
        LedgerEntry::new(negative),
        Err(LedgerError::Negative { line: 0 })
    );

    let mut mixed = debit(AccountRole::Bank, "1 USD");
    mixed.credit = Money::zero(cur("EUR"));
    let err = LedgerEntry::new(draft(vec![mixed, credit(AccountRole::Rounding, "1 USD")]));
    assert_eq!(err, Err(LedgerError::LineCurrencyMismatch { line: 0 }));

    let fine = JournalLine::debit(
        AccountRole::Bank,
        Money::new(Decimal::new(1001, 3), cur("USD")),
    );
    let err = LedgerEntry::new(draft(vec![
        fine,
        JournalLine::credit(
            AccountRole::Rounding,
            Money::new(Decimal::new(1001, 3), cur("USD")),
        ),
    ]));
    assert!(matches!(err, Err(LedgerError::TooPrecise { line: 0, .. })));

    let mut nobody = draft(vec![
        debit(AccountRole::Bank, "1 USD"),
        credit(AccountRole::Rounding, "1 USD"),
    ]);
    nobody.merchant_id = " ".into();
    assert_eq!(LedgerEntry::new(nobody), Err(LedgerError::MissingMerchant));
}

#[test]
fn overflow_is_an_error_not_a_panic() {
    let big = Money::new(Decimal::MAX, cur("USD"));
    let err = LedgerEntry::new(draft(vec![
        JournalLine::debit(AccountRole::Bank, big),
        JournalLine::debit(AccountRole::Bank, big),
        JournalLine::credit(AccountRole::Rounding, big),
    ]));
    assert_eq!(err, Err(LedgerError::Overflow));
    assert_eq!(add(big, big, "x"), Err(LedgerError::Overflow));
    assert_eq!(
        sub(Money::new(Decimal::MIN, cur("USD")), big, "x"),
        Err(LedgerError::Overflow)
    );
}

#[test]
fn a_reversal_swaps_every_line_and_still_balances() {
    let entry = LedgerEntry::new(draft(vec![
        debit(AccountRole::Bank, "97.00 USD"),
        credit(AccountRole::ProcessorClearing, "97.00 USD"),
    ]))
    .unwrap();
    let rev = entry
        .reversal(ExternalId::derive("m1", "rev", &["1"]), day(5), "failed")
        .unwrap();
    assert_eq!(
        rev.balance(AccountRole::Bank, cur("USD")).unwrap(),
        m("-97 USD").amount
    );
    assert_eq!(
        rev.balance(AccountRole::ProcessorClearing, cur("USD"))
            .unwrap(),
        m("97 USD").amount
    );
}

#[test]
fn source_kinds_round_trip_through_their_keys() {
    for kind in SourceKind::ALL {
        assert_eq!(SourceKind::from_key(kind.key()), Some(kind));
    }
    assert_eq!(SourceKind::from_key("charge"), None);
}

#[test]
fn external_ids_are_stable_and_unambiguous() {
    let a = ExternalId::derive("m1", "capture", &["ch_1"]);
    assert_eq!(a, ExternalId::derive("m1", "capture", &["ch_1"]));
    assert!(a.as_str().starts_with("tally-"));
    assert_ne!(a, ExternalId::derive("m2", "capture", &["ch_1"]));
    assert_ne!(
        ExternalId::derive("m1", "a-b", &["c"]),
        ExternalId::derive("m1", "a", &["b-c"])
    );
}
