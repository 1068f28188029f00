//! The packed form gives back exactly the record packed, and bytes that
//! are not a packed record never panic.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::{pack, unpack};
use crate::domain::record::{Body, Record, RefKind, Reference};
use crate::domain::testkit::every_kind;
use crate::import::generate::month;
use crate::import::{FileReader, Item, Options};

fn round_trip(records: &[Record]) -> Vec<Record> {
    let mut buf = vec![];
    for r in records {
        pack(r, &mut buf);
    }
    let mut rest = buf.as_slice();
    let mut out = vec![];
    while !rest.is_empty() {
        out.push(unpack(&mut rest).expect("a packed record unpacks"));
    }
    out
}

#[test]
fn every_kind_comes_back_as_it_was() {
    let records = every_kind();
    assert!(records.len() >= 10);
    assert_eq!(round_trip(&records), records);
}

#[test]
fn a_generated_month_comes_back_as_it_was() {
    let dir = crate::import::audit_tests::scratch("compact");
    let m = month(&dir, 500).unwrap();
    for path in [&m.storefront, &m.processor, &m.ledger] {
        let records: Vec<Record> = FileReader::open(path, &Options::default())
            .unwrap()
            .filter_map(|i| match i {
                Item::Record(p) => Some(p.record),
                Item::Error(_) => None,
            })
            .collect();
        assert!(records.len() >= 400, "{}", path.display());
        assert_eq!(round_trip(&records), records, "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Equal decimals can differ in scale ("1.0" and "1.00") and in the sign
/// of a zero; both show in summaries, so both must survive.
fn same_bits(a: &Record, b: &Record) -> bool {
    let journal = |r: &Record| match &r.body {
        Body::JournalEntry(j) => j
            .lines
            .iter()
            .flat_map(|l| [l.debit.serialize(), l.credit.serialize()])
            .chain(j.exchange_rate.map(|d| d.serialize()))
            .collect::<Vec<_>>(),
        _ => vec![],
    };
    journal(a) == journal(b)
}

fn decimal() -> impl Strategy<Value = Decimal> {
    (any::<i64>(), 0u32..=28, any::<bool>()).prop_map(|(m, scale, neg_zero)| {
        let d = Decimal::new(m, scale);
        if m == 0 && neg_zero { -d } else { d }
    })
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_000_000_000i64..250_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or_default())
}

proptest! {
    #[test]
    fn records_with_arbitrary_fields_come_back_as_they_were(
        id in "\\PC{0,40}",
        order in proptest::option::of("[a-z0-9#]{0,12}"),
        refs in proptest::collection::vec((0usize..11, "\\PC{0,12}"), 0..4),
        when in time(),
        updated in proptest::option::of(time()),
        amounts in proptest::collection::vec(decimal(), 3),
    ) {
        let mut records = every_kind();
        for r in &mut records {
            r.source_id = id.clone();
            r.order_id = order.clone();
            r.references = refs
                .iter()
                .map(|(k, id)| Reference { kind: KINDS[*k], id: id.clone() })
                .collect();
            r.event_time = when;
            r.source_update_time = updated;
            if let Body::JournalEntry(j) = &mut r.body {
                j.exchange_rate = Some(amounts[0]);
                for l in &mut j.lines {
                    (l.debit, l.credit) = (amounts[1], amounts[2]);
                }
            }
        }
        let back = round_trip(&records);
        prop_assert_eq!(&back, &records);
        prop_assert!(back.iter().zip(&records).all(|(a, b)| same_bits(a, b)));
    }

    #[test]
    fn bytes_that_are_no_record_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let before = rest.len();
            if unpack(&mut rest).is_none() || rest.len() == before {
                break;
            }
        }
    }

    #[test]
    fn a_cut_or_flipped_record_is_refused_or_read_never_a_panic(
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let mut buf = vec![];
        for r in every_kind() {
            pack(&r, &mut buf);
        }
        let mut bytes = buf[..cut.index(buf.len())].to_vec();
        if !bytes.is_empty() {
            let i = flip.index(bytes.len());
            bytes[i] = to;
        }
        let mut rest = bytes.as_slice();
        while !rest.is_empty() && unpack(&mut rest).is_some() {}
    }
}

const KINDS: [RefKind; 11] = [
    RefKind::Order,
    RefKind::PaymentIntent,
    RefKind::Charge,
    RefKind::Refund,
    RefKind::BalanceTransaction,
    RefKind::Payout,
    RefKind::Fulfillment,
    RefKind::Invoice,
    RefKind::CreditMemo,
    RefKind::JournalEntry,
    RefKind::BankDeposit,
];
