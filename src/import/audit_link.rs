//! The audit's links: each file's records packed with the ids that tie
//! them to orders (`pack_file`), and one table of which records belong to
//! which order (`link`), as the service links them. Split from `audit.rs`,
//! which parses, matches and reports.

use std::hash::BuildHasher;
use std::path::Path;

use hashbrown::hash_table::{Entry, HashTable};

use super::{Counted, Options, Progress, Report, Side, compact, parse_file};

/// An id's 64-bit hash, the key that links records: foldhash's quality
/// hash (well mixed, a tenth of SipHash's cost on short ids), fixed seed so
/// every file's threads agree.
fn id_hash(s: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(0).hash_one(s)
}

/// `name`'s index in `names`, found through `table` (indices by the
/// names' `id_hash`), or pushed there.
fn intern<S: AsRef<str> + Into<String>>(
    table: &mut HashTable<u32>,
    names: &mut Vec<String>,
    name: S,
) -> u32 {
    let h = id_hash(name.as_ref());
    if let Some(i) = table.find(h, |i| names[*i as usize] == name.as_ref()) {
        return *i;
    }
    names.push(name.into());
    let i = names.len() as u32 - 1;
    table.insert_unique(h, i, |i| id_hash(&names[*i as usize]));
    i
}

/// A record of no order.
const NO_ORDER: u32 = u32::MAX;

/// One file's records, packed (`compact`), and what ties each to orders:
/// small enough that a month is parsed once and held whole.
pub(super) struct Packed {
    pub(super) counted: Counted,
    pub(super) bytes: Vec<u8>,
    /// Where each record starts in `bytes`.
    pub(super) starts: Vec<usize>,
    /// Each record's order, an index into `orders`, or NO_ORDER.
    pub(super) order_of: Vec<u32>,
    /// The file's order ids, in order of first appearance.
    pub(super) orders: Vec<String>,
    /// (order, id hash): every id a record of an order carries, in file order.
    pub(super) refs: Vec<(u32, u64)>,
    /// (record, id hash): every id an orderless record points at.
    pub(super) pointers: Vec<(u32, u64)>,
}

/// Parses one file, packing each record and noting its links.
pub(super) fn pack_file(side: Side, path: &Path, opts: &Options, progress: &Progress) -> Packed {
    let (mut bytes, mut starts, mut order_of) = (vec![], vec![], vec![]);
    let (mut orders, mut refs, mut pointers) = (vec![], vec![], vec![]);
    // The file's order ids by hash, each an index into `orders`.
    let mut local: HashTable<u32> = HashTable::new();
    let counted = parse_file(side, path, opts, &progress.bytes, &mut |r| {
        let i = starts.len() as u32;
        starts.push(bytes.len());
        compact::pack(&r, &mut bytes);
        let Some(o) = &r.order_id else {
            order_of.push(NO_ORDER);
            pointers.extend(r.pointer_ids().iter().map(|id| (i, id_hash(id))));
            return;
        };
        // An order's rows follow each other: the last order is the usual hit.
        let lo = match orders.last() {
            Some(last) if last == o => orders.len() as u32 - 1,
            _ => intern(&mut local, &mut orders, o.as_str()),
        };
        order_of.push(lo);
        refs.extend(r.order_ref_ids().iter().map(|id| (lo, id_hash(id))));
    });
    Packed {
        counted,
        bytes,
        starts,
        order_of,
        orders,
        refs,
        pointers,
    }
}

/// Every order and which records belong to it: the service's links, as
/// one table. Orders are numbered by first appearance, files in the order
/// given, so the report's order does not depend on threads.
pub(super) struct Groups {
    pub(super) order_ids: Vec<String>,
    /// Group g's records are `members[start[g]..start[g + 1]]`, each
    /// (file, record), files in the order given, records in file order.
    pub(super) start: Vec<usize>,
    pub(super) members: Vec<(u32, u32)>,
    /// Which sides spoke about each group.
    pub(super) sides: Vec<u8>,
}

