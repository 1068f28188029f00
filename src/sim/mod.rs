//! `tally simulate`: a seeded month of a retailer's money flows (web, POS
//! and marketplace orders, split tenders, discounts, tax and shipping,
//! split shipments, refunds, foreign presentment settled in USD, daily
//! payouts with fees, deposits, the ERP's invoices, credit memos and
//! journals), with faults planted at chosen rates and a ground truth
//! naming each. Pure: the same configuration gives the same records in
//! the same order, byte for byte; sending and scoring are the CLI's.
//!
//! Amounts are integer cents. Per order they are bounded by construction
//! (three lines of at most three units at 150.00: far below 2^53), so
//! per-order arithmetic cannot overflow; sums across orders (payouts) are
//! checked.

pub mod build;
pub mod cash;
pub mod export;
pub mod faults;
pub mod offline;
pub mod order;
pub mod plan;
pub mod rng;
pub mod score;

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::tally::v1 as pb;
use faults::FaultKind;
use order::Sent;
use rng::Rng;

#[derive(Debug, Clone)]
pub struct Config {
    pub orders: u64,
    pub seed: u64,
    /// Fault kinds and the share of orders (or payouts) each hits.
    pub rates: Vec<(FaultKind, f64)>,
}

/// One planted fault: its kind, the order it hit (empty for a payout's),
/// and the payouts involved (the faulted payout, or those that swept the
/// faulted order's money).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Truth {
    pub kind: FaultKind,
    pub order_id: String,
    pub payouts: Vec<String>,
}

/// What an order absorbed-fault check expects to read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub order_id: String,
    pub currency: &'static str,
    /// Captured for the order, in its currency (cents).
    pub captured: i64,
}

#[derive(Debug, Clone)]
pub struct Month {
    /// In the order Tally receives them.
    pub records: Vec<pb::Record>,
    pub truth: Vec<Truth>,
    /// Orders hit by an absorbed fault, with what they must still read.
    pub absorbed: Vec<Expected>,
    pub orders: u64,
    pub payouts: u64,
    /// What processor clearing must hold once every payout is applied
    /// (USD cents): the refunds that never reached a credit memo, which
    /// left clearing with nothing to book them against. Zero otherwise.
    pub clearing: i64,
}

