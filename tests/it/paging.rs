//! One pagination for every List (AIP-158): the standard `while token`
//! loop returns every item exactly once and stops; the ERP polls
//! ListJournalEntries by after_export_sequence, not by page token. What a
//! token is bound to: paging_tokens.rs.

use std::collections::HashSet;
use std::future::Future;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;

use crate::cash::{bt, capture, drain, inv, payout, worker};
use crate::common::*;

/// Paid orders (a payout each) and unpaid ones (an open invoice each).
const PAID: std::ops::RangeInclusive<u32> = 3001..=3005;
const UNPAID: std::ops::RangeInclusive<u32> = 3006..=3008;

/// A paid order: order, capture, invoice, and a payout of its one charge.
pub fn paid(n: u32) -> Vec<pb::Record> {
    let id = n.to_string();
    vec![
        order(&id, "100.00"),
        capture(&id, &format!("ch_{id}"), "100.00"),
        inv(&id, &format!("INV-{id}"), "100.00", "2026-11-02T12:00:00Z"),
        bt(
            &format!("txn_{id}"),
            "charge",
            &format!("ch_{id}"),
            "100.00",
            "3.00",
            &format!("po_{id}"),
        ),
        payout(&format!("po_{id}"), "97.00"),
    ]
}

/// An order invoiced but not paid, its capture short by ten (an
/// exception).
fn unpaid(n: u32) -> Vec<pb::Record> {
    let id = n.to_string();
    vec![
        order(&id, "100.00"),
        charge(&id, "90.00"),
        inv(&id, &format!("INV-{id}"), "100.00", "2026-11-02T12:00:00Z"),
    ]
}

pub async fn seeded() -> TestApp {
    let t = TestApp::start().await;
    let mut records = vec![];
    for n in PAID {
        records.extend(paid(n));
    }
    for n in UNPAID {
        records.extend(unpaid(n));
    }
    t.submit(records).await.unwrap();
    drain(&worker(&t).await, "acme").await;
    t
}

/// The standard loop: call with the token until the response's is empty.
/// Returns every item's key, and how many pages it took.
pub async fn every_page<F, Fut>(mut call: F) -> (Vec<String>, usize)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<String>, String)>,
{
    let (mut items, mut pages, mut token) = (vec![], 0, String::new());
    loop {
        let (page, next) = call(token).await;
        pages += 1;
        assert!(pages <= 100, "the loop never ends: {items:?}");
        items.extend(page);
        if next.is_empty() {
            return (items, pages);
        }
        token = next;
    }
}

/// One page of 2 of acme's journal entries after export sequence `after`:
/// their export sequences, and the next token.
async fn journal_page(
    ledger: &LedgerServiceClient<tonic::transport::Channel>,
    after: i64,
    page_token: String,
) -> (Vec<String>, String) {
    let r = ledger
        .clone()
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            page_size: 2,
            page_token,
            after_export_sequence: after,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let seqs = r
        .journal_entries
        .into_iter()
        .map(|e| e.export_sequence.to_string())
        .collect();
    (seqs, r.next_page_token)
}

/// Every item once, and the loop stopped after ceil(n / 2) pages of 2.
fn exactly_once(list: &str, (items, pages): &(Vec<String>, usize), expected: usize) {
    let distinct: HashSet<&String> = items.iter().collect();
    assert_eq!(distinct.len(), items.len(), "{list}: repeats in {items:?}");
    assert_eq!(items.len(), expected, "{list}: {items:?}");
    assert_eq!(*pages, expected.div_ceil(2), "{list}: pages");
}

