//! The checks issue 6 found missing: each raised on its fault and silent
//! on clean data. Each test's fault read MATCHED (or the wrong finding,
//! or the wrong message) before its rule existed.

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

fn money(s: &str, code: &str) -> Money {
    Money::parse(s, Currency::from_code(code).unwrap()).unwrap()
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

fn payment(id: &str, kind: PaymentType, amount: &str, minutes: i64) -> StoredRecord {
    let mut c = charge(id, amount, minutes);
    if let Body::ProcessorPayment(p) = &mut c.record.body {
        p.payment_type = kind;
        if kind == PaymentType::Refund {
            p.fee = None;
            p.charge_id = Some("ch_1".into());
        }
    }
    c
}

fn sf_refund(id: &str, amount: &str, processor_ref: &str, minutes: i64) -> StoredRecord {
    let mut r = sf_capture(id, amount, processor_ref, minutes);
    if let Body::StorefrontTransaction(t) = &mut r.record.body {
        t.kind = TxnKind::Refund;
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
            lines: vec![],
            shipping: None,
        }),
    )
}

fn balance(id: &str, amount: Money, fee: Money, rate: Option<&str>) -> StoredRecord {
    rec(
        "stripe",
        id,
        at(2),
        Body::BalanceTransaction(BalanceTransaction {
            reporting_category: "charge".into(),
            amount,
            fee: Some(fee),
            net: amount.checked_sub(&fee),
            exchange_rate: rate.map(dec),
            source: Some("ch_1".into()),
            payout_id: None,
            available_time: None,
        }),
    )
}

// ---- 1. A refund seen only at the processor ----

#[test]
fn a_processor_refund_nobody_else_saw_is_pending_then_not_propagated() {
    let mut recs = clean();
    recs.push(payment("re_1", PaymentType::Refund, "20.00", 120));

    // While the lag runs: pending, with the reason and deadline (was
    // MATCHED); the deadline runs from receipt (30 s after the event here).
    let e = evaluate("1001", &recs);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Pending);
    let due = at(120 + 24 * 60) + Duration::seconds(30);
    assert_eq!(e.recheck_at(), Some(due));
    assert!(
        e.transaction.reasons.iter().any(|r| r.contains("re_1")
            && r.contains("20.00 USD")
            && r.contains(&due.to_rfc3339())),
        "{:?}",
        e.transaction.reasons
    );

    // At the deadline, by the caller's clock: REFUND_NOT_PROPAGATED.
    let policy = MatchPolicy::default();
    let e = evaluate_as_of(&policy, "1001", &recs, Some(due));
    assert_eq!(rules(&e), vec!["refund_not_credited"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::RefundNotPropagated);
    assert_eq!(f.handoff, Handoff::PaymentToCashApplication);
    assert_eq!(f.subject, "stripe/processor_payment/re_1");
    assert_eq!(f.difference, Some(usd("20.00")));
    assert_eq!(f.observations[0].source_ids, vec!["re_1".to_string()]);
    assert!(f.summary.contains("no ERP credit memo"), "{}", f.summary);
    assert!(e.held.is_empty());

    // ...or because a newer record of the order is dated past the lag.
    let mut later = recs.clone();
    later.push(invoice("INV-2", "0.00", 120 + 25 * 60));
    assert!(rules(&evaluate("1001", &later)).contains(&"refund_not_credited"));

    // The lag is the policy's.
    let short = MatchPolicy {
        refund_propagation: Duration::minutes(30),
        ..MatchPolicy::default()
    };
    let e = evaluate_as_of(&short, "1001", &recs, Some(at(151)));
    assert_eq!(rules(&e), vec!["refund_not_credited"]);
    assert_eq!(
        MatchPolicy::default().refund_propagation,
        Duration::hours(24)
    );

    // The credit memo arrives: nothing left to find.
    let mut credited = recs.clone();
    credited.push(credit_memo("CM-1", "20.00", 200));
    let e = evaluate_as_of(&policy, "1001", &credited, Some(due));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
}

