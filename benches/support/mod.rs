//! What the benchmarks share: the records they submit and small helpers.
//! Included by each bench with `#[path = "support/mod.rs"] mod support;`,
//! so each uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use tally::proto::tally::v1 as pb;

/// Records per SubmitRecords batch.
pub const BATCH: usize = 1000;

pub fn usd(a: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "USD".into(),
        amount: a.into(),
    })
}

/// A fixed instant (late October 2026) plus `secs`: inside the event-time
/// window validation allows.
pub fn ts(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: 1_793_000_000 + secs,
        nanos: 0,
    })
}

/// One clean order, `at` seconds after [`ts`]'s base: the storefront order
/// with its card tender, the processor's charge, and the ERP invoice.
pub fn order_records(order: &str, at: i64) -> [pb::Record; 3] {
    let rec = |system: &str, id: String, secs: i64, kind| pb::Record {
        source_id: id,
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(at + secs),
        source_update_time: None,
        kind: Some(kind),
    };
    [
        rec(
            "shopify",
            order.into(),
            0,
            pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
                total: usd("100.00"),
                tenders: vec![pb::Tender {
                    r#type: pb::TenderType::Card as i32,
                    amount: usd("100.00"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        ),
        rec(
            "stripe",
            format!("ch_{order}"),
            5,
            pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
                r#type: pb::ProcessorPaymentType::Charge as i32,
                amount: usd("100.00"),
                fee: usd("3.20"),
                ..Default::default()
            }),
        ),
        rec(
            "netsuite",
            format!("INV-{order}"),
            60,
            pb::record::Kind::Invoice(pb::Invoice {
                total: usd("100.00"),
                ..Default::default()
            }),
        ),
    ]
}

/// [`BATCH`] records: orders `order(i)` at `at(i)`, the last one cut short.
pub fn batch_of(order: impl Fn(usize) -> String, at: impl Fn(usize) -> i64) -> Vec<pb::Record> {
    let mut out = Vec::with_capacity(BATCH);
    let mut i = 0;
    while out.len() < BATCH {
        let records = order_records(&order(i), at(i));
        out.extend(records.into_iter().take(BATCH - out.len()));
        i += 1;
    }
    out
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The URL of database `db` on the server of `admin`.
pub fn url_for(admin: &str, db: &str) -> String {
    format!("{}/{db}", &admin[..admin.rfind('/').unwrap()])
}

/// A new, empty database on the server of `TALLY_BENCH_DATABASE_URL` (else
/// the local PostgreSQL), named `{prefix}_{pid}`: the admin connection (to
/// drop it at the end), its name and its URL. Migrations are the caller's.
pub async fn scratch_database(prefix: &str) -> (tokio_postgres::Client, String, String) {
    let admin_url = std::env::var("TALLY_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let db = format!("{prefix}_{}", std::process::id());
    admin
        .execute(
            &format!(
                "CREATE DATABASE {db} {}",
                std::env::var("TALLY_BENCH_CREATE_OPTIONS").unwrap_or_default()
            ),
            &[],
        )
        .await
        .unwrap();
    let url = url_for(&admin_url, &db);
    (admin, db, url)
}

/// A Tally server on a free loopback port over `store`, and a channel to it.
pub async fn serve(
    store: tally::storage::Store,
) -> (tally::server::Running, tonic::transport::Channel) {
    let server = tally::server::Running::start(
        store,
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, channel)
}

/// Runs `loops` worker loops over the merchants, as `tally worker` does,
/// each starting at another merchant, until every merchant has no job left;
/// returns when each loop ran out of work.
pub async fn run_worker_loops(
    app: &tally::app::App,
    merchants: &[String],
    loops: usize,
) -> Vec<std::time::Instant> {
    let mut tasks = vec![];
    for n in 0..loops {
        let (app, merchants) = (app.clone(), merchants.to_vec());
        tasks.push(tokio::spawn(async move {
            let retry = tally::app::cash::RetryPolicy::default();
            let batch = tally::app::worker::WorkerConfig::default().batch;
            let mut idle = 0;
            while idle < merchants.len() {
                idle = 0;
                for k in 0..merchants.len() {
                    let m = &merchants[(k + n) % merchants.len()];
                    if app.run_jobs(m, &retry, batch).await.unwrap().is_empty() {
                        idle += 1;
                    }
                }
            }
            std::time::Instant::now()
        }));
    }
    let mut ends = vec![];
    for t in tasks {
        ends.push(t.await.unwrap());
    }
    ends
}

/// The benchmarks' gRPC client of the ingest service.
pub type Ingest =
    tally::proto::tally::v1::ingest_service_client::IngestServiceClient<tonic::transport::Channel>;

/// One SubmitRecords call of `records` as `merchant`; its answer.
pub async fn submit(
    client: &Ingest,
    merchant: &str,
    records: Vec<pb::Record>,
) -> pb::SubmitRecordsResponse {
    client
        .clone()
        .submit_records(pb::SubmitRecordsRequest {
            parent: format!("merchants/{merchant}"),
            request_id: String::new(),
            records,
        })
        .await
        .unwrap_or_else(|e| panic!("SubmitRecords as {merchant}: {e}"))
        .into_inner()
}

/// The records as `merchant`, in calls of [`BATCH`] records, one after another.
pub async fn submit_batches(client: &Ingest, merchant: &str, records: &[pb::Record]) {
    for chunk in records.chunks(BATCH) {
        submit(client, merchant, chunk.to_vec()).await;
    }
}

/// Submits the records as merchant "bench", again after a failed call, up
/// to 20 times, `pause` apart. A failed call rolled back whole: the
/// server's lock table is shared with other databases' big transactions,
/// and a call fails while it is full.
pub async fn submit_retrying(client: &Ingest, records: Vec<pb::Record>, pause: Duration) {
    for attempt in 1.. {
        let sent = client
            .clone()
            .submit_records(pb::SubmitRecordsRequest {
                parent: "merchants/bench".into(),
                request_id: String::new(),
                records: records.clone(),
            })
            .await;
        match sent {
            Ok(_) => return,
            Err(e) if attempt < 20 => {
                eprintln!("ingest call failed ({}), again", e.message());
                tokio::time::sleep(pause).await;
            }
            Err(e) => panic!("ingest call failed {attempt} times: {e}"),
        }
    }
}

pub mod capture;
pub mod payouts;
pub mod preload;
