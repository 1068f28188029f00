//! Records that change at their source: versions ordered by
//! `source_update_time`, through SubmitRecords and a real PostgreSQL.

use tally::proto::tally::v1 as pb;

use crate::common::*;

fn versioned(mut r: pb::Record, update_time: &str) -> pb::Record {
    r.source_update_time = ts(update_time);
    r
}

fn payout(id: &str, status: pb::PayoutStatus, update_time: &str) -> pb::Record {
    versioned(
        pb::Record {
            source_id: id.into(),
            source_system: "stripe".into(),
            order_id: String::new(),
            references: vec![],
            event_time: ts("2026-11-03T00:00:00Z"),
            source_update_time: None,
            kind: Some(pb::record::Kind::Payout(pb::Payout {
                amount: usd("96.80"),
                status: status as i32,
                arrival_time: ts("2026-11-05T00:00:00Z"),
            })),
        },
        update_time,
    )
}

/// The balance transaction of order `order`'s 100.00 charge, with its fee
/// (3.20 or 3.50), and the payout that swept it once known.
fn balance_transaction(order: &str, fee: &str, payout_id: &str) -> pb::Record {
    let net = match fee {
        "3.20" => "96.80",
        "3.50" => "96.50",
        other => panic!("no net for a fee of {other}"),
    };
    pb::Record {
        source_id: format!("txn_{order}"),
        source_system: "stripe".into(),
        order_id: String::new(),
        references: vec![],
        event_time: ts("2026-11-02T10:00:06Z"),
        source_update_time: None,
        kind: Some(pb::record::Kind::BalanceTransaction(
            pb::BalanceTransaction {
                reporting_category: "charge".into(),
                amount: usd("100.00"),
                fee: usd(fee),
                net: usd(net),
                source: format!("ch_{order}"),
                payout_id: payout_id.into(),
                ..Default::default()
            },
        )),
    }
}

fn history<'a>(t: &'a pb::Transaction, source_id: &str) -> &'a pb::RecordHistory {
    t.record_histories
        .iter()
        .find(|h| h.source_id == source_id)
        .unwrap_or_else(|| panic!("no history of {source_id}: {:?}", t.record_histories))
}

async fn current_rows(app: &TestApp, source_id: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM record_log WHERE source_id = '{source_id}' AND is_current"
    ))
    .await
}