#[test]
fn a_refund_the_storefront_and_erp_recorded_is_matched() {
    let mut recs = clean();
    recs.extend([
        payment("re_1", PaymentType::Refund, "20.00", 120),
        sf_refund("5002", "20.00", "re_1", 121),
        credit_memo("CM-1", "20.00", 180),
    ]);
    let e = evaluate_as_of(&MatchPolicy::default(), "1001", &recs, Some(at(9000)));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Matched);
}

// ---- 2. A refund larger than what was captured ----

#[test]
fn refunding_more_than_was_captured_is_a_mismatch() {
    let mut recs = clean();
    recs.extend([
        payment("re_1", PaymentType::Refund, "120.00", 120),
        sf_refund("5002", "120.00", "re_1", 121),
        credit_memo("CM-1", "120.00", 180),
    ]);
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["refund_exceeds_captured"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::AmountMismatch);
    assert_eq!(f.difference, Some(usd("20.00")));
    assert_eq!(f.observations[0].source_ids, vec!["re_1".to_string()]);
    assert_eq!(f.observations[1].source_ids, vec!["ch_1".to_string()]);
    assert!(
        f.summary.contains("120.00 USD") && f.summary.contains("100.00 USD"),
        "{}",
        f.summary
    );

    // A full refund is not an excess.
    let mut recs = clean();
    recs.extend([
        payment("re_1", PaymentType::Refund, "100.00", 120),
        sf_refund("5002", "100.00", "re_1", 121),
        credit_memo("CM-1", "100.00", 180),
    ]);
    assert!(evaluate("1001", &recs).findings.is_empty());
}

// ---- 3. FX: settlement gross against presentment x rate ----

/// A USD charge settled in EUR at 0.9, with its fee in EUR.
fn fx_order(settled: &str, bt_fee: &str) -> Vec<StoredRecord> {
    let mut recs = clean();
    if let Body::ProcessorPayment(p) = &mut recs[1].record.body {
        p.fee = Some(money("2.90", "EUR"));
        p.exchange_rate = Some(dec("0.9"));
        p.balance_transaction_id = Some("txn_1".into());
    }
    recs.push(balance(
        "txn_1",
        money(settled, "EUR"),
        money(bt_fee, "EUR"),
        Some("0.9"),
    ));
    recs
}

#[test]
fn a_settlement_gross_that_is_not_presentment_times_rate_is_a_mismatch() {
    let e = evaluate("1001", &fx_order("90.00", "2.90"));
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Matched);

    // One cent of EUR is within the settlement currency's tolerance.
    assert!(
        evaluate("1001", &fx_order("90.01", "2.90"))
            .findings
            .is_empty()
    );

    let e = evaluate("1001", &fx_order("92.00", "2.90"));
    assert_eq!(rules(&e), vec!["settlement_fx"]);
    let f = &e.findings[0];
    assert_eq!(f.exception_type, ExceptionType::AmountMismatch);
    assert_eq!(f.handoff, Handoff::PaymentToCashApplication);
    assert_eq!(f.difference, Some(money("2.00", "EUR")));
    assert_eq!(f.observations[0].source_ids, vec!["txn_1".to_string()]);
    assert_eq!(f.observations[1].amount, Some(money("90.00", "EUR")));
    assert!(
        f.summary.contains("100.00 USD x rate 0.9") && f.summary.contains("92.00 EUR"),
        "{}",
        f.summary
    );
}

#[test]
fn a_balance_transactions_rate_reads_from_presentment_to_settlement() {
    let t = evaluate("1001", &fx_order("90.00", "2.90")).transaction;
    let rate = t
        .exchange_rates
        .iter()
        .find(|r| r.source_id == "txn_1")
        .unwrap();
    // 100.00 USD x 0.9 = 90.00 EUR: from USD to EUR (was from EUR, to none).
    assert_eq!(rate.from, Currency::from_code("USD").unwrap());
    assert_eq!(rate.to, Some(Currency::from_code("EUR").unwrap()));
    assert_eq!(rate.rate, dec("0.9"));
}

