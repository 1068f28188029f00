//! Cash application rules of issue 7 (second part): fees given back, overpayments,
//! incomplete payouts past their lag, refunds split by their credit memo, late memos in
//! another currency, failures after held cash was released.

use tally::app::App;
use tally::proto::tally::v1 as pb;
use tally::storage::Store;

use crate::cash::{account_balance, assert_ledger_sound, bt, drain, scalar};
use crate::common::*;

async fn worker(t: &TestApp) -> App {
    App::new(Store::connect(&t.db.url, 2).unwrap())
}

async fn open_cash_exceptions(t: &TestApp) -> String {
    scalar(t, "SELECT coalesce(string_agg(rule || ':' || subject, ',' ORDER BY rule, subject), '') FROM exceptions WHERE state <> 'resolved' AND (rule LIKE 'cash.%' OR rule LIKE 'ledger.%')").await
}

#[tokio::test]
async fn a_negative_fee_is_refused_except_where_the_processor_gives_a_fee_back() {
    let t = TestApp::start().await;
    let err = t
        .submit(vec![bt(
            "txn_f1", "charge", "ch_1", "10.00", "-0.30", "po_f",
        )])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        bad_fields(&err),
        vec!["records[0].balance_transaction.fee.amount"]
    );
    assert!(
        err.message().contains("dispute_reversal"),
        "{}",
        err.message()
    );
    assert_eq!(t.count("SELECT count(*) FROM record_log").await, 0);
    t.submit(vec![bt(
        "txn_f2",
        "dispute_reversal",
        "dp_1",
        "10.00",
        "-15.00",
        "po_f",
    )])
    .await
    .unwrap();
}