#[tokio::test]
async fn a_payout_sent_in_transit_then_paid_reads_paid_with_both_versions() {
    let app = TestApp::start().await;
    let mut batch = clean_order("7001");
    // The balance transaction learns its payout later: a second version.
    batch.push(versioned(
        balance_transaction("7001", "3.20", ""),
        "2026-11-02T10:00:06Z",
    ));
    batch.push(payout(
        "po_7001",
        pb::PayoutStatus::InTransit,
        "2026-11-03T00:00:00Z",
    ));
    let r = app.submit(batch).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 5]);

    let r = app
        .submit(vec![
            versioned(
                balance_transaction("7001", "3.20", "po_7001"),
                "2026-11-03T00:00:01Z",
            ),
            payout("po_7001", pb::PayoutStatus::Paid, "2026-11-05T08:00:00Z"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Updated; 2]);
    assert!(r.results.iter().all(|x| x.error.is_none()));

    let t = app.transaction("7001").await.unwrap();
    assert_eq!(
        t.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        t.reasons
    );
    assert_eq!(t.external_ids.as_ref().unwrap().payout_ids, vec!["po_7001"]);
    let po = history(&t, "po_7001");
    assert_eq!(po.kind(), pb::RecordKind::Payout);
    let seen: Vec<(&str, bool, Option<prost_types::Timestamp>)> = po
        .versions
        .iter()
        .map(|v| (v.status.as_str(), v.current, v.source_update_time))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("in_transit", false, ts("2026-11-03T00:00:00Z")),
            ("paid", true, ts("2026-11-05T08:00:00Z")),
        ]
    );
    assert!(po.versions.iter().all(|v| v.amount == usd("96.80")));
    let received = |v: &pb::RecordVersion| {
        let t = v.receive_time.unwrap();
        (t.seconds, t.nanos)
    };
    assert!(received(&po.versions[0]) < received(&po.versions[1]));
    // The balance transaction's history too; merged once, as its current version.
    assert_eq!(history(&t, "txn_7001").versions.len(), 2);
    assert_eq!(
        t.external_ids.as_ref().unwrap().balance_transaction_ids,
        vec!["txn_7001"]
    );

    // Sent again, the paid version is a duplicate; the in-transit one is stale.
    let again = app
        .submit(vec![
            payout("po_7001", pb::PayoutStatus::Paid, "2026-11-05T08:00:00Z"),
            payout(
                "po_7001",
                pb::PayoutStatus::InTransit,
                "2026-11-03T00:00:00Z",
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes(&again),
        vec![pb::RecordOutcome::Duplicate, pb::RecordOutcome::Stale]
    );
    let stale = again.results[1].error.as_ref().unwrap();
    assert_eq!(stale.code, tonic::Code::FailedPrecondition as i32);
    assert_eq!(current_rows(&app, "po_7001").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE source_id = 'po_7001' AND outcome IN ('accepted', 'updated')")
            .await,
        2
    );
    assert_eq!(
        history(&app.transaction("7001").await.unwrap(), "po_7001")
            .versions
            .len(),
        2
    );
}

#[tokio::test]
async fn an_edited_order_is_matched_on_its_new_total() {
    let app = TestApp::start().await;
    let r = app
        .submit(vec![
            versioned(order("7101", "100.00"), "2026-11-02T10:00:00Z"),
            charge("7101", "120.00"),
            invoice("7101", "120.00"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Accepted; 3]);
    assert_eq!(
        app.status("7101").await.state(),
        pb::ReconciliationState::Exception
    );

    let edited = versioned(order("7101", "120.00"), "2026-11-02T11:30:00Z");
    let r = app.submit(vec![edited]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Updated]);

    let s = app.status("7101").await;
    assert_eq!(
        s.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        s.reasons
    );
    assert!(s.exceptions.is_empty(), "{:?}", s.exceptions);
    let t = app.transaction("7101").await.unwrap();
    assert_eq!(t.totals.as_ref().unwrap().order_total, usd("120.00"));
    let totals: Vec<_> = history(&t, "7101")
        .versions
        .iter()
        .map(|v| (v.amount.clone(), v.current))
        .collect();
    assert_eq!(totals, vec![(usd("100.00"), false), (usd("120.00"), true)]);
}

#[tokio::test]
async fn a_stale_version_is_logged_and_ignored() {
    let app = TestApp::start().await;
    app.submit(vec![
        versioned(order("7201", "120.00"), "2026-11-02T11:30:00Z"),
        charge("7201", "120.00"),
        invoice("7201", "120.00"),
    ])
    .await
    .unwrap();
    let r = app
        .submit(vec![versioned(
            order("7201", "100.00"),
            "2026-11-02T10:00:00Z",
        )])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Stale]);
    assert!(r.results[0].exception.is_empty());
    let t = app.transaction("7201").await.unwrap();
    assert_eq!(t.state(), pb::ReconciliationState::Matched);
    assert_eq!(t.totals.as_ref().unwrap().order_total, usd("120.00"));
    assert!(
        t.record_histories.is_empty(),
        "a stale arrival is no version"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE outcome = 'stale'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM exceptions").await, 0);
}

#[tokio::test]
async fn other_content_for_the_same_version_is_a_conflict_and_the_order_reads_exception() {
    let app = TestApp::start().await;
    app.submit(vec![
        versioned(order("7301", "100.00"), "2026-11-02T10:00:00Z"),
        charge("7301", "100.00"),
        invoice("7301", "100.00"),
    ])
    .await
    .unwrap();
    assert_eq!(
        app.status("7301").await.state(),
        pb::ReconciliationState::Matched
    );
    let r = app
        .submit(vec![versioned(
            order("7301", "105.00"),
            "2026-11-02T10:00:00Z",
        )])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Conflict]);
    let s = app.status("7301").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    assert!(
        s.exceptions
            .iter()
            .any(|e| e.r#type() == pb::ExceptionType::RecordConflict
                && e.transaction == "merchants/acme/transactions/7301")
    );
    // The original is kept.
    let t = app.transaction("7301").await.unwrap();
    assert_eq!(t.totals.as_ref().unwrap().order_total, usd("100.00"));
}

