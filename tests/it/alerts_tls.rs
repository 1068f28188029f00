//! https:// alerts: a real TLS receiver on 127.0.0.1 whose certificate a
//! private CA made in the test (rcgen) signed. Trusted through the CA file
//! (`TALLY_ALERT_CA_FILE`, read as `tally serve|worker` read it), it gets
//! exactly one alert, also after failing twice; a receiver whose
//! certificate is not trusted gets nothing, and the alert stays pending
//! with the TLS error recorded until a worker that trusts it delivers it.
//! Redirects are not followed and reply bodies are read only so far.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tally::app::App;
use tally::app::webhook::Webhooks;
use tally::app::worker::{self, WorkerConfig};
use tally::config::Config;
use tally::storage::Store;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::alerts::{alert_late_orders_to, delivered_once_after_two_failures, receiver_on};
use crate::common::*;

/// A private CA and a server certificate it signed for 127.0.0.1.
pub struct TestCa {
    pub ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: PrivatePkcs8KeyDer<'static>,
    /// The server certificate and key as PEM (for tonic's `Identity`).
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
            server_cert: server.der().clone(),
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        }
    }

    /// The TLS side of a receiver presenting this CA's server certificate.
    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server_cert.clone()],
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// The alert client of a worker started with
    /// `TALLY_ALERT_CA_FILE=<this CA's PEM>`: the file is read and checked
    /// by `Config`, as at start-up.
    fn trusted_by_ca_file(&self) -> Webhooks {
        let file = std::env::temp_dir().join(format!(
            "tally-alert-ca-{}-{}.pem",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&file, &self.ca_pem).unwrap();
        let path = file.to_str().unwrap().to_string();
        let config =
            Config::from_lookup(|k| (k == "TALLY_ALERT_CA_FILE").then(|| path.clone())).unwrap();
        std::fs::remove_file(&file).unwrap();
        let ca = config.alert_ca.expect("the CA file is read");
        assert_eq!(ca.certs.len(), 1);
        let webhooks = Webhooks::new(&ca.certs).with_egress(crate::common::loopback_egress());
        assert_eq!(webhooks.tls_error(), None);
        webhooks
    }
}

#[tokio::test]
async fn an_https_alert_is_delivered_exactly_once_after_two_failures() {
    let ca = TestCa::new("trusted");
    let (uri, seen) = receiver_on(2, Some(ca.acceptor())).await;
    assert!(uri.starts_with("https://127.0.0.1:"), "{uri}");
    delivered_once_after_two_failures(uri, seen, ca.trusted_by_ca_file()).await;
}

/// Without the CA file, Mozilla's roots alone do not trust a private CA;
/// with it, the same receiver gets the POST. No database involved.
#[tokio::test]
async fn the_ca_file_is_what_makes_a_private_ca_trusted() {
    let ca = TestCa::new("private");
    let (uri, seen) = receiver_on(0, Some(ca.acceptor())).await;
    let body = serde_json::json!({"text": "hello"});
    let err = crate::common::loopback_webhooks()
        .post(&uri, &body, None)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(seen.lock().unwrap().is_empty());
    ca.trusted_by_ca_file()
        .post(
            &uri,
            &body,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        )
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].1.starts_with("POST /hooks/ops HTTP/1.1"),
        "{}",
        seen[0].1
    );
    assert!(
        seen[0]
            .1
            .to_ascii_lowercase()
            .contains("traceparent: 00-0af7"),
        "{}",
        seen[0].1
    );
    assert_eq!(seen[0].2, r#"{"text":"hello"}"#);
}

#[tokio::test]
async fn an_untrusted_https_receiver_is_a_failed_delivery_kept_for_retry() {
    let app = TestApp::start().await;
    let trusted = TestCa::new("trusted");
    let stranger = TestCa::new("stranger");
    // The receiver presents a certificate of a CA the worker does not trust
    // (it trusts another private CA, and Mozilla's).
    let (uri, seen) = receiver_on(0, Some(stranger.acceptor())).await;
    alert_late_orders_to(&app, uri).await;
    app.submit(vec![order("6001", "100.00")]).await.unwrap();

    let store = Store::connect(&app.db.url, 3).unwrap();
    let config = WorkerConfig {
        concurrency: 1,
        idle_poll: Duration::from_millis(50),
        ..WorkerConfig::default()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let first = tokio::spawn(worker::run(
        App::new(store.clone()).with_webhooks(trusted.trusted_by_ca_file()),
        config,
        rx,
    ));
    // The order turns late after a second; then two attempts, 0.5 s apart.
    let start = Instant::now();
    while app
        .count("SELECT count(*) FROM alert_deliveries WHERE attempts >= 2")
        .await
        == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never tried twice"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    first.await.unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "no request crossed an untrusted handshake"
    );
    // Not delivered, not dropped: pending, with the TLS error recorded.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM alert_deliveries WHERE state = 'pending' AND deliver_time IS NULL
             AND last_error LIKE 'TLS: %UnknownIssuer%'"
        )
        .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM alert_deliveries").await, 1);

    // A worker that trusts the receiver's CA delivers the kept alert, once.
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let second = tokio::spawn(worker::run(
        App::new(store).with_webhooks(stranger.trusted_by_ca_file()),
        config,
        rx,
    ));
    let start = Instant::now();
    while seen.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(15), "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.abort();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM alert_deliveries WHERE state = 'delivered' AND last_error IS NULL"
        )
        .await,
        1
    );
}

/// A receiver that answers every connection with `reply` and then, if
/// `endless`, keeps sending body bytes until the client goes away.
async fn raw_receiver(reply: String, endless: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(reply.as_bytes()).await;
                let chunk = [b'x'; 8192];
                while endless && sock.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    format!("http://{addr}/hook")
}

/// Redirects are not followed (a 3xx is a failed delivery and the target
/// gets nothing); a reply body is read only up to its bound, so an endless
/// one does not hold the worker.
#[tokio::test]
async fn redirects_are_not_followed_and_replies_are_bounded() {
    let body = serde_json::json!({"text": "hello"});
    let (target, seen) = crate::alerts::receiver(0).await;
    let reply = format!("HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n");
    let err = crate::common::loopback_webhooks()
        .post(&raw_receiver(reply, false).await, &body, None)
        .await
        .unwrap_err();
    assert_eq!(err, "HTTP 302 Found");
    assert!(seen.lock().unwrap().is_empty());

    let endless = raw_receiver("HTTP/1.1 200 OK\r\n\r\n".into(), true).await;
    let start = Instant::now();
    crate::common::loopback_webhooks()
        .post(&endless, &body, None)
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