// ---- 4. The charge's fee against its balance transaction's ----

#[test]
fn a_charge_fee_that_is_not_the_balance_transactions_fee_is_a_mismatch() {
    let e = evaluate("1001", &fx_order("90.00", "3.10"));
    assert_eq!(rules(&e), vec!["processor_fee_vs_balance_transaction"]);
    let f = &e.findings[0];
    assert_eq!(f.subject, "stripe/processor_payment/ch_1");
    assert_eq!(f.difference, Some(money("0.20", "EUR")));
    assert!(
        f.summary.contains("2.90 EUR") && f.summary.contains("3.10 EUR"),
        "{}",
        f.summary
    );

    // A fee stated in the presentment currency is converted at the rate:
    // 3.20 USD x 0.9 = 2.88 EUR.
    let mut recs = fx_order("90.00", "2.88");
    if let Body::ProcessorPayment(p) = &mut recs[1].record.body {
        p.fee = Some(usd("3.20"));
    }
    assert!(evaluate("1001", &recs).findings.is_empty());
    // Same currency, no rate: compared as they are.
    let mut recs = clean();
    recs.push(balance("txn_1", usd("100.00"), usd("3.20"), None));
    assert!(evaluate("1001", &recs).findings.is_empty());
    recs.pop();
    recs.push(balance("txn_1", usd("100.00"), usd("3.50"), None));
    assert_eq!(
        rules(&evaluate("1001", &recs)),
        vec!["processor_fee_vs_balance_transaction"]
    );
}

// ---- 5. Units and lines ----

fn shipment(id: &str, lines: &[(&str, i64)]) -> StoredRecord {
    let mut f = fulfilment(id, 0, 30);
    if let Body::Fulfillment(b) = &mut f.record.body {
        b.lines = lines
            .iter()
            .map(|(sku, quantity)| FulfillmentLine {
                sku: (*sku).into(),
                quantity: *quantity,
            })
            .collect();
    }
    f
}

#[test]
fn shipping_more_units_than_ordered_is_flagged_per_sku_and_in_total() {
    let mut recs = clean();
    recs.push(shipment("F1", &[("TEE", 2)]));
    assert!(evaluate("1001", &recs).findings.is_empty());

    let mut recs = clean();
    recs.push(shipment("F1", &[("TEE", 3)]));
    let e = evaluate("1001", &recs);
    assert_eq!(
        rules(&e),
        vec!["shipped_more_than_ordered", "shipped_more_than_ordered"]
    );
    let subjects: Vec<&str> = e.findings.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(subjects, vec!["1001", "1001/sku/TEE"]);
    assert!(e.findings[1].summary.contains("3 units of SKU TEE"));
    assert_eq!(e.findings[1].observations[1].source_ids, vec!["F1"]);

    // The right count, a wrong SKU: only that SKU is over.
    let mut recs = clean();
    recs.push(shipment("F1", &[("TEE", 1), ("MUG", 1)]));
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["shipped_more_than_ordered"]);
    assert_eq!(e.findings[0].subject, "1001/sku/MUG");

    // Quantities that would overflow saturate: over, never a panic.
    let mut recs = clean();
    recs.push(shipment("F1", &[("TEE", i64::MAX), ("TEE", i64::MAX)]));
    assert!(rules(&evaluate("1001", &recs)).contains(&"shipped_more_than_ordered"));
}

/// An order of 2 x 40.00 with tax 8.00 and shipping 12.00, no subtotal.
fn priced_order(total: &str) -> StoredRecord {
    let mut o = order(total, 2);
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.line_items[0].unit_price = Some(usd("40.00"));
        so.total_tax = Some(usd("8.00"));
        so.total_shipping = Some(usd("12.00"));
    }
    o
}