#[tokio::test]
async fn a_conflict_on_a_record_of_no_single_order_holds_the_order_it_concerns() {
    let app = TestApp::start().await;
    let mut batch = clean_order("7401");
    batch.push(balance_transaction("7401", "3.20", "po_7401"));
    app.submit(batch).await.unwrap();
    assert_eq!(
        app.status("7401").await.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        app.status("7401").await.reasons
    );
    // Same key, no version time, other content.
    let r = app
        .submit(vec![balance_transaction("7401", "3.50", "po_7401")])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Conflict]);
    let s = app.status("7401").await;
    assert_eq!(s.state(), pb::ReconciliationState::Exception);
    let conflict = s
        .exceptions
        .iter()
        .find(|e| e.r#type() == pb::ExceptionType::RecordConflict)
        .expect("the conflict is on the order's exceptions");
    assert_eq!(conflict.transaction, "merchants/acme/transactions/7401");
    assert_eq!(
        r.results[0].exception, conflict.name,
        "the result names the same exception"
    );
}

#[tokio::test]
async fn a_linked_record_merges_as_its_current_version() {
    let app = TestApp::start().await;
    let mut batch = clean_order("7501");
    // The processor's first report has the wrong fee for the charge (3.20).
    batch.push(versioned(
        balance_transaction("7501", "3.50", ""),
        "2026-11-02T10:00:06Z",
    ));
    app.submit(batch).await.unwrap();
    let s = app.status("7501").await;
    assert_eq!(
        s.state(),
        pb::ReconciliationState::Exception,
        "{:?}",
        s.reasons
    );

    let r = app
        .submit(vec![versioned(
            balance_transaction("7501", "3.20", "po_7501"),
            "2026-11-03T00:00:00Z",
        )])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Updated]);
    let s = app.status("7501").await;
    assert_eq!(
        s.state(),
        pb::ReconciliationState::Matched,
        "{:?}",
        s.reasons
    );
}

