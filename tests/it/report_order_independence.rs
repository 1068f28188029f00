//! Period reports as a property, over generated months in small: the same
//! record versions give the same figures whatever their arrival order and
//! batching; every report taken along the way is the same (same digest)
//! when asked again afterwards; and cents are conserved (the invoiced
//! figure is the sum of the invoices' final versions, order totals the sum
//! of the orders').
//!
//! The seed is printed; `TALLY_PROPERTY_SEED=<n>` replays one case,
//! `TALLY_PROPERTY_CASES` sets how many run (default 4).

use rust_decimal::Decimal;
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;

use crate::cash_order_independence::{Rng, seeds};
use crate::common::*;

struct Case {
    records: Vec<pb::Record>,
    invoiced: Decimal,
    ordered: Decimal,
}

fn cents(rng: &mut Rng) -> Decimal {
    Decimal::new(1000 + rng.below(19_000) as i64, 2)
}

fn versioned(mut r: pb::Record, day: u32) -> pb::Record {
    r.source_update_time = ts(&format!("2026-11-{day:02}T08:00:00Z"));
    r
}

fn generate(seed: u64) -> Case {
    let mut rng = Rng(seed.max(1));
    let (mut records, mut invoiced, mut ordered) = (vec![], Decimal::ZERO, Decimal::ZERO);
    for n in 0..(3 + rng.below(6)) {
        let id = format!("p{n}");
        let total = cents(&mut rng);
        ordered += total;
        records.push(order(&id, &total.to_string()));
        records.push(charge(&id, &total.to_string()));
        // The invoice in one to three versions; the last one counts,
        // whichever arrives last (an earlier one arriving late is stale).
        let versions = 1 + rng.below(3) as u32;
        let mut last = total;
        for v in 0..versions {
            last = if v == 0 { total } else { cents(&mut rng) };
            records.push(versioned(invoice(&id, &last.to_string()), 3 + v));
        }
        invoiced += last;
        if rng.chance(30) {
            let mut f = fulfillment(&id, "2026-11-02T11:00:00Z");
            f.event_time = ts("2026-11-02T11:00:00Z");
            records.push(f);
        }
    }
    Case {
        records,
        invoiced,
        ordered,
    }
}

async fn report(
    app: &TestApp,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetPeriodReportResponse {
    ReportServiceClient::new(app.channel.clone())
        .get_period_report(pb::GetPeriodReportRequest {
            parent: "merchants/acme".into(),
            period: Some(pb::PeriodSelector {
                period: "2026-11".into(),
                ..Default::default()
            }),
            as_of,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Submits the case in a shuffled order and batching; returns the final
/// figures. Every report taken between batches must read the same later.
async fn run(case: &Case, rng: &mut Rng) -> Vec<pb::ReportFigure> {
    let app = TestApp::start().await;
    let mut records = case.records.clone();
    rng.shuffle(&mut records);
    let mut taken = vec![];
    while !records.is_empty() {
        let n = (1 + rng.below(5) as usize).min(records.len());
        let batch: Vec<pb::Record> = records.drain(..n).collect();
        app.submit(batch).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        taken.push(report(&app, None).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for r in &taken {
        assert_eq!(
            &report(&app, r.as_of).await,
            r,
            "a report as of a past time moved"
        );
    }
    report(&app, None).await.figures
}

fn amount(figures: &[pb::ReportFigure], name: &str) -> Decimal {
    figures
        .iter()
        .find(|f| f.figure == name && f.currency_code == "USD")
        .map_or(Decimal::ZERO, |f| f.amount.parse().unwrap())
}

#[tokio::test]
async fn the_same_facts_give_the_same_report_in_any_arrival_order() {
    for seed in seeds(4) {
        eprintln!(
            "report order independence: case seed {seed} (TALLY_PROPERTY_SEED={seed} replays it)"
        );
        let case = generate(seed);
        let mut rng = Rng(seed ^ 0x5A5A_5A5A);
        let reference = run(&case, &mut rng).await;
        assert_eq!(
            amount(&reference, "erp.invoiced"),
            case.invoiced,
            "seed {seed}: cents lost"
        );
        assert_eq!(
            amount(&reference, "storefront.orders"),
            case.ordered,
            "seed {seed}"
        );
        let other = run(&case, &mut rng).await;
        assert_eq!(
            other, reference,
            "seed {seed}: another arrival order, another report"
        );
    }
}
