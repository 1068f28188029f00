//! Alerts: a real HTTP receiver on 127.0.0.1 that fails the first two
//! times gets exactly one alert delivered for the exception, by the worker
//! (the server alone sends nothing), across a worker restart. The https://
//! cases, with the same receiver over TLS, are in `alerts_tls.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tally::app::App;
use tally::app::webhook::Webhooks;
use tally::app::worker::{self, WorkerConfig};
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::storage::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// What a receiver saw: the status it answered, the request's header
/// block, and the body.
pub type Seen = Arc<Mutex<Vec<(u16, String, String)>>>;

/// Answers 500 to the first `failures` requests, then 200; keeps headers
/// and bodies.
pub async fn receiver(failures: usize) -> (String, Seen) {
    receiver_on(failures, None).await
}

/// The same over TLS when `tls` is given (an https:// URI); a connection
/// whose handshake fails is not a request and is not kept.
pub async fn receiver_on(
    failures: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            match &tls {
                None => answer(sock, &log, failures).await,
                Some(acceptor) => {
                    if let Ok(sock) = acceptor.accept(sock).await {
                        answer(sock, &log, failures).await
                    }
                }
            }
        }
    });
    (format!("{scheme}://{addr}/hooks/ops"), seen)
}

/// Reads one request (headers, then the body by its Content-Length) and
/// answers it.
async fn answer<S>(mut sock: S, log: &Seen, failures: usize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![];
    let mut chunk = [0u8; 4096];
    let body = loop {
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                break Some((
                    text[..end].to_string(),
                    String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string(),
                ));
            }
        }
    };
    let Some((headers, body)) = body else {
        return;
    };
    let status = {
        let mut s = log.lock().unwrap();
        let status = if s.len() < failures { 500 } else { 200 };
        s.push((status, headers, body));
        status
    };
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = sock.write_all(reply.as_bytes()).await;
    let _ = sock.shutdown().await;
}

#[tokio::test]
async fn an_alert_is_delivered_exactly_once_after_two_failures() {
    let (uri, seen) = receiver(2).await;
    delivered_once_after_two_failures(uri, seen, loopback_webhooks()).await;
}

/// Points order-to-fulfillment's alerts of merchant acme at `uri`, with a
/// one-second lag so that an order alone is late at once.
pub async fn alert_late_orders_to(app: &TestApp, uri: String) {
    HandoffServiceClient::new(app.channel.clone())
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: "merchants/acme/handoffContracts/order-to-fulfillment".into(),
                max_lag: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                alert_webhook_uri: uri,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["max_lag".into(), "alert_webhook_uri".into()],
            }),
        })
        .await
        .unwrap();
}

/// A late order's alert reaches `uri`, whose receiver fails twice, exactly
/// once, through two workers delivering with `webhooks` (one stopped after
/// the first failure), and says what it should.
pub async fn delivered_once_after_two_failures(uri: String, seen: Seen, webhooks: Webhooks) {
    let app = TestApp::start().await;
    alert_late_orders_to(&app, uri).await;
    app.submit(vec![order("6001", "100.00")]).await.unwrap();
    // A clean order of another handoff's owner raises nothing to alert.
    app.submit(vec![
        order("6002", "50.00"),
        fulfillment("6002", "2026-11-02T11:00:00Z"),
    ])
    .await
    .unwrap();

    // The server alone delivers nothing: delivery is the worker's.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(
        app.count("SELECT count(*) FROM alert_deliveries WHERE state = 'pending'")
            .await,
        1
    );

    // A worker fails once, stops (a restart); the next one carries on.
    let store = Store::connect(&app.db.url, 3).unwrap();
    let config = WorkerConfig {
        concurrency: 2,
        idle_poll: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker_app = App::new(store).with_webhooks(webhooks);
    let first = tokio::spawn(worker::run(worker_app.clone(), config, rx));
    let start = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(15), "never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    first.await.unwrap();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(worker::run(worker_app, config, rx));

    let start = Instant::now();
    while !seen.lock().unwrap().iter().any(|(s, _, _)| *s == 200) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never delivered: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for any duplicate to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen.lock().unwrap().clone();
    second.abort();
    let statuses: Vec<u16> = seen.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(statuses, [500, 500, 200]);
    // Tracing is off here and the records carry no span: no traceparent.
    assert!(
        !seen[2].1.to_ascii_lowercase().contains("traceparent"),
        "{}",
        seen[2].1
    );
    let body: serde_json::Value = serde_json::from_str(&seen[2].2).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("LATE_HANDOFF on order 6001"),
        "{body}"
    );
    let fields = body["attachments"][0]["fields"].as_array().unwrap();
    let field = |t: &str| {
        fields.iter().find(|f| f["title"] == t).unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(field("order"), "6001");
    assert_eq!(field("handoff"), "order-to-fulfillment");
    assert_eq!(field("amount at risk"), "100.00 USD");
    assert!(field("exception").starts_with("merchants/acme/exceptions/"));
    assert!(field("fetch").starts_with("grpcurl "), "{}", field("fetch"));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM alert_deliveries WHERE state = 'delivered' AND attempts = 3"
        )
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM alert_deliveries").await, 1);
}
