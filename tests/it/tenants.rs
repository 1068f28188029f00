//! The tenant matrix (issue 22): for every RPC, a key of merchant acme
//! aimed at globex's resources, names, page tokens and watch cursors is
//! refused with nothing of globex returned or changed; and every RPC called
//! with a key of the right merchant lacking the RPC's scope is
//! PERMISSION_DENIED.

use tally::domain::access::Scope;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::common::*;

/// Every RPC of every Tally service, with the scope it needs.
const RPCS: [(&str, Scope); 26] = [
    ("SubmitRecords", Scope::Submit),
    ("StreamRecords", Scope::Submit),
    ("GetTransaction", Scope::Read),
    ("ListTransactions", Scope::Read),
    ("GetReconciliationStatus", Scope::Read),
    ("GetHandoffTrace", Scope::Read),
    ("ListExceptions", Scope::Read),
    ("GetException", Scope::Read),
    ("WatchExceptions", Scope::Read),
    ("AcknowledgeException", Scope::Work),
    ("AssignException", Scope::Work),
    ("ResolveException", Scope::Work),
    ("ListHandoffContracts", Scope::Read),
    ("GetHandoffContract", Scope::Read),
    ("UpdateHandoffContract", Scope::Admin),
    ("GetPayout", Scope::Read),
    ("ListPayouts", Scope::Read),
    ("GetInvoice", Scope::Read),
    ("ListOpenInvoices", Scope::Read),
    ("ListJournalEntries", Scope::Read),
    ("GetTrialBalance", Scope::Read),
    ("GetPeriodReport", Scope::Read),
    ("DiffPeriodReports", Scope::Read),
    ("ListReportLines", Scope::Read),
    ("ClosePeriod", Scope::Work),
    ("ReopenPeriod", Scope::Work),
];

/// What a call aims at: a merchant, and the names, token and cursor of
/// that merchant's resources (or another's, to try).
struct Target {
    merchant: String,
    order: String,
    exception: String,
    page_token: String,
    after_sequence: i64,
}

fn name(m: &str, collection: &str, id: &str) -> String {
    format!("merchants/{m}/{collection}/{id}")
}

