//! Every string of every RPC's request, walked with what the record fields
//! refuse (a NUL, a bidirectional override, an ANSI escape, 20 KB): each is
//! INVALID_ARGUMENT whose BadRequest names the field, with a short message,
//! and nothing is stored. The walk is checked against the proto's
//! descriptors: an RPC, or a string field, that it does not cover fails the
//! test. (Records' own fields are walked by `hostile.rs`.)

use std::cell::RefCell;
use std::collections::BTreeSet;

use prost::Message;
use tally::proto::FILE_DESCRIPTOR_SET;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::common::*;

/// What each request string is walked with.
fn hostile() -> Vec<(&'static str, String)> {
    vec![
        ("NUL", "a\0b".to_string()),
        ("bidi override", "a\u{202E}b".to_string()),
        ("ANSI escape", "a\u{1b}[31mb".to_string()),
        ("20 KB", "x".repeat(20 * 1024)),
    ]
}

/// The field paths of a request's strings, from the descriptors: nested
/// messages followed, repeated fields as `[0]`, records left to
/// `hostile.rs`.
fn string_paths(
    fds: &prost_types::FileDescriptorSet,
    type_name: &str,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    use prost_types::field_descriptor_proto::{Label, Type};
    let (package, name) = type_name.trim_start_matches('.').rsplit_once('.').unwrap();
    let message = fds
        .file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{type_name} is not in the descriptor set"));
    for f in &message.field {
        let mut path = format!("{prefix}{}", f.name());
        if f.label() == Label::Repeated {
            path.push_str("[0]");
        }
        match f.r#type() {
            Type::String => {
                out.insert(path);
            }
            Type::Message if f.type_name() == ".tally.v1.Record" => {}
            Type::Message => string_paths(fds, f.type_name(), &format!("{path}."), out),
            _ => {}
        }
    }
}

/// Every method of every tally service, with its request's string paths.
fn described() -> BTreeSet<(String, String)> {
    let fds = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let mut out = BTreeSet::new();
    for file in fds.file.iter().filter(|f| f.package() == "tally.v1") {
        for service in &file.service {
            for method in &service.method {
                let full = format!("{}.{}/{}", file.package(), service.name(), method.name());
                let mut paths = BTreeSet::new();
                string_paths(&fds, method.input_type(), "", &mut paths);
                assert!(!paths.is_empty(), "{full} has no string to walk");
                for p in paths {
                    out.insert((full.clone(), p));
                }
            }
        }
    }
    out
}

/// A field's value in a request being built: the hostile one for the
/// field walked, an honest default for the rest. Records which fields the
/// builders asked for, so a walk entry no builder reads is caught.
struct Fields {
    walked: String,
    value: String,
    asked: RefCell<BTreeSet<String>>,
}

impl Fields {
    fn get(&self, path: &str, honest: &str) -> String {
        self.asked.borrow_mut().insert(path.to_string());
        if path == self.walked {
            self.value.clone()
        } else {
            honest.to_string()
        }
    }
}

fn acting<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("x-tally-actor", "alice".parse().unwrap());
    r
}

const EXCEPTION: &str = "merchants/acme/exceptions/6f1c1d3e-8f0c-4b5e-9d55-0b0f3c1a2b3c";
const CONTRACT: &str = "merchants/acme/handoffContracts/order-to-fulfillment";

fn done() -> Status {
    Status::ok("")
}

