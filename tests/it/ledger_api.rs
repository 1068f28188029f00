//! LedgerService over gRPC: what a payout paid, read back as finance asks it.

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;
use tally::storage::Store;

use crate::cash::{bt, capture, drain, inv, payout, realistic_batch};
use crate::common::*;

fn amount(m: &Option<pb::Money>) -> String {
    let m = m.as_ref().unwrap();
    format!("{} {}", m.amount, m.currency_code)
}

/// The ageing bucket of an invoice this many days old, as the enum and as
/// the deprecated string.
fn bucket_of(age_days: i32) -> (pb::AgeingBucket, &'static str) {
    match age_days {
        ..=0 => (pb::AgeingBucket::Current, "current"),
        1..=30 => (pb::AgeingBucket::Days1To30, "1-30"),
        31..=60 => (pb::AgeingBucket::Days31To60, "31-60"),
        61..=90 => (pb::AgeingBucket::Days61To90, "61-90"),
        _ => (pb::AgeingBucket::Over90, "over-90"),
    }
}

#[tokio::test]
async fn a_payout_reads_back_as_a_bridge_with_its_journals() {
    let t = TestApp::start().await;
    let mut batch = realistic_batch();
    batch.push(order("2005", "70.00"));
    batch.push(inv("2005", "INV-2005", "70.00", "2026-11-02T12:00:00Z"));
    t.submit(batch).await.unwrap();
    drain(&App::new(Store::connect(&t.db.url, 2).unwrap()), "acme").await;
    let mut ledger = LedgerServiceClient::new(t.channel.clone());

    let p = ledger
        .get_payout(pb::GetPayoutRequest {
            name: "merchants/acme/payouts/po_1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .payout
        .unwrap();
    assert_eq!(p.state(), pb::PayoutState::Applied);
    assert_eq!(amount(&p.gross), "270.00 USD");
    assert_eq!(amount(&p.fees), "9.61 USD");
    assert_eq!(amount(&p.net), "260.39 USD");
    assert_eq!(amount(&p.clearing_residual), "0.00 USD");
    let categories: Vec<(String, String)> = p
        .bridge
        .iter()
        .map(|b| (b.category.clone(), amount(&b.net)))
        .collect();
    assert_eq!(
        categories,
        vec![
            ("charge".to_string(), "280.39 USD".to_string()),
            (
                "partial_capture_reversal".to_string(),
                "-20.00 USD".to_string()
            )
        ]
    );
    // Each known category reads as its enum too.
    let enums: Vec<pb::BridgeCategory> = p.bridge.iter().map(|b| b.reporting_category()).collect();
    assert_eq!(
        enums,
        vec![
            pb::BridgeCategory::Charge,
            pb::BridgeCategory::PartialCaptureReversal
        ]
    );
    // A journal entry names its payout, a line its order's transaction.
    for e in &p.journal_entries {
        assert_eq!(e.payout_id, "po_1");
        assert_eq!(e.payout, "merchants/acme/payouts/po_1");
        for l in &e.lines {
            let expected = if l.order_id.is_empty() {
                String::new()
            } else {
                format!("merchants/acme/transactions/{}", l.order_id)
            };
            assert_eq!(l.order, expected, "{l:?}");
        }
    }
    assert!(
        p.journal_entries
            .iter()
            .flat_map(|e| &e.lines)
            .any(|l| l.order == "merchants/acme/transactions/2001")
    );
    // 4 payments, a reversal, the fee sweep, the deposit.
    assert_eq!(p.journal_entries.len(), 7, "{:#?}", p.journal_entries);
    for e in &p.journal_entries {
        let side = |f: fn(&pb::LedgerLine) -> &Option<pb::Money>| -> rust_decimal::Decimal {
            e.lines
                .iter()
                .map(|l| {
                    f(l).as_ref()
                        .unwrap()
                        .amount
                        .parse::<rust_decimal::Decimal>()
                        .unwrap()
                })
                .sum()
        };
        assert_eq!(side(|l| &l.debit), side(|l| &l.credit), "{e:?}");
    }
    // 2001, 2002 (two invoices), 2003; 2004 is held as unapplied cash.
    assert_eq!(p.applications.len(), 4);
    for a in &p.applications {
        assert_eq!(a.tender_type(), pb::ApplicationTender::Processor, "{a:?}");
        #[allow(deprecated)]
        let tender = a.tender.as_str();
        assert_eq!(tender, "processor");
        assert_eq!(
            a.order,
            format!("merchants/acme/transactions/{}", a.order_id)
        );
        assert_eq!(
            a.invoice,
            format!("merchants/acme/invoices/{}", a.invoice_id)
        );
    }

    let i = ledger
        .get_invoice(pb::GetInvoiceRequest {
            name: "merchants/acme/invoices/INV-2002-B".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(
        (
            amount(&i.total),
            amount(&i.amount_applied),
            amount(&i.amount_open)
        ),
        ("30.00 USD".into(), "30.00 USD".into(), "0.00 USD".into())
    );
    assert_eq!(i.applications[0].payment_id, "ch_2002");
    assert_eq!(i.order_id, "2002");
    assert_eq!(i.order, "merchants/acme/transactions/2002");
    assert_eq!(
        i.applications[0].invoice,
        "merchants/acme/invoices/INV-2002-B"
    );
    // Invoiced 2026-11-02: its bucket depends on today, the enum and the
    // string agree with age_days.
    #[allow(deprecated)]
    let bucket = i.ageing_bucket.as_str();
    assert_eq!((i.ageing(), bucket), bucket_of(i.age_days));

    // Only 2005's invoice is open.
    let open = ledger
        .list_open_invoices(pb::ListOpenInvoicesRequest {
            parent: "merchants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = open.invoices.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["merchants/acme/invoices/INV-2005"]);
    assert_eq!(open.ageing.len(), 1);
    assert_eq!(amount(&open.ageing[0].amount_open), "70.00 USD");
    let want = bucket_of(open.invoices[0].age_days);
    assert_eq!(open.invoices[0].ageing(), want.0);
    #[allow(deprecated)]
    let bucket = open.ageing[0].bucket.as_str();
    assert_eq!((open.ageing[0].ageing(), bucket), want);
    assert_eq!(open.invoices[0].order, "merchants/acme/transactions/2005");

    // Pages of 2 give every entry once, in export order, and the last
    // page's token is empty (the standard loop ends).
    let mut seen = vec![];
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = ledger
            .list_journal_entries(pb::ListJournalEntriesRequest {
                parent: "merchants/acme".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(!page.journal_entries.is_empty(), "page {pages} is empty");
        seen.extend(page.journal_entries.iter().map(|e| e.export_sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let total = t.count("SELECT count(*) FROM journal_entries").await;
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    assert_eq!(pages, (total + 1) / 2);
    // Polling from the last entry seen finds nothing new.
    let polled = ledger
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            after_export_sequence: total,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(polled.journal_entries.is_empty());
    assert!(polled.next_page_token.is_empty());

    let by_account = ledger
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            account: "bank".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_account.journal_entries.len(), 1);

    let tb = ledger
        .get_trial_balance(pb::GetTrialBalanceRequest {
            parent: "merchants/acme".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    let clearing = tb
        .balances
        .iter()
        .find(|b| b.account == "processor_clearing")
        .unwrap();
    assert_eq!(amount(&clearing.balance), "0.00 USD");
    assert_eq!(clearing.account_code, "1150");
}

#[tokio::test]
async fn bad_ledger_requests_name_the_field() {
    let t = TestApp::start().await;
    let mut ledger = LedgerServiceClient::new(t.channel.clone());
    let err = ledger
        .get_payout(pb::GetPayoutRequest {
            name: "merchants/acme/invoices/po_1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad_fields(&err), vec!["name"]);
    let err = ledger
        .get_payout(pb::GetPayoutRequest {
            name: "merchants/acme/payouts/po_missing".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = ledger
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            page_token: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["page_token"]);
    let err = ledger
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            account: "petty_cash".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["account"]);
}

#[tokio::test]
async fn the_trial_balance_names_accounts_from_the_configured_chart() {
    let chart: tally::domain::ledger::ChartConfig = toml::from_str(
        "[accounts]\nprocessor_clearing = { code = \"1999\" }\nbank = { code = \"1010\" }\n",
    )
    .unwrap();
    let chart = tally::domain::ledger::ChartOfAccounts::from_config(&chart).unwrap();
    let t = TestApp::start_with(|app| app.with_chart(chart)).await;
    t.submit(realistic_batch()).await.unwrap();
    drain(&App::new(Store::connect(&t.db.url, 2).unwrap()), "acme").await;
    let tb = LedgerServiceClient::new(t.channel.clone())
        .get_trial_balance(pb::GetTrialBalanceRequest {
            parent: "merchants/acme".into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    let code = |account: &str| {
        tb.balances
            .iter()
            .find(|b| b.account == account)
            .map(|b| b.account_code.clone())
            .unwrap_or_else(|| panic!("no {account} in {:?}", tb.balances))
    };
    // Renumbered by the configuration; the rest keep the built-in codes.
    assert_eq!(code("processor_clearing"), "1999");
    assert_eq!(code("bank"), "1010");
    assert_eq!(code("processing_fees"), "6100");
}

/// A reporting category the processor added after Tally was written reads
/// as BRIDGE_CATEGORY_OTHER with its own string, never as an error; a
/// payout id that needs escaping is escaped in the names that point at it.
#[tokio::test]
async fn an_unknown_bridge_category_reads_as_other() {
    let t = TestApp::start().await;
    t.submit(vec![
        order("3001", "50.00"),
        capture("3001", "ch_3001", "50.00"),
        inv("3001", "INV-3001", "50.00", "2026-11-02T12:00:00Z"),
        bt("txn_31", "charge", "ch_3001", "50.00", "1.50", "po 3#A"),
        bt(
            "txn_32",
            "climate_order_purchase",
            "",
            "-0.50",
            "0.00",
            "po 3#A",
        ),
        payout("po 3#A", "48.00"),
    ])
    .await
    .unwrap();
    drain(&App::new(Store::connect(&t.db.url, 2).unwrap()), "acme").await;
    let mut ledger = LedgerServiceClient::new(t.channel.clone());
    let p = ledger
        .get_payout(pb::GetPayoutRequest {
            name: "merchants/acme/payouts/po%203%23A".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .payout
        .unwrap();
    assert_eq!(p.name, "merchants/acme/payouts/po%203%23A");
    let bridge: Vec<(&str, pb::BridgeCategory)> = p
        .bridge
        .iter()
        .map(|b| (b.category.as_str(), b.reporting_category()))
        .collect();
    assert_eq!(
        bridge,
        vec![
            ("charge", pb::BridgeCategory::Charge),
            ("climate_order_purchase", pb::BridgeCategory::Other),
        ]
    );
    for e in &p.journal_entries {
        assert_eq!(e.payout, "merchants/acme/payouts/po%203%23A", "{e:?}");
    }
}
