//! gRPC over TLS (`--tls-cert/--tls-key`) and mutual TLS
//! (`--tls-client-ca`): a client certificate's CN authenticates as the key
//! made for it (`tally keys create --client-cn`), with that key's merchants
//! and scopes; plaintext and certificates of another CA get nowhere.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tally::api::guard::{Guard, server_tls};
use tally::app::keys::{Authenticator, NewKey};
use tally::config::TlsFiles;
use tally::domain::access::Scope;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::common::*;

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `names` (SANs) and common name `cn`.
    fn issue(&self, names: &[&str], cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn channel(
    app: &TestApp,
    ca: &Ca,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("127.0.0.1");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{}", app.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

async fn get(channel: Channel, merchant: &str, key: Option<&str>) -> Result<(), tonic::Status> {
    let msg = pb::GetTransactionRequest {
        name: format!("merchants/{merchant}/transactions/1"),
    };
    let request = match key {
        Some(k) => keyed(msg, k),
        None => tonic::Request::new(msg),
    };
    TransactionServiceClient::new(channel)
        .get_transaction(request)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn tls_and_client_certificates_authenticate_like_keys() {
    let ca = Ca::new("tally");
    let (cert_pem, key_pem) = ca.issue(&["127.0.0.1"], "tally server");
    let files = TlsFiles {
        cert_pem,
        key_pem,
        client_ca_pem: Some(ca.pem.clone()),
        cert_path: "server.pem".into(),
    };
    let app = TestApp::start_guarded(
        |a| a,
        |store| Guard {
            auth: Some(Authenticator::new(store.clone())),
            tls: Some(server_tls(&files)),
            ..Default::default()
        },
    )
    .await;
    let key = app.key(&["acme"], "read", "reader").await;
    tally::app::App::new(tally::storage::Store::connect(&app.db.url, 1).unwrap())
        .create_key(NewKey {
            name: Some("erp-cert".into()),
            merchants: ["acme".to_string()].into(),
            scopes: [Scope::Read].into(),
            expire_time: None,
            client_cn: Some("erp.acme.internal".into()),
        })
        .await
        .unwrap();

    // Over TLS with a key: through to the service (no such order).
    let tls = channel(&app, &ca, None).await.unwrap();
    assert_eq!(
        get(tls.clone(), "acme", Some(&key))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        get(tls, "acme", None).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A client certificate whose CN a key was made for is that key.
    let erp = ca.issue(&[], "erp.acme.internal");
    let mtls = channel(&app, &ca, Some(&erp)).await.unwrap();
    assert_eq!(
        get(mtls.clone(), "acme", None).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        get(mtls, "globex", None).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // One no key was made for is nobody.
    let unknown = ca.issue(&[], "someone.else");
    let other = channel(&app, &ca, Some(&unknown)).await.unwrap();
    assert_eq!(
        get(other, "acme", None).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // A certificate of another CA fails the handshake; so does plaintext.
    let stranger = Ca::new("stranger").issue(&[], "erp.acme.internal");
    let refused = match channel(&app, &ca, Some(&stranger)).await {
        Err(_) => true,
        Ok(c) => get(c, "acme", None)
            .await
            .is_err_and(|s| s.code() == Code::Unavailable || s.code() == Code::Unknown),
    };
    assert!(refused, "a certificate of another CA was accepted");
    let plain = Channel::from_shared(format!("http://{}", app.addr()))
        .unwrap()
        .connect()
        .await;
    if let Ok(c) = plain {
        let s = get(c, "acme", Some(&key)).await.unwrap_err();
        assert_ne!(s.code(), Code::NotFound, "plaintext reached the service");
    }
}

/// `tally serve` with keys and TLS, as a cluster runs it: gRPC only over
/// TLS, and grpc.health.v1 alone in plaintext on `--health-addr` for the
/// kubelet's probes, which cannot speak TLS.
#[tokio::test]
async fn the_binary_serves_tls_with_health_apart_in_plaintext() {
    use crate::binary::{SpawnStopped, free_port, tally, terminate, wait_serving};
    let ca = Ca::new("tally");
    let (cert, key) = ca.issue(&["127.0.0.1"], "tally server");
    let dir = std::env::temp_dir();
    let file = |name: &str, text: &str| {
        let p = dir.join(format!("tally-serve-tls-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    };
    let (cert_file, key_file) = (file("cert.pem", &cert), file("key.pem", &key));
    let db = TestDb::new().await;
    let (port, health) = (free_port(), free_port());
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("TALLY_AUTH", "keys")
        .env("TALLY_TLS_CERT", &cert_file)
        .env("TALLY_TLS_KEY", &key_file)
        .spawn_stopped();
    wait_serving(health, &mut child).await;
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca.pem))
                .domain_name("127.0.0.1"),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(
        get(channel, "acme", None).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(
        terminate(&mut child, std::time::Duration::from_secs(15))
            .await
            .success()
    );
    for f in [cert_file, key_file] {
        std::fs::remove_file(f).unwrap();
    }
}
