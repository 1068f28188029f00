//! API keys (issue 22): a server started with `--auth keys` refuses a call
//! without a live key (UNAUTHENTICATED), outside the key's merchants or
//! scopes (PERMISSION_DENIED), records the key as the actor, and never
//! repeats a key in a status or a log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

fn get(order: &str) -> pb::GetTransactionRequest {
    pb::GetTransactionRequest {
        name: format!("merchants/acme/transactions/{order}"),
    }
}

/// A key unknown to the server, well formed.
const STRANGER: &str =
    "tally_00000000000000aa_00000000000000000000000000000000000000000000000000000000000000aa";

#[tokio::test]
async fn a_call_needs_a_live_key_of_its_merchant_and_scope() {
    let app = TestApp::start_with_keys().await;
    let reader = app.key(&["acme"], "read", "reader").await;
    let submitter = app.key(&["acme"], "submit", "erp").await;
    let other = app.key(&["globex"], "read,submit", "globex-erp").await;
    let mut tx = app.transactions.clone();
    let mut ingest = app.ingest.clone();

    // No key, a malformed one, an unknown one, another scheme.
    let bare = tx.get_transaction(get("1")).await.unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated, "{bare:?}");
    assert!(bare.message().contains("Bearer"), "{}", bare.message());
    for key in ["nonsense", STRANGER, &reader[..reader.len() - 1]] {
        let s = tx.get_transaction(keyed(get("1"), key)).await.unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated, "{key}");
    }
    let mut basic = tonic::Request::new(get("1"));
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {reader}").parse().unwrap());
    assert_eq!(
        tx.get_transaction(basic).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // The right key: through to the service (no such order yet).
    let s = tx
        .get_transaction(keyed(get("1"), &reader))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    ingest
        .submit_records(keyed(
            pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: vec![order("1", "10.00")],
            },
            &submitter,
        ))
        .await
        .unwrap();
    tx.get_transaction(keyed(get("1"), &reader)).await.unwrap();

    // Another merchant's key, and a key without the scope.
    let s = tx
        .get_transaction(keyed(get("1"), &other))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("merchant acme"), "{}", s.message());
    let s = tx
        .get_transaction(keyed(get("1"), &submitter))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("'read' scope"), "{}", s.message());
    let s = ingest
        .submit_records(keyed(
            pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: vec![order("2", "10.00")],
            },
            &reader,
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = HandoffServiceClient::new(app.channel.clone())
        .update_handoff_contract(keyed(
            pb::UpdateHandoffContractRequest {
                handoff_contract: Some(pb::HandoffContract {
                    name: "merchants/acme/handoffContracts/order-to-fulfillment".into(),
                    owner: "x".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["owner".into()],
                }),
            },
            &reader,
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("'admin' scope"), "{}", s.message());

    // Probes need no key.
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_revoked_or_expired_key_is_refused_within_seconds() {
    let app = TestApp::start_with_keys().await;
    let key = app.key(&["acme"], "read", "reader").await;
    let mut tx = app.transactions.clone();
    let code = |r: Result<tonic::Response<pb::GetTransactionResponse>, tonic::Status>| {
        r.err().map(|s| s.code())
    };
    assert_eq!(
        code(tx.get_transaction(keyed(get("1"), &key)).await),
        Some(Code::NotFound)
    );
    let id = &key["tally_".len().."tally_".len() + 16];
    let store = tally::storage::Store::connect(&app.db.url, 1).unwrap();
    tally::app::App::new(store).revoke_key(id).await.unwrap();
    let start = std::time::Instant::now();
    while code(tx.get_transaction(keyed(get("1"), &key)).await) != Some(Code::Unauthenticated) {
        assert!(start.elapsed() < Duration::from_secs(5), "still accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let expiring = app.key(&["acme"], "read", "short").await;
    app.db
        .client()
        .await
        .execute(
            "UPDATE api_keys SET expire_time = now() + interval '1 second' WHERE name = 'short'",
            &[],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        code(tx.get_transaction(keyed(get("1"), &expiring)).await),
        Some(Code::NotFound)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        code(tx.get_transaction(keyed(get("1"), &expiring)).await),
        Some(Code::Unauthenticated)
    );
    // Only hashes are stored.
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT string_agg(key_id || encode(secret_sha256, 'hex'), ',') FROM api_keys",
            &[],
        )
        .await
        .unwrap();
    let stored: String = row.get(0);
    let secret = &key["tally_".len() + 17..];
    assert!(!stored.contains(secret));
}

/// The newest exception of merchant acme, raised by an invoice 2 cents off.
async fn an_exception(app: &TestApp, key: &str) -> pb::Exception {
    app.ingest
        .clone()
        .submit_records(keyed(
            pb::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: vec![order("7001", "100.00"), invoice("7001", "100.02")],
            },
            key,
        ))
        .await
        .unwrap();
    app.exceptions
        .clone()
        .list_exceptions(keyed(
            pb::ListExceptionsRequest {
                parent: "merchants/acme".into(),
                ..Default::default()
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
        .exceptions
        .remove(0)
}

fn acknowledge(
    name: &str,
    key: &str,
    person: Option<&str>,
) -> tonic::Request<pb::AcknowledgeExceptionRequest> {
    let mut r = keyed(
        pb::AcknowledgeExceptionRequest {
            name: name.into(),
            ..Default::default()
        },
        key,
    );
    if let Some(p) = person {
        r.metadata_mut().insert("x-tally-actor", p.parse().unwrap());
    }
    r
}

#[tokio::test]
async fn the_actor_is_the_key_refined_only_with_act_as() {
    let app = TestApp::start_with_keys().await;
    let worker = app.key(&["acme"], "submit,read,work", "ops-bot").await;
    let ui = app.key(&["acme"], "read,work,act_as", "finance-ui").await;
    let e = an_exception(&app, &worker).await;
    let mut ex = app.exceptions.clone();

    // A person named by a key that may not act for people: refused.
    let s = ex
        .acknowledge_exception(acknowledge(&e.name, &worker, Some("mallory")))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("act_as"), "{}", s.message());
    // No header needed: the key is who acts.
    let acked = ex
        .acknowledge_exception(acknowledge(&e.name, &worker, None))
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(acked.history.last().unwrap().actor, "ops-bot");
    // A UI behind single sign-on names its user.
    let resolved = ex
        .resolve_exception({
            let mut r = keyed(
                pb::ResolveExceptionRequest {
                    name: e.name.clone(),
                    note: "credited".into(),
                    ..Default::default()
                },
                &ui,
            );
            r.metadata_mut()
                .insert("x-tally-actor", "alice".parse().unwrap());
            r
        })
        .await
        .unwrap()
        .into_inner()
        .exception
        .unwrap();
    assert_eq!(
        resolved.history.last().unwrap().actor,
        "alice via finance-ui"
    );
}

/// Every log line of the server, whatever its level, while `f` runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keys never appear in a status or a log line: not a good one refused for
/// its merchant or scope, not a revoked one, not a malformed one. The test
/// runtime is single-threaded, so the server's tasks log on this thread,
/// to the subscriber set here.
#[tokio::test]
async fn keys_never_appear_in_statuses_or_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::start_with_keys().await;
    let good = app.key(&["globex"], "submit", "globex-erp").await;
    let secret = good["tally_".len() + 17..].to_string();
    let mut statuses = vec![];
    let mut tx = app.transactions.clone();
    for key in [
        good.clone(),
        format!("{good}x"),
        format!("{}0", &good[..good.len() - 1]),
    ] {
        statuses.push(tx.get_transaction(keyed(get("1"), &key)).await.unwrap_err());
    }
    statuses.push(
        app.ingest
            .clone()
            .submit_records(keyed(
                pb::SubmitRecordsRequest {
                    parent: "merchants/acme".into(),
                    request_id: String::new(),
                    records: vec![order("1", "1.00")],
                },
                &good,
            ))
            .await
            .unwrap_err(),
    );
    for s in &statuses {
        let text = format!("{s:?} {}", String::from_utf8_lossy(s.details()));
        assert!(!text.contains(&secret), "{text}");
        assert!(
            matches!(s.code(), Code::Unauthenticated | Code::PermissionDenied),
            "{s:?}"
        );
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("API key refused"), "nothing captured: {logs}");
    assert!(!logs.contains(&secret), "{logs}");
}
