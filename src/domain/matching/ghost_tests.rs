//! Seed 004's ghost-revenue categories (issue 8): each raised on its fault
//! with its evidence and amount at risk, silent on the clean version of
//! the same order, and gone when the missing or corrected record arrives.

use chrono::Duration;
use rust_decimal::Decimal;

use super::*;
use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::*;
use crate::domain::testkit::*;
use crate::domain::transaction::StoredRecord;

fn rules(e: &Evaluation) -> Vec<&str> {
    e.findings.iter().map(|f| f.rule.as_str()).collect()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn clean() -> Vec<StoredRecord> {
    vec![
        order("100.00", 2),
        charge("ch_1", "100.00", 1),
        invoice("INV-1", "100.00", 60),
    ]
}

fn journal(id: &str, minutes: i64, lines: &[(&str, &str, &str, Option<&str>)]) -> StoredRecord {
    rec(
        "netsuite",
        id,
        at(minutes),
        Body::JournalEntry(JournalEntry {
            currency: usd("1").currency,
            exchange_rate: None,
            posting_period: "Nov 2026".into(),
            subsidiary: "US".into(),
            memo: String::new(),
            lines: lines
                .iter()
                .map(|(account, debit, credit, reference)| JournalLine {
                    account: (*account).into(),
                    debit: dec(debit),
                    credit: dec(credit),
                    memo: String::new(),
                    name: String::new(),
                    reference: reference.map(Into::into),
                })
                .collect(),
        }),
    )
}

fn sf_refund(id: &str, amount: &str, processor_ref: &str, minutes: i64) -> StoredRecord {
    let mut r = sf_capture(id, amount, processor_ref, minutes);
    if let Body::StorefrontTransaction(t) = &mut r.record.body {
        t.kind = TxnKind::Refund;
    }
    r
}

fn processor_refund(id: &str, amount: &str, minutes: i64) -> StoredRecord {
    let mut r = charge(id, amount, minutes);
    if let Body::ProcessorPayment(p) = &mut r.record.body {
        p.payment_type = PaymentType::Refund;
        p.fee = None;
        p.charge_id = Some("ch_1".into());
    }
    r
}

fn credit_memo(id: &str, total: &str, minutes: i64) -> StoredRecord {
    rec(
        "netsuite",
        id,
        at(minutes),
        Body::CreditMemo(CreditMemo {
            total: usd(total),
            tax: None,
            shipping: None,
            lines: vec![],
        }),
    )
}

#[test]
fn a_storefront_refund_the_processor_never_made_is_refund_not_propagated() {
    let mut recs = clean();
    recs.extend([
        sf_refund("5002", "20.00", "ch_1", 120),
        credit_memo("CM-1", "20.00", 130),
    ]);
    let policy = MatchPolicy::default();
    let e = evaluate("1001", &recs);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Pending);
    assert_eq!(e.held[0].rule, "refund_not_at_processor");
    let due = e.recheck_at().unwrap();

    let e = evaluate_as_of(&policy, "1001", &recs, Some(due));
    assert_eq!(rules(&e), vec!["refund_not_at_processor"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::RefundNotPropagated);
    assert_eq!(f.handoff, Handoff::InvoiceToPayment);
    assert_eq!(f.observations[0].source_system, "shopify");
    assert_eq!(f.observations[0].source_ids, vec!["5002".to_string()]);
    assert_eq!(f.difference, Some(usd("20.00")));
    assert!(
        f.summary.contains("no processor refund of ch_1"),
        "{}",
        f.summary
    );

    // The processor's refund arrives, late: nothing is left to find.
    recs.push(processor_refund("re_1", "20.00", 3000));
    let e = evaluate_as_of(&policy, "1001", &recs, Some(due));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Matched);

    // A gift-card refund names no processor payment: nothing to wait for.
    let mut gift = clean();
    let mut r = sf_refund("5003", "5.00", "x", 120);
    if let Body::StorefrontTransaction(t) = &mut r.record.body {
        t.processor_reference = None;
    }
    gift.extend([r, credit_memo("CM-1", "5.00", 130)]);
    let e = evaluate_as_of(&policy, "1001", &gift, Some(at(100_000)));
    assert!(
        e.findings.is_empty() && e.held.is_empty(),
        "{:?}",
        e.findings
    );
}

#[test]
fn a_payment_booked_at_its_net_with_no_fee_line_is_fee_unallocated() {
    // The ERP booked the net as sales: the 3.20 fee reached no journal.
    let mut recs = clean();
    recs.push(journal(
        "JE-1",
        200,
        &[
            ("1000 Bank", "96.80", "0", Some("ch_1")),
            ("4000 Sales", "0", "96.80", None),
        ],
    ));
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["fee_unallocated"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::FeeUnallocated);
    assert_eq!(f.handoff, Handoff::PaymentToCashApplication);
    assert_eq!(f.difference, Some(usd("3.20")));
    assert_eq!(f.observations[0].source_ids, vec!["ch_1".to_string()]);
    assert_eq!(f.observations[1].source_ids, vec!["JE-1".to_string()]);
    assert_eq!(f.observations[1].amount, Some(usd("96.80")));

    // The corrected journal (a new version of JE-1) books the gross and
    // the fee: silent.
    let mut fixed = clean();
    fixed.push(journal(
        "JE-1",
        200,
        &[
            ("1200 Stripe clearing", "100.00", "0", Some("ch_1")),
            ("1100 Receivables", "0", "100.00", None),
        ],
    ));
    assert!(evaluate("1001", &fixed).findings.is_empty());
}

