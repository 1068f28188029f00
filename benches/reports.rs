//! Period reports: a month and a day as of now and as of earlier knowledge
//! times, while ingest runs, against a baseline measured in the same run: a
//! plain `SUM ... GROUP BY` over the same facts, one row per fact, with no
//! versions and no knowledge time (the cheapest report that cannot say
//! what was known when).
//!
//!   cargo bench --bench reports                       (100,000 orders)
//!   TALLY_BENCH_REPORT_ORDERS=1000000 cargo bench --bench reports
//!
//! Setup: a month of orders (storefront order, capture, invoice; one in
//! ten refunded with a credit memo; one in twenty with a late corrected
//! invoice, a new version; exceptions and handoffs) counted through the
//! same code ingest uses (`app::reports::deltas::version_deltas`, then
//! `storage::reports::add`), one transaction per `TALLY_BENCH_REPORT_BATCH`
//! records (default 500) in event-time order, as a stream of a live shop
//! arrives. The baseline table holds every fact of the same records.
//! During the timed rounds, a task submits orders through gRPC all along.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tally::app::reports::deltas::version_deltas;
use tally::domain::currency::Currency;
use tally::domain::money::Money;
use tally::domain::record::*;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;
use tally::server::Running;
use tally::storage::{Store, reports, run_migrations};
use tokio_postgres::NoTls;

#[path = "support/mod.rs"]
mod support;
use support::{order_records, scratch_database};

const SAMPLES: usize = 40;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rec(system: &str, id: String, order: &str, at: DateTime<Utc>, body: Body) -> Record {
    Record {
        source_id: id,
        source_system: system.into(),
        order_id: Some(order.into()),
        references: vec![],
        event_time: at,
        source_update_time: None,
        body,
    }
}