/// Links the files' records to orders: by their own order, or, for a
/// record of no order, every order whose records carry an id it points at.
///
/// Memory: at a million orders this is the audit's peak, so the tables
/// hold 4-byte indices (`HashTable`), not keys: an order id is moved from
/// its file's list, never copied, and an id's hash is looked up where its
/// file keeps it.
pub(super) fn link(files: &mut [(Side, Packed)], report: &mut Report) -> Groups {
    let orders: usize = files.iter().map(|(_, f)| f.orders.len()).sum();
    let mut index: HashTable<u32> = HashTable::with_capacity(orders);
    let mut order_ids: Vec<String> = Vec::with_capacity(orders);
    // Each file's order numbers as groups.
    let global: Vec<Vec<u32>> = files
        .iter_mut()
        .map(|(_, f)| {
            f.orders
                .iter_mut()
                .map(|o| intern(&mut index, &mut order_ids, std::mem::take(o)))
                .collect()
        })
        .collect();
    drop(index);
    let files: &[(Side, Packed)] = files;
    // Every file's refs as one sequence; the first to carry an id, in file
    // then record order, ties it to its order.
    let first: Vec<usize> = files
        .iter()
        .scan(0, |n, (_, f)| {
            let at = *n;
            *n += f.refs.len();
            Some(at)
        })
        .collect();
    let ref_at = |k: u32| {
        let k = k as usize;
        let fi = (0..files.len())
            .find(|fi| k < first[*fi] + files[*fi].1.refs.len())
            .unwrap_or(0);
        (fi, files[fi].1.refs[k - first[fi]])
    };
    let refs: usize = files.iter().map(|(_, f)| f.refs.len()).sum();
    let mut by_ref: HashTable<u32> = HashTable::with_capacity(refs);
    for (fi, (_, f)) in files.iter().enumerate() {
        for (k, (_, h)) in f.refs.iter().enumerate() {
            if let Entry::Vacant(v) = by_ref.entry(*h, |e| ref_at(*e).1.1 == *h, |e| ref_at(*e).1.1)
            {
                v.insert((first[fi] + k) as u32);
            }
        }
    }
    let group_of_ref = |h: &u64| {
        by_ref.find(*h, |e| ref_at(*e).1.1 == *h).map(|e| {
            let (fi, (lo, _)) = ref_at(*e);
            global[fi][lo as usize]
        })
    };
    // (file, record, group) for every membership, in file then record order.
    let records: usize = files.iter().map(|(_, f)| f.order_of.len()).sum();
    let mut owned: Vec<(u32, u32, u32)> = Vec::with_capacity(records);
    for (fi, ((side, f), map)) in files.iter().zip(&global).enumerate() {
        let mut pointers = f.pointers.iter().peekable();
        let mut owners: Vec<u32> = vec![];
        for (i, lo) in f.order_of.iter().enumerate() {
            owners.clear();
            if *lo != NO_ORDER {
                owners.push(map[*lo as usize]);
            }
            while let Some((_, h)) = pointers.next_if(|(r, _)| *r as usize == i) {
                if *lo == NO_ORDER {
                    owners.extend(group_of_ref(h));
                }
            }
            owners.sort_unstable();
            owners.dedup();
            if owners.is_empty() {
                *report.unlinked.entry(*side).or_default() += 1;
            }
            owned.extend(owners.iter().map(|g| (fi as u32, i as u32, *g)));
        }
    }
    drop(by_ref);
    // Counting sort by group keeps file then record order within each.
    let mut start = vec![0usize; order_ids.len() + 1];
    for (_, _, g) in &owned {
        start[*g as usize + 1] += 1;
    }
    for g in 1..start.len() {
        start[g] += start[g - 1];
    }
    let mut next = start.clone();
    let mut members = vec![(0, 0); owned.len()];
    let mut sides = vec![0u8; order_ids.len()];
    for (fi, i, g) in owned {
        let g = g as usize;
        members[next[g]] = (fi, i);
        next[g] += 1;
        sides[g] |= side_bit(files[fi as usize].0);
    }
    Groups {
        order_ids,
        start,
        members,
        sides,
    }
}

fn side_bit(s: Side) -> u8 {
    match s {
        Side::Storefront => 1,
        Side::Processor => 2,
        Side::Ledger => 4,
    }
}
