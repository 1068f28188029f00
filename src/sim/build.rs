//! Record builders: the proto shapes the simulator emits, in one place.

use crate::proto::tally::v1 as pb;
use pb::record::Kind;

/// The first instant of the simulated month, 2026-11-01T00:00:00Z: fixed,
/// so a seed gives the same bytes on any day (and every time lies in the
/// window the API accepts).
pub const MONTH_START: i64 = 1_793_491_200;
pub const DAY: i64 = 86_400;

/// Minor units to a decimal string: 1234 -> "12.34" (two decimals: every
/// currency the simulator uses has them).
pub fn major(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

pub fn money(currency: &str, cents: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: currency.into(),
        amount: major(cents),
    })
}

/// Seconds into the month as a timestamp.
pub fn ts(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: MONTH_START.saturating_add(secs),
        nanos: 0,
    })
}

pub fn record(system: &str, id: &str, order: &str, at: i64, kind: Kind) -> pb::Record {
    pb::Record {
        source_id: id.into(),
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(at),
        source_update_time: None,
        kind: Some(kind),
    }
}

pub fn reference(t: pb::ReferenceType, id: &str) -> pb::ExternalReference {
    pb::ExternalReference {
        r#type: t as i32,
        id: id.into(),
    }
}

pub fn journal_line(account: &str, debit: i64, credit: i64, reference: &str) -> pb::JournalLine {
    let amount = |c: i64| if c > 0 { major(c) } else { String::new() };
    pb::JournalLine {
        account: account.into(),
        debit: amount(debit),
        credit: amount(credit),
        reference: reference.into(),
        ..Default::default()
    }
}

/// `amount` x `rate` (a rate in ten-thousandths), rounded half away from
/// zero to the cent: how the processor settles a presentment amount.
pub fn convert(amount: i64, rate_e4: i64) -> Option<i64> {
    let scaled = amount.checked_mul(rate_e4)?;
    let half = if scaled < 0 { -5_000 } else { 5_000 };
    scaled.checked_add(half)?.checked_div(10_000)
}

pub fn rate_str(rate_e4: i64) -> String {
    format!("{}.{:04}", rate_e4 / 10_000, rate_e4 % 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_rates_print_as_the_api_reads_them() {
        assert_eq!(major(1234), "12.34");
        assert_eq!(major(-5), "-0.05");
        assert_eq!(convert(10_000, 10_812), Some(10_812));
        assert_eq!(convert(999, 10_815), Some(1_080));
        assert_eq!(rate_str(10_812), "1.0812");
        // 2026-11-01T00:00:00Z
        assert_eq!(
            chrono::DateTime::from_timestamp(MONTH_START, 0).map(|t| t.to_rfc3339()),
            Some("2026-11-01T00:00:00+00:00".into())
        );
    }
}
