//! A page token is bound to its list, merchant and filter: reused with
//! another, altered, or not a token at all, it is INVALID_ARGUMENT naming
//! page_token, on every List.

use std::future::Future;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use tally::proto::tally::v1::ledger_service_client::LedgerServiceClient;

use crate::common::*;
use crate::paging::seeded;

pub fn refused(list: &str, why: &str, r: Result<impl std::fmt::Debug, tonic::Status>) {
    let status = r.expect_err(&format!("{list}: {why} was accepted"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{list}: {why}");
    assert_eq!(bad_fields(&status), vec!["page_token"], "{list}: {why}");
}

/// One character of a token changed (to another hex digit).
fn altered(token: &str) -> String {
    let mut b = token.as_bytes().to_vec();
    let i = b.len() / 2;
    b[i] = if b[i] == b'a' { b'b' } else { b'a' };
    String::from_utf8(b).unwrap()
}

/// A first page's token: accepted on the same request, refused on each of
/// `others` (another merchant, another filter) and once altered.
async fn bound_token<Req, Fut>(
    list: &str,
    first: Req,
    others: Vec<(&str, Req)>,
    with_token: impl Fn(&mut Req, String),
    call: impl Fn(Req) -> Fut,
) where
    Req: Clone,
    Fut: Future<Output = Result<String, tonic::Status>>,
{
    let token = call(first.clone()).await.unwrap();
    assert!(!token.is_empty(), "{list}: the first page of 1 is the last");
    let mut again = first.clone();
    with_token(&mut again, token.clone());
    assert!(call(again).await.is_ok(), "{list}: its own token refused");
    for (why, mut other) in others {
        with_token(&mut other, token.clone());
        refused(list, why, call(other).await);
    }
    let mut tampered = first;
    with_token(&mut tampered, altered(&token));
    refused(list, "an altered token", call(tampered).await);
}

#[tokio::test]
async fn a_token_is_bound_to_its_merchant_and_filter_on_every_list() {
    let t = seeded().await;
    let ledger = LedgerServiceClient::new(t.channel.clone());
    let handoffs = HandoffServiceClient::new(t.channel.clone());
    let globex = "merchants/globex".to_string();

    let first = pb::ListTransactionsRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListTransactions",
        first.clone(),
        vec![
            (
                "another merchant",
                pb::ListTransactionsRequest {
                    parent: globex.clone(),
                    ..first.clone()
                },
            ),
            (
                "another state",
                pb::ListTransactionsRequest {
                    state: pb::ReconciliationState::Matched as i32,
                    ..first.clone()
                },
            ),
            (
                "another window",
                pb::ListTransactionsRequest {
                    start_time: ts("2026-01-01T00:00:00Z"),
                    ..first.clone()
                },
            ),
        ],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = t.transactions.clone();
            async move {
                c.list_transactions(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    let first = pb::ListExceptionsRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListExceptions",
        first.clone(),
        vec![
            (
                "another merchant",
                pb::ListExceptionsRequest {
                    parent: globex.clone(),
                    ..first.clone()
                },
            ),
            (
                "another order_by",
                pb::ListExceptionsRequest {
                    order_by: "amount_at_risk desc".into(),
                    ..first.clone()
                },
            ),
            (
                "another transaction",
                pb::ListExceptionsRequest {
                    transaction: "merchants/acme/transactions/3006".into(),
                    ..first.clone()
                },
            ),
        ],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = t.exceptions.clone();
            async move {
                c.list_exceptions(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    let first = pb::ListPayoutsRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListPayouts",
        first.clone(),
        vec![
            (
                "another merchant",
                pb::ListPayoutsRequest {
                    parent: globex.clone(),
                    ..first.clone()
                },
            ),
            (
                "another state",
                pb::ListPayoutsRequest {
                    state: pb::PayoutState::Applied as i32,
                    ..first.clone()
                },
            ),
        ],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = ledger.clone();
            async move {
                c.list_payouts(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    let first = pb::ListOpenInvoicesRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListOpenInvoices",
        first.clone(),
        vec![(
            "another merchant",
            pb::ListOpenInvoicesRequest {
                parent: globex.clone(),
                ..first.clone()
            },
        )],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = ledger.clone();
            async move {
                c.list_open_invoices(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    let first = pb::ListJournalEntriesRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListJournalEntries",
        first.clone(),
        vec![
            (
                "another merchant",
                pb::ListJournalEntriesRequest {
                    parent: globex.clone(),
                    ..first.clone()
                },
            ),
            (
                "another account",
                pb::ListJournalEntriesRequest {
                    account: "bank".into(),
                    ..first.clone()
                },
            ),
            (
                "another payout",
                pb::ListJournalEntriesRequest {
                    payout_id: "po_3002".into(),
                    ..first.clone()
                },
            ),
            (
                "another poll cursor",
                pb::ListJournalEntriesRequest {
                    after_export_sequence: 3,
                    ..first.clone()
                },
            ),
        ],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = ledger.clone();
            async move {
                c.list_journal_entries(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    let first = pb::ListHandoffContractsRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    };
    bound_token(
        "ListHandoffContracts",
        first.clone(),
        vec![(
            "another merchant",
            pb::ListHandoffContractsRequest {
                parent: globex.clone(),
                ..first.clone()
            },
        )],
        |r, tk| r.page_token = tk,
        |r| {
            let mut c = handoffs.clone();
            async move {
                c.list_handoff_contracts(r)
                    .await
                    .map(|r| r.into_inner().next_page_token)
            }
        },
    )
    .await;

    // A token of one list is not a token of another.
    let payouts_token = ledger
        .clone()
        .list_payouts(first_payouts())
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    refused(
        "ListHandoffContracts",
        "a ListPayouts token",
        handoffs
            .clone()
            .list_handoff_contracts(pb::ListHandoffContractsRequest {
                parent: "merchants/acme".into(),
                page_size: 1,
                page_token: payouts_token,
            })
            .await,
    );
}

fn first_payouts() -> pb::ListPayoutsRequest {
    pb::ListPayoutsRequest {
        parent: "merchants/acme".into(),
        page_size: 1,
        ..Default::default()
    }
}

#[tokio::test]
async fn what_is_not_a_page_token_is_refused_by_every_list() {
    let t = TestApp::start().await;
    let ledger = LedgerServiceClient::new(t.channel.clone());
    let handoffs = HandoffServiceClient::new(t.channel.clone());
    let old_payouts_token = hex::encode("po_1");
    let old_journal_token = hex::encode("7");
    for bad in [
        "zz",
        "a\0b",
        "é",
        &"ab".repeat(600),
        &old_payouts_token,
        &old_journal_token,
    ] {
        let acme = || "merchants/acme".to_string();
        let tk = || bad.to_string();
        let mut l = ledger.clone();
        refused(
            "ListPayouts",
            bad,
            l.list_payouts(pb::ListPayoutsRequest {
                parent: acme(),
                page_token: tk(),
                ..Default::default()
            })
            .await,
        );
        refused(
            "ListOpenInvoices",
            bad,
            l.list_open_invoices(pb::ListOpenInvoicesRequest {
                parent: acme(),
                page_token: tk(),
                ..Default::default()
            })
            .await,
        );
        refused(
            "ListJournalEntries",
            bad,
            l.list_journal_entries(pb::ListJournalEntriesRequest {
                parent: acme(),
                page_token: tk(),
                ..Default::default()
            })
            .await,
        );
        refused(
            "ListHandoffContracts",
            bad,
            handoffs
                .clone()
                .list_handoff_contracts(pb::ListHandoffContractsRequest {
                    parent: acme(),
                    page_token: tk(),
                    ..Default::default()
                })
                .await,
        );
        refused(
            "ListTransactions",
            bad,
            t.transactions
                .clone()
                .list_transactions(pb::ListTransactionsRequest {
                    parent: acme(),
                    page_token: tk(),
                    ..Default::default()
                })
                .await,
        );
        refused(
            "ListExceptions",
            bad,
            t.exceptions
                .clone()
                .list_exceptions(pb::ListExceptionsRequest {
                    parent: acme(),
                    page_token: tk(),
                    ..Default::default()
                })
                .await,
        );
    }
    // The poll cursor is checked too, by its own name.
    let err = ledger
        .clone()
        .list_journal_entries(pb::ListJournalEntriesRequest {
            parent: "merchants/acme".into(),
            after_export_sequence: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), vec!["after_export_sequence"]);
}
