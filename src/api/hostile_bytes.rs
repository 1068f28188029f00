//! Hostile bytes (issue 22): property tests that no validator, name
//! parser, page token, key or address check panics on arbitrary input, and
//! that what they accept keeps its promises (escaped ids round-trip, quoted
//! input is bounded). proptest's default 256 cases a property, so they run
//! in `cargo test` in well under a second each.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use prost::Message;

use super::auth::required_scope;
use super::names::{
    escape_id, parse_child, parse_exception, parse_parent, parse_transaction, unescape_id,
};
use super::pagination::decode;
use super::validate::text::{Text, check, shown};
use super::validate::{fields, record_at};
use crate::app::egress::{Cidr, Egress, internal};
use crate::domain::access::{PresentedKey, Scope};
use crate::domain::handoff::settings::is_webhook_uri;
use crate::error::FieldViolation;
use crate::proto::tally::v1 as pb;
use crate::storage::Cursor;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// Valid records to mutate: an order with a tender and a line, a payout.
fn seeds() -> Vec<Vec<u8>> {
    let money = |a: &str| {
        Some(pb::Money {
            currency_code: "USD".into(),
            amount: a.into(),
        })
    };
    let at = Some(prost_types::Timestamp {
        seconds: 1_790_000_000,
        nanos: 0,
    });
    let order = pb::Record {
        source_system: "shopify".into(),
        source_id: "1001".into(),
        order_id: "1001".into(),
        event_time: at,
        kind: Some(pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
            name: "#1001".into(),
            total: money("100.00"),
            line_items: vec![pb::LineItem {
                sku: "TEE".into(),
                quantity: 2,
                unit_price: money("50.00"),
                ..Default::default()
            }],
            tenders: vec![pb::Tender {
                r#type: pb::TenderType::Card as i32,
                gateway: "stripe".into(),
                amount: money("100.00"),
                processor_reference: "pi_1".into(),
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let payout = pb::Record {
        source_system: "stripe".into(),
        source_id: "po_1".into(),
        event_time: at,
        kind: Some(pb::record::Kind::Payout(pb::Payout {
            amount: money("96.80"),
            status: pb::PayoutStatus::Paid as i32,
            arrival_time: at,
        })),
        ..Default::default()
    };
    vec![order.encode_to_vec(), payout.encode_to_vec()]
}

/// Any string, mostly of the characters that matter to names and text.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9/%._~ -]{0,80}",
        "merchants/[a-z0-9-]{0,70}(/[a-zA-Z]{0,20}(/[^/]{0,40})?)?",
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #[test]
    fn names_never_panic_and_escaped_ids_round_trip(name in hostile(), id in any::<String>()) {
        let _ = parse_parent("parent", &name);
        let _ = parse_child("name", &name, "payouts");
        let _ = parse_transaction("name", &name);
        let _ = parse_exception("name", &name);
        let _ = unescape_id(&name);
        prop_assert_eq!(unescape_id(&escape_id(&id)), Some(id));
    }

    #[test]
    fn text_checks_never_panic_and_quote_briefly(value in hostile(), max in 0usize..300) {
        for kind in [Text::Id, Text::Prose] {
            let _ = check(&value, kind, max);
        }
        let _ = fields::id("f", &value, max);
        let _ = fields::required_id("f", &value, max);
        let _ = fields::prose("f", &value, max);
        let _ = fields::token("f", &value);
        let quoted = shown(&value);
        prop_assert!(quoted.chars().count() < 200, "{}", quoted);
        prop_assert!(!quoted.chars().any(char::is_control), "{}", quoted);
    }

    #[test]
    fn page_tokens_never_panic(token in hostile(), hex_payload in any::<String>()) {
        let _ = decode::<Cursor>(&token, "transactions|acme|()");
        let _ = decode::<String>(&hex::encode(hex_payload), "handoff_contracts|acme|()");
    }

    #[test]
    fn mutated_records_never_panic_the_validator(
        seed in 0usize..2,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        raw in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        for input in [bytes, raw] {
            if let Ok(r) = pb::Record::decode(&input[..]) {
                let mut out: Vec<FieldViolation> = vec![];
                let _ = record_at(3, &r, now(), &mut out);
            }
        }
    }

    #[test]
    fn keys_scopes_and_paths_never_panic(key in hostile(), path in hostile()) {
        let _ = PresentedKey::parse(&key);
        let _ = Scope::parse_list(&key);
        let _ = required_scope(&path);
    }

    #[test]
    fn webhook_and_address_checks_never_panic(uri in hostile(), block in hostile(), v6 in any::<u128>(), v4 in any::<u32>()) {
        let _ = is_webhook_uri(&uri);
        let _ = block.parse::<Cidr>();
        let everything = Egress::allowing(["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        for ip in [IpAddr::from(v6.to_be_bytes()), IpAddr::from(v4.to_be_bytes())] {
            let _ = internal(ip);
            // An internal address is refused unless allowed; anything is
            // allowed by the all-blocks list.
            prop_assert_eq!(Egress::public_only().vet(ip).is_err(), internal(ip).is_some());
            prop_assert!(everything.vet(ip).is_ok());
        }
    }
}