fn split(card: &str, gift: &str, store: &str) -> StoredRecord {
    let mut o = order("100.00", 2);
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.tenders[0].amount = usd(card);
        for (t, a) in [
            (TenderType::GiftCard, gift),
            (TenderType::StoreCredit, store),
        ] {
            so.tenders.push(Tender {
                tender_type: t,
                gateway: t.as_str().into(),
                amount: usd(a),
                processor_reference: None,
            });
        }
    }
    o
}

#[test]
fn split_tenders_that_each_round_but_add_up_are_a_rounding_variance() {
    let with = |o: StoredRecord, card: &str| {
        vec![o, charge("ch_1", card, 1), invoice("INV-1", "100.00", 60)]
    };
    // Three tenders, 0.02 short: within three cents of rounding, beyond one.
    let e = evaluate("1001", &with(split("33.33", "33.33", "33.32"), "33.33"));
    assert_eq!(rules(&e), vec!["split_tender_rounding"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::RoundingVariance);
    assert_eq!(f.difference, Some(usd("0.02")));
    assert_eq!(f.observations[1].amount, Some(usd("99.98")));

    // The clean split: nothing. One cent off: within the tolerance.
    assert!(
        evaluate("1001", &with(split("33.34", "33.33", "33.33"), "33.34"))
            .findings
            .is_empty()
    );
    assert!(
        evaluate("1001", &with(split("33.33", "33.33", "33.33"), "33.33"))
            .findings
            .is_empty()
    );
    // Beyond what rounding explains: the tenders do not add up (not rounding).
    let e = evaluate("1001", &with(split("33.33", "33.33", "30.00"), "33.33"));
    assert!(
        !rules(&e).contains(&"split_tender_rounding"),
        "{:?}",
        rules(&e)
    );
    assert!(rules(&e).contains(&"order_tenders_sum"));
}

#[test]
fn ledger_lines_that_each_round_but_add_up_are_a_rounding_variance() {
    let mut recs = clean();
    recs.push(journal(
        "JE-1",
        200,
        &[
            ("1200 Clearing / line 1", "33.33", "0", Some("ch_1")),
            ("1200 Clearing / line 2", "33.33", "0", Some("ch_1")),
            ("1200 Clearing / line 3", "33.32", "0", Some("ch_1")),
            ("1100 Receivables", "0", "99.98", None),
        ],
    ));
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["ledger_line_rounding"]);
    assert_eq!(
        e.findings[0].exception_type,
        ExceptionType::RoundingVariance
    );
    assert_eq!(e.findings[0].difference, Some(usd("0.02")));
}

fn eur(s: &str) -> Money {
    Money::parse(s, Currency::from_code("EUR").unwrap()).unwrap()
}

/// A EUR order charged at `rate` (USD per EUR, fee in USD) and journaled
/// in EUR by the ERP at `erp_rate`, `day_later` or the same day.
fn fx(rate: &str, erp_rate: &str, day_later: bool) -> Vec<StoredRecord> {
    let mut o = order("100.00", 2);
    let mut c = charge("ch_1", "100.00", 1);
    let mut inv = invoice("INV-1", "100.00", 60);
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.total = eur("100.00");
        so.tenders[0].amount = eur("100.00");
    }
    if let Body::ProcessorPayment(p) = &mut c.record.body {
        p.amount = eur("100.00");
        p.exchange_rate = Some(dec(rate));
    }
    if let Body::Invoice(i) = &mut inv.record.body {
        i.total = eur("100.00");
    }
    let mut j = journal(
        "JE-1",
        if day_later { 60 * 24 } else { 200 },
        &[
            ("1200 Clearing", "100.00", "0", Some("ch_1")),
            ("1100 Receivables", "0", "100.00", None),
        ],
    );
    if let Body::JournalEntry(e) = &mut j.record.body {
        e.currency = eur("1").currency;
        e.exchange_rate = Some(dec(erp_rate));
    }
    vec![o, c, inv, j]
}

