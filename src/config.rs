//! Configuration: every setting has a flag and an environment variable
//! (see `cli/mod.rs`), and is validated here into [`Config`].
//!
//! Settings are read through a lookup function keyed by environment variable
//! name, as linkerd2-proxy reads its `Strings`: the binary passes what clap
//! parsed (flag, else variable), tests pass a closure, and nothing here
//! touches the process environment except [`Config::from_env`].

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::app::egress::Cidr;
use crate::embedded_pg;

mod security;
pub use security::{AuthMode, Exposure, TlsFiles};

/// What `--help` and the README show; the default itself is built without
/// parsing (a unit test checks that the two agree).
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_POOL_SIZE: usize = 16;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 20;

/// A setting's flag and environment variable; errors name both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub flag: &'static str,
    pub env: &'static str,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.flag, self.env)
    }
}

/// Every setting Tally reads. `cli/mod.rs` declares the same flag and variable
/// for each (a unit test there checks that they agree).
pub mod keys {
    use super::Key;

    const fn key(flag: &'static str, env: &'static str) -> Key {
        Key { flag, env }
    }

    pub const DATABASE_URL: Key = key("--database-url", "DATABASE_URL");
    pub const GRPC_ADDR: Key = key("--grpc-addr", "TALLY_GRPC_ADDR");
    pub const METRICS_ADDR: Key = key("--metrics-addr", "TALLY_METRICS_ADDR");
    pub const DATA_DIR: Key = key("--data-dir", "TALLY_DATA_DIR");
    pub const PG_BIN: Key = key("--pg-bin", "TALLY_PG_BIN");
    pub const POOL_SIZE: Key = key("--pool-size", "TALLY_DB_POOL_SIZE");
    pub const SHUTDOWN_GRACE_SECS: Key = key("--shutdown-grace-secs", "TALLY_SHUTDOWN_GRACE_SECS");
    pub const LOG_FORMAT: Key = key("--log-format", "TALLY_LOG_FORMAT");
    pub const CONFIG: Key = key("--config", "TALLY_CONFIG");
    pub const IN_PROCESS_WORKER: Key = key("--in-process-worker", "TALLY_IN_PROCESS_WORKER");
    pub const WORKER_CONCURRENCY: Key = key("--concurrency", "TALLY_WORKER_CONCURRENCY");
    pub const ALERT_CA_FILE: Key = key("--alert-ca-file", "TALLY_ALERT_CA_FILE");
    pub const ALERT_ALLOW_CIDR: Key = key("--alert-allow-cidr", "TALLY_ALERT_ALLOW_CIDR");
    pub const AUTH: Key = key("--auth", "TALLY_AUTH");
    pub const INSECURE_NO_AUTH: Key = key("--insecure-no-auth", "TALLY_INSECURE_NO_AUTH");
    pub const TLS_CERT: Key = key("--tls-cert", "TALLY_TLS_CERT");
    pub const TLS_KEY: Key = key("--tls-key", "TALLY_TLS_KEY");
    pub const TLS_CLIENT_CA: Key = key("--tls-client-ca", "TALLY_TLS_CLIENT_CA");
    pub const MAX_CONCURRENT_CALLS: Key =
        key("--max-concurrent-calls", "TALLY_MAX_CONCURRENT_CALLS");
    pub const RATE_LIMIT_PER_KEY: Key = key("--rate-limit-per-key", "TALLY_RATE_LIMIT_PER_KEY");
    pub const HEALTH_ADDR: Key = key("--health-addr", "TALLY_HEALTH_ADDR");

    /// All of them, for the tests that keep `cli/mod.rs` and this list in step.
    pub const ALL: [Key; 21] = [
        DATABASE_URL,
        GRPC_ADDR,
        METRICS_ADDR,
        DATA_DIR,
        PG_BIN,
        POOL_SIZE,
        SHUTDOWN_GRACE_SECS,
        LOG_FORMAT,
        CONFIG,
        IN_PROCESS_WORKER,
        WORKER_CONCURRENCY,
        ALERT_CA_FILE,
        ALERT_ALLOW_CIDR,
        AUTH,
        INSECURE_NO_AUTH,
        TLS_CERT,
        TLS_KEY,
        TLS_CLIENT_CA,
        MAX_CONCURRENT_CALLS,
        RATE_LIMIT_PER_KEY,
        HEALTH_ADDR,
    ];
}

