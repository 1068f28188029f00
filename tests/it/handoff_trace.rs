//! GetHandoffTrace and `tally trace`: a fulfilment three days after its
//! order (the contract allows 24 hours) is the lagging handoff; a clean
//! order flags none; each side shows its times and payload digest.

use tally::proto::tally::v1 as pb;

use crate::binary::tally;
use crate::cash::inv;
use crate::common::*;

async fn trace(app: &TestApp, order_id: &str) -> Result<pb::HandoffTrace, tonic::Status> {
    app.transactions
        .clone()
        .get_handoff_trace(pb::GetHandoffTraceRequest {
            name: format!("merchants/acme/transactions/{order_id}"),
        })
        .await
        .map(|r| r.into_inner().handoff_trace.unwrap())
}

fn status(s: &pb::HandoffTraceStep) -> pb::HandoffTraceStatus {
    s.status()
}

#[tokio::test]
async fn a_late_fulfilment_is_the_lagging_handoff() {
    let app = TestApp::start().await;
    app.submit(vec![
        order("L-1", "100.00"),
        charge("L-1", "100.00"),
        fulfillment("L-1", "2026-11-05T10:00:00Z"),
        inv("L-1", "INV-L-1", "100.00", "2026-11-05T10:30:00Z"),
    ])
    .await
    .unwrap();
    let t = trace(&app, "L-1").await.unwrap();
    assert_eq!(t.transaction, "merchants/acme/transactions/L-1");
    assert_eq!(t.lagging_handoff, "order-to-fulfillment");
    assert_eq!(t.steps.len(), 5);
    let first = &t.steps[0];
    assert!(first.lagging);
    assert_eq!(first.handoff(), pb::Handoff::OrderToFulfillment);
    assert_eq!(
        first.handoff_contract,
        "merchants/acme/handoffContracts/order-to-fulfillment"
    );
    assert_eq!(status(first), pb::HandoffTraceStatus::Late);
    assert_eq!(first.lag.as_ref().unwrap().seconds, 3 * 86_400);
    assert_eq!(first.max_lag.as_ref().unwrap().seconds, 86_400);
    let sent = first.sent.as_ref().unwrap();
    let received = first.received.as_ref().unwrap();
    assert_eq!(
        (sent.source_system.as_str(), sent.kind.as_str()),
        ("shopify", "storefront_order")
    );
    assert_eq!(
        (received.source_system.as_str(), received.source_id.as_str()),
        ("shipbob", "F-L-1")
    );
    assert_eq!(sent.event_time, ts("2026-11-02T10:00:00Z"));
    assert_eq!(received.event_time, ts("2026-11-05T10:00:00Z"));
    assert!(received.receive_time.is_some());
    // Tracing is off in this process: no ids, but the digest of what came.
    assert!(sent.trace_id.is_empty() && sent.span_id.is_empty());
    let stored: Vec<u8> = app
        .db
        .client()
        .await
        .query_one(
            "SELECT content_hash FROM record_log WHERE source_id = 'F-L-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let hex: String = stored.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(received.payload_digest, format!("sha256:{hex}"));
    // The invoice came 30 minutes after the shipment: on time, not flagged.
    assert_eq!(status(&t.steps[1]), pb::HandoffTraceStatus::OnTime);
    assert_eq!(t.steps[1].lag.as_ref().unwrap().seconds, 1800);
    assert_eq!(t.steps.iter().filter(|s| s.lagging).count(), 1);
    // Captured at checkout, before the invoice: measured, not late.
    assert_eq!(status(&t.steps[2]), pb::HandoffTraceStatus::OnTime);
    // The payout has not come: waiting within its week.
    assert_eq!(status(&t.steps[3]), pb::HandoffTraceStatus::Waiting);
    assert_eq!(status(&t.steps[4]), pb::HandoffTraceStatus::NotStarted);

    // The command line prints the same as a timeline.
    // Awaited, not blocking: the server runs on this test's runtime.
    let mut cli = tally();
    cli.args(["trace", "L-1", "--merchant", "acme"])
        .env("TALLY_GRPC_ADDR", app.addr().to_string());
    let out = tokio::process::Command::from(cli).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("lagging handoff: order-to-fulfillment"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("> order-to-fulfillment")
            && l.contains("LATE")
            && l.contains("lag 3d")),
        "{text}"
    );
    assert!(text.contains("shipbob fulfillment F-L-1"), "{text}");
}

#[tokio::test]
async fn a_clean_order_flags_no_handoff_and_an_unknown_one_is_not_found() {
    let app = TestApp::start().await;
    app.submit(vec![
        order("C-1", "100.00"),
        charge("C-1", "100.00"),
        fulfillment("C-1", "2026-11-02T11:00:00Z"),
        inv("C-1", "INV-C-1", "100.00", "2026-11-02T11:20:00Z"),
    ])
    .await
    .unwrap();
    let t = trace(&app, "C-1").await.unwrap();
    assert_eq!(t.lagging_handoff, "");
    assert!(t.steps.iter().all(|s| !s.lagging));
    assert_eq!(status(&t.steps[0]), pb::HandoffTraceStatus::OnTime);
    assert_eq!(t.steps[0].lag.as_ref().unwrap().seconds, 3600);

    let missing = trace(&app, "nope").await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = app
        .transactions
        .clone()
        .get_handoff_trace(pb::GetHandoffTraceRequest {
            name: "merchants/acme/orders/C-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert_eq!(bad_fields(&bad), ["name"]);
}
