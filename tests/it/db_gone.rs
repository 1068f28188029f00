//! Calls in flight when the database goes away answer UNAVAILABLE, like
//! the calls after them: never INTERNAL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::*;

fn batch(round: usize, n: usize) -> Vec<pb::Record> {
    (0..n)
        .flat_map(|i| {
            let id = format!("{round}-{i}");
            vec![order(&id, "10.00"), charge(&id, "10.00")]
        })
        .collect()
}

/// Streams the records as three chunks; the first error ends the stream.
async fn stream(
    ingest: &IngestServiceClient<Channel>,
    records: Vec<pb::Record>,
) -> Result<(), tonic::Status> {
    let chunks: Vec<_> = records
        .chunks(200)
        .map(|c| pb::StreamRecordsRequest {
            parent: "merchants/acme".into(),
            request_id: String::new(),
            records: c.to_vec(),
        })
        .collect();
    let mut replies = ingest
        .clone()
        .stream_records(tokio_stream::iter(chunks))
        .await?
        .into_inner();
    while replies.message().await?.is_some() {}
    Ok(())
}

#[tokio::test]
async fn calls_in_flight_when_the_database_connections_die_answer_unavailable() {
    let app = TestApp::start().await;
    app.submit(batch(0, 20)).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut callers = vec![];
    for caller in 0..4 {
        let (ingest, transactions, stop) =
            (app.ingest.clone(), app.transactions.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut codes = vec![];
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                let records = batch(round * 10 + caller, 300);
                let code = match caller {
                    0 => ingest
                        .clone()
                        .submit_records(pb::SubmitRecordsRequest {
                            parent: "merchants/acme".into(),
                            request_id: String::new(),
                            records,
                        })
                        .await
                        .map(|_| ()),
                    1 => stream(&ingest, records).await,
                    2 => transactions
                        .clone()
                        .list_transactions(pb::ListTransactionsRequest {
                            parent: "merchants/acme".into(),
                            page_size: 1000,
                            ..Default::default()
                        })
                        .await
                        .map(|_| ()),
                    _ => transactions
                        .clone()
                        .get_reconciliation_status(pb::GetReconciliationStatusRequest {
                            name: "merchants/acme/transactions/0-1".into(),
                        })
                        .await
                        .map(|_| ()),
                };
                codes.push(code.map(|_| Code::Ok).unwrap_or_else(|s| {
                    if !matches!(s.code(), Code::Unavailable) {
                        eprintln!("caller {caller}: {s:?}");
                    }
                    s.code()
                }));
                round += 1;
            }
            codes
        }));
    }
    // Kill the test database's connections again and again, while calls run.
    let admin = admin().await;
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND state = 'active' AND pid <> pg_backend_pid()",
        app.db.name
    );
    let mut killed = 0;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        killed += admin.query(&kill, &[]).await.unwrap().len();
    }
    stop.store(true, Ordering::Relaxed);
    let mut codes = vec![];
    for c in callers {
        codes.extend(c.await.unwrap());
    }
    let unavailable = codes.iter().filter(|c| **c == Code::Unavailable).count();
    let other: Vec<_> = codes
        .iter()
        .filter(|c| !matches!(c, Code::Ok | Code::Unavailable))
        .collect();
    eprintln!(
        "killed {killed}, calls {}, unavailable {unavailable}",
        codes.len()
    );
    assert!(other.is_empty(), "{other:?} among {} calls", codes.len());
    assert!(unavailable > 0, "no call was caught in flight: {codes:?}");
    // And the service comes back once the database takes connections again.
    app.submit(batch(9999, 2)).await.unwrap();
}
