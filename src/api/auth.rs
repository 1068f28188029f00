//! Authentication and authorization of calls.
//!
//! One tower layer ([`AuthLayer`]) sees every call first: with
//! authentication on, a call to a Tally service must carry
//! `authorization: Bearer <key>` naming a live key
//! (`UNAUTHENTICATED` otherwise), and the key must hold the scope the RPC
//! needs ([`required_scope`], `PERMISSION_DENIED` otherwise). The caller's
//! [`Principal`] then travels in the request's extensions, and each RPC
//! checks the merchant it names against it with [`tenant`], right where the
//! merchant is read from the request (`ListScope::of` for every List).
//!
//! Health and reflection stay open: probes carry no key, and reflection
//! describes the API, not anyone's data.
//!
//! With authentication off (a loopback-only development server, or one
//! started with `--insecure-no-auth`) no principal is set and every check
//! here passes: today's behaviour.

use std::task::{Context, Poll};

use tonic::codegen::BoxFuture;
use tonic::{Request, Status};

use crate::app::keys::Authenticator;
use crate::domain::access::{Principal, Scope};
use crate::error::{Error, Result};

/// The scope an RPC needs, by its path ("/tally.v1.IngestService/SubmitRecords").
/// By verb, so that a new RPC lands in the right family; one that fits
/// none needs `admin` (closed by default).
pub fn required_scope(path: &str) -> Scope {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    if service == "tally.v1.IngestService" {
        return Scope::Submit;
    }
    let verb_is = |verbs: &[&str]| verbs.iter().any(|v| method.starts_with(v));
    if verb_is(&["Get", "List", "Watch", "BatchGet", "Search", "Diff"]) {
        Scope::Read
    } else if verb_is(&["Acknowledge", "Assign", "Resolve", "Close", "Reopen"]) {
        Scope::Work
    } else {
        Scope::Admin
    }
}

/// Calls anyone may make: health (probes) and reflection.
fn is_open(path: &str) -> bool {
    super::shed::is_exempt(path)
}

/// The key of `authorization: Bearer <key>`, if the header is there.
fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// The common name of the client certificate of a TLS connection, if the
/// client presented one. rustls has verified it against `--tls-client-ca`
/// before the first request could arrive.
fn client_cn<B>(request: &http::Request<B>) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?
        .peer_certs()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs.first()?).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// The caller of a call; None when authentication is off.
pub fn principal<T>(request: &Request<T>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

/// `merchant`, if the caller may act for it: the one merchant check of
/// every RPC. Refused before anything of the merchant is read, so a
/// caller learns nothing of another merchant, not even what exists.
pub fn tenant<T>(request: &Request<T>, merchant: String) -> Result<String> {
    allow(principal(request), merchant)
}

/// [`tenant`], for a caller taken out of its request (a stream's messages).
pub fn allow(caller: Option<&Principal>, merchant: String) -> Result<String> {
    match caller {
        Some(p) if !p.may_act_for(&merchant) => Err(Error::PermissionDenied {
            what: format!("this key may not act for merchant {merchant}"),
        }),
        _ => Ok(merchant),
    }
}

/// Checks `request` and, when it passes, puts its principal in its
/// extensions.
async fn admit<B>(auth: &Authenticator, request: &mut http::Request<B>) -> Result<()> {
    let path = request.uri().path();
    if is_open(path) {
        return Ok(());
    }
    let scope = required_scope(path);
    // A key when one is sent; else a verified client certificate (mutual
    // TLS) whose CN a key was made for.
    let principal = match (bearer(request.headers()), client_cn(request)) {
        (Some(key), _) => auth.authenticate(key).await?,
        (None, Some(cn)) => auth.authenticate_client(&cn).await?,
        (None, None) => return Err(Error::Unauthenticated),
    };
    if !principal.has(scope) {
        return Err(Error::PermissionDenied {
            what: format!(
                "this key lacks the '{scope}' scope that {} needs",
                path.trim_start_matches('/')
            ),
        });
    }
    request.extensions_mut().insert(principal);
    Ok(())
}

/// Authentication: on with an [`Authenticator`], off without.
#[derive(Clone, Default)]
pub struct AuthLayer {
    auth: Option<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Option<Authenticator>) -> AuthLayer {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Option<Authenticator>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: Default + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service polled ready is the one that takes the call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(auth) = self.auth.clone() else {
            return Box::pin(inner.call(request));
        };
        Box::pin(async move {
            match admit(&auth, &mut request).await {
                Ok(()) => inner.call(request).await,
                Err(e) => Ok(Status::from(e).into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_needs_the_scope_of_its_family() {
        for (path, scope) in [
            ("/tally.v1.IngestService/SubmitRecords", Scope::Submit),
            ("/tally.v1.IngestService/StreamRecords", Scope::Submit),
            ("/tally.v1.TransactionService/GetTransaction", Scope::Read),
            ("/tally.v1.ExceptionService/WatchExceptions", Scope::Read),
            ("/tally.v1.LedgerService/ListJournalEntries", Scope::Read),
            ("/tally.v1.ExceptionService/ResolveException", Scope::Work),
            (
                "/tally.v1.ExceptionService/AcknowledgeException",
                Scope::Work,
            ),
            ("/tally.v1.ExceptionService/AssignException", Scope::Work),
            ("/tally.v1.ReportService/DiffPeriodReports", Scope::Read),
            ("/tally.v1.ReportService/ClosePeriod", Scope::Work),
            (
                "/tally.v1.HandoffService/UpdateHandoffContract",
                Scope::Admin,
            ),
            (
                "/tally.v1.HandoffService/FrobnicateEverything",
                Scope::Admin,
            ),
        ] {
            assert_eq!(required_scope(path), scope, "{path}");
        }
    }

    #[test]
    fn only_a_bearer_key_is_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer tally_x".parse().unwrap());
        assert_eq!(bearer(&h), Some("tally_x"));
        h.insert("authorization", "bearer  tally_y ".parse().unwrap());
        assert_eq!(bearer(&h), Some("tally_y"));
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
