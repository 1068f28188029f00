//! Webhooks cannot be aimed inside (issue 22): internal addresses are
//! refused when a contract is updated and again at delivery, after DNS
//! resolution, before any connection is opened; `--alert-allow-cidr` is
//! the only way through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tally::app::App;
use tally::app::egress::Egress;
use tally::app::webhook::Webhooks;
use tally::app::worker::{self, WorkerConfig};
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::storage::Store;

use crate::alerts::{alert_late_orders_to, receiver};
use crate::common::*;

/// A listener on 127.0.0.1 that counts the connections it accepts (not
/// requests: a refused delivery must not even connect).
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (port, count)
}

async fn set_webhook(app: &TestApp, uri: &str) -> Result<(), tonic::Status> {
    HandoffServiceClient::new(app.channel.clone())
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: "merchants/acme/handoffContracts/order-to-fulfillment".into(),
                alert_webhook_uri: uri.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["alert_webhook_uri".into()],
            }),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn a_webhook_aimed_inside_is_refused_when_the_contract_is_updated() {
    // No allow-list: what a production server has by default.
    let app = TestApp::start_with(|a| a.with_webhooks(Webhooks::default())).await;
    let (port, connections) = counting_listener().await;
    for uri in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/hook".to_string(),
        "https://192.168.1.10:8443/hook".to_string(),
        "http://100.64.0.1/hook".to_string(),
        "http://0.0.0.0/hook".to_string(),
        "http://[::1]/hook".to_string(),
        "http://[fd00::1]/hook".to_string(),
        "http://[fe80::1]/hook".to_string(),
        "http://[::ffff:169.254.169.254]/hook".to_string(),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        // A name is resolved, and what it resolves to is vetted: numeric
        // spellings of 127.0.0.1 included.
        format!("http://localhost:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
    ] {
        let status = set_webhook(&app, &uri).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{uri}");
        assert_eq!(
            bad_fields(&status),
            ["handoff_contract.alert_webhook_uri"],
            "{uri}"
        );
        assert!(
            status.message().contains("internal address"),
            "{uri}: {}",
            status.message()
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    // Public addresses, names that do not resolve now (checked again at
    // delivery) and "none" are accepted.
    for uri in ["https://8.8.8.8/hook", "https://hooks.example/t", ""] {
        set_webhook(&app, uri).await.unwrap();
    }
}

#[tokio::test]
async fn delivery_to_an_internal_address_is_refused_before_connecting() {
    let body = serde_json::json!({"text": "hello"});
    for uri in ["http://169.254.169.254/latest", "http://10.0.0.1/hook"] {
        let start = Instant::now();
        let err = Webhooks::default()
            .post(uri, &body, None)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("refused: ") && err.contains("internal address"),
            "{err}"
        );
        // Refused before a connect was tried: no timeout was waited for
        // (10.0.0.1 would otherwise hang for the connect timeout).
        assert!(start.elapsed() < Duration::from_secs(1), "{uri}");
    }
    // A loopback listener gets no connection unless loopback is allowed.
    let (port, connections) = counting_listener().await;
    let only_docs =
        Webhooks::default().with_egress(Egress::allowing(["192.0.2.0/24".parse().unwrap()]));
    for uri in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let err = only_docs.post(&uri, &body, None).await.unwrap_err();
        assert!(err.starts_with("refused: "), "{uri}: {err}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    let (uri, seen) = receiver(0).await;
    loopback_webhooks().post(&uri, &body, None).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The address is vetted again at delivery: a URI accepted when the
/// contract was updated (here: while loopback was allowed) is not POSTed
/// to by a worker that does not allow it, and the alert stays pending with
/// the reason recorded.
#[tokio::test]
async fn a_worker_vets_the_address_again_at_delivery() {
    let app = TestApp::start().await;
    let (uri, seen) = receiver(0).await;
    alert_late_orders_to(&app, uri).await;
    app.submit(vec![order("6001", "100.00")]).await.unwrap();
    let store = Store::connect(&app.db.url, 3).unwrap();
    let config = WorkerConfig {
        concurrency: 1,
        idle_poll: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(worker::run(
        App::new(store).with_webhooks(Webhooks::default()),
        config,
        rx,
    ));
    let start = Instant::now();
    while app
        .count("SELECT count(*) FROM alert_deliveries WHERE attempts >= 1")
        .await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(15), "never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    run.await.unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM alert_deliveries WHERE state = 'pending'
             AND last_error LIKE 'refused: 127.0.0.1 is an internal address%'"
        )
        .await,
        1
    );
}