/// Calls `rpc` at `t` with `key`; Ok(how many resources came back).
async fn call(channel: &Channel, rpc: &str, key: &str, t: &Target) -> Result<usize, Status> {
    let parent = format!("merchants/{}", t.merchant);
    let m = t.merchant.as_str();
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut tx = TransactionServiceClient::new(channel.clone());
    let mut ex = ExceptionServiceClient::new(channel.clone());
    let mut ho = HandoffServiceClient::new(channel.clone());
    let mut led = LedgerServiceClient::new(channel.clone());
    let mut rep = ReportServiceClient::new(channel.clone());
    let period = || {
        Some(pb::PeriodSelector {
            period: "2026-11".into(),
            ..Default::default()
        })
    };
    match rpc {
        "SubmitRecords" => ingest
            .submit_records(keyed(
                pb::SubmitRecordsRequest {
                    parent,
                    request_id: String::new(),
                    records: vec![order("X-1", "1.00")],
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().results.len()),
        "StreamRecords" => {
            let msgs = vec![pb::StreamRecordsRequest {
                parent,
                request_id: String::new(),
                records: vec![order("X-2", "1.00")],
            }];
            let mut replies = ingest
                .stream_records(keyed(tokio_stream::iter(msgs), key))
                .await?
                .into_inner();
            let mut n = 0;
            while let Some(r) = replies.next().await {
                n += r?.results.len();
            }
            Ok(n)
        }
        "GetTransaction" => tx
            .get_transaction(keyed(
                pb::GetTransactionRequest {
                    name: name(m, "transactions", &t.order),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ListTransactions" => tx
            .list_transactions(keyed(
                pb::ListTransactionsRequest {
                    parent,
                    page_size: 1,
                    page_token: t.page_token.clone(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().transactions.len()),
        "GetReconciliationStatus" => tx
            .get_reconciliation_status(keyed(
                pb::GetReconciliationStatusRequest {
                    name: name(m, "transactions", &t.order),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "GetHandoffTrace" => tx
            .get_handoff_trace(keyed(
                pb::GetHandoffTraceRequest {
                    name: name(m, "transactions", &t.order),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ListExceptions" => ex
            .list_exceptions(keyed(
                pb::ListExceptionsRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().exceptions.len()),
        "GetException" => ex
            .get_exception(keyed(
                pb::GetExceptionRequest {
                    name: t.exception.clone(),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "WatchExceptions" => {
            let mut events = ex
                .watch_exceptions(keyed(
                    pb::WatchExceptionsRequest {
                        parent,
                        after_sequence: t.after_sequence,
                    },
                    key,
                ))
                .await?
                .into_inner();
            // A refused watch fails at once or on its first message.
            match tokio::time::timeout(std::time::Duration::from_millis(500), events.next()).await {
                Ok(Some(Err(s))) => Err(s),
                Ok(Some(Ok(_))) => Ok(1),
                _ => Ok(0),
            }
        }
        "AcknowledgeException" => ex
            .acknowledge_exception(keyed(
                pb::AcknowledgeExceptionRequest {
                    name: t.exception.clone(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|_| 1),
        "AssignException" => ex
            .assign_exception(keyed(
                pb::AssignExceptionRequest {
                    name: t.exception.clone(),
                    owner: "mallory".into(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ResolveException" => ex
            .resolve_exception(keyed(
                pb::ResolveExceptionRequest {
                    name: t.exception.clone(),
                    note: "gone".into(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ListHandoffContracts" => ho
            .list_handoff_contracts(keyed(
                pb::ListHandoffContractsRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().handoff_contracts.len()),
        "GetHandoffContract" => ho
            .get_handoff_contract(keyed(
                pb::GetHandoffContractRequest {
                    name: name(m, "handoffContracts", "invoice-to-payment"),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "UpdateHandoffContract" => ho
            .update_handoff_contract(keyed(
                pb::UpdateHandoffContractRequest {
                    handoff_contract: Some(pb::HandoffContract {
                        name: name(m, "handoffContracts", "invoice-to-payment"),
                        owner: "mallory".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["owner".into()],
                    }),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "GetPayout" => led
            .get_payout(keyed(
                pb::GetPayoutRequest {
                    name: name(m, "payouts", "po_1"),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ListPayouts" => led
            .list_payouts(keyed(
                pb::ListPayoutsRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().payouts.len()),
        "GetInvoice" => led
            .get_invoice(keyed(
                pb::GetInvoiceRequest {
                    name: name(m, "invoices", &format!("INV-{}", t.order)),
                },
                key,
            ))
            .await
            .map(|_| 1),
        "ListOpenInvoices" => led
            .list_open_invoices(keyed(
                pb::ListOpenInvoicesRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().invoices.len()),
        "ListJournalEntries" => led
            .list_journal_entries(keyed(
                pb::ListJournalEntriesRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().journal_entries.len()),
        "GetTrialBalance" => led
            .get_trial_balance(keyed(
                pb::GetTrialBalanceRequest {
                    parent,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().balances.len()),
        "GetPeriodReport" => rep
            .get_period_report(keyed(
                pb::GetPeriodReportRequest {
                    parent,
                    period: period(),
                    as_of: None,
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().figures.len()),
        "DiffPeriodReports" => rep
            .diff_period_reports(keyed(
                pb::DiffPeriodReportsRequest {
                    parent,
                    period: period(),
                    from_as_of: ts("2026-12-01T00:00:00Z"),
                    page_token: t.page_token.clone(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().facts.len()),
        "ListReportLines" => rep
            .list_report_lines(keyed(
                pb::ListReportLinesRequest {
                    parent,
                    period: period(),
                    figure: "erp.invoiced".into(),
                    page_token: t.page_token.clone(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().lines.len()),
        "ClosePeriod" => rep
            .close_period(keyed(
                pb::ClosePeriodRequest {
                    parent,
                    period: period(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().period_close.map_or(0, |c| c.history.len())),
        "ReopenPeriod" => rep
            .reopen_period(keyed(
                pb::ReopenPeriodRequest {
                    parent,
                    period: period(),
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|r| r.into_inner().period_close.map_or(0, |c| c.history.len())),
        other => panic!("no call for {other}"),
    }
}

/// Everything of globex a refused call could have changed.
async fn globex_state(app: &TestApp) -> Vec<i64> {
    let mut out = vec![];
    for sql in [
        "SELECT count(*) FROM record_log WHERE merchant_id = 'globex'",
        "SELECT count(*) FROM exception_events WHERE merchant_id = 'globex'",
        "SELECT count(*) FROM exceptions WHERE merchant_id = 'globex' AND state = 'open' AND owner IS DISTINCT FROM 'mallory'",
        "SELECT (count(*) + coalesce(sum(version), 0))::bigint FROM handoff_contracts WHERE merchant_id = 'globex'",
        "SELECT count(*) FROM period_closes WHERE merchant_id = 'globex'",
    ] {
        out.push(app.count(sql).await);
    }
    out
}

/// globex's order, exception, a page token of its transactions and the
/// sequence of one of its exception events.
async fn globex(app: &TestApp, key: &str) -> Target {
    let channel = &app.channel;
    let mut ingest = IngestServiceClient::new(channel.clone());
    ingest
        .submit_records(keyed(
            pb::SubmitRecordsRequest {
                parent: "merchants/globex".into(),
                request_id: String::new(),
                records: vec![
                    order("9001", "100.00"),
                    invoice("9001", "100.02"),
                    order("9002", "5.00"),
                ],
            },
            key,
        ))
        .await
        .unwrap();
    let page = TransactionServiceClient::new(channel.clone())
        .list_transactions(keyed(
            pb::ListTransactionsRequest {
                parent: "merchants/globex".into(),
                page_size: 1,
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let exception = ExceptionServiceClient::new(channel.clone())
        .list_exceptions(keyed(
            pb::ListExceptionsRequest {
                parent: "merchants/globex".into(),
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .exceptions
        .remove(0);
    let after_sequence = app
        .count(
            "SELECT coalesce(max(sequence), 0) FROM exception_events WHERE merchant_id = 'globex'",
        )
        .await;
    assert!(after_sequence > 0, "globex has exception events");
    Target {
        merchant: "globex".into(),
        order: "9001".into(),
        exception: exception.name,
        page_token: page.next_page_token,
        after_sequence,
    }
}

#[tokio::test]
async fn a_key_of_one_merchant_gets_nothing_of_another() {
    let app = TestApp::start_with_keys().await;
    let all = "submit,read,work,admin";
    let globex_key = app.key(&["globex"], all, "globex-all").await;
    let acme_key = app.key(&["acme"], all, "acme-all").await;
    let theirs = globex(&app, &globex_key).await;
    let before = globex_state(&app).await;

    // Aimed at globex by name, parent, token and cursor: refused before
    // anything of globex is read.
    for (rpc, _) in RPCS {
        let r = call(&app.channel, rpc, &acme_key, &theirs).await;
        let s = r.expect_err(rpc);
        assert!(
            matches!(s.code(), Code::PermissionDenied | Code::NotFound),
            "{rpc}: {s:?}"
        );
        assert!(!s.message().contains("9001"), "{rpc}: {}", s.message());
    }
    // globex's page token and watch cursor under acme's own parent: the
    // token is bound to its merchant (INVALID_ARGUMENT), the cursor names
    // no event of acme (OUT_OF_RANGE); neither returns anything of globex.
    let own_parent = Target {
        merchant: "acme".into(),
        order: theirs.order.clone(),
        exception: theirs
            .exception
            .replace("merchants/globex/", "merchants/acme/"),
        page_token: theirs.page_token.clone(),
        after_sequence: theirs.after_sequence,
    };
    for rpc in [
        "ListTransactions",
        "WatchExceptions",
        "GetException",
        "GetTransaction",
        "ListReportLines",
    ] {
        let s = call(&app.channel, rpc, &acme_key, &own_parent)
            .await
            .expect_err(rpc);
        assert!(
            matches!(
                s.code(),
                Code::InvalidArgument | Code::OutOfRange | Code::NotFound
            ),
            "{rpc}: {s:?}"
        );
    }
    assert_eq!(globex_state(&app).await, before, "globex changed");

    // The same calls with globex's own key do reach globex (so the matrix
    // tests the merchant, not a broken call).
    for rpc in ["GetTransaction", "GetException", "ListExceptions"] {
        assert!(
            call(&app.channel, rpc, &globex_key, &theirs).await.unwrap() >= 1,
            "{rpc}"
        );
    }
}

#[tokio::test]
async fn a_key_without_the_scope_of_an_rpc_is_refused() {
    let app = TestApp::start_with_keys().await;
    let owner = app
        .key(&["globex"], "submit,read,work,admin", "globex-all")
        .await;
    let ours = globex(&app, &owner).await;
    let before = globex_state(&app).await;
    for scope in [Scope::Submit, Scope::Read, Scope::Work, Scope::Admin] {
        let others: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| **s != scope)
            .map(|s| s.as_str())
            .collect();
        let key = app
            .key(&["globex"], &others.join(","), &format!("no-{scope}"))
            .await;
        for (rpc, needs) in RPCS.iter().filter(|(_, s)| *s == scope) {
            let s = call(&app.channel, rpc, &key, &ours).await.expect_err(rpc);
            assert_eq!(
                s.code(),
                Code::PermissionDenied,
                "{rpc} without {needs}: {s:?}"
            );
            assert!(
                s.message().contains(needs.as_str()),
                "{rpc}: {}",
                s.message()
            );
        }
    }
    assert_eq!(globex_state(&app).await, before, "globex changed");
}
