//! The handoff sections of the configuration file (TOML), checked as a
//! whole so start-up fails with the file, line and key of the first
//! mistake:
//!
//! ```toml
//! [tolerance]              # every handoff, per currency
//! KWD = "0.001"
//!
//! [handoffs.order-to-fulfillment]
//! max_lag = "24h"          # s, m, h, d; combinable: "1h30m"
//! owner = "fulfillment-ops"
//! alert_webhook_uri = "http://127.0.0.1:9000/hooks/ops"
//! tolerance = { USD = "0.02" }
//!
//! [handoffs.payment-to-cash-application]
//! fx_rate_tolerance = "0.005"   # processor vs ERP rate, a fraction
//! ```
//!
//! Other sections (`[accounts]`, ...) belong to other features and are left
//! alone. Parsing text is pure; reading the file is the caller's.

use std::collections::BTreeMap;
use std::ops::Range;

use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::{ContractSettings, Defaults, parse_contract_id};
use crate::domain::currency::Currency;

/// A mistake in the configuration file, where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct SettingsError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    tolerance: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    handoffs: BTreeMap<Spanned<String>, Section>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    max_lag: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    alert_webhook_uri: Option<Spanned<String>>,
    #[serde(default)]
    tolerance: BTreeMap<Spanned<String>, Spanned<String>>,
    fx_rate_tolerance: Option<Spanned<String>>,
}

struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn line(&self, at: usize) -> usize {
        1 + self.text[..at.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
    }

    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> SettingsError {
        SettingsError {
            file: self.file.into(),
            line: self.line(span.start),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parses a duration such as "90s", "15m", "24h", "7d" or "1h30m".
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let mut total = chrono::Duration::zero();
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let part = match c {
            's' => chrono::Duration::try_seconds(n)?,
            'm' => chrono::Duration::try_minutes(n)?,
            'h' => chrono::Duration::try_hours(n)?,
            'd' => chrono::Duration::try_days(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
    }
    (digits.is_empty() && total > chrono::Duration::zero()).then_some(total)
}

fn tolerances(
    loc: &Locator<'_>,
    prefix: &str,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<Option<BTreeMap<Currency, Decimal>>, SettingsError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let mut out = BTreeMap::new();
    for (code, value) in raw {
        let key = format!("{prefix}.{}", code.get_ref());
        let currency = Currency::from_code(code.get_ref())
            .ok_or_else(|| loc.error(code.span(), &key, "not an ISO 4217 currency code"))?;
        let amount: Decimal = value
            .get_ref()
            .parse()
            .ok()
            .filter(|d: &Decimal| is_tolerance(*d))
            .ok_or_else(|| {
                loc.error(
                    value.span(),
                    &key,
                    "expected a decimal from 0 to 1000000 such as \"0.01\"",
                )
            })?;
        out.insert(currency, amount);
    }
    Ok(Some(out))
}

fn section(
    loc: &Locator<'_>,
    id: &Spanned<String>,
    s: &Section,
) -> Result<ContractSettings, SettingsError> {
    let prefix = format!("handoffs.{}", id.get_ref());
    let mut out = ContractSettings::default();
    if let Some(lag) = &s.max_lag {
        let d = parse_duration(lag.get_ref()).ok_or_else(|| {
            loc.error(
                lag.span(),
                &format!("{prefix}.max_lag"),
                "expected a duration such as \"24h\" or \"1h30m\"",
            )
        })?;
        out.max_lag_seconds = Some(d.num_seconds());
    }
    if let Some(owner) = &s.owner {
        if owner.get_ref().trim().is_empty() {
            return Err(loc.error(
                owner.span(),
                &format!("{prefix}.owner"),
                "must not be empty",
            ));
        }
        out.owner = Some(owner.get_ref().clone());
    }
    if let Some(uri) = &s.alert_webhook_uri {
        if !is_webhook_uri(uri.get_ref()) {
            return Err(loc.error(
                uri.span(),
                &format!("{prefix}.alert_webhook_uri"),
                "expected an http:// or https:// URI with a host",
            ));
        }
        out.alert_webhook_uri = Some(uri.get_ref().clone());
    }
    out.tolerances = tolerances(loc, &format!("{prefix}.tolerance"), &s.tolerance)?;
    if let Some(f) = &s.fx_rate_tolerance {
        let rate = f
            .get_ref()
            .parse::<Decimal>()
            .ok()
            .filter(|d| !d.is_sign_negative() && *d < Decimal::ONE)
            .ok_or_else(|| {
                loc.error(
                    f.span(),
                    &format!("{prefix}.fx_rate_tolerance"),
                    "expected a fraction from 0 to below 1 such as \"0.005\"",
                )
            })?;
        out.fx_rate_tolerance = Some(rate);
    }
    Ok(out)
}

/// Whether `s` is a URI an alert can be posted to ("" means none): at
/// most 2048 characters, no whitespace or control characters, http or
/// https, and a host to post to ("http://" alone has none).
pub fn is_webhook_uri(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if s.len() > 2048 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Ok(uri) = s.parse::<http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri
            .host()
            .is_some_and(|h| !h.trim_matches(['[', ']']).is_empty())
}

/// The largest amount tolerance a contract may set, in major units of its
/// currency: a million (USD 1,000,000; JPY 1,000,000). A tolerance is the
/// difference two figures may have and still agree; past this, every
/// amount check of the currency would be off in all but name (7.9e28 was
/// accepted once and turned them off).
pub const MAX_TOLERANCE_UNITS: i64 = 1_000_000;

/// Whether `d` is a tolerance a contract may set: 0 to `MAX_TOLERANCE_UNITS`.
pub fn is_tolerance(d: Decimal) -> bool {
    !d.is_sign_negative() && d <= Decimal::from(MAX_TOLERANCE_UNITS)
}

/// The contract defaults a configuration file sets. `file` names it in
/// errors.
pub fn parse(file: &str, text: &str) -> Result<Defaults, SettingsError> {
    let loc = Locator { file, text };
    let doc: Document = toml::from_str(text).map_err(|e| SettingsError {
        file: file.into(),
        line: e.span().map(|s| loc.line(s.start)).unwrap_or(1),
        key: "(file)".into(),
        message: e.message().to_string(),
    })?;
    let all = ContractSettings {
        tolerances: tolerances(&loc, "tolerance", &doc.tolerance)?,
        ..Default::default()
    };
    let mut defaults = Defaults::default();
    if all.tolerances.is_some() {
        for h in crate::domain::record::Handoff::ALL {
            defaults.per_handoff.insert(h, all.clone());
        }
    }
    for (id, s) in &doc.handoffs {
        let h = parse_contract_id(id.get_ref()).ok_or_else(|| {
            loc.error(
                id.span(),
                &format!("handoffs.{}", id.get_ref()),
                "unknown handoff; expected order-to-fulfillment, fulfillment-to-invoice, \
                 invoice-to-payment, payment-to-cash-application or reconciliation-to-reporting",
            )
        })?;
        let own = section(&loc, id, s)?;
        let merged = all.clone().overlay(&own);
        defaults.per_handoff.insert(h, merged);
    }
    Ok(defaults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::Handoff;

    const GOOD: &str = r#"
[accounts]
cash = "1000"

[tolerance]
KWD = "0.005"

[handoffs.order-to-fulfillment]
max_lag = "1h30m"
owner = "warehouse"
alert_webhook_uri = "http://127.0.0.1:9/hook"
tolerance = { USD = "0.02" }

[handoffs.payment-to-cash-application]
fx_rate_tolerance = "0.01"
"#;

    #[test]
    fn a_good_file_sets_the_defaults() {
        let d = parse("tally.toml", GOOD).unwrap();
        let c = d.contract(Handoff::OrderToFulfillment);
        assert_eq!(c.max_lag, chrono::Duration::minutes(90));
        assert_eq!(c.owner, "warehouse");
        assert_eq!(c.alert_webhook_uri, "http://127.0.0.1:9/hook");
        let usd = Currency::from_code("USD").unwrap();
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(c.tolerance.for_currency(usd), Decimal::new(2, 2));
        assert_eq!(c.tolerance.for_currency(kwd), Decimal::new(5, 3));
        // The global tolerance reaches every handoff; the rest stay built in.
        let other = d.contract(Handoff::InvoiceToPayment);
        assert_eq!(other.tolerance.for_currency(kwd), Decimal::new(5, 3));
        assert_eq!(other.tolerance.for_currency(usd), Decimal::new(1, 2));
        assert_eq!(other.owner, "payments");
        // The FX rate tolerance: set where given, built in elsewhere.
        let cash = d.contract(Handoff::PaymentToCashApplication);
        assert_eq!(cash.fx_rate_tolerance, Decimal::new(1, 2));
        assert_eq!(other.fx_rate_tolerance, Decimal::new(5, 3));
        let bad = "[handoffs.payment-to-cash-application]\nfx_rate_tolerance = \"2\"\n";
        let e = parse("tally.toml", bad).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_str()),
            (2, "handoffs.payment-to-cash-application.fx_rate_tolerance")
        );
    }

    #[test]
    fn an_empty_file_keeps_the_builtins() {
        let d = parse("t.toml", "").unwrap();
        assert_eq!(
            d.contract(Handoff::FulfillmentToInvoice),
            super::super::builtin(Handoff::FulfillmentToInvoice)
        );
    }

    fn err(text: &str) -> SettingsError {
        parse("tally.toml", text).unwrap_err()
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = err("\n[handoffs.order-to-fulfillment]\nmax_lag = \"soon\"\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "handoffs.order-to-fulfillment.max_lag")
        );
        assert!(
            e.to_string()
                .starts_with("tally.toml:3: handoffs.order-to-fulfillment.max_lag:"),
            "{e}"
        );

        let e = err("[tolerance]\nKWD = \"0.001\"\nXYZ = \"1\"\n");
        assert_eq!((e.line, e.key.as_str()), (3, "tolerance.XYZ"));

        let e = err("[tolerance]\nUSD = \"-1\"\n");
        assert_eq!((e.line, e.key.as_str()), (2, "tolerance.USD"));

        let e = err("[handoffs.order-to-shipping]\nowner = \"x\"\n");
        assert_eq!(e.key, "handoffs.order-to-shipping");

        let e = err("[handoffs.invoice-to-payment]\n\nalert_webhook_uri = \"ftp://x\"\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (3, "handoffs.invoice-to-payment.alert_webhook_uri")
        );

        // An unknown key and bad syntax are reported with their line.
        let e = err("[handoffs.invoice-to-payment]\nowner = \"a\"\nmax_lagg = \"1h\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("max_lagg"), "{e}");
        let e = err("a = 1\n[handoffs\n");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(chrono::Duration::seconds(90)));
        assert_eq!(parse_duration("2d"), Some(chrono::Duration::days(2)));
        for bad in ["", "0s", "5", "h", "5w", "-5m", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn webhooks_need_a_host_and_tolerances_a_bound() {
        for good in [
            "",
            "http://hooks.example/x",
            "https://[::1]:8443/a?b=c",
            "http://10.0.0.1",
        ] {
            assert!(is_webhook_uri(good), "{good}");
        }
        for bad in [
            "http://",
            "https://",
            "http:///path",
            "ftp://hooks.example",
            "hooks.example/x",
            "http://a b",
            "http://x\0",
            "http://x/\u{1b}[31m",
        ] {
            assert!(!is_webhook_uri(bad), "{bad}");
        }
        assert!(is_tolerance(Decimal::ZERO));
        assert!(is_tolerance(Decimal::from(MAX_TOLERANCE_UNITS)));
        assert!(!is_tolerance(
            Decimal::from(MAX_TOLERANCE_UNITS) + Decimal::new(1, 2)
        ));
        assert!(!is_tolerance(
            "79000000000000000000000000000".parse().unwrap()
        ));
        assert!(!is_tolerance(Decimal::new(-1, 2)));
        let e = parse(
            "f.toml",
            "[tolerance]\nUSD = \"79000000000000000000000000000\"\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "tolerance.USD"));
        let e = parse(
            "f.toml",
            "[handoffs.invoice-to-payment]\nalert_webhook_uri = \"http://\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
    }
}
