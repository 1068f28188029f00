//! The sweeper never queues for an order's lock. Waiting on one order a
//! worker batch holds while keeping the locks of the others made every
//! writer of those orders queue behind the sweep: ingest waits of 50 s in
//! the 100,000-order service run. A busy order stays due for the next pass.

use std::time::Duration;

use tally::proto::tally::v1 as pb;

use crate::common::*;
use crate::ghost::{await_rule, payment, set_lag};

fn order_lock(order: &str) -> String {
    format!("acme\u{1f}order\u{1f}{order}")
}

#[tokio::test]
async fn a_recheck_skips_an_order_another_transaction_holds_and_takes_it_once_free() {
    let app = TestApp::start().await;
    set_lag(&app, "invoice-to-payment", 2).await;
    for order in ["7101", "7102"] {
        let mut records = clean_order(order);
        records.push(payment(
            &format!("re_{order}"),
            order,
            pb::ProcessorPaymentType::Refund,
            "20.00",
        ));
        app.submit(records).await.unwrap();
    }
    // Another transaction (a worker batch) holds 7101 past its deadline.
    let holder = app.db.client().await;
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            &[&order_lock("7101")],
        )
        .await
        .unwrap();

    // 7102 is rechecked on time: the sweep did not wait behind 7101.
    let e = await_rule(&app, "7102", "refund_not_credited").await;
    assert_eq!(e.r#type(), pb::ExceptionType::RefundNotPropagated);
    // Several sweeps have passed 7101 by; it is still due, not lost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // (Its status already says the deadline passed: it is judged when read.)
    let held = app.status("7101").await;
    assert!(held.exceptions.is_empty(), "{held:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM rechecks WHERE order_id = '7101'")
            .await,
        1
    );

    holder
        .execute(
            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
            &[&order_lock("7101")],
        )
        .await
        .unwrap();
    let e = await_rule(&app, "7101", "refund_not_credited").await;
    assert_eq!(e.r#type(), pb::ExceptionType::RefundNotPropagated);
    assert_eq!(app.count("SELECT count(*) FROM rechecks").await, 0);
}
