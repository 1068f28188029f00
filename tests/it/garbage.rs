//! Arbitrary field values, good and bad, in every record kind: the answer is
//! always a result or INVALID_ARGUMENT naming fields, never an internal
//! error, and what is refused is never stored.

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::record::Kind;

use crate::common::*;

/// Good values, and bad ones.
type Values = (&'static [&'static str], &'static [&'static str]);

const AMOUNTS: Values = (
    &["10.00", "0", "5.50", "100", "3.20", "1.5"],
    &[
        "-1.00",
        "1e3",
        "",
        "12.345",
        "1,0",
        "99999999999999999999999999999.99",
        " 5",
        "NaN",
    ],
);
const RATES: Values = (&["", "1", "0.9231"], &["0", "-1", "x"]);
const CURRENCIES: Values = (&["USD", "usd"], &["", "ZZZ", "US", "EURO", "JPY", "KWD"]);
const IDS: Values = (
    &["1001", "1002", "ch_1", "INV-1"],
    &["", "a/b", "x\u{7}y", "é"],
);
const SYSTEMS: Values = (
    &["shopify", "stripe", "netsuite"],
    &["", "Net Suite", "UPPER"],
);
const CATEGORIES: Values = (&["charge", "refund", "fee"], &["", "Fee", "a b"]);

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One time in this many a value is bad: a record has a dozen fields,
    /// and whole records must get through often enough to test the rest.
    const BAD: u64 = 25;

    fn bad(&mut self) -> bool {
        self.next().is_multiple_of(Self::BAD)
    }

    fn one(&mut self, xs: &[&'static str]) -> &'static str {
        xs[(self.next() % xs.len() as u64) as usize]
    }

    fn pick(&mut self, (good, bad): Values) -> &'static str {
        if self.bad() {
            self.one(bad)
        } else {
            self.one(good)
        }
    }

    /// An enum value; sometimes unset or out of range.
    fn variant(&mut self, max: u64) -> i32 {
        if self.bad() {
            (self.next() % (max + 3)) as i32
        } else {
            1 + (self.next() % max) as i32
        }
    }

    fn quantity(&mut self) -> i64 {
        if self.bad() {
            -((self.next() % 2) as i64)
        } else {
            1 + (self.next() % 3) as i64
        }
    }

    fn money(&mut self) -> Option<pb::Money> {
        if self.bad() {
            return None;
        }
        Some(pb::Money {
            currency_code: self.pick(CURRENCIES).into(),
            amount: self.pick(AMOUNTS).into(),
        })
    }
}

fn record(rng: &mut Rng, n: u64) -> pb::Record {
    let kind = match rng.next() % 10 {
        0 => Kind::StorefrontOrder(pb::StorefrontOrder {
            total: rng.money(),
            subtotal: rng.money(),
            tenders: vec![pb::Tender {
                r#type: rng.variant(5),
                amount: rng.money(),
                ..Default::default()
            }],
            line_items: vec![pb::LineItem {
                sku: "S".into(),
                quantity: rng.quantity(),
                unit_price: rng.money(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        1 => Kind::StorefrontTransaction(pb::StorefrontTransaction {
            kind: rng.variant(5),
            status: rng.variant(4),
            amount: rng.money(),
            processor_reference: rng.pick(IDS).into(),
            ..Default::default()
        }),
        2 => Kind::Fulfillment(pb::Fulfillment {
            lines: vec![pb::FulfillmentLine {
                sku: rng.pick(IDS).into(),
                quantity: rng.quantity(),
            }],
            ..Default::default()
        }),
        3 => Kind::Invoice(pb::Invoice {
            total: rng.money(),
            tax: rng.money(),
            ..Default::default()
        }),
        4 => Kind::CreditMemo(pb::CreditMemo {
            total: rng.money(),
            ..Default::default()
        }),
        5 => {
            // Balanced when the amounts are good, so journals get through.
            let amount = rng.pick(AMOUNTS);
            let (debit, credit) = if rng.bad() {
                (rng.pick(AMOUNTS), rng.pick(AMOUNTS))
            } else {
                (amount, amount)
            };
            Kind::JournalEntry(pb::JournalEntry {
                currency_code: rng.pick(CURRENCIES).into(),
                exchange_rate: rng.pick(RATES).into(),
                lines: vec![
                    pb::JournalLine {
                        account: "1190".into(),
                        debit: debit.into(),
                        reference: rng.pick(IDS).into(),
                        ..Default::default()
                    },
                    pb::JournalLine {
                        account: "1200".into(),
                        credit: credit.into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })
        }
        6 => Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: rng.variant(3),
            amount: rng.money(),
            fee: rng.money(),
            exchange_rate: rng.pick(RATES).into(),
            charge_id: rng.pick(IDS).into(),
            ..Default::default()
        }),
        7 => Kind::BalanceTransaction(pb::BalanceTransaction {
            reporting_category: rng.pick(CATEGORIES).into(),
            amount: rng.money(),
            fee: rng.money(),
            net: rng.money(),
            source: rng.pick(IDS).into(),
            ..Default::default()
        }),
        8 => Kind::Payout(pb::Payout {
            amount: rng.money(),
            status: rng.variant(5),
            ..Default::default()
        }),
        _ => Kind::BankDeposit(pb::BankDeposit {
            amount: rng.money(),
            ..Default::default()
        }),
    };
    pb::Record {
        source_id: format!("{}{n}", rng.pick(IDS)),
        source_system: rng.pick(SYSTEMS).into(),
        order_id: rng.pick(IDS).into(),
        references: vec![],
        event_time: match rng.next() % 40 {
            0 => None,
            1 => Some(prost_types::Timestamp {
                seconds: 1,
                nanos: -1,
            }),
            _ => Some(prost_types::Timestamp {
                seconds: 1_793_000_000 + (rng.next() % 1000) as i64,
                nanos: 0,
            }),
        },
        source_update_time: None,
        kind: Some(kind),
    }
}

#[tokio::test]
async fn arbitrary_records_get_a_result_or_named_fields_never_an_internal_error() {
    let app = TestApp::start().await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for n in 0..300 {
        let before = app.count("SELECT count(*) FROM record_log").await;
        match app.submit(vec![record(&mut rng, n)]).await {
            Ok(r) => {
                assert_eq!(r.results.len(), 1);
                accepted += 1;
            }
            Err(status) => {
                let fields = bad_fields(&status);
                assert!(
                    !fields.is_empty() && fields.iter().all(|f| f.starts_with("records[0]")),
                    "{fields:?}"
                );
                assert_eq!(
                    app.count("SELECT count(*) FROM record_log").await,
                    before,
                    "refused but stored"
                );
                refused += 1;
            }
        }
    }
    // The generator must exercise both paths to mean anything.
    assert!(
        accepted > 30 && refused > 30,
        "accepted {accepted}, refused {refused}"
    );
}
