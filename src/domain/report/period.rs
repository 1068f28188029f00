//! A reporting period: a month, a day, or explicit bounds of event time,
//! in a reporting time zone. Facts are bucketed by 15 minutes of event
//! time (`BUCKET_MINUTES`), so a period's bounds must fall on a bucket
//! edge: every zone in use today is offset by a multiple of 15 minutes.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

pub const BUCKET_MINUTES: i64 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// "2026-10", "2026-10-05", or "START/END" (RFC 3339) for explicit bounds.
    pub label: String,
    pub zone: Tz,
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Exclusive.
    pub end: DateTime<Utc>,
}

/// Why a period cannot be reported on, for the caller's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError {
    pub field: &'static str,
    pub why: String,
}

fn err(field: &'static str, why: impl Into<String>) -> PeriodError {
    PeriodError {
        field,
        why: why.into(),
    }
}

/// The zone by IANA name; "" is UTC.
pub fn zone(name: &str) -> Result<Tz, PeriodError> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        err(
            "time_zone",
            format!("{name:?} is not an IANA time zone (e.g. Europe/Berlin)"),
        )
    })
}

fn local_midnight(
    zone: Tz,
    day: NaiveDate,
    field: &'static str,
) -> Result<DateTime<Utc>, PeriodError> {
    // A zone whose clocks skip midnight starts the day at its first instant.
    let naive: NaiveDateTime = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| err(field, format!("{day} has no midnight in {zone}")))
}

impl Period {
    /// "YYYY-MM" (a month) or "YYYY-MM-DD" (a day) in `zone`.
    pub fn named(label: &str, zone: Tz) -> Result<Period, PeriodError> {
        let (first, next) = if let Ok(day) = NaiveDate::parse_from_str(label, "%Y-%m-%d") {
            (
                day,
                day.succ_opt()
                    .ok_or_else(|| err("period", "out of range"))?,
            )
        } else if let Ok(day) = NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d") {
            let next = if day.month() == 12 {
                NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
            };
            (day, next.ok_or_else(|| err("period", "out of range"))?)
        } else {
            return Err(err(
                "period",
                format!("{label:?} is neither a month (2026-10) nor a day (2026-10-05)"),
            ));
        };
        Period::checked(
            label.to_string(),
            zone,
            local_midnight(zone, first, "period")?,
            local_midnight(zone, next, "period")?,
        )
    }

    /// Explicit [start, end).
    pub fn between(
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        zone: Tz,
    ) -> Result<Period, PeriodError> {
        let label = format!("{}/{}", start.to_rfc3339(), end.to_rfc3339());
        Period::checked(label, zone, start, end)
    }

    fn checked(
        label: String,
        zone: Tz,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Period, PeriodError> {
        if end <= start {
            return Err(err("end_time", "the period must end after it starts"));
        }
        for (field, t) in [("start_time", start), ("end_time", end)] {
            if !on_bucket_edge(t) {
                return Err(err(
                    field,
                    format!(
                        "{} is not on a {BUCKET_MINUTES}-minute boundary",
                        t.to_rfc3339()
                    ),
                ));
            }
        }
        if end - start > Duration::days(366) {
            return Err(err("end_time", "a period is at most 366 days"));
        }
        Ok(Period {
            label,
            zone,
            start,
            end,
        })
    }

    /// The last effective date (exclusive) of Tally's ledger in the period:
    /// the local date the period ends on.
    pub fn ledger_end_date(&self) -> NaiveDate {
        self.end.with_timezone(&self.zone).date_naive()
    }
}

fn on_bucket_edge(t: DateTime<Utc>) -> bool {
    t.second() == 0 && t.nanosecond() == 0 && (t.minute() as i64) % BUCKET_MINUTES == 0
}

/// The bucket an event time falls in (as SQL's report_bucket()).
pub fn bucket(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let size = BUCKET_MINUTES * 60;
    let floor = secs - secs.rem_euclid(size);
    DateTime::from_timestamp(floor, 0).expect("a bucket of a valid time is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_in_a_zone_starts_and_ends_at_local_midnight() {
        let p = Period::named("2026-10", zone("Europe/Berlin").unwrap()).unwrap();
        assert_eq!(p.start.to_rfc3339(), "2026-09-30T22:00:00+00:00");
        // Berlin leaves summer time on 25 October.
        assert_eq!(p.end.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert_eq!(p.ledger_end_date().to_string(), "2026-11-01");
        let utc = Period::named("2026-12", zone("").unwrap()).unwrap();
        assert_eq!(utc.end.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }

    #[test]
    fn a_day_in_a_half_hour_zone_is_whole_buckets() {
        let p = Period::named("2026-10-05", zone("Asia/Kolkata").unwrap()).unwrap();
        assert_eq!(p.start.to_rfc3339(), "2026-10-04T18:30:00+00:00");
        assert_eq!(p.end - p.start, Duration::days(1));
    }

    #[test]
    fn bad_periods_name_their_field() {
        assert_eq!(zone("Mars/Olympus").unwrap_err().field, "time_zone");
        assert_eq!(
            Period::named("October", Tz::UTC).unwrap_err().field,
            "period"
        );
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let e = Period::between(
            t("2026-10-01T00:07:00Z"),
            t("2026-10-02T00:00:00Z"),
            Tz::UTC,
        );
        assert_eq!(e.unwrap_err().field, "start_time");
        let e = Period::between(
            t("2026-10-02T00:00:00Z"),
            t("2026-10-01T00:00:00Z"),
            Tz::UTC,
        );
        assert_eq!(e.unwrap_err().field, "end_time");
    }

    #[test]
    fn buckets_floor_to_fifteen_minutes() {
        let t = DateTime::parse_from_rfc3339("2026-10-05T10:44:59.9Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(bucket(t).to_rfc3339(), "2026-10-05T10:30:00+00:00");
        let neg = DateTime::parse_from_rfc3339("1969-12-31T23:59:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(bucket(neg).to_rfc3339(), "1969-12-31T23:45:00+00:00");
    }
}