/// A setting that cannot be used, naming the flag, the variable and the
/// value. Not a service error: it stops the process before it serves.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: '{value}' {expected}")]
    Invalid {
        key: Key,
        value: String,
        expected: &'static str,
    },
    #[error("{key}: cannot read '{}': {source}", path.display())]
    Unreadable {
        key: Key,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: '{}' {reason}", path.display())]
    BadFile {
        key: Key,
        path: PathBuf,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// None: run an embedded PostgreSQL that Tally owns.
    pub database_url: Option<String>,
    pub grpc_addr: SocketAddr,
    /// Where Prometheus metrics are served, at `/metrics` (None: nowhere).
    pub metrics_addr: Option<SocketAddr>,
    pub pool_size: usize,
    /// How often health re-checks the database.
    pub health_interval: Duration,
    /// How long in-flight calls may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    /// Handoff contracts and the chart of accounts (TOML); checked readable.
    pub config_file: Option<PathBuf>,
    /// Whether `serve` also runs the cash-application worker (default true).
    pub in_process_worker: bool,
    /// Worker loops per process (`tally worker`, and `serve`'s in-process worker).
    pub worker_concurrency: usize,
    /// A private CA that alert webhooks (https://) are also trusted by,
    /// besides Mozilla's roots; loaded and checked at start.
    pub alert_ca: Option<CaFile>,
    /// Internal address blocks alert webhooks may still reach (everything
    /// internal is refused otherwise: `app::egress`).
    pub alert_allow: Vec<Cidr>,
    /// Who may call `serve` (`--auth`).
    pub auth: AuthMode,
    /// Serving a non-loopback address without authentication was asked
    /// for explicitly.
    pub insecure_no_auth: bool,
    /// The server's certificate and key, and the CA client certificates
    /// are checked against (mutual TLS); read and checked at start.
    pub tls: Option<TlsFiles>,
    /// Calls in progress past which more are shed (None: no limit).
    pub max_concurrent_calls: Option<usize>,
    /// Calls a second each API key may make (None: no limit).
    pub rate_limit_per_key: Option<u32>,
    /// A second, plaintext listener serving only grpc.health.v1: for
    /// probes that cannot speak TLS (the kubelet's gRPC probes).
    pub health_addr: Option<SocketAddr>,
    /// The embedded PostgreSQL, used when `database_url` is None.
    pub embedded: embedded_pg::Settings,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// `get` answers by environment variable name; empty values count as
    /// unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let setting = |key: Key| get(key.env).map(|v| (key, v));
        Ok(Config {
            database_url: get(keys::DATABASE_URL.env),
            grpc_addr: parse_addr(keys::GRPC_ADDR, get(keys::GRPC_ADDR.env))?
                .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 50051))),
            metrics_addr: parse_addr(keys::METRICS_ADDR, get(keys::METRICS_ADDR.env))?,
            pool_size: match setting(keys::POOL_SIZE) {
                Some((key, v)) => positive(key, &v)?,
                None => DEFAULT_POOL_SIZE,
            },
            health_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(match setting(keys::SHUTDOWN_GRACE_SECS) {
                Some((key, v)) => v.trim().parse().map_err(|_| invalid(key, &v, SECONDS))?,
                None => DEFAULT_SHUTDOWN_GRACE_SECS,
            }),
            log_format: match setting(keys::LOG_FORMAT) {
                Some((key, v)) => parse_log_format(key, &v)?,
                None => LogFormat::Text,
            },
            config_file: match setting(keys::CONFIG) {
                Some((key, v)) => Some(readable_file(key, &v)?),
                None => None,
            },
            in_process_worker: match setting(keys::IN_PROCESS_WORKER) {
                Some((key, v)) => parse_bool(key, &v)?,
                None => true,
            },
            worker_concurrency: match setting(keys::WORKER_CONCURRENCY) {
                Some((key, v)) => positive(key, &v)?,
                None => DEFAULT_WORKER_CONCURRENCY,
            },
            alert_ca: match setting(keys::ALERT_CA_FILE) {
                Some((key, v)) => Some(load_ca_file(key, &v)?),
                None => None,
            },
            alert_allow: match setting(keys::ALERT_ALLOW_CIDR) {
                Some((key, v)) => parse_cidrs(key, &v)?,
                None => vec![],
            },
            auth: match setting(keys::AUTH) {
                Some((key, v)) => security::parse_auth(key, &v)?,
                None => AuthMode::None,
            },
            insecure_no_auth: match setting(keys::INSECURE_NO_AUTH) {
                Some((key, v)) => parse_bool(key, &v)?,
                None => false,
            },
            tls: security::tls_files(&setting)?,
            health_addr: parse_addr(keys::HEALTH_ADDR, get(keys::HEALTH_ADDR.env))?,
            max_concurrent_calls: security::limit(
                setting(keys::MAX_CONCURRENT_CALLS),
                security::DEFAULT_MAX_CONCURRENT_CALLS,
            )?,
            rate_limit_per_key: security::limit(
                setting(keys::RATE_LIMIT_PER_KEY),
                security::DEFAULT_RATE_LIMIT_PER_KEY,
            )?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            embedded: embedded_settings(&get),
        })
    }
}