/// One order's records; `i` picks its refunds and corrections.
fn order(i: usize, at: DateTime<Utc>) -> Vec<(Record, Option<Record>)> {
    let usd = |a: &str| Money::new(a.parse().unwrap(), Currency::from_code("USD").unwrap());
    let o = format!("o{i}");
    let invoice = |total: &str| {
        Body::Invoice(Invoice {
            total: usd(total),
            discount: None,
            tax: None,
            shipping: None,
            lines: vec![],
        })
    };
    let mut out = vec![
        (
            rec(
                "shopify",
                o.clone(),
                &o,
                at,
                Body::StorefrontOrder(StorefrontOrder {
                    name: format!("#{i}"),
                    total: usd("100.00"),
                    subtotal: None,
                    total_discount: Some(usd("5.00")),
                    total_tax: Some(usd("8.00")),
                    total_shipping: Some(usd("4.99")),
                    line_items: vec![],
                    discounts: vec![],
                    tenders: vec![],
                }),
            ),
            None,
        ),
        (
            rec(
                "stripe",
                format!("ch_{i}"),
                &o,
                at,
                Body::ProcessorPayment(ProcessorPayment {
                    payment_type: PaymentType::Charge,
                    amount: usd("100.00"),
                    fee: Some(usd("3.20")),
                    exchange_rate: None,
                    payment_intent_id: None,
                    charge_id: None,
                    balance_transaction_id: None,
                }),
            ),
            None,
        ),
        (
            rec(
                "netsuite",
                format!("INV-{i}"),
                &o,
                at + chrono::Duration::hours(2),
                invoice("100.00"),
            ),
            None,
        ),
    ];
    if i.is_multiple_of(10) {
        out.push((
            rec(
                "netsuite",
                format!("CM-{i}"),
                &o,
                at + chrono::Duration::hours(30),
                Body::CreditMemo(CreditMemo {
                    total: usd("20.00"),
                    tax: None,
                    lines: vec![],
                    shipping: None,
                }),
            ),
            None,
        ));
    }
    if i.is_multiple_of(20) {
        // A corrected invoice: the new version, and the one it supersedes.
        let old = rec(
            "netsuite",
            format!("INV-{i}"),
            &o,
            at + chrono::Duration::hours(2),
            invoice("100.00"),
        );
        out.push((
            rec(
                "netsuite",
                format!("INV-{i}"),
                &o,
                at + chrono::Duration::hours(2),
                invoice("99.99"),
            ),
            Some(old),
        ));
    }
    out
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orders = env("TALLY_BENCH_REPORT_ORDERS", 100_000);
    let per_tx = env("TALLY_BENCH_REPORT_BATCH", 500);
    let (admin, db, url) = scratch_database("tally_bench_reports").await;
    run_migrations(&url).await.unwrap();
    let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    raw.batch_execute(
        "CREATE TABLE bench_facts (merchant_id text, event_time timestamptz, figure text,
            currency_code text, amount numeric, count bigint);
         CREATE INDEX ON bench_facts (merchant_id, event_time);",
    )
    .await
    .unwrap();
    let store = Store::connect(&url, 8).unwrap();

    // The month: November 2026, orders evenly through it, in event order.
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    let step = 30 * 86_400 * 1_000_000 / orders as i64;
    let load = Instant::now();
    let mut knowledge = vec![];
    let (mut pending, mut facts) = (vec![], 0usize);
    let flush = async |pending: &mut Vec<reports::Delta>,
                       rows: &mut Vec<(DateTime<Utc>, String, Decimal, i64)>| {
        let c = store.conn().await.unwrap();
        reports::add(&c, "bench", std::mem::take(pending))
            .await
            .unwrap();
        let (t, f, a, n): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) =
            rows.drain(..)
                .fold((vec![], vec![], vec![], vec![]), |mut acc, (t, f, a, n)| {
                    acc.0.push(t.to_rfc3339());
                    acc.1.push(f);
                    acc.2.push(a.to_string());
                    acc.3.push(n);
                    acc
                });
        raw.execute(
            "INSERT INTO bench_facts SELECT 'bench', t::timestamptz, f, 'USD', a::numeric, n
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS x(t, f, a, n)",
            &[&t, &f, &a, &n],
        )
        .await
        .unwrap();
    };
    let mut rows = vec![];
    let mut in_tx = 0;
    for i in 0..orders {
        let at = start + chrono::Duration::microseconds(step * i as i64);
        for (r, superseded) in order(i, at) {
            pending.extend(version_deltas(&r, 1).unwrap());
            if let Some(old) = superseded {
                pending.extend(version_deltas(&old, -1).unwrap());
            } else {
                for (b, f, _, a, n) in version_deltas(&r, 1).unwrap() {
                    rows.push((b, f, a, n));
                }
            }
            in_tx += 1;
        }
        // What triggers add for the order's handoffs and exceptions.
        let b = tally::domain::report::bucket(at);
        pending.push((
            b,
            "completeness.orders".into(),
            String::new(),
            Decimal::ZERO,
            1,
        ));
        if i % 25 == 0 {
            pending.push((
                b,
                "exceptions.discount_unmapped".into(),
                "USD".into(),
                "5.00".parse().unwrap(),
                1,
            ));
        }
        if in_tx >= per_tx {
            facts += rows.len();
            flush(&mut pending, &mut rows).await;
            knowledge.push(Utc::now());
            in_tx = 0;
        }
    }
    facts += rows.len();
    flush(&mut pending, &mut rows).await;
    raw.batch_execute("ANALYZE").await.unwrap();
    let deltas: i64 = raw
        .query_one("SELECT count(*) FROM report_deltas", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "loaded {orders} orders ({facts} facts; {deltas} delta rows) in {:.1?}",
        load.elapsed()
    );

    let (server, channel) = support::serve(store.clone()).await;
    // Ingest all along the timed rounds (new orders in the same month).
    let ingest = {
        let client = IngestServiceClient::new(channel.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                let mut records = vec![];
                for k in 0..100 {
                    records.extend(order_records(
                        &format!("live-{n}-{k}"),
                        1_000_000 + (n * 100 + k) as i64,
                    ));
                }
                let _ = client
                    .clone()
                    .submit_records(pb::SubmitRecordsRequest {
                        parent: "merchants/bench".into(),
                        request_id: String::new(),
                        records,
                    })
                    .await;
                n += 1;
            }
        })
    };
    let mut client = ReportServiceClient::new(channel);
    let mut timed = async |period: &str, as_of: Option<DateTime<Utc>>| {
        let t = Instant::now();
        let r = client
            .get_period_report(pb::GetPeriodReportRequest {
                parent: "merchants/bench".into(),
                period: Some(pb::PeriodSelector {
                    period: period.into(),
                    ..Default::default()
                }),
                as_of: as_of.map(|t| prost_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.figures.is_empty());
        t.elapsed()
    };
    let baseline = async |from: &str, to: &str| {
        let t = Instant::now();
        let rows = raw.query(
            "SELECT figure, currency_code, sum(amount), sum(count) FROM bench_facts
             WHERE merchant_id = 'bench' AND event_time >= $1::text::timestamptz AND event_time < $2::text::timestamptz
             GROUP BY 1, 2", &[&from, &to]).await.unwrap();
        assert!(!rows.is_empty());
        t.elapsed()
    };
    let (mut month_now, mut month_then, mut day_now, mut base_month, mut base_day) =
        (vec![], vec![], vec![], vec![], vec![]);
    for s in 0..SAMPLES {
        month_now.push(timed("2026-11", None).await);
        let then = knowledge[(s * 7919) % knowledge.len()];
        month_then.push(timed("2026-11", Some(then)).await);
        day_now.push(timed("2026-11-17", None).await);
        base_month.push(baseline("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z").await);
        base_day.push(baseline("2026-11-17T00:00:00Z", "2026-11-18T00:00:00Z").await);
    }
    ingest.abort();
    let (on, off, deltas) = ingest_cost(&raw, &store, &server).await;
    let bm = pct(base_month.clone(), 0.5);
    let bd = pct(base_day.clone(), 0.5);
    println!(
        "\n| report ({orders} orders, ingest running) | p50 | p99 | baseline p50 | ratio (p50 / baseline) |"
    );
    println!("|---|---|---|---|---|");
    for (name, v, base) in [
        ("month as of now", &month_now, bm),
        ("month as of an earlier time", &month_then, bm),
        ("day as of now", &day_now, bd),
    ] {
        let p50 = pct(v.clone(), 0.5);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.3}x |",
            p50.as_secs_f64() * 1e3,
            pct(v.clone(), 0.99).as_secs_f64() * 1e3,
            base.as_secs_f64() * 1e3,
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!(
        "| baseline month (SUM GROUP BY) | {:.1} ms | {:.1} ms | | |",
        bm.as_secs_f64() * 1e3,
        pct(base_month, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| baseline day | {:.1} ms | {:.1} ms | | |",
        bd.as_secs_f64() * 1e3,
        pct(base_day, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "\n| ingest, 1,000 new records per SubmitRecords | ms (median) |\n|---|---|\n\
         | report triggers on | {:.1} |\n| report triggers off | {:.1} |\n\
         | Tally's own report deltas (records, handoffs), two statements alone (own commits) | {:.1} |\n\
         | write-path cost of reports: (on - off + deltas) / off | {:.1}% |",
        ms(on),
        ms(off),
        ms(deltas),
        (ms(on) - ms(off) + ms(deltas)) / ms(off) * 100.0
    );
    drop(server);
    drop(raw);
    let _ = admin
        .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
        .await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The triggers that keep report deltas on the write path.
const TRIGGERS: [(&str, &str); 5] = [
    ("exceptions", "exceptions_report"),
    ("exceptions", "exceptions_event_time"),
    ("transactions", "transactions_inserted"),
    ("transactions", "transactions_moved"),
    ("journal_lines", "journal_lines_report"),
];

/// Ingest with the report triggers (and the record log's knowledge-time
/// index) on and off, alternating rounds of 1,000 new records (median of
/// each), and the report deltas statement ingest adds, timed alone for
/// the same records: together, what period reports cost the write path.
async fn ingest_cost(
    raw: &tokio_postgres::Client,
    store: &Store,
    server: &Running,
) -> (Duration, Duration, Duration) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = IngestServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let set = async |enabled: bool| {
        for (table, trigger) in TRIGGERS {
            let verb = if enabled { "ENABLE" } else { "DISABLE" };
            raw.batch_execute(&format!("ALTER TABLE {table} {verb} TRIGGER {trigger}"))
                .await
                .unwrap();
        }
        raw.batch_execute(if enabled {
            "CREATE INDEX IF NOT EXISTS record_log_received ON record_log USING brin (receive_time)"
        } else {
            "DROP INDEX IF EXISTS record_log_received"
        })
        .await
        .unwrap();
    };
    let submit = async |tag: String| {
        let records = support::batch_of(|i| format!("{tag}-{i}"), |i| 3_000_000 + i as i64);
        let t = Instant::now();
        support::submit(&client, "cost", records).await;
        t.elapsed()
    };
    submit("warm".into()).await;
    let (mut on, mut off, mut deltas) = (vec![], vec![], vec![]);
    for round in 0..9 {
        set(false).await;
        off.push(submit(format!("off{round}")).await);
        set(true).await;
        on.push(submit(format!("on{round}")).await);
        let records: Vec<Record> =
            support::batch_of(|i| format!("d{round}-{i}"), |i| 3_000_000 + i as i64)
                .iter()
                .map(|r| tally::api::validate::record(0, r, &mut vec![]).expect("valid"))
                .collect();
        // What Tally adds itself: the records' deltas, and the handoffs
        // each new order opens (three, and it starts waiting).
        let t = Instant::now();
        let mut d = vec![];
        let mut handoffs = vec![];
        for r in &records {
            d.extend(version_deltas(r, 1).unwrap());
            if matches!(r.body, Body::StorefrontOrder(_)) {
                let b = tally::domain::report::bucket(r.event_time);
                for f in [
                    "waiting.order_to_fulfillment",
                    "waiting.invoice_to_payment",
                    "orders_waiting",
                    "waiting.payment_to_cash_application",
                ] {
                    handoffs.push((
                        b,
                        format!("completeness.{f}"),
                        String::new(),
                        Decimal::ZERO,
                        1,
                    ));
                }
            }
        }
        let c = store.conn().await.unwrap();
        reports::add(&c, "cost-deltas", d).await.unwrap();
        reports::add(&c, "cost-deltas", handoffs).await.unwrap();
        deltas.push(t.elapsed());
    }
    (pct(on, 0.5), pct(off, 0.5), pct(deltas, 0.5))
}
