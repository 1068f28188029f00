//! The hostile input `fuzz.rs` sends: a small deterministic generator of
//! records of every kind with every field drawn from hostile strings,
//! extreme numbers, dates and quantities.

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::record::Kind;

/// xorshift64: small, deterministic.
pub(crate) struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

/// How often a field is hostile: a record has about ten fields, and whole
/// records must get through often enough for acceptance to be tested too.
const HOSTILE: u64 = 12;

fn hostile_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        "\0",
        "a\0b",
        "\u{1}",
        "\u{7}",
        "\u{1B}[31mred",
        "\u{7F}",
        "\u{85}",
        "\u{9F}",
        "\t",
        "\n",
        "\r\n",
        "   ",
        "\u{A0}",
        "\u{3000}",
        "\u{2028}",
        "\u{200B}",
        "INV\u{200B}1",
        "x\u{200C}y",
        "x\u{200D}y",
        "\u{200E}1",
        "\u{200F}",
        "\u{202A}x",
        "abc\u{202E}fdp.exe",
        "\u{2060}",
        "\u{2064}",
        "\u{2066}x\u{2069}",
        "\u{FEFF}",
        "\u{FEFF}INV-1",
        "\u{00AD}",
        "\u{061C}",
        "\u{FE0F}",
        "\u{E0041}",
        "\u{FFFF}",
        "\u{10FFFF}",
        "\u{FDD0}",
        "é",
        "e\u{301}",
        "注文",
        "🙂",
        "👨\u{200D}👩\u{200D}👧",
        "Ω",
        "İ",
        "ß",
        "ﬁ",
        "\u{1F600}\u{1F600}",
        "\u{0300}\u{0301}\u{0302}",
        "' OR 1=1 --",
        "Robert'); DROP TABLE record_log;--",
        "%s%n%x",
        "${jndi:ldap://x/a}",
        "\\",
        "\"",
        "../..",
        "..",
        ".",
        "NULL",
        "null",
        "-",
        " lead",
        "trail ",
        "a/b",
        "Upper",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (c, n) in [
        ('x', 63),
        ('x', 64),
        ('i', 255),
        ('i', 256),
        ('m', 1024),
        ('m', 1025),
    ] {
        v.push(c.to_string().repeat(n));
    }
    v.push("é".repeat(256));
    v.push("z".repeat(100_000));
    v.push(format!("{}\0", "n".repeat(300)));
    v
}

const AMOUNTS_GOOD: &[&str] = &[
    "0",
    "1",
    "10.00",
    "5.5",
    "100",
    "0.01",
    "999999999999999999.99",
];
const AMOUNTS_HOSTILE: &[&str] = &[
    "",
    "-0",
    "-0.00",
    "0.000",
    "-1.00",
    "1000000000000000000",
    "9999999999999999999999999999",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "-79228162514264337593543950335",
    "0.0000000000000000000000000001",
    "0.00000000000000000000000000001",
    "00000000000000000000000000000000000000000001",
    "1.000000000000000000000000000000",
    "1e3",
    "1E3",
    "1.5e-2",
    "+1",
    "١٢٣",
    "１２３",
    " 1",
    "1 ",
    "1_000",
    "1,000",
    "0x10",
    "NaN",
    "Infinity",
    "-",
    ".",
    "1.",
    ".5",
    "1.2.3",
    "--1",
    "\0",
    "1\0",
    "12.345",
    "1.001",
];
const RATES: &[&str] = &[
    "",
    "1",
    "0.9231",
    "1.0",
    "0",
    "-1",
    "999999999",
    "1000000000",
    "1e9",
    "0.0000000000000000000000000001",
    "9999999999999999999999999999",
    "x",
    "\u{200B}1",
];
const CURRENCIES: &[&str] = &[
    "USD",
    "usd",
    "EUR",
    "JPY",
    "KWD",
    "",
    "ZZZ",
    "US",
    "USDD",
    "\0SD",
    "ＵＳＤ",
    "XAU",
    "XXX",
    "uSd",
];
const QUANTITIES: &[i64] = &[
    0,
    -1,
    i64::MIN,
    i64::MAX,
    i64::MAX / 2,
    1_000_000_000,
    1_000_000_001,
    4_294_967_296,
];

