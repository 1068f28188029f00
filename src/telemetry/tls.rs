//! TLS for OTLP over gRPC, from the standard variables: an `https://`
//! endpoint is verified against Mozilla's roots (compiled in, as for alert
//! webhooks) plus the CA file `OTEL_EXPORTER_OTLP_CERTIFICATE` names, and
//! presents a client certificate when `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`
//! and `OTEL_EXPORTER_OTLP_CLIENT_KEY` name one (mutual TLS). Each has a
//! per-signal form (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, ...) that wins.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// The TLS files named for one signal (`TRACES` or `METRICS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// (variable, path) of the CA bundle.
    pub ca: Option<(String, String)>,
    pub client_certificate: Option<(String, String)>,
    pub client_key: Option<(String, String)>,
}

impl TlsFiles {
    pub fn from_lookup(signal: &str, get: &impl Fn(&str) -> Option<String>) -> TlsFiles {
        let named = |suffix: &str| {
            [
                format!("OTEL_EXPORTER_OTLP_{signal}_{suffix}"),
                format!("OTEL_EXPORTER_OTLP_{suffix}"),
            ]
            .into_iter()
            .find_map(|var| {
                get(&var)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .map(|v| (var, v))
            })
        };
        TlsFiles {
            ca: named("CERTIFICATE"),
            client_certificate: named("CLIENT_CERTIFICATE"),
            client_key: named("CLIENT_KEY"),
        }
    }

    /// The channel's TLS for `endpoint`: None for `http://` (the files are
    /// then unused), else the roots, CA and identity. An error names the
    /// variable and the file.
    pub fn client_config(&self, endpoint: &str) -> Result<Option<ClientTlsConfig>, String> {
        if !endpoint
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("https://")
        {
            return Ok(None);
        }
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some((var, path)) = &self.ca {
            let pem = read_pem(var, path, "CERTIFICATE")?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        match (&self.client_certificate, &self.client_key) {
            (Some((cvar, cert)), Some((kvar, key))) => {
                let cert = read_pem(cvar, cert, "CERTIFICATE")?;
                let key = read_pem(kvar, key, "PRIVATE KEY")?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            (Some((var, _)), None) | (None, Some((var, _))) => {
                return Err(format!(
                    "{var} is set without its pair: a client certificate needs both \
                     OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
                ));
            }
        }
        Ok(Some(tls))
    }
}

/// The file's text, which must hold at least one PEM block of `kind`
/// (`CERTIFICATE`, or any `... PRIVATE KEY`).
fn read_pem(var: &str, path: &str, kind: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{var}={path}: {e}"))?;
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{kind}-----")));
    if !has_block {
        return Err(format!("{var}={path}: no PEM {kind} in the file"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn files(vars: &[(&str, &str)]) -> TlsFiles {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        TlsFiles::from_lookup("TRACES", &|k: &str| vars.get(k).map(|v| v.to_string()))
    }

    fn temp(name: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("tally-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn the_signals_own_variable_wins_and_blank_is_unset() {
        let f = files(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "  "),
        ]);
        assert_eq!(
            f.ca,
            Some((
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE".into(),
                "/traces.pem".into()
            ))
        );
        assert_eq!(f.client_key, None);
    }

    #[test]
    fn plain_http_needs_no_tls_and_https_gets_the_roots() {
        let f = files(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/does/not/exist.pem")]);
        assert!(f.client_config("http://c:4317").unwrap().is_none());
        assert!(
            files(&[])
                .client_config("https://c:4317")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_missing_or_wrong_file_is_named_with_its_variable() {
        let e = files(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", "/does/not/exist.pem")])
            .client_config("https://c:4317")
            .unwrap_err();
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE=/does/not/exist.pem"),
            "{e}"
        );
        let not_pem = temp("not-pem", "hello\n");
        let e = files(&[("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &not_pem)])
            .client_config("https://c:4317")
            .unwrap_err();
        assert!(e.contains("no PEM CERTIFICATE"), "{e}");
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE="),
            "{e}"
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let cert = temp(
            "cert",
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        );
        let e = files(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert)])
            .client_config("https://c:4317")
            .unwrap_err();
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set without"),
            "{e}"
        );
        let key = temp(
            "key",
            "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        );
        let both = files(&[
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
        ]);
        assert!(both.client_config("https://c:4317").unwrap().is_some());
    }
}