/// Calls `method` with its request built from `f`; the status it ended in
/// (OK when it succeeded).
async fn call(ch: &Channel, method: &str, f: &Fields) -> Status {
    let parent = || f.get("parent", "merchants/acme");
    let page_token = || f.get("page_token", "");
    let name = |honest: &str| f.get("name", honest);
    let mut ingest = IngestServiceClient::new(ch.clone());
    let mut transactions = TransactionServiceClient::new(ch.clone());
    let mut exceptions = ExceptionServiceClient::new(ch.clone());
    let mut handoffs = HandoffServiceClient::new(ch.clone());
    let mut ledger = LedgerServiceClient::new(ch.clone());
    let mut reports = ReportServiceClient::new(ch.clone());
    let period = || {
        Some(pb::PeriodSelector {
            period: f.get("period.period", "2026-11"),
            time_zone: f.get("period.time_zone", "Europe/Berlin"),
            ..Default::default()
        })
    };
    let method = method.rsplit_once('/').unwrap().1;
    let result = match method {
        "SubmitRecords" => ingest
            .submit_records(pb::SubmitRecordsRequest {
                parent: parent(),
                request_id: f.get("request_id", "r-1"),
                records: vec![order("9001", "10.00")],
            })
            .await
            .map(|_| done()),
        "StreamRecords" => {
            let req = pb::StreamRecordsRequest {
                parent: parent(),
                request_id: f.get("request_id", "r-2"),
                records: vec![order("9002", "10.00")],
            };
            match ingest.stream_records(tokio_stream::iter(vec![req])).await {
                Err(e) => Err(e),
                Ok(r) => match r.into_inner().message().await {
                    Err(e) => Err(e),
                    Ok(_) => Ok(done()),
                },
            }
        }
        "GetTransaction" => transactions
            .get_transaction(pb::GetTransactionRequest {
                name: name("merchants/acme/transactions/1"),
            })
            .await
            .map(|_| done()),
        "ListTransactions" => transactions
            .list_transactions(pb::ListTransactionsRequest {
                parent: parent(),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "GetReconciliationStatus" => transactions
            .get_reconciliation_status(pb::GetReconciliationStatusRequest {
                name: name("merchants/acme/transactions/1"),
            })
            .await
            .map(|_| done()),
        "GetHandoffTrace" => transactions
            .get_handoff_trace(pb::GetHandoffTraceRequest {
                name: name("merchants/acme/transactions/1"),
            })
            .await
            .map(|_| done()),
        "ListExceptions" => exceptions
            .list_exceptions(pb::ListExceptionsRequest {
                parent: parent(),
                page_token: page_token(),
                owner: f.get("owner", "ops"),
                transaction: f.get("transaction", "merchants/acme/transactions/1"),
                order_by: f.get("order_by", "create_time desc"),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "GetException" => exceptions
            .get_exception(pb::GetExceptionRequest {
                name: name(EXCEPTION),
            })
            .await
            .map(|_| done()),
        "AcknowledgeException" => exceptions
            .acknowledge_exception(acting(pb::AcknowledgeExceptionRequest {
                name: name(EXCEPTION),
                etag: f.get("etag", "1"),
                note: f.get("note", "looking"),
            }))
            .await
            .map(|_| done()),
        "AssignException" => exceptions
            .assign_exception(acting(pb::AssignExceptionRequest {
                name: name(EXCEPTION),
                owner: f.get("owner", "ops"),
                etag: f.get("etag", "1"),
                note: f.get("note", "yours"),
            }))
            .await
            .map(|_| done()),
        "ResolveException" => exceptions
            .resolve_exception(acting(pb::ResolveExceptionRequest {
                name: name(EXCEPTION),
                note: f.get("note", "done"),
                etag: f.get("etag", "1"),
            }))
            .await
            .map(|_| done()),
        "WatchExceptions" => exceptions
            .watch_exceptions(pb::WatchExceptionsRequest {
                parent: parent(),
                after_sequence: 0,
            })
            .await
            .map(|_| done()),
        "ListHandoffContracts" => handoffs
            .list_handoff_contracts(pb::ListHandoffContractsRequest {
                parent: parent(),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "GetHandoffContract" => handoffs
            .get_handoff_contract(pb::GetHandoffContractRequest {
                name: name(CONTRACT),
            })
            .await
            .map(|_| done()),
        "UpdateHandoffContract" => {
            let p = |field: &str, honest: &str| f.get(&format!("handoff_contract.{field}"), honest);
            let contract = pb::HandoffContract {
                name: p("name", CONTRACT),
                sending_system: p("sending_system", "storefront"),
                receiving_system: p("receiving_system", "warehouse"),
                required_fields: vec![p("required_fields[0]", "order id")],
                validations: vec![p("validations[0]", "units match")],
                owner: p("owner", "ops"),
                alert_webhook_uri: p("alert_webhook_uri", "https://hooks.example/t"),
                tolerances: vec![pb::CurrencyTolerance {
                    currency_code: p("tolerances[0].currency_code", "USD"),
                    amount: p("tolerances[0].amount", "0.01"),
                }],
                etag: p("etag", ""),
                fx_rate_tolerance: p("fx_rate_tolerance", "0.005"),
                ..Default::default()
            };
            handoffs
                .update_handoff_contract(pb::UpdateHandoffContractRequest {
                    handoff_contract: Some(contract),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec![f.get("update_mask.paths[0]", "owner")],
                    }),
                })
                .await
                .map(|_| done())
        }
        "GetPayout" => ledger
            .get_payout(pb::GetPayoutRequest {
                name: name("merchants/acme/payouts/po_1"),
            })
            .await
            .map(|_| done()),
        "ListPayouts" => ledger
            .list_payouts(pb::ListPayoutsRequest {
                parent: parent(),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "GetInvoice" => ledger
            .get_invoice(pb::GetInvoiceRequest {
                name: name("merchants/acme/invoices/INV-1"),
            })
            .await
            .map(|_| done()),
        "ListOpenInvoices" => ledger
            .list_open_invoices(pb::ListOpenInvoicesRequest {
                parent: parent(),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "ListJournalEntries" => ledger
            .list_journal_entries(pb::ListJournalEntriesRequest {
                parent: parent(),
                page_token: page_token(),
                payout_id: f.get("payout_id", "po_1"),
                order_id: f.get("order_id", "1"),
                account: f.get("account", "bank"),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "GetTrialBalance" => ledger
            .get_trial_balance(pb::GetTrialBalanceRequest {
                parent: parent(),
                as_of: None,
            })
            .await
            .map(|_| done()),
        "GetPeriodReport" => reports
            .get_period_report(pb::GetPeriodReportRequest {
                parent: parent(),
                period: period(),
                as_of: None,
            })
            .await
            .map(|_| done()),
        "DiffPeriodReports" => reports
            .diff_period_reports(pb::DiffPeriodReportsRequest {
                parent: parent(),
                period: period(),
                from_as_of: ts("2026-12-01T00:00:00Z"),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "ListReportLines" => reports
            .list_report_lines(pb::ListReportLinesRequest {
                parent: parent(),
                period: period(),
                figure: f.get("figure", "erp.invoiced"),
                page_token: page_token(),
                ..Default::default()
            })
            .await
            .map(|_| done()),
        "ClosePeriod" => reports
            .close_period(acting(pb::ClosePeriodRequest {
                parent: parent(),
                period: period(),
                etag: f.get("etag", ""),
                note: f.get("note", "signed off"),
                as_of: None,
            }))
            .await
            .map(|_| done()),
        "ReopenPeriod" => reports
            .reopen_period(acting(pb::ReopenPeriodRequest {
                parent: parent(),
                period: period(),
                etag: f.get("etag", ""),
                note: f.get("note", "late invoice"),
            }))
            .await
            .map(|_| done()),
        other => panic!("{other} is not walked: add it to `call`"),
    };
    result.unwrap_or_else(|e| e)
}

#[tokio::test]
async fn every_string_of_every_rpc_is_checked_like_a_record_field() {
    let app = TestApp::start().await;
    let all = described();
    // The walk covers every method of every service, and reads every
    // string the descriptors name (and no other).
    let methods: BTreeSet<&String> = all.iter().map(|(m, _)| m).collect();
    assert!(methods.len() >= 26, "{methods:?}");
    for m in &methods {
        let f = Fields {
            walked: String::new(),
            value: String::new(),
            asked: RefCell::new(BTreeSet::new()),
        };
        call(&app.channel, m, &f).await;
        let asked = f.asked.into_inner();
        let expected: BTreeSet<String> = all
            .iter()
            .filter(|(x, _)| x == *m)
            .map(|(_, p)| p.clone())
            .collect();
        assert_eq!(asked, expected, "{m}: the walk and the proto disagree");
    }
    // The honest calls above stored what they sent; the walk stores nothing.
    const TABLES: [&str; 4] = [
        "record_log",
        "handoff_contracts",
        "exception_events",
        "submissions",
    ];
    let mut before = vec![];
    for table in TABLES {
        before.push(app.count(&format!("SELECT count(*) FROM {table}")).await);
    }
    let mut failures = vec![];
    for (method, path) in &all {
        for (what, value) in hostile() {
            let f = Fields {
                walked: path.clone(),
                value,
                asked: RefCell::new(BTreeSet::new()),
            };
            let status = call(&app.channel, method, &f).await;
            let fields = if status.code() == Code::InvalidArgument {
                bad_fields(&status)
            } else {
                vec![]
            };
            if !fields.contains(path) {
                failures.push(format!(
                    "{method} {path} ({what}): {:?} {:?} {fields:?}",
                    status.code(),
                    status.message().chars().take(120).collect::<String>()
                ));
            } else if status.message().len() > 1024 || status.details().len() > 4096 {
                failures.push(format!(
                    "{method} {path} ({what}): an error of {} + {} bytes",
                    status.message().len(),
                    status.details().len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Refused whole: nothing any of them sent was stored.
    for (table, before) in TABLES.into_iter().zip(before) {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table}")).await,
            before,
            "{table}"
        );
    }
}