pub(crate) struct Gen {
    pub(crate) rng: Rng,
    strings: Vec<String>,
    now: i64,
}

impl Gen {
    fn text(&mut self, good: &[&str]) -> String {
        if self.rng.one_in(HOSTILE) {
            self.rng.pick(&self.strings)
        } else {
            self.rng.pick(good).to_string()
        }
    }

    fn amount(&mut self) -> String {
        if self.rng.one_in(HOSTILE) {
            self.rng.pick(AMOUNTS_HOSTILE).to_string()
        } else {
            self.rng.pick(AMOUNTS_GOOD).to_string()
        }
    }

    fn money(&mut self) -> Option<pb::Money> {
        if self.rng.one_in(HOSTILE * 2) {
            return None;
        }
        let currency = if self.rng.one_in(HOSTILE) {
            self.rng.pick(CURRENCIES)
        } else {
            "USD"
        };
        Some(pb::Money {
            currency_code: currency.into(),
            amount: self.amount(),
        })
    }

    fn rate(&mut self) -> String {
        if self.rng.one_in(HOSTILE) {
            self.rng.pick(RATES).to_string()
        } else {
            String::new()
        }
    }

    fn time(&mut self) -> Option<prost_types::Timestamp> {
        let at = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
        if !self.rng.one_in(HOSTILE) {
            return at(1_793_000_000 + self.rng.below(100_000) as i64, 0);
        }
        let day = 86_400;
        self.rng.pick(&[
            None,
            at(-62_135_596_800, 0),
            at(0, 0),
            at(946_684_799, 0),
            at(946_684_800, 0),
            at(self.now + 2 * day, 0),
            at(self.now + 400 * day, 0),
            at(253_402_300_799, 999_999_999),
            at(253_402_300_800, 0),
            at(1_793_000_000, -1),
            at(1_793_000_000, 1_000_000_000),
            at(i64::MIN, 0),
            at(i64::MAX, i32::MAX),
        ])
    }

    fn quantity(&mut self) -> i64 {
        if self.rng.one_in(HOSTILE) {
            self.rng.pick(QUANTITIES)
        } else {
            1 + self.rng.below(5) as i64
        }
    }

    /// An enum value: defined, or sometimes unset, unknown or negative.
    fn variant(&mut self, max: i32) -> i32 {
        if self.rng.one_in(HOSTILE) {
            self.rng.pick(&[0, -1, max + 1, i32::MAX, i32::MIN])
        } else {
            1 + self.rng.below(max as usize) as i32
        }
    }

    fn id(&mut self) -> String {
        self.text(&[
            "1001", "ch_1", "pi_1", "INV-1", "txn_1", "po_1", "F-1", "TEE",
        ])
    }

    fn many<T>(&mut self, f: impl Fn(&mut Self) -> T) -> Vec<T> {
        // Usually a few; now and then past the bound.
        let n = if self.rng.one_in(HOSTILE * 8) {
            1001
        } else {
            self.rng.below(4)
        };
        (0..n).map(|_| f(self)).collect()
    }