#[test]
fn order_lines_must_make_the_total_without_a_subtotal() {
    let recs = [
        priced_order("100.00"),
        charge("ch_1", "100.00", 1),
        invoice("INV-1", "100.00", 60),
    ];
    assert!(evaluate("1001", &recs).findings.is_empty());

    let mut recs = recs.to_vec();
    recs[0] = priced_order("102.00");
    for r in &mut recs[1..] {
        match &mut r.record.body {
            Body::ProcessorPayment(p) => p.amount = usd("102.00"),
            Body::Invoice(i) => i.total = usd("102.00"),
            _ => {}
        }
    }
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["order_lines_total"]);
    assert_eq!(
        e.findings[0].exception_type,
        ExceptionType::ValidationFailed
    );
    assert_eq!(e.findings[0].difference, Some(usd("2.00")));

    // Line discounts and taxes count when the order states no totals.
    let mut o = priced_order("95.00");
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.total_tax = None;
        so.line_items[0].tax = Some(usd("8.00"));
        so.line_items[0].discount = Some(usd("5.00"));
        so.tenders[0].amount = usd("95.00");
    }
    assert!(record_findings(&o.record).is_empty());

    // A unit price x quantity beyond a decimal is reported, not a panic.
    let mut o = priced_order("100.00");
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.line_items[0].unit_price = Some(Money::new(Decimal::MAX, usd("1").currency));
    }
    let f = record_findings(&o.record);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].summary.contains("overflow"), "{}", f[0].summary);
}

fn lined_invoice(total: &str, line: &str) -> StoredRecord {
    let mut i = invoice("INV-1", total, 60);
    if let Body::Invoice(b) = &mut i.record.body {
        b.lines = vec![InvoiceLine {
            sku: "TEE".into(),
            quantity: 2,
            amount: Some(usd(line)),
        }];
        b.discount = Some(usd("10.00"));
        b.tax = Some(usd("8.00"));
        b.shipping = Some(usd("12.00"));
    }
    i
}

#[test]
fn invoice_lines_must_make_the_invoice_total() {
    let recs = [
        order("100.00", 2),
        charge("ch_1", "100.00", 1),
        lined_invoice("100.00", "90.00"),
    ];
    assert!(evaluate("1001", &recs).findings.is_empty());

    let recs = [
        order("100.00", 2),
        charge("ch_1", "100.00", 1),
        lined_invoice("100.00", "95.00"),
    ];
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["invoice_lines_sum"]);
    assert_eq!(e.findings[0].subject, "netsuite/invoice/INV-1");
    assert_eq!(e.findings[0].difference, Some(usd("5.00")));
    assert!(e.findings[0].summary.contains("105.00 USD"));
}

// ---- 6. A multicapture in progress ----

#[test]
fn a_multicapture_under_way_is_pending_with_its_progress() {
    let base = [order("100.00", 2), invoice("INV-1", "100.00", 60)];
    let mut recs = base.to_vec();
    recs.push(payment("cap_1", PaymentType::Capture, "70.00", 1));
    let e = evaluate("1001", &recs);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Pending);
    assert_eq!(
        e.transaction.reasons,
        vec!["captured 70.00 USD of 100.00 USD so far; awaiting further captures"]
    );

    // The last capture completes it.
    recs.push(payment("cap_2", PaymentType::Capture, "30.00", 2));
    assert_eq!(
        evaluate("1001", &recs).transaction.state,
        ReconciliationState::Matched
    );

    // An over-capture is still a mismatch.
    let mut over = base.to_vec();
    over.extend([
        payment("cap_1", PaymentType::Capture, "70.00", 1),
        payment("cap_2", PaymentType::Capture, "40.00", 2),
    ]);
    assert_eq!(
        rules(&evaluate("1001", &over)),
        vec!["order_total_vs_captured"]
    );

    // Shipped in full and still short: pending while the contract's lag
    // runs (EXPECTED, with the deadline), a mismatch after it.
    let mut shipped = base.to_vec();
    shipped.extend([
        payment("cap_1", PaymentType::Capture, "70.00", 1),
        fulfilment("F1", 2, 30),
    ]);
    let e = evaluate("1001", &shipped);
    assert!(e.findings.is_empty(), "{:?}", e.findings);
    assert_eq!(e.transaction.state, ReconciliationState::Pending);
    let due = at(30 + 24 * 60) + Duration::seconds(30);
    assert_eq!(e.recheck_at(), Some(due));
    assert!(
        e.transaction.reasons.iter().any(
            |r| r.contains("captured 70.00 USD of 100.00 USD") && r.contains(&due.to_rfc3339())
        ),
        "{:?}",
        e.transaction.reasons
    );
    let policy = MatchPolicy::default();
    let e = evaluate_as_of(&policy, "1001", &shipped, Some(due));
    assert_eq!(rules(&e), vec!["order_total_vs_captured"]);
    assert_eq!(e.findings[0].exception_type, ExceptionType::AmountMismatch);
    assert_eq!(e.findings[0].difference, Some(usd("30.00")));
    // The last capture in time: matched, nothing held.
    shipped.push(payment("cap_2", PaymentType::Capture, "30.00", 60));
    let e = evaluate_as_of(&policy, "1001", &shipped, Some(due));
    assert_eq!(e.transaction.state, ReconciliationState::Matched);
    assert_eq!(e.recheck_at(), None);
}

