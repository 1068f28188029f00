//! Who may call the server, and over what: `--auth`, `--insecure-no-auth`
//! and the TLS files, read and checked at start like every setting.

use std::path::PathBuf;

use super::{Config, ConfigError, Key, invalid, keys, readable_file};

/// Who may call the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Anyone who reaches the port: loopback only, unless
    /// `--insecure-no-auth`.
    #[default]
    None,
    /// An API key on every call (`authorization: Bearer <key>`).
    Keys,
}

/// How a server is exposed, once its address and authentication are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Keys required, wherever it listens.
    Authenticated,
    /// No keys, on loopback: only this machine can call (the quick start).
    LoopbackOnly,
    /// No keys, reachable from the network: asked for explicitly, and
    /// logged loudly.
    Insecure,
}

impl Config {
    /// Whether `serve` may listen as configured: without keys, only on
    /// loopback unless `--insecure-no-auth` says otherwise.
    pub fn exposure(&self) -> Result<Exposure, String> {
        match (
            self.auth,
            self.grpc_addr.ip().is_loopback(),
            self.insecure_no_auth,
        ) {
            (AuthMode::Keys, _, _) => Ok(Exposure::Authenticated),
            (AuthMode::None, true, _) => Ok(Exposure::LoopbackOnly),
            (AuthMode::None, false, true) => Ok(Exposure::Insecure),
            (AuthMode::None, false, false) => Err(format!(
                "{}: {} is not a loopback address, and without authentication anyone who \
                 reaches it could read and change every merchant's data: use --auth keys \
                 (TALLY_AUTH=keys), or --insecure-no-auth (TALLY_INSECURE_NO_AUTH=true) to \
                 serve it open anyway",
                keys::GRPC_ADDR,
                self.grpc_addr
            )),
        }
    }
}

/// Calls in progress at once before more are shed: well above what the
/// database pool serves at once (16 connections), so that only a real
/// pile-up is shed.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 1024;
/// Calls a second per API key: more than an ERP batch job needs, a bound
/// on a runaway loop.
pub const DEFAULT_RATE_LIMIT_PER_KEY: usize = 200;

/// A limit: a whole number, 0 for none; unset, `default`.
pub(super) fn limit(
    setting: Option<(Key, String)>,
    default: usize,
) -> Result<Option<usize>, ConfigError> {
    match setting {
        None => Ok(Some(default)),
        Some((key, v)) => match v.trim().parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(invalid(key, &v, "is not a whole number (0: no limit)")),
        },
    }
}

/// `--auth`: keys or none.
pub(super) fn parse_auth(key: Key, value: &str) -> Result<AuthMode, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "keys" => Ok(AuthMode::Keys),
        "none" => Ok(AuthMode::None),
        _ => Err(invalid(key, value, "is not an auth mode (keys or none)")),
    }
}

/// The server's TLS: its certificate chain and key (PEM), and optionally
/// the CA that client certificates must chain to (mutual TLS). The files
/// are read now, not at the first connection.
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
    pub cert_path: PathBuf,
}

/// Never prints the private key.
impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("cert_path", &self.cert_path)
            .field("mutual", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// A file holding at least one PEM block whose label ends in `label`
/// ("CERTIFICATE", "PRIVATE KEY").
fn pem_file(key: Key, value: &str, label: &str) -> Result<(PathBuf, String), ConfigError> {
    let path = readable_file(key, value)?;
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Unreadable {
        key,
        path: path.clone(),
        source,
    })?;
    let has = text.lines().any(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if !has {
        return Err(ConfigError::BadFile {
            key,
            path,
            reason: format!("holds no PEM {label} (-----BEGIN ...{label}-----)"),
        });
    }
    Ok((path, text))
}

/// `--tls-cert` and `--tls-key` go together; `--tls-client-ca` needs them.
pub(super) fn tls_files(
    setting: &impl Fn(Key) -> Option<(Key, String)>,
) -> Result<Option<TlsFiles>, ConfigError> {
    let cert = setting(keys::TLS_CERT);
    let key = setting(keys::TLS_KEY);
    let ca = setting(keys::TLS_CLIENT_CA);
    let (cert, key_file) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            return match ca {
                Some((k, v)) => Err(invalid(k, &v, "needs --tls-cert and --tls-key")),
                None => Ok(None),
            };
        }
        (Some((k, v)), None) => return Err(invalid(k, &v, "needs --tls-key too")),
        (None, Some((k, v))) => return Err(invalid(k, &v, "needs --tls-cert too")),
    };
    let (cert_path, cert_pem) = pem_file(cert.0, &cert.1, "CERTIFICATE")?;
    let (_, key_pem) = pem_file(key_file.0, &key_file.1, "PRIVATE KEY")?;
    let client_ca_pem = ca
        .map(|(k, v)| pem_file(k, &v, "CERTIFICATE").map(|(_, t)| t))
        .transpose()?;
    Ok(Some(TlsFiles {
        cert_pem,
        key_pem,
        client_ca_pem,
        cert_path,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, error};
    use super::*;

    /// Without keys, only loopback, unless asked for by name.
    #[test]
    fn a_server_without_keys_serves_loopback_only() {
        let exposure = |vars: &[(&str, &str)]| config(vars).unwrap().exposure();
        assert_eq!(exposure(&[]), Ok(Exposure::LoopbackOnly));
        assert_eq!(
            exposure(&[("TALLY_GRPC_ADDR", "[::1]:7000")]),
            Ok(Exposure::LoopbackOnly)
        );
        let err = exposure(&[("TALLY_GRPC_ADDR", "0.0.0.0:50051")]).unwrap_err();
        assert!(
            err.contains("--grpc-addr")
                && err.contains("--auth keys")
                && err.contains("--insecure-no-auth"),
            "{err}"
        );
        assert_eq!(
            exposure(&[("TALLY_GRPC_ADDR", "0.0.0.0:50051"), ("TALLY_AUTH", "keys")]),
            Ok(Exposure::Authenticated)
        );
        assert_eq!(
            exposure(&[
                ("TALLY_GRPC_ADDR", "10.1.2.3:50051"),
                ("TALLY_INSECURE_NO_AUTH", "true")
            ]),
            Ok(Exposure::Insecure)
        );
        let msg = error(&[("TALLY_AUTH", "password")]);
        assert!(msg.contains("--auth") && msg.contains("password"), "{msg}");
    }

    #[test]
    fn tls_files_come_in_pairs_and_hold_pem() {
        let dir = std::env::temp_dir();
        let file = |name: &str, text: &str| {
            let p = dir.join(format!("tally-tls-{}-{name}", std::process::id()));
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().to_string()
        };
        let cert = file(
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        );
        let key = file(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        );
        let c = config(&[("TALLY_TLS_CERT", &cert), ("TALLY_TLS_KEY", &key)]).unwrap();
        let tls = c.tls.unwrap();
        assert!(tls.client_ca_pem.is_none());
        assert!(!format!("{tls:?}").contains("PRIVATE"));
        let msg = error(&[("TALLY_TLS_CERT", &cert)]);
        assert!(
            msg.contains("--tls-cert") && msg.contains("--tls-key"),
            "{msg}"
        );
        let msg = error(&[("TALLY_TLS_CLIENT_CA", &cert)]);
        assert!(msg.contains("--tls-client-ca"), "{msg}");
        let msg = error(&[("TALLY_TLS_CERT", &key), ("TALLY_TLS_KEY", &key)]);
        assert!(msg.contains("holds no PEM CERTIFICATE"), "{msg}");
        for f in [cert, key] {
            std::fs::remove_file(f).unwrap();
        }
    }
}