#[test]
fn a_processor_rate_off_the_erps_rate_of_the_day_is_an_fx_variance() {
    let e = evaluate("1001", &fx("1.10", "1.08", false));
    assert_eq!(rules(&e), vec!["fx_rate_variance"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::FxVariance);
    assert_eq!(f.observations[1].source_ids, vec!["JE-1".to_string()]);
    // 100 EUR x 0.02 = 2.00 USD valued differently (the fee is in USD).
    assert_eq!(f.difference, Some(usd("2.00")));
    assert!(f.summary.contains("1.85% apart"), "{}", f.summary);

    // Within half a percent, or another day's rate: nothing.
    assert!(
        evaluate("1001", &fx("1.10", "1.097", false))
            .findings
            .is_empty()
    );
    assert!(
        evaluate("1001", &fx("1.10", "1.08", true))
            .findings
            .is_empty()
    );
    // The tolerance is the policy's.
    let wide = MatchPolicy {
        fx_rate_tolerance: dec("0.02"),
        ..MatchPolicy::default()
    };
    assert!(
        evaluate_with(&wide, "1001", &fx("1.10", "1.08", false))
            .findings
            .is_empty()
    );
    // The corrected journal at the processor's rate: nothing.
    assert!(
        evaluate("1001", &fx("1.10", "1.10", false))
            .findings
            .is_empty()
    );
}

#[test]
fn a_discount_the_invoice_carries_is_not_unmapped() {
    let mut o = order("90.00", 2);
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.total_discount = Some(usd("10.00"));
        so.discounts = vec![Discount {
            code: "WELCOME10".into(),
            amount: usd("10.00"),
        }];
    }
    let full = invoice("INV-1", "100.00", 60);
    let e = evaluate("1001", &[o.clone(), charge("ch_1", "90.00", 1), full]);
    assert_eq!(rules(&e), vec!["discount_unmapped"]);
    assert!(
        e.findings[0].summary.contains("WELCOME10"),
        "{}",
        e.findings[0].summary
    );

    // The corrected invoice, at the discounted price with its discount.
    let mut fixed = invoice("INV-1", "90.00", 60);
    if let Body::Invoice(i) = &mut fixed.record.body {
        i.discount = Some(usd("10.00"));
    }
    let e = evaluate("1001", &[o.clone(), charge("ch_1", "90.00", 1), fixed]);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    // A full-price invoice off by something else is a plain mismatch.
    let e = evaluate(
        "1001",
        &[o, charge("ch_1", "90.00", 1), invoice("INV-1", "95.00", 60)],
    );
    assert_eq!(rules(&e), vec!["order_total_vs_invoiced"]);
    let _ = Duration::zero();
}

#[test]
fn records_breaking_their_contracts_fields_are_validation_failed() {
    // An invoice line for a SKU nobody ordered (unmapped SKU).
    let mut inv = invoice("INV-1", "100.00", 60);
    if let Body::Invoice(i) = &mut inv.record.body {
        i.lines = vec![InvoiceLine {
            sku: "TEE-OLD".into(),
            quantity: 2,
            amount: Some(usd("100.00")),
        }];
    }
    let e = evaluate(
        "1001",
        &[order("100.00", 2), charge("ch_1", "100.00", 1), inv],
    );
    assert_eq!(rules(&e), vec!["contract_fields"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::ValidationFailed);
    assert_eq!(f.handoff, Handoff::FulfillmentToInvoice);
    assert_eq!(f.difference, Some(usd("100.00")));
    assert!(
        f.summary.contains("'TEE-OLD' is not on the order"),
        "{}",
        f.summary
    );

    // The corrected invoice (mapped SKU): silent.
    let mut fixed = invoice("INV-1", "100.00", 60);
    if let Body::Invoice(i) = &mut fixed.record.body {
        i.lines = vec![InvoiceLine {
            sku: "TEE".into(),
            quantity: 2,
            amount: Some(usd("100.00")),
        }];
    }
    assert!(
        evaluate(
            "1001",
            &[order("100.00", 2), charge("ch_1", "100.00", 1), fixed]
        )
        .findings
        .is_empty()
    );

    // A refund naming no payment, and a Stripe id in the wrong format.
    let mut re = processor_refund("re_1", "10.00", 120);
    if let Body::ProcessorPayment(p) = &mut re.record.body {
        p.charge_id = None;
        p.payment_intent_id = None;
    }
    let mut ch = charge("ch_1", "100.00", 1);
    if let Body::ProcessorPayment(p) = &mut ch.record.body {
        p.payment_intent_id = Some("1001".into());
    }
    let recs = vec![
        order("100.00", 2),
        ch,
        invoice("INV-1", "100.00", 60),
        re,
        credit_memo("CM-1", "10.00", 130),
    ];
    let e = evaluate("1001", &recs);
    let texts: Vec<&str> = e
        .findings
        .iter()
        .filter(|f| f.rule == "contract_fields")
        .map(|f| f.summary.as_str())
        .collect();
    assert_eq!(texts.len(), 2, "{:?}", e.findings);
    assert!(
        texts.iter().any(|t| t.contains("missing reference")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("payment_intent_id '1001' is not in the format pi_")),
        "{texts:?}"
    );
}

#[test]
fn every_contract_field_rule_is_executable_and_shown() {
    for h in Handoff::ALL {
        let c = crate::domain::handoff::builtin(h);
        for r in &c.field_rules {
            assert_eq!(r.handoff(), h);
            assert!(c.validations.iter().any(|v| v == r.as_str()));
        }
    }
    assert_eq!(MatchPolicy::default().field_rules.len(), 4);
}
