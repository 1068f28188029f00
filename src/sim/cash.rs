//! The processor's daily payouts and what follows them: each payout
//! sweeps the balance transactions available that day (their net is its
//! amount), goes in transit then paid (two versions of one record), lands
//! in the bank as a deposit, and is booked by the ERP in one journal: the
//! deposit to the bank, the fees to processing fees, the gross off the
//! clearing account.

use std::collections::BTreeMap;

use super::build::{DAY, journal_line, money, record, reference, ts};
use super::faults::FaultKind;
use super::order::{Movement, Sent};
use crate::proto::tally::v1 as pb;
use pb::record::Kind;

/// One payout: its id, day, and the sums of what it swept.
#[derive(Debug, Clone)]
pub struct Payout {
    pub id: String,
    pub day: i64,
    pub gross: i64,
    pub fees: i64,
    pub moves: Vec<Movement>,
}

impl Payout {
    pub fn net(&self) -> Option<i64> {
        self.gross.checked_sub(self.fees)
    }
}

/// Movements grouped by the day they are paid out.
pub fn payouts(moves: Vec<Movement>) -> Option<Vec<Payout>> {
    let mut by_day: BTreeMap<i64, Vec<Movement>> = BTreeMap::new();
    for m in moves {
        by_day.entry(m.day).or_default().push(m);
    }
    by_day
        .into_iter()
        .map(|(day, moves)| {
            let mut gross = 0i64;
            let mut fees = 0i64;
            for m in &moves {
                gross = gross.checked_add(m.amount)?;
                fees = fees.checked_add(m.fee)?;
            }
            Some(Payout {
                id: format!("po_sim{day:03}"),
                day,
                gross,
                fees,
                moves,
            })
        })
        .collect()
}

/// The balance transactions of a payout, sent as the processor reports
/// them (with the payout they were swept into).
pub fn balance_transactions(p: &Payout) -> Vec<Sent> {
    p.moves
        .iter()
        .map(|m| {
            let mut r = record(
                "stripe",
                &m.txn,
                "",
                m.at,
                Kind::BalanceTransaction(pb::BalanceTransaction {
                    reporting_category: m.category.into(),
                    amount: money("USD", m.amount),
                    fee: money("USD", m.fee),
                    net: money("USD", m.amount - m.fee),
                    exchange_rate: m.rate.clone().unwrap_or_default(),
                    source: m.source.clone(),
                    payout_id: p.id.clone(),
                    available_time: ts(if m.category == "charge" {
                        m.at + 2 * DAY
                    } else {
                        m.at
                    }),
                }),
            );
            // Stripe's itemised report carries the order in its metadata.
            r.references = vec![reference(pb::ReferenceType::Order, &m.order)];
            Sent {
                // Reported once the payout that swept it is created.
                at: p.day * DAY + 7_200,
                record: r,
            }
        })
        .collect()
}

fn payout_record(p: &Payout, status: pb::PayoutStatus, at: i64) -> Option<pb::Record> {
    let mut r = record(
        "stripe",
        &p.id,
        "",
        p.day * DAY + 3_600,
        Kind::Payout(pb::Payout {
            amount: money("USD", p.net()?),
            status: status as i32,
            arrival_time: ts(p.day * DAY + DAY + 6 * 3_600),
        }),
    );
    r.source_update_time = ts(at);
    Some(r)
}

/// The payout's own records: its versions, the bank deposit and the ERP
/// journal, bent by the payout's faults.
pub fn payout_records(p: &Payout, faults: &[FaultKind]) -> Option<Vec<Sent>> {
    let has = |f| faults.contains(&f);
    let created = p.day * DAY + 3_600;
    let arrived = p.day * DAY + DAY + 6 * 3_600;
    let net = p.net()?;
    let mut out = vec![
        Sent {
            at: created + 60,
            record: payout_record(p, pb::PayoutStatus::InTransit, created)?,
        },
        Sent {
            at: arrived + 60,
            record: payout_record(p, pb::PayoutStatus::Paid, arrived)?,
        },
    ];
    if has(FaultKind::PayoutFailedAfterPaid) {
        // The bank returned it two days after it was paid.
        let failed = arrived + 2 * DAY;
        out.push(Sent {
            at: failed + 60,
            record: payout_record(p, pb::PayoutStatus::Failed, failed)?,
        });
    }
    if net <= 0 {
        // Debited from the bank: no deposit, and the ERP books it with
        // the next statement.
        return Some(out);
    }
    if !has(FaultKind::DepositNeverArrives) {
        let mut d = record(
            "chase",
            &format!("dep_{}", p.id),
            "",
            arrived + 7_200,
            Kind::BankDeposit(pb::BankDeposit {
                amount: money("USD", net),
                account: "chase-operating-4321".into(),
                description: format!("STRIPE TRANSFER {}", p.id),
            }),
        );
        d.references = vec![reference(pb::ReferenceType::Payout, &p.id)];
        out.push(Sent {
            at: arrived + 7_200 + 3_600,
            record: d,
        });
    }
    let lines = if has(FaultKind::FeeNotJournaled) {
        // The net deposit booked as sales: the fees never isolated.
        vec![
            journal_line("1000 Operating Bank", net, 0, &p.id),
            journal_line("4000 Sales", 0, net, ""),
        ]
    } else {
        let mut lines = vec![journal_line("1000 Operating Bank", net, 0, &p.id)];
        if p.fees > 0 {
            lines.push(journal_line("6100 Processing Fees", p.fees, 0, ""));
        }
        lines.push(journal_line("1200 Stripe Clearing", 0, p.gross, ""));
        lines
    };
    out.push(Sent {
        at: arrived + 4 * 3_600,
        record: record(
            "netsuite",
            &format!("JE-{}", p.id),
            "",
            arrived + 3 * 3_600,
            Kind::JournalEntry(pb::JournalEntry {
                currency_code: "USD".into(),
                exchange_rate: String::new(),
                posting_period: "Nov 2026".into(),
                subsidiary: "Sim Retail US".into(),
                memo: format!("Stripe payout {}", p.id),
                lines,
            }),
        ),
    });
    Some(out)
}
