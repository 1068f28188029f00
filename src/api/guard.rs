//! What every call passes before a service sees it, as configured at
//! start: TLS (and client certificates), then one tower layer per concern:
//! load shedding (`shed.rs`), authentication (`auth.rs`), the per-key rate
//! (`rate.rs`). A caller's `grpc-timeout` is honoured by tonic's server
//! around all of them (the shorter of it and the server's 60 s): past it
//! the call's future, our handler with it, is dropped and the caller gets
//! CANCELLED, as when the caller goes away. The server (`server.rs`)
//! applies a [`Guard`] whole; a default one is today's plaintext, open,
//! unlimited loopback server.

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use tower::layer::util::Stack;

use super::auth::AuthLayer;
use super::rate::RateLayer;
use super::shed::ShedLayer;
use crate::app::keys::Authenticator;
use crate::config::TlsFiles;

/// The configured guard of a server.
#[derive(Clone, Default)]
pub struct Guard {
    /// Keys are required when set (`--auth keys`).
    pub auth: Option<Authenticator>,
    /// Served over TLS when set (rustls, ring provider: no system OpenSSL).
    pub tls: Option<ServerTlsConfig>,
    /// Calls in progress past which calls are shed (`--max-concurrent-calls`).
    pub max_concurrent_calls: Option<usize>,
    /// Calls a second per key (`--rate-limit-per-key`).
    pub rate_per_key: Option<u32>,
}

/// The server's TLS from the configured files. With a client CA, a client
/// may present a certificate (mutual TLS); it is optional at the handshake
/// so that callers with API keys need none, and `auth.rs` maps a verified
/// one to its key.
pub fn server_tls(files: &TlsFiles) -> ServerTlsConfig {
    let mut tls =
        ServerTlsConfig::new().identity(Identity::from_pem(&files.cert_pem, &files.key_pem));
    if let Some(ca) = &files.client_ca_pem {
        tls = tls
            .client_ca_root(Certificate::from_pem(ca))
            .client_auth_optional(true);
    }
    tls
}

/// The layers of a guard, outermost first.
type Layers = tower::ServiceBuilder<
    Stack<RateLayer, Stack<AuthLayer, Stack<ShedLayer, tower::layer::util::Identity>>>,
>;

impl Guard {
    /// The tower layers, outermost first: overload is refused before a key
    /// is looked up, and a key is known before its rate is counted.
    pub fn layers(&self) -> Layers {
        tower::ServiceBuilder::new()
            .layer(ShedLayer::new(self.max_concurrent_calls))
            .layer(AuthLayer::new(self.auth.clone()))
            .layer(RateLayer::new(self.rate_per_key))
    }
}