// ---- 7. Messages ----

#[test]
fn a_split_tender_over_charge_compares_the_card_tender_with_its_charge() {
    let mut o = order("100.00", 2);
    if let Body::StorefrontOrder(so) = &mut o.record.body {
        so.tenders[0].amount = usd("80.00");
        so.tenders.push(Tender {
            tender_type: TenderType::GiftCard,
            gateway: "gift_card".into(),
            amount: usd("20.00"),
            processor_reference: None,
        });
    }
    let e = evaluate(
        "1001",
        &[
            o,
            charge("ch_1", "90.00", 1),
            invoice("INV-1", "100.00", 60),
        ],
    );
    assert_eq!(rules(&e), vec!["order_total_vs_captured"]);
    let f = &e.findings[0];
    assert_eq!(f.difference, Some(usd("10.00")));
    assert_eq!(f.observations[0].amount, Some(usd("80.00")));
    assert_eq!(f.observations[1].source_ids, vec!["ch_1".to_string()]);
    assert!(
        f.summary.contains("card tender 80.00 USD") && f.summary.contains("charged 90.00 USD"),
        "{}",
        f.summary
    );
}

fn journal(lines: &[(&str, &str, &str, Option<&str>)]) -> StoredRecord {
    rec(
        "netsuite",
        "JE-1",
        at(200),
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

#[test]
fn a_journal_short_by_the_fee_says_the_gap_is_the_processors_fee() {
    let mut recs = clean();
    recs.push(journal(&[
        ("1200 Stripe clearing", "96.80", "0", Some("ch_1")),
        ("6100 Merchant fees", "3.20", "0", None),
        ("1100 Receivables", "0", "100.00", None),
    ]));
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["processor_vs_journal"]);
    let f = &e.findings[0];
    assert_eq!(f.difference, Some(usd("3.20")));
    assert!(
        f.summary
            .contains("the processor's fee of 3.20 USD on ch_1")
            && f.summary.contains("JE-1")
            && f.summary.contains("6100 Merchant fees"),
        "{}",
        f.summary
    );

    // A gap that is not the fee says nothing of it.
    let mut recs = clean();
    recs.push(journal(&[
        ("1200 Stripe clearing", "95.00", "0", Some("ch_1")),
        ("1100 Receivables", "0", "95.00", None),
    ]));
    let e = evaluate("1001", &recs);
    assert_eq!(rules(&e), vec!["processor_vs_journal"]);
    assert!(!e.findings[0].summary.contains("fee"));

    // The gross on the payment's line: nothing to say.
    let mut recs = clean();
    recs.push(journal(&[
        ("1200 Stripe clearing", "100.00", "0", Some("ch_1")),
        ("1100 Receivables", "0", "100.00", None),
    ]));
    assert!(evaluate("1001", &recs).findings.is_empty());
}