/// At most one fault per order (or payout): a draw walks the rates in
/// turn, so faults never mask one another and each is scored alone.
fn draw_fault(rng: &mut Rng, rates: &[(FaultKind, f64)]) -> Option<FaultKind> {
    let x = (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0;
    let mut acc = 0.0;
    for (kind, rate) in rates {
        acc += rate;
        if x < acc {
            return Some(*kind);
        }
    }
    None
}

pub fn generate(cfg: &Config) -> Result<Month, String> {
    let root = Rng::new(cfg.seed);
    let order_rates: Vec<_> = cfg
        .rates
        .iter()
        .filter(|(k, _)| !k.per_payout())
        .copied()
        .collect();
    let payout_rates: Vec<_> = cfg
        .rates
        .iter()
        .filter(|(k, _)| k.per_payout())
        .copied()
        .collect();
    let mut sent: Vec<Sent> = vec![];
    let mut moves = vec![];
    let mut truth = vec![];
    let mut absorbed = vec![];
    let mut clearing = 0i64;
    let mut uncredited = BTreeSet::new();
    for n in 0..cfg.orders {
        let mut rng = root.fork(n);
        let fault = draw_fault(&mut rng, &order_rates);
        let p = plan::draw(n, &mut rng, fault.into_iter().collect::<BTreeSet<_>>());
        let (mut rs, ms) = order::records(&p, &mut rng)
            .ok_or_else(|| format!("order {}: an amount overflowed", p.id))?;
        if fault == Some(FaultKind::RefundNotPropagated) {
            uncredited.insert(p.id.clone());
        }
        if let Some(kind) = fault {
            bend(kind, &p, &mut rs, &mut rng);
            truth.push(Truth {
                kind,
                order_id: p.id.clone(),
                payouts: vec![],
            });
            if matches!(kind.expect(), faults::Expect::Absorbed { .. }) {
                absorbed.push(Expected {
                    order_id: p.id.clone(),
                    currency: p.currency,
                    // Every tender is money received (a gift card's too).
                    captured: p.tenders.iter().map(|t| t.amount).sum(),
                });
            }
        }
        sent.extend(rs);
        moves.extend(ms);
    }
    let payouts = cash::payouts(moves).ok_or("a payout's sum overflowed")?;
    let mut swept: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut prng = root.fork(u64::MAX);
    // A deposit is known missing once the bank feed shows a later one: the
    // month's last payout with money for the bank has none after it, so
    // no payout fault is planted there (whether its deposit comes is
    // beyond the month).
    let last_deposit = payouts.iter().rposition(|p| p.net().is_some_and(|n| n > 0));
    for (i, p) in payouts.iter().enumerate() {
        for m in &p.moves {
            swept
                .entry(m.order.clone())
                .or_default()
                .insert(p.id.clone());
        }
        sent.extend(cash::balance_transactions(p));
        let positive = p.net().is_some_and(|n| n > 0);
        let fault = draw_fault(&mut prng, &payout_rates).filter(|k| {
            positive && (Some(i) != last_deposit || *k != FaultKind::DepositNeverArrives)
        });
        let faults: Vec<FaultKind> = fault.into_iter().collect();
        sent.extend(cash::payout_records(p, &faults).ok_or("a payout's net overflowed")?);
        // A failed payout books nothing, the refunds it swept included.
        if fault != Some(FaultKind::PayoutFailedAfterPaid) {
            for m in p
                .moves
                .iter()
                .filter(|m| m.category == "refund" && uncredited.contains(&m.order))
            {
                clearing = clearing
                    .checked_sub(m.amount)
                    .ok_or("clearing overflowed")?;
            }
        }
        if let Some(kind) = fault {
            truth.push(Truth {
                kind,
                order_id: String::new(),
                payouts: vec![p.id.clone()],
            });
        }
    }
    for t in truth.iter_mut().filter(|t| !t.order_id.is_empty()) {
        t.payouts = swept
            .get(&t.order_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
    }
    // Some records are sent twice by their system's retry (absorbed as
    // duplicates in every month: a clean month has them too).
    let mut drng = root.fork(u64::MAX - 1);
    let mut again = vec![];
    for s in &sent {
        if drng.chance(0.005) {
            again.push(Sent {
                at: s.at + drng.range(60, 3_600),
                record: s.record.clone(),
            });
        }
    }
    sent.extend(again);
    // Stable: ties keep generation order, so the delivery is a function of
    // the seed alone.
    sent.sort_by_key(|s| s.at);
    truth.sort();
    Ok(Month {
        records: sent.into_iter().map(|s| s.record).collect(),
        truth,
        absorbed,
        orders: cfg.orders,
        payouts: payouts.len() as u64,
        clearing,
    })
}

/// Order-level faults that change how its records are sent rather than
/// what they say.
fn bend(kind: FaultKind, p: &plan::Plan, rs: &mut Vec<Sent>, rng: &mut Rng) {
    match kind {
        FaultKind::OutOfSequence => {
            // Newest first: the ERP's and the 3PL's records before the
            // order they belong to.
            let last = rs.iter().map(|s| s.at).max().unwrap_or_default();
            rs.sort_by_key(|s| std::cmp::Reverse(s.record.event_time.map(|t| t.seconds)));
            for (k, s) in rs.iter_mut().enumerate() {
                s.at = last + k as i64;
            }
        }
        FaultKind::DuplicateResubmission => {
            let later: Vec<Sent> = rs
                .iter()
                .map(|s| Sent {
                    at: s.at + build::DAY,
                    record: s.record.clone(),
                })
                .collect();
            rs.extend(later);
        }
        FaultKind::ChangedResubmission => {
            // The ERP sends an invoice again, a dollar more, as the same
            // record (no newer version stamp).
            let changed = rs.iter().find_map(|s| match &s.record.kind {
                Some(pb::record::Kind::Invoice(i)) => {
                    let mut r = s.record.clone();
                    let mut inv = i.clone();
                    let total = inv.total.as_ref().map(|m| m.amount.clone())?;
                    let cents = total.replace('.', "").parse::<i64>().ok()?;
                    inv.total = build::money(p.currency, cents + 100);
                    r.kind = Some(pb::record::Kind::Invoice(inv));
                    Some(Sent {
                        at: s.at + rng.range(3_600, build::DAY),
                        record: r,
                    })
                }
                _ => None,
            });
            rs.extend(changed);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(m: &Month) -> Vec<u8> {
        m.records
            .iter()
            .flat_map(prost::Message::encode_to_vec)
            .collect()
    }

    fn all(rate: f64) -> Vec<(FaultKind, f64)> {
        FaultKind::ALL.iter().map(|k| (*k, rate)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_another_month() {
        let cfg = |seed| Config {
            orders: 300,
            seed,
            rates: all(0.05),
        };
        let (a, b, c) = (
            generate(&cfg(5)).unwrap(),
            generate(&cfg(5)).unwrap(),
            generate(&cfg(6)).unwrap(),
        );
        assert_eq!(bytes(&a), bytes(&b));
        assert_eq!(a.truth, b.truth);
        assert_ne!(bytes(&a), bytes(&c));
    }

    #[test]
    fn a_clean_month_plants_nothing_and_each_kind_is_planted_alone() {
        let clean = generate(&Config {
            orders: 200,
            seed: 1,
            rates: vec![],
        })
        .unwrap();
        assert!(clean.truth.is_empty() && clean.absorbed.is_empty());
        assert_eq!(clean.clearing, 0);
        for kind in FaultKind::ALL {
            let m = generate(&Config {
                orders: 400,
                seed: 2,
                rates: vec![(kind, 0.3)],
            })
            .unwrap();
            assert!(!m.truth.is_empty(), "{kind:?}");
            assert!(m.truth.iter().all(|t| t.kind == kind), "{kind:?}");
            // One fault per order: no order named twice.
            let mut orders: Vec<&str> = m
                .truth
                .iter()
                .filter(|t| !t.order_id.is_empty())
                .map(|t| t.order_id.as_str())
                .collect();
            let n = orders.len();
            orders.dedup();
            assert_eq!(orders.len(), n, "{kind:?}");
        }
    }

    #[test]
    fn every_payout_is_the_net_of_what_it_swept() {
        let m = generate(&Config {
            orders: 300,
            seed: 3,
            rates: vec![],
        })
        .unwrap();
        let mut nets: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
        let mut payouts: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
        for r in &m.records {
            match &r.kind {
                Some(pb::record::Kind::BalanceTransaction(b)) => {
                    let net = b.net.as_ref().map(|n| n.amount.parse().unwrap()).unwrap();
                    nets.insert(r.source_id.clone() + "|" + &b.payout_id, net);
                }
                Some(pb::record::Kind::Payout(p)) => {
                    let a = p
                        .amount
                        .as_ref()
                        .map(|n| n.amount.parse().unwrap())
                        .unwrap();
                    payouts.insert(r.source_id.clone(), a);
                }
                _ => {}
            }
        }
        let mut sums: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
        for (k, v) in nets {
            let po = k.split('|').nth(1).unwrap().to_string();
            *sums.entry(po).or_default() += v;
        }
        assert_eq!(sums, payouts);
        assert_eq!(payouts.len() as u64, m.payouts);
    }
}