/// A PEM file of CA certificates and what it holds.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    /// Each usable as a trust anchor; at least one.
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads a PEM bundle now, not at the first https:// alert: a file that
/// is missing, not PEM, empty of certificates or holding one that cannot
/// anchor trust stops the start with an error naming it.
pub fn load_ca_file(key: Key, value: &str) -> Result<CaFile, ConfigError> {
    let path = readable_file(key, value)?;
    let bad = |reason: String| ConfigError::BadFile {
        key,
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(&path).map_err(|source| ConfigError::Unreadable {
        key,
        path: path.clone(),
        source,
    })?;
    // Other PEM sections (a key, say) are skipped; certificates are kept.
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not a PEM file of certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (-----BEGIN CERTIFICATE-----)".into()
        ));
    }
    for (n, cert) in certs.iter().enumerate() {
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| bad(format!("certificate {} is not a usable CA: {e}", n + 1)))?;
    }
    Ok(CaFile { path, certs })
}

/// Where the embedded PostgreSQL lives and where its binaries are found:
/// TALLY_DATA_DIR and TALLY_PG_BIN, else the platform's defaults (XDG_DATA_HOME,
/// HOME, PATH, TMPDIR).
pub fn embedded_settings(get: &impl Fn(&str) -> Option<String>) -> embedded_pg::Settings {
    let path = |k: &str| get(k).map(PathBuf::from);
    let temp_dir = path("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"));
    let tally_dir = path(keys::DATA_DIR.env).unwrap_or_else(|| {
        embedded_pg::default_tally_dir(path("XDG_DATA_HOME"), path("HOME"), &temp_dir)
    });
    embedded_pg::Settings {
        tally_dir,
        pg_bin: path(keys::PG_BIN.env),
        search_path: get("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default(),
        temp_dir,
    }
}

/// [`embedded_settings`] from the process environment (the test harness's
/// throwaway servers).
pub fn embedded_settings_from_env() -> embedded_pg::Settings {
    embedded_settings(&|k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

const DEFAULT_WORKER_CONCURRENCY: usize = 2;

const SECONDS: &str = "is not a whole number of seconds";

fn invalid(key: Key, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        expected,
    }
}

fn parse_addr(key: Key, value: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    value
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| invalid(key, &v, "is not an address ip:port"))
        })
        .transpose()
}

/// Comma-separated address blocks ("127.0.0.0/8,fd00::/8").
fn parse_cidrs(key: Key, value: &str) -> Result<Vec<Cidr>, ConfigError> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| invalid(key, s, "is not an address block such as 10.1.0.0/16"))
        })
        .collect()
}

fn positive(key: Key, value: &str) -> Result<usize, ConfigError> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(key, value, "is not a positive number"))
}

pub fn parse_log_format(key: Key, value: &str) -> Result<LogFormat, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(key, value, "is not a log format (text or json)")),
    }
}

fn parse_bool(key: Key, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, "is not true or false")),
    }
}