    fn kind(&mut self) -> Kind {
        match self.rng.below(10) {
            0 => Kind::StorefrontOrder(pb::StorefrontOrder {
                name: self.text(&["#1001", "Bestellung 7"]),
                total: self.money(),
                subtotal: self.money(),
                total_discount: self.money(),
                total_tax: self.money(),
                total_shipping: self.money(),
                line_items: self.many(|g| pb::LineItem {
                    sku: g.id(),
                    quantity: g.quantity(),
                    unit_price: g.money(),
                    discount: g.money(),
                    tax: g.money(),
                }),
                discounts: self.many(|g| pb::Discount {
                    code: g.text(&["", "SUMMER10"]),
                    amount: g.money(),
                }),
                tenders: self.many(|g| pb::Tender {
                    r#type: g.variant(5),
                    gateway: g.text(&["stripe", "gift_card"]),
                    amount: g.money(),
                    processor_reference: g.id(),
                }),
            }),
            1 => Kind::StorefrontTransaction(pb::StorefrontTransaction {
                kind: self.variant(5),
                status: self.variant(4),
                gateway: self.text(&["shopify_payments"]),
                amount: self.money(),
                parent_id: self.id(),
                processor_reference: self.id(),
            }),
            2 => Kind::Fulfillment(pb::Fulfillment {
                lines: self.many(|g| pb::FulfillmentLine {
                    sku: g.id(),
                    quantity: g.quantity(),
                }),
                tracking_number: self.text(&["1Z999", ""]),
                location: self.text(&["Reno, NV", ""]),
            }),
            3 => Kind::Invoice(pb::Invoice {
                total: self.money(),
                discount: self.money(),
                tax: self.money(),
                shipping: self.money(),
                lines: self.many(Self::invoice_line),
            }),
            4 => Kind::CreditMemo(pb::CreditMemo {
                total: self.money(),
                tax: self.money(),
                lines: self.many(Self::invoice_line),
                shipping: self.money(),
            }),
            5 => self.journal(),
            6 => Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: self.variant(3),
                amount: self.money(),
                fee: self.money(),
                exchange_rate: self.rate(),
                payment_intent_id: self.id(),
                charge_id: self.id(),
                balance_transaction_id: self.id(),
            }),
            7 => Kind::BalanceTransaction(pb::BalanceTransaction {
                reporting_category: self.text(&["charge", "refund", "fee"]),
                amount: self.money(),
                fee: self.money(),
                net: self.money(),
                exchange_rate: self.rate(),
                source: self.id(),
                payout_id: self.id(),
                available_time: self.time(),
            }),
            8 => Kind::Payout(pb::Payout {
                amount: self.money(),
                status: self.variant(5),
                arrival_time: self.time(),
            }),
            _ => Kind::BankDeposit(pb::BankDeposit {
                amount: self.money(),
                account: self.text(&["chk-1", ""]),
                description: self.text(&["STRIPE TRANSFER", "ACH\nDEPOSIT"]),
            }),
        }
    }

    fn invoice_line(&mut self) -> pb::InvoiceLine {
        pb::InvoiceLine {
            sku: self.id(),
            quantity: self.quantity(),
            amount: self.money(),
        }
    }

    /// Balanced unless an amount turns hostile.
    fn journal(&mut self) -> Kind {
        let amount = self.amount();
        let line = |g: &mut Self, debit: &str, credit: &str| pb::JournalLine {
            account: g.text(&["1190", "1200 Accounts Receivable"]),
            debit: debit.into(),
            credit: credit.into(),
            memo: g.text(&["", "fees\nNovember"]),
            name: g.text(&["", "Zoë"]),
            reference: g.id(),
        };
        let mut lines = vec![line(self, &amount, ""), line(self, "", &amount)];
        if self.rng.one_in(HOSTILE) {
            lines.extend((0..10).map(|_| line(self, "9999999999999999999999999999", "")));
        }
        Kind::JournalEntry(pb::JournalEntry {
            currency_code: if self.rng.one_in(HOSTILE) {
                self.rng.pick(CURRENCIES).into()
            } else {
                "USD".into()
            },
            exchange_rate: self.rate(),
            posting_period: self.text(&["Nov 2026"]),
            subsidiary: self.text(&["US", ""]),
            memo: self.text(&["", "payout po_1"]),
            lines,
        })
    }

    pub(crate) fn record(&mut self, n: usize) -> pb::Record {
        let kind = self.kind();
        let mut source_id = self.id();
        if !source_id.is_empty() && source_id.len() < 200 && !self.rng.one_in(3) {
            // Mostly fresh keys, sometimes a repeat (duplicate or conflict).
            source_id.push_str(&n.to_string());
        }
        pb::Record {
            source_id,
            source_system: self.text(&["shopify", "stripe", "netsuite"]),
            order_id: self.text(&["1001", "1002", "A-7", "x.y_z~1"]),
            references: self.many(|g| pb::ExternalReference {
                r#type: g.variant(11),
                id: g.id(),
            }),
            event_time: self.time(),
            source_update_time: if self.rng.one_in(2) {
                self.time()
            } else {
                None
            },
            kind: Some(kind),
        }
    }
}

/// The generator for `seed`: the same seed, the same records.
pub(crate) fn generator(seed: u64) -> Gen {
    Gen {
        rng: Rng(seed),
        strings: hostile_strings(),
        now: chrono::Utc::now().timestamp(),
    }
}
