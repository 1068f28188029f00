//! One order's shape, drawn from the seed: channel, lines, discount, tax,
//! shipping, tenders, currency, shipments and refund. The faults it
//! carries bend the draw where a fault needs a shape (a discount to leave
//! unmapped, a foreign currency to convert at the wrong rate).

use std::collections::BTreeSet;

use super::build::DAY;
use super::faults::FaultKind;
use super::rng::Rng;
use crate::proto::tally::v1::TenderType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Web,
    Pos,
    Marketplace,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub sku: String,
    pub qty: i64,
    pub unit: i64,
    pub discount: i64,
    pub tax: i64,
}

impl Line {
    pub fn gross(&self) -> i64 {
        self.unit * self.qty
    }
    /// What the customer pays for the line.
    pub fn due(&self) -> i64 {
        self.gross() - self.discount + self.tax
    }
}

#[derive(Debug, Clone)]
pub struct Tender {
    pub kind: TenderType,
    pub gateway: &'static str,
    pub amount: i64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub n: u64,
    pub id: String,
    pub channel: Channel,
    /// Seconds into the month.
    pub placed: i64,
    pub currency: &'static str,
    /// Presentment -> USD, in ten-thousandths (10000 for USD).
    pub rate_e4: i64,
    pub lines: Vec<Line>,
    pub code: Option<&'static str>,
    pub shipping: i64,
    pub tenders: Vec<Tender>,
    /// Shipments: when, and which lines.
    pub shipments: Vec<(i64, Vec<usize>)>,
    /// A refund of one line, and when.
    pub refund: Option<(i64, usize)>,
    pub faults: BTreeSet<FaultKind>,
}

/// Orders are placed over the first 27 days, so that shipments, refunds
/// and the last payouts (a few days later) still lie in the past.
const PLACING_DAYS: i64 = 27;
const CODES: [(&str, i64); 3] = [("WELCOME10", 10), ("VIP15", 15), ("FALL5", 5)];
const CURRENCIES: [(&str, i64); 3] = [("EUR", 10_812), ("GBP", 12_655), ("CAD", 7_213)];

impl Plan {
    pub fn subtotal(&self) -> i64 {
        self.lines.iter().map(Line::gross).sum()
    }
    pub fn discount(&self) -> i64 {
        self.lines.iter().map(|l| l.discount).sum()
    }
    pub fn tax(&self) -> i64 {
        self.lines.iter().map(|l| l.tax).sum()
    }
    pub fn total(&self) -> i64 {
        self.lines.iter().map(Line::due).sum::<i64>() + self.shipping
    }
    /// What went through the processor.
    pub fn card(&self) -> i64 {
        self.tenders
            .iter()
            .filter(|t| t.kind == TenderType::Card)
            .map(|t| t.amount)
            .sum()
    }
    pub fn has(&self, f: FaultKind) -> bool {
        self.faults.contains(&f)
    }
    /// A line refunded: what the customer gets back.
    pub fn refund_amount(&self) -> Option<i64> {
        self.refund
            .and_then(|(_, i)| self.lines.get(i))
            .map(Line::due)
    }
}

fn tax_on(net: i64) -> i64 {
    // 8.25%, half up.
    (net * 825 + 5_000) / 10_000
}

pub fn draw(n: u64, rng: &mut Rng, faults: BTreeSet<FaultKind>) -> Plan {
    let has = |f| faults.contains(&f);
    let channel = match rng.range(0, 99) {
        0..=64 => Channel::Web,
        65..=89 => Channel::Pos,
        _ => Channel::Marketplace,
    };
    let placed = rng.range(0, PLACING_DAYS * DAY - 1);
    let foreign = has(FaultKind::FxRateMismatch) || (channel == Channel::Web && rng.chance(0.12));
    let (currency, rate_e4) = if foreign {
        rng.pick(&CURRENCIES, CURRENCIES[0])
    } else {
        ("USD", 10_000)
    };
    let discounted = has(FaultKind::DiscountNotMapped) || rng.chance(0.2);
    let code = discounted.then(|| rng.pick(&CODES, CODES[0]));
    let n_lines = if channel == Channel::Pos {
        rng.range(1, 2)
    } else {
        rng.range(1, 3)
    };
    let lines: Vec<Line> = (0..n_lines)
        .map(|_| {
            let (qty, unit) = (rng.range(1, 3), rng.range(5, 150) * 100 - rng.range(0, 1));
            let discount = code.map_or(0, |(_, pct)| unit * qty * pct / 100);
            Line {
                sku: format!("SKU-{:03}", rng.range(0, 199)),
                qty,
                unit,
                discount,
                tax: tax_on(unit * qty - discount),
            }
        })
        .collect();
    let shipping = match channel {
        Channel::Web => rng.pick(&[0, 599, 999], 0),
        Channel::Pos | Channel::Marketplace => 0,
    };
    let mut plan = Plan {
        n,
        id: (1_000_001 + n).to_string(),
        channel,
        placed,
        currency,
        rate_e4,
        lines,
        code: code.map(|(c, _)| c),
        shipping,
        tenders: vec![],
        shipments: vec![],
        refund: None,
        faults,
    };
    plan.tenders = tenders(&plan, rng);
    plan.shipments = shipments(&plan, rng);
    plan.refund = refund(&plan, rng);
    plan
}

fn tenders(p: &Plan, rng: &mut Rng) -> Vec<Tender> {
    let total = p.total();
    let card = |amount| Tender {
        kind: TenderType::Card,
        gateway: "shopify_payments",
        amount,
    };
    let forced = p.has(FaultKind::SplitTenderRounding);
    let split = forced || (total >= 2_000 && rng.chance(0.15));
    if !split || p.has(FaultKind::RefundNotPropagated) {
        return vec![card(total)];
    }
    let (kind, gateway) = if rng.chance(0.6) {
        (TenderType::GiftCard, "gift_card")
    } else {
        (TenderType::StoreCredit, "store_credit")
    };
    let other = rng.range(100, (total / 2).max(100));
    // The fault: the tenders as the storefront's split recorded them, each
    // rounded on its own, miss the total by two cents.
    let short = if p.has(FaultKind::SplitTenderRounding) {
        2
    } else {
        0
    };
    vec![
        card(total - other),
        Tender {
            kind,
            gateway,
            amount: other - short,
        },
    ]
}

fn shipments(p: &Plan, rng: &mut Rng) -> Vec<(i64, Vec<usize>)> {
    let all: Vec<usize> = (0..p.lines.len()).collect();
    if p.channel == Channel::Pos {
        // Carried out of the store.
        return vec![(p.placed + 60, all)];
    }
    let first = p.placed + rng.range(600, DAY / 2);
    if p.lines.len() > 1 && rng.chance(0.3) {
        let second = first + rng.range(DAY / 2, 2 * DAY);
        return vec![(first, vec![0]), (second, all[1..].to_vec())];
    }
    vec![(first, all)]
}

fn refund(p: &Plan, rng: &mut Rng) -> Option<(i64, usize)> {
    let forced = p.has(FaultKind::RefundNotPropagated);
    let blocked =
        p.has(FaultKind::LateFulfilment) || p.has(FaultKind::MissingInvoice) || p.tenders.len() > 1;
    if blocked || !(forced || rng.chance(0.08)) {
        return None;
    }
    let shipped = p.shipments.iter().map(|(t, _)| *t).max()?;
    let line = rng.range(0, p.lines.len() as i64 - 1) as usize;
    Some((shipped + rng.range(3_600, 3 * DAY), line))
}