#[tokio::test]
async fn versions_in_one_batch_are_settled_in_order() {
    let app = TestApp::start().await;
    let r = app
        .submit(vec![
            payout(
                "po_7601",
                pb::PayoutStatus::InTransit,
                "2026-11-03T00:00:00Z",
            ),
            payout("po_7601", pb::PayoutStatus::Paid, "2026-11-05T00:00:00Z"),
            payout("po_7602", pb::PayoutStatus::Paid, "2026-11-05T00:00:00Z"),
            payout(
                "po_7602",
                pb::PayoutStatus::InTransit,
                "2026-11-03T00:00:00Z",
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes(&r),
        vec![
            pb::RecordOutcome::Accepted,
            pb::RecordOutcome::Updated,
            pb::RecordOutcome::Accepted,
            pb::RecordOutcome::Stale,
        ]
    );
    let paid = app
        .count("SELECT count(*) FROM record_log WHERE is_current AND payload->'body'->>'status' = 'paid'")
        .await;
    assert_eq!(paid, 2);
}

#[tokio::test]
async fn concurrent_versions_of_one_key_leave_the_latest_current() {
    let app = TestApp::start().await;
    for round in 0..6 {
        let id = format!("po_78{round:02}");
        let mut tasks = vec![];
        for i in 0..8 {
            let app_ingest = app.ingest.clone();
            // Later tasks send later versions (each with other content),
            // but start in any order.
            let mut r = payout(
                &id,
                pb::PayoutStatus::Paid,
                &format!("2026-11-05T00:00:0{i}Z"),
            );
            if let Some(pb::record::Kind::Payout(p)) = r.kind.as_mut() {
                p.amount = usd(&format!("96.8{i}"));
            }
            tasks.push(tokio::spawn(async move {
                let mut c = app_ingest;
                c.submit_records(pb::SubmitRecordsRequest {
                    parent: "merchants/acme".into(),
                    request_id: String::new(),
                    records: vec![r],
                })
                .await
                .map(|r| r.into_inner())
            }));
        }
        let mut stored = 0;
        for t in tasks {
            let r = t.await.unwrap().expect("no submission fails");
            match r.results[0].outcome() {
                pb::RecordOutcome::Accepted | pb::RecordOutcome::Updated => stored += 1,
                pb::RecordOutcome::Stale => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(current_rows(&app, &id).await, 1, "one current version");
        let latest = app
            .count(&format!(
                "SELECT extract(second FROM source_update_time)::bigint FROM record_log
                 WHERE source_id = '{id}' AND is_current"
            ))
            .await;
        assert_eq!(latest, 7, "the latest version is current");
        let versions = app
            .count(&format!(
                "SELECT count(*) FROM record_log WHERE source_id = '{id}' AND outcome IN ('accepted', 'updated')"
            ))
            .await;
        assert_eq!(versions, stored, "every stored version answered as stored");
        let accepted = app
            .count(&format!(
                "SELECT count(*) FROM record_log WHERE source_id = '{id}' AND outcome = 'accepted'"
            ))
            .await;
        assert_eq!(accepted, 1, "the key was new once");
    }
}

#[tokio::test]
async fn a_row_hashed_the_old_way_is_still_a_duplicate() {
    let app = TestApp::start().await;
    app.submit(vec![invoice("7901", "100.00")]).await.unwrap();
    // As a release before the canonical hash wrote it: a hash of the JSON
    // text, which the canonical form does not reproduce.
    // Computed by a read, then written as a value: Citus refuses an UPDATE
    // that calls a STABLE function (convert_to) over a column.
    let db = app.db.client().await;
    let old_hash: Vec<u8> = db
        .query_one(
            "SELECT sha256(convert_to(payload::text, 'UTF8')) FROM record_log
             WHERE merchant_id = 'acme' AND source_id = 'INV-7901'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let changed = db
        .execute(
            "UPDATE record_log SET content_hash = $1
             WHERE merchant_id = 'acme' AND source_id = 'INV-7901' AND content_hash <> $1",
            &[&old_hash],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let r = app.submit(vec![invoice("7901", "100.00")]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Duplicate]);
    // Other content is still a conflict.
    let r = app.submit(vec![invoice("7901", "100.05")]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Conflict]);
}

/// Found by the fuzz test: a payout record that also names the order (so the
/// order holds it) and that the order's balance transaction names too was
/// read twice, two "current" versions in one history, and the read failed.
#[tokio::test]
async fn a_payout_the_order_both_holds_and_is_paid_by_shows_one_history() {
    let app = TestApp::start().await;
    let mut batch = clean_order("7901");
    batch.push(balance_transaction("7901", "3.20", "po_7901"));
    let mut first = payout(
        "po_7901",
        pb::PayoutStatus::InTransit,
        "2026-11-03T00:00:00Z",
    );
    first.order_id = "7901".into();
    batch.push(first.clone());
    app.submit(batch).await.unwrap();
    let mut paid = payout("po_7901", pb::PayoutStatus::Paid, "2026-11-05T08:00:00Z");
    paid.order_id = "7901".into();
    let r = app.submit(vec![paid]).await.unwrap();
    assert_eq!(outcomes(&r), vec![pb::RecordOutcome::Updated]);

    let t = app.transaction("7901").await.unwrap();
    let shown: Vec<&str> = t
        .record_histories
        .iter()
        .filter(|h| h.source_id == "po_7901")
        .map(|h| h.source_id.as_str())
        .collect();
    assert_eq!(shown, vec!["po_7901"], "{:?}", t.record_histories);
    let po = history(&t, "po_7901");
    let seen: Vec<(&str, bool)> = po
        .versions
        .iter()
        .map(|v| (v.status.as_str(), v.current))
        .collect();
    assert_eq!(seen, vec![("in_transit", false), ("paid", true)]);
}
