//! Limits as tower layers (issue 22): past the calls-in-progress limit a
//! call is shed with RESOURCE_EXHAUSTED and a RetryInfo while health still
//! answers; a key past its rate is told when to come back; a caller's
//! grpc-timeout ends a call that would otherwise wait.

use std::time::{Duration, Instant};

use tally::api::guard::Guard;
use tally::app::keys::Authenticator;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::common::*;

fn list_contracts() -> pb::ListHandoffContractsRequest {
    pb::ListHandoffContractsRequest {
        parent: "merchants/acme".into(),
        ..Default::default()
    }
}

/// Holds handoff_contracts locked until the returned client is dropped:
/// a call that reads contracts waits meanwhile.
async fn lock_contracts(app: &TestApp) -> tokio_postgres::Client {
    let client = app.db.client().await;
    client
        .batch_execute("BEGIN; LOCK TABLE handoff_contracts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn past_the_limit_calls_are_shed_with_a_time_to_retry() {
    let app = TestApp::start_guarded(
        |a| a,
        |_| Guard {
            max_concurrent_calls: Some(1),
            ..Default::default()
        },
    )
    .await;
    let lock = lock_contracts(&app).await;
    let mut waiting_client = HandoffServiceClient::new(app.channel.clone());
    let waiting = tokio::spawn(async move {
        waiting_client
            .list_handoff_contracts(list_contracts())
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let s = app.transaction("1").await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let retry = s
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d > Duration::ZERO && d <= Duration::from_secs(5))
    );
    // Probes are never shed.
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "tally.liveness".into(),
        })
        .await
        .unwrap();

    drop(lock);
    waiting.await.unwrap().unwrap();
    // The place is free again.
    assert_eq!(
        app.transaction("1").await.unwrap_err().code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn a_callers_deadline_ends_a_waiting_call() {
    let app = TestApp::start().await;
    let _lock = lock_contracts(&app).await;
    let mut request = tonic::Request::new(list_contracts());
    request.set_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let s = HandoffServiceClient::new(app.channel.clone())
        .list_handoff_contracts(request)
        .await
        .unwrap_err();
    assert!(
        matches!(s.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{s:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_key_past_its_rate_is_told_when_to_return() {
    let app = TestApp::start_guarded(
        |a| a,
        |store| Guard {
            auth: Some(Authenticator::new(store.clone())),
            rate_per_key: Some(2),
            ..Default::default()
        },
    )
    .await;
    let key = app.key(&["acme"], "read", "reader").await;
    let other = app.key(&["acme"], "read", "other").await;
    let get = |k: &str| {
        keyed(
            pb::GetTransactionRequest {
                name: "merchants/acme/transactions/1".into(),
            },
            k,
        )
    };
    let mut tx = app.transactions.clone();
    for _ in 0..2 {
        assert_eq!(
            tx.get_transaction(get(&key)).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    let s = tx.get_transaction(get(&key)).await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let delay = s
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(delay <= Duration::from_millis(500), "{delay:?}");
    assert!(!s.message().contains(&key[6..]), "{}", s.message());
    // Another key is counted on its own.
    assert_eq!(
        tx.get_transaction(get(&other)).await.unwrap_err().code(),
        Code::NotFound
    );
    tokio::time::sleep(delay + Duration::from_millis(50)).await;
    assert_eq!(
        tx.get_transaction(get(&key)).await.unwrap_err().code(),
        Code::NotFound
    );
}
