//! The bounds `check` enforces, at their edges, against a fixed clock.

use chrono::{DateTime, Utc};

use super::record_at;
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn payout(event: i64, arrival: i64, amount: &str) -> pb::Record {
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    pb::Record {
        source_id: "po_1".into(),
        source_system: "stripe".into(),
        event_time: at(event),
        kind: Some(pb::record::Kind::Payout(pb::Payout {
            amount: Some(pb::Money {
                currency_code: "USD".into(),
                amount: amount.into(),
            }),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: at(arrival),
        })),
        ..Default::default()
    }
}

fn fields(r: &pb::Record) -> Vec<String> {
    let mut out: Vec<FieldViolation> = vec![];
    record_at(0, r, now(), &mut out);
    out.into_iter().map(|v| v.field).collect()
}

#[test]
fn time_windows_hold_at_their_edges() {
    let t = now().timestamp();
    let day = 86_400;
    let start_2000 = 946_684_800;
    assert!(fields(&payout(start_2000, start_2000, "1")).is_empty());
    assert!(fields(&payout(t + day, t + 366 * day, "1")).is_empty());
    assert_eq!(
        fields(&payout(start_2000 - 1, t, "1")),
        vec!["records[0].event_time"]
    );
    assert_eq!(
        fields(&payout(t + day + 1, t, "1")),
        vec!["records[0].event_time"]
    );
    assert_eq!(
        fields(&payout(t, t + 366 * day + 1, "1")),
        vec!["records[0].payout.arrival_time"]
    );
}

#[test]
fn amounts_hold_below_ten_to_the_eighteenth() {
    let t = now().timestamp();
    assert!(fields(&payout(t, t, "-999999999999999999.99")).is_empty());
    for too_large in ["1000000000000000000", "-1000000000000000000.00"] {
        assert_eq!(
            fields(&payout(t, t, too_large)),
            vec!["records[0].payout.amount.amount"],
            "{too_large}"
        );
    }
}
