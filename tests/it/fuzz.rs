//! Randomized hostile input, through both ingest calls: every record kind
//! with every field drawn from hostile strings (NUL, control, zero-width,
//! bidi, huge, blank, odd Unicode), extreme numbers (the decimal maximum,
//! many digits, negative zero, exponent forms), extreme dates and extreme
//! quantities. The only answers are acceptance, INVALID_ARGUMENT naming
//! fields, or RESOURCE_EXHAUSTED for size: never INTERNAL, CANCELLED,
//! UNKNOWN or a panic; a stream keeps serving good records after bad ones;
//! nothing refused is stored and nothing stored carries what text refuses.
//! The seed is fixed, so a failure replays.

use tally::proto::tally::v1 as pb;
use tonic::Code;

use crate::common::*;
use crate::fuzz_gen::generator;

/// Whether a status is one a hostile caller may see.
fn allowed(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument | Code::ResourceExhausted
    )
}

/// Every string stored in a payload, and whether it holds what the text
/// check refuses everywhere (listed here as the issue does, not taken from
/// the code under test).
fn forbidden_text(v: &serde_json::Value) -> Option<String> {
    let bad = |c: char| {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            || matches!(c,
                '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    };
    match v {
        serde_json::Value::String(s) if s.chars().any(bad) || s.chars().count() > 1024 => {
            Some(s.chars().take(40).collect())
        }
        serde_json::Value::Array(xs) => xs.iter().find_map(forbidden_text),
        serde_json::Value::Object(m) => m.values().find_map(forbidden_text),
        _ => None,
    }
}

async fn assert_nothing_forbidden_stored(app: &TestApp) {
    let rows = app
        .db
        .client()
        .await
        .query("SELECT payload FROM record_log", &[])
        .await
        .unwrap();
    for row in rows {
        let payload: serde_json::Value = row.get(0);
        assert_eq!(forbidden_text(&payload), None, "stored: {payload}");
    }
}

#[tokio::test]
async fn hostile_batches_through_submit_records_get_a_result_or_named_fields() {
    let app = TestApp::start().await;
    let mut g = generator(0x5eed_0000_0000_0006);
    let (mut accepted, mut refused) = (0, 0);
    let db = app.db.client().await;
    let stored = async || -> i64 {
        db.query_one("SELECT count(*) FROM record_log", &[])
            .await
            .unwrap()
            .get(0)
    };
    for n in 0..250 {
        let records: Vec<_> = (0..1 + g.rng.below(3))
            .map(|i| g.record(n * 4 + i))
            .collect();
        let before = stored().await;
        match app.submit(records.clone()).await {
            Ok(r) => {
                assert_eq!(r.results.len(), records.len());
                accepted += 1;
            }
            Err(status) => {
                assert!(allowed(&status), "batch {n}: {status:?}\n{records:?}");
                if status.code() == Code::InvalidArgument {
                    let fields = bad_fields(&status);
                    assert!(
                        !fields.is_empty() && fields.iter().all(|f| f.starts_with("records[")),
                        "{fields:?}"
                    );
                }
                assert_eq!(stored().await, before, "refused but stored");
                refused += 1;
            }
        }
    }
    eprintln!("accepted {accepted}, refused {refused}");
    assert!(
        accepted > 25 && refused > 25,
        "accepted {accepted}, refused {refused}"
    );
    assert_nothing_forbidden_stored(&app).await;
    // What was stored reads back: no INTERNAL on the way out either.
    for order in ["1001", "1002", "A-7", "x.y_z~1"] {
        match app.transaction(order).await {
            Ok(_) => {}
            Err(s) => assert_eq!(s.code(), Code::NotFound, "{s:?}"),
        }
        app.status(order).await;
    }
    let list = app
        .transactions
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            parent: "merchants/acme".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await;
    assert!(list.is_ok(), "{list:?}");
}

#[tokio::test]
async fn a_stream_of_hostile_chunks_keeps_serving_the_good_ones() {
    let app = TestApp::start().await;
    let mut g = generator(0x5eed_0000_0000_0007);
    const CHUNKS: usize = 200;
    let mut requests = vec![];
    for n in 0..CHUNKS {
        let records: Vec<_> = (0..1 + g.rng.below(3))
            .map(|i| g.record(n * 4 + i))
            .collect();
        requests.push(pb::StreamRecordsRequest {
            parent: "merchants/acme".into(),
            request_id: String::new(),
            records,
        });
        // After every hostile chunk, a good one that must be stored.
        requests.push(pb::StreamRecordsRequest {
            parent: "merchants/acme".into(),
            request_id: String::new(),
            records: vec![order(&format!("good-{n}"), "10.00")],
        });
    }
    let sent: Vec<usize> = requests.iter().map(|r| r.records.len()).collect();
    let mut replies = app
        .ingest
        .clone()
        .stream_records(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let (mut rejected, mut stored) = (0, 0);
    for (i, want) in sent.iter().enumerate() {
        let reply = match replies.message().await {
            Ok(Some(r)) => r,
            Ok(None) => panic!("the stream ended after {i} of {} chunks", sent.len()),
            Err(s) => panic!("the stream failed at chunk {i}: {s:?}"),
        };
        assert_eq!(reply.results.len(), *want, "chunk {i}");
        for r in &reply.results {
            match r.outcome() {
                pb::RecordOutcome::Rejected => {
                    let e = r.error.as_ref().expect("a rejection carries its status");
                    assert_eq!(e.code, Code::InvalidArgument as i32);
                    rejected += 1;
                }
                pb::RecordOutcome::Unspecified => panic!("chunk {i}: {r:?}"),
                _ => stored += 1,
            }
        }
        if i % 2 == 1 {
            assert_eq!(
                reply.results[0].outcome(),
                pb::RecordOutcome::Accepted,
                "the good chunk after hostile chunk {}",
                i / 2
            );
        }
    }
    assert!(replies.message().await.unwrap().is_none());
    eprintln!("rejected {rejected}, stored {stored}");
    assert!(
        rejected > 25 && stored > CHUNKS + 25,
        "rejected {rejected}, stored {stored}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM record_log WHERE source_id LIKE 'good-%'")
            .await,
        CHUNKS as i64
    );
    assert_nothing_forbidden_stored(&app).await;
}
