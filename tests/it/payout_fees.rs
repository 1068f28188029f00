//! FEE_UNALLOCATED at payout level (seed 004's fee allocation gap): the ERP
//! books a Stripe payout's net, the bank deposit, as sales, and the fees
//! swept in that payout never reach a journal. Raised with its evidence,
//! silent on a journal with a fee line or at gross, and resolved by the rules
//! when a corrected journal version or a separate fee journal arrives.

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::storage::Store;

use crate::cash::{assert_ledger_sound, at, bt, capture, drain, inv, payout, scalar};
use crate::cash_scenarios::fail_payout;
use crate::common::*;

/// Two Shopify orders charged through Stripe and swept by payout `po`:
/// gross 150.00, fees 3.20 + 1.75 = 4.95, net 145.05.
fn paid_out(po: &str, orders: [&str; 2]) -> Vec<pb::Record> {
    let mut batch = vec![];
    for (o, amount, fee) in [(orders[0], "100.00", "3.20"), (orders[1], "50.00", "1.75")] {
        let ch = format!("ch_3Q{o}Lk2eZvKYlo2C");
        batch.push(order(o, amount));
        batch.push(capture(o, &ch, amount));
        batch.push(inv(o, &format!("INV-{o}"), amount, "2026-11-02T12:00:00Z"));
        batch.push(bt(
            &format!("txn_3Q{o}Lk2e"),
            "charge",
            &ch,
            amount,
            fee,
            po,
        ));
    }
    batch.push(payout(po, "145.05"));
    batch
}

