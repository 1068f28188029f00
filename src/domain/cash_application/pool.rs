//! Oldest-first matching of money (captures, refunds) to documents (invoices, credit memos).
//!
//! One engine serves both pairs. Amounts are whole minor units, so matching is exact, and
//! both sides are kept in (date, id) order, ties by id, so the same facts applied in the same
//! order always give the same links. Links already made are never moved by a later fact (the
//! ledger has booked them): money held because no document was open meets the next document
//! that opens.
//!
//! Units come from exact decimals (below 2^96 each), so sums over fewer than 2^31 slots fit
//! in i128; the arithmetic is checked all the same, and an overflow is an error, not a panic.
//!
//! Invariant (checked after every change): money is never held while a document is open.
//! Held money would have been applied to it; an open document would have taken the money.

use chrono::NaiveDate;

/// Matched amounts left i128: refused rather than wrapped or panicked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("matched amounts overflow")]
pub struct Overflow;

fn add(a: i128, b: i128) -> Result<i128, Overflow> {
    a.checked_add(b).ok_or(Overflow)
}

fn sub(a: i128, b: i128) -> Result<i128, Overflow> {
    a.checked_sub(b).ok_or(Overflow)
}

/// One side's item: a payment or a document, with how much of it is already matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub id: String,
    pub date: NaiveDate,
    pub total: i128,
    pub used: i128,
}

impl Slot {
    /// What is not matched yet. `0 <= used <= total` always holds (`is_consistent`), so the
    /// difference is exact; saturating keeps a broken invariant from panicking.
    pub fn free(&self) -> i128 {
        self.total.saturating_sub(self.used)
    }
}

/// `amount` units of `source` matched to `target`; negative when a reversal undid a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub source: String,
    pub target: String,
    pub amount: i128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pool {
    sources: Vec<Slot>,
    targets: Vec<Slot>,
    /// Net amount matched per (source, target), in the order first matched.
    links: Vec<Link>,
}

impl Pool {
    pub fn sources(&self) -> &[Slot] {
        &self.sources
    }

    pub fn targets(&self) -> &[Slot] {
        &self.targets
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn has_source(&self, id: &str) -> bool {
        self.sources.iter().any(|s| s.id == id)
    }

    pub fn has_target(&self, id: &str) -> bool {
        self.targets.iter().any(|s| s.id == id)
    }

    /// Adds money and applies it to open documents, oldest first. Returns the new links.
    pub fn add_source(&mut self, slot: Slot) -> Result<Vec<Link>, Overflow> {
        insert_sorted(&mut self.sources, slot);
        self.settle()
    }

    /// Adds a document and applies held money to it, oldest money first.
    pub fn add_target(&mut self, slot: Slot) -> Result<Vec<Link>, Overflow> {
        insert_sorted(&mut self.targets, slot);
        self.settle()
    }

    /// Takes `amount` units back out of `source` (the caller checked it has them): first from
    /// what it holds unmatched, then by undoing its matches, newest document first, so the
    /// oldest invoice stays paid. Returns (taken from held, undone links as negative links);
    /// money other payments hold then flows into the reopened documents (the third value).
    pub fn reduce_source(
        &mut self,
        source: &str,
        amount: i128,
    ) -> Result<(i128, Vec<Link>, Vec<Link>), Overflow> {
        let Some(index) = self.sources.iter().position(|s| s.id == source) else {
            return Ok((0, Vec::new(), Vec::new()));
        };
        let from_held = amount.min(self.sources[index].free());
        let mut left = sub(amount, from_held)?;
        let mut undone = Vec::new();
        let targets: Vec<String> = self.targets.iter().rev().map(|t| t.id.clone()).collect();
        for target in targets {
            if left == 0 {
                break;
            }
            let matched = self.matched(source, &target);
            let take = matched.min(left);
            if take > 0 {
                undone.push(self.link(source, &target, -take)?);
                left = sub(left, take)?;
            }
        }
        debug_assert_eq!(
            left, 0,
            "reduce_source was asked for more than the source has"
        );
        let slot = &mut self.sources[index];
        slot.total = sub(slot.total, amount)?;
        let released = self.settle()?;
        Ok((from_held, undone, released))
    }

    fn matched(&self, source: &str, target: &str) -> i128 {
        self.links
            .iter()
            .find(|l| l.source == source && l.target == target)
            .map_or(0, |l| l.amount)
    }

    /// Matches free money to open documents, both oldest first, until one side runs out.
    fn settle(&mut self) -> Result<Vec<Link>, Overflow> {
        let mut new_links = Vec::new();
        let (mut s, mut t) = (0, 0);
        while s < self.sources.len() && t < self.targets.len() {
            let (free, open) = (self.sources[s].free(), self.targets[t].free());
            if free <= 0 {
                s += 1;
            } else if open <= 0 {
                t += 1;
            } else {
                let amount = free.min(open);
                let (source, target) = (self.sources[s].id.clone(), self.targets[t].id.clone());
                new_links.push(self.link(&source, &target, amount)?);
            }
        }
        debug_assert!(self.is_consistent());
        Ok(new_links)
    }

    /// Records a match (or, negative, an undo) on both slots and in the net links.
    fn link(&mut self, source: &str, target: &str, amount: i128) -> Result<Link, Overflow> {
        for slot in self.sources.iter_mut().filter(|s| s.id == source) {
            slot.used = add(slot.used, amount)?;
        }
        for slot in self.targets.iter_mut().filter(|s| s.id == target) {
            slot.used = add(slot.used, amount)?;
        }
        match self
            .links
            .iter_mut()
            .find(|l| l.source == source && l.target == target)
        {
            Some(l) => l.amount = add(l.amount, amount)?,
            None => self.links.push(Link {
                source: source.to_string(),
                target: target.to_string(),
                amount,
            }),
        }
        Ok(Link {
            source: source.to_string(),
            target: target.to_string(),
            amount,
        })
    }

    /// Every slot within its total, links adding up to what each slot has used, and never
    /// held money beside an open document.
    fn is_consistent(&self) -> bool {
        let used_ok = |slots: &[Slot], side: fn(&Link) -> &str| {
            slots.iter().all(|slot| {
                let linked = self
                    .links
                    .iter()
                    .filter(|l| side(l) == slot.id)
                    .try_fold(0i128, |acc, l| add(acc, l.amount));
                linked == Ok(slot.used) && (0..=slot.total).contains(&slot.used)
            })
        };
        let held = self.sources.iter().any(|s| s.free() > 0);
        let open = self.targets.iter().any(|t| t.free() > 0);
        used_ok(&self.sources, |l| &l.source)
            && used_ok(&self.targets, |l| &l.target)
            && self.links.iter().all(|l| l.amount >= 0)
            && !(held && open)
    }
}

/// Keeps (date, id) order: oldest first, ties by id so the order never depends on arrival.
fn insert_sorted(slots: &mut Vec<Slot>, slot: Slot) {
    let at = slots.partition_point(|s| (s.date, &s.id) <= (slot.date, &slot.id));
    slots.insert(at, slot);
}
