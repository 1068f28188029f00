//! What every call passes before a service sees it, as configured at
//! start: authentication (`auth.rs`) and, over TLS, the server's
//! certificate. The server (`server.rs`) applies a [`Guard`] whole; a
//! default one is today's open loopback server.

use crate::app::keys::Authenticator;

/// The configured guard of a server.
#[derive(Clone, Default)]
pub struct Guard {
    /// Keys are required when set (`--auth keys`).
    pub auth: Option<Authenticator>,
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