/// A NetSuite journal entry naming payout `po` on its first line
/// (`on_line`) or as a record reference.
fn netsuite_je(id: &str, po: &str, on_line: bool, lines: &[(&str, &str, &str)]) -> pb::Record {
    let mut r = at(
        "netsuite",
        id,
        "",
        "2026-11-05T09:00:00Z",
        pb::record::Kind::JournalEntry(pb::JournalEntry {
            currency_code: "USD".into(),
            posting_period: "Nov 2026".into(),
            subsidiary: "Acme US".into(),
            memo: format!("Stripe payout {po}"),
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, (account, debit, credit))| pb::JournalLine {
                    account: account.to_string(),
                    debit: debit.to_string(),
                    credit: credit.to_string(),
                    memo: format!("Stripe payout {po}"),
                    reference: if on_line && i == 0 {
                        po.into()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    );
    if !on_line {
        r.references = vec![pb::ExternalReference {
            r#type: pb::ReferenceType::Payout as i32,
            id: po.into(),
        }];
    }
    r
}

/// The deposit booked as sales: Dr bank / Cr sales, both the payout's net.
fn net_as_sales(id: &str, po: &str, on_line: bool) -> pb::Record {
    netsuite_je(
        id,
        po,
        on_line,
        &[
            ("1000 Operating Bank", "145.05", "0"),
            ("4000 Shopify Sales", "0", "145.05"),
        ],
    )
}

/// The same payout booked right: gross sales, the fees on a line of their own.
fn with_fee_line(id: &str, po: &str) -> pb::Record {
    netsuite_je(
        id,
        po,
        true,
        &[
            ("1000 Operating Bank", "145.05", "0"),
            ("6100 Processing Fees", "4.95", "0"),
            ("4000 Shopify Sales", "0", "150.00"),
        ],
    )
}

async fn fee_exceptions(t: &TestApp) -> Vec<pb::Exception> {
    t.exceptions(pb::ListExceptionsRequest {
        parent: "merchants/acme".into(),
        r#type: pb::ExceptionType::FeeUnallocated as i32,
        ..Default::default()
    })
    .await
    .exceptions
}

async fn worker(t: &TestApp) -> App {
    App::new(Store::connect(&t.db.url, 2).unwrap())
}

/// The one payout-level exception, checked for its evidence.
fn assert_raised(es: &[pb::Exception], po: &str, je: &str) -> pb::Exception {
    let es: Vec<&pb::Exception> = es.iter().filter(|e| e.rule.contains("payout")).collect();
    assert_eq!(es.len(), 1, "{es:#?}");
    let e = es[0].clone();
    assert_eq!(e.state(), pb::ExceptionState::Open, "{e:?}");
    assert_eq!(e.handoff(), pb::Handoff::PaymentToCashApplication);
    let risk = e.amount_at_risk.clone().unwrap();
    assert_eq!(
        (risk.amount.as_str(), risk.currency_code.as_str()),
        ("4.95", "USD")
    );
    let seen: Vec<(String, Vec<String>, String)> = e
        .observations
        .iter()
        .map(|o| {
            let m = o.amount.clone().unwrap_or_default();
            (
                o.source_system.clone(),
                o.source_ids.clone(),
                format!("{} {}", m.amount, m.currency_code),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("stripe".into(), vec![po.to_string()], "145.05 USD".into()),
            ("netsuite".into(), vec![je.to_string()], "145.05 USD".into()),
        ]
    );
    for part in [po, je, "145.05 USD", "150.00 USD", "4.95 USD"] {
        assert!(e.summary.contains(part), "{part} not in {}", e.summary);
    }
    e
}

#[tokio::test]
async fn a_payout_net_booked_as_sales_is_fee_unallocated_until_a_corrected_version() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let po = "po_1QFk2eZvKYlo2CA1";
    t.submit(paid_out(po, ["5201", "5202"])).await.unwrap();
    drain(&app, "acme").await;
    assert!(fee_exceptions(&t).await.is_empty());

    // The payout is applied; the ERP's journal arrives after, naming it on a line.
    t.submit(vec![net_as_sales("JE-1105-01", po, true)])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert_raised(&fee_exceptions(&t).await, po, "JE-1105-01");
    // Checked again, the same evidence: still one exception.
    t.submit(vec![netsuite_je(
        "JE-1105-02",
        "po_unrelated",
        true,
        &[
            ("1000 Operating Bank", "1.00", "0"),
            ("7000 Misc", "0", "1.00"),
        ],
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert_eq!(fee_exceptions(&t).await.len(), 1);

    // NetSuite corrects the entry: a later version of the same key.
    let mut fixed = with_fee_line("JE-1105-01", po);
    fixed.source_update_time = ts("2026-11-06T10:00:00Z");
    t.submit(vec![fixed]).await.unwrap();
    drain(&app, "acme").await;
    let es = fee_exceptions(&t).await;
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].state(), pb::ExceptionState::Resolved, "{es:?}");
    assert_eq!(es[0].resolved_by, "rules");
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_journal_before_its_payout_is_checked_at_application_and_a_fee_journal_settles_it() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let po = "po_1QFk2eZvKYlo2CB2";
    // The journal names the payout by reference, before Stripe's records arrive.
    t.submit(vec![net_as_sales("JE-1105-03", po, false)])
        .await
        .unwrap();
    drain(&app, "acme").await;
    assert!(fee_exceptions(&t).await.is_empty());
    t.submit(paid_out(po, ["5203", "5204"])).await.unwrap();
    drain(&app, "acme").await;
    let e = assert_raised(&fee_exceptions(&t).await, po, "JE-1105-03");
    assert!(
        e.transaction.is_empty(),
        "a payout is no single order's: {e:?}"
    );

    // A separate journal sweeps the payout's fees to processing fees.
    t.submit(vec![netsuite_je(
        "JE-1105-04",
        po,
        true,
        &[
            ("6100 Processing Fees", "4.95", "0"),
            ("4000 Shopify Sales", "0", "4.95"),
        ],
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    let es = fee_exceptions(&t).await;
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].state(), pb::ExceptionState::Resolved, "{es:?}");
    assert_eq!(es[0].resolved_by, "rules");
}

#[tokio::test]
async fn a_journal_with_a_fee_line_or_at_gross_raises_nothing() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let (a, b) = ("po_1QFk2eZvKYlo2CC3", "po_1QFk2eZvKYlo2CD4");
    let mut batch = paid_out(a, ["5205", "5206"]);
    batch.extend(paid_out(b, ["5207", "5208"]));
    // One journal before its payout is applied, one after.
    batch.push(with_fee_line("JE-1105-05", a));
    t.submit(batch).await.unwrap();
    drain(&app, "acme").await;
    t.submit(vec![netsuite_je(
        "JE-1105-06",
        b,
        true,
        &[
            ("1200 Stripe Clearing", "150.00", "0"),
            ("4000 Shopify Sales", "0", "150.00"),
        ],
    )])
    .await
    .unwrap();
    drain(&app, "acme").await;
    assert!(fee_exceptions(&t).await.is_empty());
    assert_eq!(
        t.count("SELECT count(*) FROM payouts WHERE state = 'applied'")
            .await,
        2
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn a_payout_that_fails_settles_its_fee_exception_and_leaves_others_alone() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let (po, other) = ("po_1QFk2eZvKYlo2CF1", "po_1QFk2eZvKYlo2CF2");
    t.submit(paid_out(po, ["5601", "5602"])).await.unwrap();
    t.submit(paid_out(other, ["5603", "5604"])).await.unwrap();
    drain(&app, "acme").await;
    t.submit(vec![
        net_as_sales("JE-1106-01", po, true),
        net_as_sales("JE-1106-02", other, true),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    let open = |es: &[pb::Exception]| {
        es.iter()
            .filter(|e| e.state() == pb::ExceptionState::Open)
            .count()
    };
    assert_eq!(open(&fee_exceptions(&t).await), 2);

    // The bank returns `po`: what it swept is unbooked, so its exception
    // is resolved by the rules, with the step in its history; `other` stays.
    fail_payout(&t, &app, po, "145.05").await;
    let es = fee_exceptions(&t).await;
    assert_eq!(open(&es), 1, "{es:#?}");
    let settled: Vec<&pb::Exception> = es
        .iter()
        .filter(|e| e.state() == pb::ExceptionState::Resolved)
        .collect();
    assert_eq!(settled.len(), 1);
    assert!(settled[0].summary.contains(po), "{:?}", settled[0]);
    assert_eq!(settled[0].resolved_by, "rules");
    assert_eq!(
        scalar(
            &t,
            &format!(
                "SELECT string_agg(e.state, ',' ORDER BY e.sequence) FROM exception_events e
                 JOIN exceptions x USING (merchant_id, exception_id)
                 WHERE x.rule = 'cash.payout_fee_unallocated' AND x.subject = '{po}'"
            )
        )
        .await,
        "open,resolved"
    );
    assert_ledger_sound(&t).await;
}

#[tokio::test]
async fn payouts_applied_together_are_each_checked_against_the_journals_naming_them() {
    let t = TestApp::start().await;
    let app = worker(&t).await;
    let (a, b) = ("po_1QFk2eZvKYlo2CF6", "po_1QFk2eZvKYlo2CG7");
    // The journals first: one books a's net as sales (by reference), the
    // other b's with a fee line (on a line).
    t.submit(vec![
        net_as_sales("JE-1105-08", a, false),
        with_fee_line("JE-1105-09", b),
    ])
    .await
    .unwrap();
    drain(&app, "acme").await;
    let mut both = paid_out(a, ["5211", "5212"]);
    both.extend(paid_out(b, ["5213", "5214"]));
    t.submit(both).await.unwrap();
    drain(&app, "acme").await;
    assert_eq!(
        t.count("SELECT count(DISTINCT (xmin::text, cmin::text)) FROM journal_entries")
            .await,
        1,
        "applied together"
    );
    assert_raised(&fee_exceptions(&t).await, a, "JE-1105-08");
    assert_ledger_sound(&t).await;
}
