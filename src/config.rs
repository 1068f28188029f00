//! Configuration from the environment, read through a lookup function so
//! tests never touch the process environment.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};

pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";

#[derive(Debug, Clone)]
pub struct Config {
    /// None: run an embedded PostgreSQL that Tally owns.
    pub database_url: Option<String>,
    pub grpc_addr: SocketAddr,
    pub pool_size: usize,
    /// How often health re-checks the database.
    pub health_interval: Duration,
    /// How long in-flight calls may finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let addr = |k: &str, v: String| -> Result<SocketAddr> {
            v.parse()
                .map_err(|_| Error::Configuration(format!("{k}='{v}' is not host:port")))
        };
        let grpc_addr = addr(
            "TALLY_GRPC_ADDR",
            non_empty("TALLY_GRPC_ADDR").unwrap_or(DEFAULT_GRPC_ADDR.into()),
        )?;
        let pool_size = match non_empty("TALLY_DB_POOL_SIZE") {
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::Configuration(format!("TALLY_DB_POOL_SIZE='{v}' is not a positive number"))
            })?,
            None => 16,
        };
        let shutdown_grace = match non_empty("TALLY_SHUTDOWN_GRACE_SECS") {
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                Error::Configuration(format!(
                    "TALLY_SHUTDOWN_GRACE_SECS='{v}' is not a number of seconds"
                ))
            })?),
            None => Duration::from_secs(20),
        };
        Ok(Config {
            database_url: non_empty("DATABASE_URL"),
            grpc_addr,
            pool_size,
            health_interval: Duration::from_secs(2),
            shutdown_grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
