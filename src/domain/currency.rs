//! ISO 4217 currencies and their minor-unit exponents.
//!
//! The table is the ISO 4217 maintenance agency's current list (List One). Codes that are
//! withdrawn (HRK, SLL, ZWL, ...) are left out so stale clients fail loudly instead of booking
//! money in a currency nobody settles any more. Precious metals, SDRs, bond-market units and the
//! testing codes (XAU, XAG, XPT, XPD, XDR, XBA..XBD, XSU, XUA, XTS, XXX) have no minor unit and
//! are never what a retailer is paid in, so they are rejected too.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 4217 currency Tally accepts, with how many decimal places its minor unit has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

impl Currency {
    /// Looks up an uppercase three-letter code; None for anything else (lowercase is NOT accepted
    /// here: callers normalise first, on purpose, see `parse_lenient`).
    pub fn from_code(code: &str) -> Option<Currency> {
        // Strictness lives here so stored and wire data stay canonical; binary search is
        // byte-wise, which matches the uppercase-ASCII ordering the table is checked to have.
        CURRENCIES
            .binary_search_by(|(c, _)| (*c).cmp(code))
            .ok()
            .map(|i| {
                let (code, exponent) = CURRENCIES[i];
                Currency { code, exponent }
            })
    }

    /// Accepts any ASCII case (Stripe sends "usd"), trims nothing.
    pub fn parse_lenient(code: &str) -> Option<Currency> {
        // Anything that is not three bytes cannot be a code; bailing early also keeps the
        // uppercase copy on the stack.
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        let upper = bytes.map(|b| b.to_ascii_uppercase());
        Currency::from_code(std::str::from_utf8(&upper).ok()?)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point of the minor unit (JPY 0, USD 2, KWD 3).
    pub fn exponent(&self) -> u32 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Strict on purpose: serialized data is ours and therefore already canonical.
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom("unknown ISO 4217 currency code"))
    }
}

/// Must stay strictly sorted by code: `from_code` binary-searches it (a test enforces this).
static CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    // Superseded by XCG in 2025 but legal tender until the 2026 changeover ends.
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BOV", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHE", 2),
    ("CHF", 2),
    ("CHW", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("COU", 2),
    ("CRC", 2),
    ("CUC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MXV", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("USN", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VED", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XCG", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_well_formed() {
        for pair in CURRENCIES.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{} must sort before {}",
                pair[0].0,
                pair[1].0
            );
        }
        for (code, exponent) in CURRENCIES {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "bad code {code:?}"
            );
            assert!(*exponent <= 4, "{code} has exponent {exponent}");
        }
    }

    #[test]
    fn known_exponents() {
        let exp = |c| Currency::from_code(c).map(|c| c.exponent());
        assert_eq!(exp("USD"), Some(2));
        assert_eq!(exp("JPY"), Some(0));
        assert_eq!(exp("KWD"), Some(3));
        assert_eq!(exp("CLF"), Some(4));
    }

    #[test]
    fn case_handling() {
        assert_eq!(Currency::from_code("usd"), None);
        assert_eq!(Currency::from_code("Usd"), None);
        assert_eq!(Currency::parse_lenient("usd"), Currency::from_code("USD"));
        assert_eq!(Currency::parse_lenient("uSd").unwrap().code(), "USD");
        assert_eq!(Currency::parse_lenient(" usd"), None);
    }

    #[test]
    fn rejects_non_codes() {
        for bad in ["US", "USDX", "", "XXX", "ABC", "XAU", "HRK", "U\u{e9}"] {
            assert_eq!(Currency::from_code(bad), None, "{bad:?}");
            assert_eq!(Currency::parse_lenient(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn display_is_the_code() {
        assert_eq!(Currency::from_code("EUR").unwrap().to_string(), "EUR");
    }

    #[test]
    fn serde_round_trip() {
        let jpy = Currency::from_code("JPY").unwrap();
        let json = serde_json::to_string(&jpy).unwrap();
        assert_eq!(json, "\"JPY\"");
        assert_eq!(serde_json::from_str::<Currency>(&json).unwrap(), jpy);

        let err = serde_json::from_str::<Currency>("\"jpy\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown ISO 4217 currency code"),
            "{err}"
        );
    }
}