#[tokio::test]
async fn every_list_pages_with_the_standard_loop_and_stops() {
    let t = seeded().await;
    let ledger = LedgerServiceClient::new(t.channel.clone());
    let handoffs = HandoffServiceClient::new(t.channel.clone());
    let orders = PAID.count() + UNPAID.count();
    let acme = || "merchants/acme".to_string();

    let got = every_page(|page_token| {
        let mut c = t.transactions.clone();
        async move {
            let r = c
                .list_transactions(pb::ListTransactionsRequest {
                    parent: acme(),
                    page_size: 2,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let ids = r.transactions.into_iter().map(|x| x.order_id).collect();
            (ids, r.next_page_token)
        }
    })
    .await;
    exactly_once("ListTransactions", &got, orders);

    let exceptions = t
        .count("SELECT count(*) FROM exceptions WHERE merchant_id = 'acme'")
        .await as usize;
    assert!(exceptions >= 3, "{exceptions}");
    for order_by in ["", "amount_at_risk desc"] {
        let got = every_page(|page_token| {
            let mut c = t.exceptions.clone();
            async move {
                let r = c
                    .list_exceptions(pb::ListExceptionsRequest {
                        parent: acme(),
                        page_size: 2,
                        page_token,
                        order_by: order_by.into(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let names = r.exceptions.into_iter().map(|x| x.name).collect();
                (names, r.next_page_token)
            }
        })
        .await;
        exactly_once(&format!("ListExceptions {order_by}"), &got, exceptions);
    }

    let got = every_page(|page_token| {
        let mut c = ledger.clone();
        async move {
            let r = c
                .list_payouts(pb::ListPayoutsRequest {
                    parent: acme(),
                    page_size: 2,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.payouts.into_iter().map(|x| x.name).collect(),
                r.next_page_token,
            )
        }
    })
    .await;
    exactly_once("ListPayouts", &got, PAID.count());
    let expected: Vec<String> = PAID
        .map(|n| format!("merchants/acme/payouts/po_{n}"))
        .collect();
    assert_eq!(got.0, expected);

    let got = every_page(|page_token| {
        let mut c = ledger.clone();
        async move {
            let r = c
                .list_open_invoices(pb::ListOpenInvoicesRequest {
                    parent: acme(),
                    page_size: 2,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            (
                r.invoices.into_iter().map(|x| x.name).collect(),
                r.next_page_token,
            )
        }
    })
    .await;
    exactly_once("ListOpenInvoices", &got, UNPAID.count());

    let entries = t
        .count("SELECT count(*) FROM journal_entries WHERE merchant_id = 'acme'")
        .await;
    assert!(entries > 2 * PAID.count() as i64, "{entries}");
    let got = every_page(|page_token| journal_page(&ledger, 0, page_token)).await;
    exactly_once("ListJournalEntries", &got, entries as usize);
    let in_order: Vec<String> = (1..=entries).map(|n| n.to_string()).collect();
    assert_eq!(got.0, in_order, "export order");

    let got = every_page(|page_token| {
        let mut c = handoffs.clone();
        async move {
            let r = c
                .list_handoff_contracts(pb::ListHandoffContractsRequest {
                    parent: acme(),
                    page_size: 2,
                    page_token,
                })
                .await
                .unwrap()
                .into_inner();
            let names = r.handoff_contracts.into_iter().map(|x| x.name).collect();
            (names, r.next_page_token)
        }
    })
    .await;
    exactly_once("ListHandoffContracts", &got, 5);
    // The default page holds the five: one page, no token.
    let all = handoffs
        .clone()
        .list_handoff_contracts(pb::ListHandoffContractsRequest {
            parent: acme(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.handoff_contracts.len(), 5);
    assert!(all.next_page_token.is_empty());
    let names: Vec<String> = all.handoff_contracts.into_iter().map(|c| c.name).collect();
    assert_eq!(names, got.0, "pages keep handoff order");
}

/// The ERP's poll: page through what is after its cursor, keep the last
/// export_sequence, poll again later.
async fn poll(
    ledger: &LedgerServiceClient<tonic::transport::Channel>,
    cursor: &mut i64,
) -> Vec<i64> {
    let after = *cursor;
    let (seqs, _) = every_page(|page_token| journal_page(ledger, after, page_token)).await;
    let seqs: Vec<i64> = seqs.iter().map(|s| s.parse().unwrap()).collect();
    if let Some(last) = seqs.last() {
        *cursor = *last;
    }
    seqs
}

#[tokio::test]
async fn the_erp_polls_by_export_sequence_and_sees_later_entries_exactly_once() {
    let t = seeded().await;
    let ledger = LedgerServiceClient::new(t.channel.clone());
    let worker = worker(&t).await;
    let mut cursor = 0;
    let first = poll(&ledger, &mut cursor).await;
    let booked = t.count("SELECT count(*) FROM journal_entries").await;
    assert_eq!(first, (1..=booked).collect::<Vec<_>>());
    // Nothing new: the poll stops at once and the cursor stays.
    assert!(poll(&ledger, &mut cursor).await.is_empty());
    assert_eq!(cursor, booked);
    // Entries booked later: the next poll sees them, and only them.
    let mut seen = first;
    for n in [3101, 3102] {
        t.submit(paid(n)).await.unwrap();
        drain(&worker, "acme").await;
        let later = poll(&ledger, &mut cursor).await;
        assert!(!later.is_empty(), "payout {n} booked nothing");
        seen.extend(later);
    }
    let total = t.count("SELECT count(*) FROM journal_entries").await;
    assert!(total > booked);
    assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "each once, in order");
    assert!(poll(&ledger, &mut cursor).await.is_empty());
}
