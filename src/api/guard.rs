//! What every call passes before a service sees it, as configured at
//! start: TLS (and client certificates), authentication (`auth.rs`). The
//! server (`server.rs`) applies a [`Guard`] whole; a default one is
//! today's plaintext, open loopback server.

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::app::keys::Authenticator;
use crate::config::TlsFiles;

/// The configured guard of a server.
#[derive(Clone, Default)]
pub struct Guard {
    /// Keys are required when set (`--auth keys`).
    pub auth: Option<Authenticator>,
    /// Served over TLS when set (rustls, ring provider: no system OpenSSL).
    pub tls: Option<ServerTlsConfig>,
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

impl Guard {
    /// The tower layers, outermost first.
    pub fn layers(
        &self,
    ) -> tower::ServiceBuilder<
        tower::layer::util::Stack<super::auth::AuthLayer, tower::layer::util::Identity>,
    > {
        tower::ServiceBuilder::new().layer(super::auth::AuthLayer::new(self.auth.clone()))
    }
}
