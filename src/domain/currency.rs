//! ISO 4217 currencies and their minor-unit exponents.
//!
//! The table is the `iso_currency` crate's copy of the ISO 4217 maintenance agency's list.
//! Codes that are withdrawn (HRK, SLL, ZWL, ...) are left out so stale clients fail loudly
//! instead of booking money in a currency nobody settles any more. Precious metals, SDRs,
//! bond-market units and the testing codes (XAU, XAG, XPT, XPD, XDR, XBA..XBD, XSU, XUA, XTS,
//! XXX) have no minor unit and are never what a retailer is paid in, so they are rejected too.
//!
//! Where the crate's data (0.7.1) disagrees with ISO's List One as Tally accepted it before, the
//! two small tables below say so and keep the earlier behaviour.

use std::cell::Cell;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 4217 currency Tally accepts, with how many decimal places its minor unit has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
}

/// Codes the crate marks as superseded that are still legal tender and on ISO's List One:
/// BGN (the euro changeover is not complete for every counterparty), CUC (listed by ISO,
/// superseded by CUP only in the crate), VES (ISO lists VES beside VED; the crate calls it
/// superseded by VED).
const STILL_ACCEPTED: [&str; 3] = ["BGN", "CUC", "VES"];

/// Codes the crate does not carry at all. ANG was superseded by XCG in 2025 but is legal tender
/// until the 2026 changeover ends; iso_currency 0.7.1 dropped it already.
const MISSING_FROM_CRATE: [(&str, u32); 1] = [("ANG", 2)];

thread_local! {
    /// The last currency looked up on this thread: a file, a batch or a
    /// page of rows is nearly always in one currency, and the crate's
    /// lookup is a long chain of string comparisons (a few percent of a
    /// million-row audit).
    static LAST: Cell<Option<Currency>> = const { Cell::new(None) };
}

impl Currency {
    /// Looks up an uppercase three-letter code; None for anything else (lowercase is NOT accepted
    /// here: callers normalise first, on purpose, see `parse_lenient`).
    pub fn from_code(code: &str) -> Option<Currency> {
        if let Some(c) = LAST.with(Cell::get).filter(|c| c.code == code) {
            return Some(c);
        }
        let c = Currency::lookup(code)?;
        LAST.with(|last| last.set(Some(c)));
        Some(c)
    }

    fn lookup(code: &str) -> Option<Currency> {
        // Strictness lives here so stored and wire data stay canonical; the crate's lookup is
        // case-sensitive too.
        if let Some((code, exponent)) = MISSING_FROM_CRATE.into_iter().find(|(c, _)| *c == code) {
            return Some(Currency { code, exponent });
        }
        let iso = iso_currency::Currency::from_code(code)?;
        let withdrawn = iso.is_superseded().is_some() && !STILL_ACCEPTED.contains(&iso.code());
        // Special units (metals, SDR, XXX, XTS) have no exponent in the data.
        let exponent = iso.exponent().filter(|_| !iso.is_special() && !withdrawn)?;
        Some(Currency {
            code: iso.code(),
            exponent: u32::from(exponent),
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

    /// The smallest amount the currency has: 0.01 USD, 1 JPY, 0.001 KWD.
    pub fn minor_unit(&self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(1, self.exponent)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_codes_are_well_formed() {
        for code in [
            "USD", "EUR", "ANG", "BGN", "CUC", "VES", "XCG", "ZWG", "CHE", "BOV",
        ] {
            let c = Currency::from_code(code).unwrap_or_else(|| panic!("{code} refused"));
            assert_eq!(c.code(), code);
            assert!(c.exponent() <= 4, "{code} has exponent {}", c.exponent());
        }
        for withdrawn in ["HRK", "SLL", "ZWL"] {
            assert_eq!(Currency::from_code(withdrawn), None, "{withdrawn}");
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