/// The file must exist and be readable now, not at first use.
fn readable_file(key: Key, value: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(value);
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => Ok(path.to_path_buf()),
        Ok(_) => Err(invalid(key, value, "is not a regular file")),
        Err(source) => Err(ConfigError::Unreadable {
            key,
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::*;

    pub(crate) fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned())
    }

    pub(crate) fn error(vars: &[(&str, &str)]) -> String {
        config(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.grpc_addr.to_string(), DEFAULT_GRPC_ADDR);
        assert!(c.database_url.is_none());
        let c = Config::from_lookup(|k| match k {
            "TALLY_GRPC_ADDR" => Some("0.0.0.0:6000".into()),
            "DATABASE_URL" => Some("postgres://x@h/db".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.grpc_addr.port(), 6000);
        assert_eq!(c.database_url.as_deref(), Some("postgres://x@h/db"));
        assert!(
            Config::from_lookup(|k| (k == "TALLY_GRPC_ADDR").then(|| "nope".to_string())).is_err()
        );
    }

    #[test]
    fn every_default() {
        let c = config(&[("HOME", "/home/u"), ("TMPDIR", "/t")]).unwrap();
        assert_eq!(c.metrics_addr, None);
        assert_eq!(c.pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(c.shutdown_grace, Duration::from_secs(20));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.config_file, None);
        assert!(c.alert_ca.is_none());
        assert!(c.in_process_worker);
        assert_eq!(c.embedded.pg_bin, None);
        assert_eq!(c.embedded.temp_dir, PathBuf::from("/t"));
        if embedded_pg::sys::geteuid() != 0 {
            assert_eq!(
                c.embedded.tally_dir,
                PathBuf::from("/home/u/.local/share/tally")
            );
        }
    }

    #[test]
    fn every_setting_is_read() {
        let file = std::env::temp_dir().join(format!("tally-config-{}.toml", std::process::id()));
        std::fs::write(&file, "# contracts\n").unwrap();
        let c = config(&[
            ("TALLY_METRICS_ADDR", "0.0.0.0:9090"),
            ("TALLY_DATA_DIR", "/srv/tally"),
            ("TALLY_PG_BIN", "/opt/pg/bin"),
            ("TALLY_DB_POOL_SIZE", "4"),
            ("TALLY_SHUTDOWN_GRACE_SECS", "3"),
            ("TALLY_LOG_FORMAT", "JSON"),
            ("TALLY_CONFIG", file.to_str().unwrap()),
            ("TALLY_IN_PROCESS_WORKER", "false"),
            ("PATH", "/a/bin:/b/bin"),
        ])
        .unwrap();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(c.embedded.tally_dir, PathBuf::from("/srv/tally"));
        assert_eq!(c.embedded.data_dir(), PathBuf::from("/srv/tally/postgres"));
        assert_eq!(c.embedded.pg_bin, Some(PathBuf::from("/opt/pg/bin")));
        assert_eq!(
            c.embedded.search_path,
            vec![PathBuf::from("/a/bin"), PathBuf::from("/b/bin")]
        );
        assert_eq!(c.pool_size, 4);
        assert_eq!(c.shutdown_grace, Duration::from_secs(3));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.config_file, Some(file));
        assert!(!c.in_process_worker);
    }

    #[test]
    fn errors_name_the_flag_the_variable_and_the_value() {
        let cases: [(&str, &str, &str); 8] = [
            ("TALLY_GRPC_ADDR", "localhost", "--grpc-addr"),
            ("TALLY_METRICS_ADDR", "9090", "--metrics-addr"),
            ("TALLY_DB_POOL_SIZE", "0", "--pool-size"),
            ("TALLY_SHUTDOWN_GRACE_SECS", "-1", "--shutdown-grace-secs"),
            ("TALLY_LOG_FORMAT", "yaml", "--log-format"),
            ("TALLY_IN_PROCESS_WORKER", "maybe", "--in-process-worker"),
            ("TALLY_CONFIG", "/nonexistent/tally.toml", "--config"),
            (
                "TALLY_ALERT_CA_FILE",
                "/nonexistent/ca.pem",
                "--alert-ca-file",
            ),
        ];
        for (var, value, flag) in cases {
            let msg = error(&[(var, value)]);
            assert!(
                msg.contains(var) && msg.contains(flag) && msg.contains(value),
                "{msg}"
            );
        }
        // A directory is not a config file.
        let msg = error(&[("TALLY_CONFIG", "/")]);
        assert!(msg.contains("not a regular file"), "{msg}");
    }

    #[test]
    fn blank_values_count_as_unset() {
        let c = config(&[("DATABASE_URL", " "), ("TALLY_DB_POOL_SIZE", "")]).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.pool_size, DEFAULT_POOL_SIZE);
    }

    /// A CA bundle is read at start: a good one gives its certificates
    /// (other PEM sections skipped); each bad kind stops the start with an
    /// error naming the flag, the variable, the file and what is wrong.
    #[test]
    fn the_alert_ca_file_is_read_and_checked_at_start() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&key).unwrap().pem();
        let file = |name: &str, text: &str| {
            let path =
                std::env::temp_dir().join(format!("tally-ca-{}-{name}.pem", std::process::id()));
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };

        let good = file("good", &format!("{}{ca_pem}{ca_pem}", key.serialize_pem()));
        let c = config(&[("TALLY_ALERT_CA_FILE", &good)]).unwrap();
        let bundle = c.alert_ca.unwrap();
        assert_eq!(bundle.path, PathBuf::from(&good));
        assert_eq!(bundle.certs.len(), 2);

        let garbage_der =
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let cases = [
            (file("empty", "no PEM here\n"), "holds no certificate"),
            (
                file("key-only", &key.serialize_pem()),
                "holds no certificate",
            ),
            (
                file("broken", "-----BEGIN CERTIFICATE-----\n%%%\n"),
                "is not a PEM file of certificates",
            ),
            (
                file("not-a-ca", garbage_der),
                "certificate 1 is not a usable CA",
            ),
        ];
        for (path, expected) in &cases {
            let msg = error(&[("TALLY_ALERT_CA_FILE", path)]);
            std::fs::remove_file(path).unwrap();
            assert!(
                msg.contains(expected)
                    && msg.contains(path.as_str())
                    && msg.contains("--alert-ca-file")
                    && msg.contains("TALLY_ALERT_CA_FILE"),
                "{msg}"
            );
        }
        std::fs::remove_file(&good).unwrap();
        let msg = error(&[("TALLY_ALERT_CA_FILE", "/")]);
        assert!(msg.contains("not a regular file"), "{msg}");
    }
}
