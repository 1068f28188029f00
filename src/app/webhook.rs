//! The client alerts are POSTed with: HTTP/1.1 over plain TCP for
//! `http://`, over rustls for `https://` (Slack's incoming webhooks).
//!
//! Trust: Mozilla's roots (webpki-roots, compiled in, so no system
//! certificate store is read) plus, optionally, a private CA's
//! certificates (`--alert-ca-file`, checked at start by `config.rs`).
//! Crypto is rustls's `ring` provider: no system library.
//!
//! Bounded on every side: the TCP connect, the whole exchange (connect,
//! TLS handshake, request, reply), and the reply body read. Redirects are
//! not followed: a 3xx is a failed delivery like any other non-2xx, as a
//! webhook that moved should be fixed in the contract rather than chased.
//!
//! Where: only to addresses `egress.rs` lets through. The host is resolved
//! once, every address vetted, and the connection made to a vetted
//! address, never to the name again (DNS rebinding finds no second lookup).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::egress::{Egress, Refused};

/// How long the TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one POST may take in all (connect and handshake included).
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a reply's body is read (Slack answers "ok"); the rest is
/// dropped with the connection.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct Webhooks {
    /// The TLS settings, or why there are none: then every https://
    /// delivery fails with that reason (and is retried), http:// still
    /// works. Building them only fails if the crypto provider lacks what
    /// the default protocol versions need, which `main` checks at start.
    tls: Result<Arc<rustls::ClientConfig>, Arc<str>>,
    /// Which addresses may be reached (public ones, and the allow-list).
    egress: Arc<Egress>,
}

impl Default for Webhooks {
    /// Mozilla's roots only, built once per process.
    fn default() -> Webhooks {
        static MOZILLA: OnceLock<Webhooks> = OnceLock::new();
        MOZILLA.get_or_init(|| Webhooks::new(&[])).clone()
    }
}

impl Webhooks {
    /// Mozilla's roots plus `extra_roots` (already checked to be usable
    /// trust anchors, see `config::load_ca_file`).
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Webhooks {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots.add_parsable_certificates(extra_roots.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                let mut c = b.with_root_certificates(roots).with_no_client_auth();
                // Only HTTP/1.1 is spoken.
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(c)
            })
            .map_err(|e| Arc::from(format!("TLS settings: {e}")));
        Webhooks {
            tls,
            egress: Arc::new(Egress::public_only()),
        }
    }

    /// The same, reaching the internal addresses `egress` allows.
    pub fn with_egress(self, egress: Egress) -> Webhooks {
        Webhooks {
            egress: Arc::new(egress),
            ..self
        }
    }

    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// Whether `uri` may be set as a webhook now: Err names why not. A name
    /// that does not resolve now is let through (it is checked again at
    /// every delivery); one that resolves inside is not.
    pub async fn vet_uri(&self, uri: &str) -> Result<(), String> {
        let (host, port) = host_port(uri)?;
        match self.egress.resolve(&host, port).await {
            Ok(_) | Err(Refused::Unresolved(_)) => Ok(()),
            Err(Refused::Address(why)) => Err(why),
        }
    }

    /// Why https:// cannot be delivered, if it cannot.
    pub fn tls_error(&self) -> Option<&str> {
        self.tls.as_ref().err().map(|e| &**e)
    }

    /// POSTs `body` as JSON to an http:// or https:// URI, with a
    /// `traceparent` header when given; Ok only for a 2xx reply.
    pub async fn post(
        &self,
        uri: &str,
        body: &serde_json::Value,
        traceparent: Option<&str>,
    ) -> Result<(), String> {
        let uri: hyper::Uri = uri.parse().map_err(|e| format!("bad URI: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(self.tls.clone().map_err(|e| e.to_string())?),
            _ => return Err("only http:// and https:// webhooks can be delivered".into()),
        };
        let authority = uri.authority().ok_or("URI without a host")?.clone();
        let (host, port) = host_port_of(&uri)?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let egress = self.egress.clone();
        let attempt = async move {
            // Resolved and vetted once; the connection goes to what was
            // vetted. A refused address is never connected to.
            let addrs = egress
                .resolve(&host, port)
                .await
                .map_err(|e| format!("refused: {e}"))?;
            let tcp =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&addrs[..]))
                    .await
                    .map_err(|_| "connect: timed out".to_string())?
                    .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => exchange(tcp, req).await,
                Some(tls) => {
                    let name = ServerName::try_from(host)
                        .map_err(|e| format!("bad TLS server name: {e}"))?;
                    let stream = TlsConnector::from(tls)
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?;
                    exchange(stream, req).await
                }
            }
        };
        tokio::time::timeout(POST_TIMEOUT, attempt)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

/// The host (an IPv6 literal bare, as connect and TLS want it) and port
/// of an http:// or https:// URI.
fn host_port(uri: &str) -> Result<(String, u16), String> {
    let uri: hyper::Uri = uri.parse().map_err(|e| format!("bad URI: {e}"))?;
    host_port_of(&uri)
}

fn host_port_of(uri: &hyper::Uri) -> Result<(String, u16), String> {
    let authority = uri.authority().ok_or("URI without a host")?;
    let host = authority.host().trim_matches(['[', ']']).to_string();
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Ok((host, authority.port_u16().unwrap_or(default)))
}

/// One request on a fresh HTTP/1.1 connection over `io`.
async fn exchange<S>(io: S, req: hyper::Request<Full<Bytes>>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    // Read a bounded reply so the connection ends cleanly; a longer one
    // is cut off (the status alone decides).
    let _ = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
        .collect()
        .await;
    conn.abort();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}
