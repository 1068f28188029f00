//! Issue 20: period reports as of a knowledge time, end to end. A report as
//! of T is the same (same digest) after late records, new versions and
//! resolved exceptions; the diff explains every cent; ghost revenue is the
//! sum of its exceptions; a closed period keeps late facts apart.

use std::collections::BTreeMap;
use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::report_service_client::ReportServiceClient;

use crate::common::*;

fn november() -> Option<pb::PeriodSelector> {
    Some(pb::PeriodSelector {
        period: "2026-11".into(),
        ..Default::default()
    })
}

async fn report(
    app: &TestApp,
    as_of: Option<prost_types::Timestamp>,
) -> pb::GetPeriodReportResponse {
    ReportServiceClient::new(app.channel.clone())
        .get_period_report(pb::GetPeriodReportRequest {
            parent: "merchants/acme".into(),
            period: november(),
            as_of,
        })
        .await
        .unwrap()
        .into_inner()
}

fn figure(r: &[pb::ReportFigure], name: &str, currency: &str) -> (String, i64) {
    r.iter()
        .find(|f| f.figure == name && f.currency_code == currency)
        .map(|f| (f.amount.clone(), f.count))
        .unwrap_or(("0".into(), 0))
}

/// A knowledge time strictly between two steps: reports as of it are settled.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(30)).await;
}

fn discounted(order_id: &str) -> Vec<pb::Record> {
    let mut o = order(order_id, "90.00");
    if let Some(pb::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total_discount = usd("10.00");
        so.discounts = vec![pb::Discount {
            code: "WELCOME10".into(),
            amount: usd("10.00"),
        }];
    }
    // The ERP invoices full retail: discount mapping ghost revenue.
    vec![o, charge(order_id, "90.00"), invoice(order_id, "100.00")]
}

fn fee_as_sales(order_id: &str) -> Vec<pb::Record> {
    let mut r = clean_order(order_id);
    r.push(journal(
        &format!("JE-{order_id}"),
        &[
            ("1000 Bank", "96.80", "0", &format!("ch_{order_id}")),
            ("4000 Sales", "0", "96.80", ""),
        ],
    ));
    r
}

#[tokio::test]
async fn a_report_as_of_t_never_moves_and_the_diff_explains_every_cent() {
    let app = TestApp::start().await;
    app.submit(clean_order("8100")).await.unwrap();
    app.submit(discounted("8101")).await.unwrap();
    app.submit(fee_as_sales("8102")).await.unwrap();
    pause().await;
    let first = report(&app, None).await;
    let t1 = first.as_of;
    assert!(t1.is_some() && first.digest.len() == 64);
    assert_eq!(
        figure(&first.figures, "storefront.orders", "USD"),
        ("290".into(), 3)
    );
    assert_eq!(
        figure(&first.figures, "storefront.discounts", "USD").0,
        "10"
    );
    assert_eq!(
        figure(&first.figures, "storefront.gross_sales", "USD").0,
        "300"
    );
    assert_eq!(figure(&first.figures, "processor.captured", "USD").0, "290");
    assert_eq!(figure(&first.figures, "processor.fees", "USD").0, "9.6");
    assert_eq!(
        figure(&first.figures, "erp.invoiced", "USD"),
        ("300".into(), 3)
    );
    assert_eq!(
        figure(&first.figures, "erp.revenue_journaled", "USD").0,
        "96.8"
    );
    assert_eq!(first.completeness.as_ref().unwrap().orders, 3);

    // Ghost revenue is the sum of its unresolved exceptions.
    let ghost: BTreeMap<&str, &str> = first
        .ghost_revenue
        .iter()
        .map(|g| (g.category.as_str(), g.amount.as_str()))
        .collect();
    assert_eq!(ghost.get("discount_mapping"), Some(&"10"));
    assert_eq!(ghost.get("fee_allocation"), Some(&"3.2"));
    for g in &first.ghost_revenue {
        let lines = lines_of(&app, &format!("ghost.{}", g.category), t1).await;
        assert_eq!(
            sum_of(&lines, "USD").to_string(),
            g.amount,
            "{}",
            g.category
        );
        assert_eq!(lines.len() as i64, g.exception_count);
        for l in &lines {
            assert!(l.name.starts_with("merchants/acme/exceptions/"), "{l:?}");
        }
    }

    // Late: a new order, a corrected invoice (a new version), the fee
    // journal booked gross (resolving its exception).
    app.submit(clean_order("8103")).await.unwrap();
    let mut corrected = invoice("8100", "95.00");
    corrected.source_update_time = ts("2026-11-05T08:00:00Z");
    let mut gross = journal(
        "JE-8102",
        &[
            ("1200 Stripe clearing", "100.00", "0", "ch_8102"),
            ("4000 Sales", "0", "100.00", ""),
        ],
    );
    gross.source_update_time = ts("2026-11-05T08:00:00Z");
    app.submit(vec![corrected, gross]).await.unwrap();
    pause().await;

    let again = report(&app, t1).await;
    assert_eq!(
        again, first,
        "a report as of T is the same whenever it runs"
    );
    let now = report(&app, None).await;
    assert_ne!(now.digest, first.digest);
    assert_eq!(
        figure(&now.figures, "erp.invoiced", "USD"),
        ("395".into(), 4)
    );
    assert_eq!(figure(&now.figures, "ghost.fee_allocation", "USD").0, "0");

    let diff = ReportServiceClient::new(app.channel.clone())
        .diff_period_reports(pb::DiffPeriodReportsRequest {
            parent: "merchants/acme".into(),
            period: november(),
            from_as_of: t1,
            to_as_of: now.as_of,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // Every figure's move is the sum of its facts' moves, and the two
    // reports' difference.
    let mut by_facts: BTreeMap<(String, String), rust_decimal::Decimal> = BTreeMap::new();
    for f in &diff.facts {
        let m = f.r#move.as_ref().unwrap();
        *by_facts
            .entry((m.figure.clone(), m.currency_code.clone()))
            .or_default() += m.amount.parse::<rust_decimal::Decimal>().unwrap();
    }
    let invoiced = ("erp.invoiced".to_string(), "USD".to_string());
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    assert_eq!(by_facts[&invoiced], dec("95"));
    let moved = figure(&diff.moves, "erp.invoiced", "USD");
    assert_eq!(moved.0, "95");
    let superseded = diff
        .facts
        .iter()
        .find(|f| {
            f.description.contains("superseded")
                && f.r#move.as_ref().unwrap().figure == "erp.invoiced"
        })
        .expect("the invoice's old version is taken back");
    assert_eq!(
        dec(&superseded.r#move.as_ref().unwrap().amount),
        dec("-100")
    );
    assert!(
        diff.facts.iter().any(|f| f.source == "exception"),
        "{:?}",
        diff.facts
    );
    for m in &diff.moves {
        let before = figure(&first.figures, &m.figure, &m.currency_code).0;
        let after = figure(&now.figures, &m.figure, &m.currency_code).0;
        let (b, a, d): (
            rust_decimal::Decimal,
            rust_decimal::Decimal,
            rust_decimal::Decimal,
        ) = (
            before.parse().unwrap(),
            after.parse().unwrap(),
            m.amount.parse().unwrap(),
        );
        assert_eq!(a - b, d, "{}", m.figure);
    }
}

#[tokio::test]
async fn a_closed_period_keeps_late_facts_as_post_close_adjustments() {
    let app = TestApp::start().await;
    app.submit(clean_order("8200")).await.unwrap();
    pause().await;
    let mut client = ReportServiceClient::new(app.channel.clone());
    let mut close = tonic::Request::new(pb::ClosePeriodRequest {
        parent: "merchants/acme".into(),
        period: november(),
        note: "November signed off".into(),
        ..Default::default()
    });
    close
        .metadata_mut()
        .insert("x-tally-actor", "controller@acme".parse().unwrap());
    let closed = client
        .close_period(close)
        .await
        .unwrap()
        .into_inner()
        .period_close
        .unwrap();
    assert!(closed.closed && closed.actor == "controller@acme");
    let at_close = report(&app, None).await;

    app.submit(clean_order("8201")).await.unwrap();
    pause().await;
    let after = report(&app, None).await;
    assert_eq!(
        after.figures, at_close.figures,
        "closed figures never take late facts"
    );
    assert_eq!(after.closed_as_of, closed.closed_as_of);
    assert_eq!(
        figure(&after.post_close_adjustments, "erp.invoiced", "USD"),
        ("100".into(), 1)
    );

    // Closing twice is refused; reopening is recorded, then figures move.
    let mut again = tonic::Request::new(pb::ClosePeriodRequest {
        parent: "merchants/acme".into(),
        period: november(),
        ..Default::default()
    });
    again
        .metadata_mut()
        .insert("x-tally-actor", "controller@acme".parse().unwrap());
    assert_eq!(
        client.close_period(again).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    let mut reopen = tonic::Request::new(pb::ReopenPeriodRequest {
        parent: "merchants/acme".into(),
        period: november(),
        etag: closed.etag.clone(),
        note: "late invoice".into(),
    });
    reopen
        .metadata_mut()
        .insert("x-tally-actor", "controller@acme".parse().unwrap());
    let reopened = client
        .reopen_period(reopen)
        .await
        .unwrap()
        .into_inner()
        .period_close
        .unwrap();
    assert!(!reopened.closed);
    assert_eq!(reopened.history.len(), 2);
    pause().await;
    let open = report(&app, None).await;
    assert!(open.post_close_adjustments.is_empty());
    assert_eq!(
        figure(&open.figures, "erp.invoiced", "USD"),
        ("200".into(), 2)
    );
}

#[tokio::test]
async fn bad_report_requests_name_their_field() {
    let app = TestApp::start().await;
    let mut client = ReportServiceClient::new(app.channel.clone());
    let cases = [
        (
            pb::GetPeriodReportRequest {
                parent: "merchants/acme".into(),
                period: None,
                as_of: None,
            },
            "period",
        ),
        (
            pb::GetPeriodReportRequest {
                parent: "merchants/acme".into(),
                period: Some(pb::PeriodSelector {
                    period: "Nov".into(),
                    ..Default::default()
                }),
                as_of: None,
            },
            "period.period",
        ),
        (
            pb::GetPeriodReportRequest {
                parent: "merchants/acme".into(),
                period: Some(pb::PeriodSelector {
                    period: "2026-11".into(),
                    time_zone: "Mars/Base".into(),
                    ..Default::default()
                }),
                as_of: None,
            },
            "period.time_zone",
        ),
        (
            pb::GetPeriodReportRequest {
                parent: "merchants/acme".into(),
                period: november(),
                as_of: ts("2999-01-01T00:00:00Z"),
            },
            "as_of",
        ),
        (
            pb::GetPeriodReportRequest {
                parent: "acme".into(),
                period: november(),
                as_of: None,
            },
            "parent",
        ),
    ];
    for (req, field) in cases {
        let e = client.get_period_report(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{field}: {e:?}");
        assert_eq!(bad_fields(&e), vec![field.to_string()], "{e:?}");
    }
}

#[tokio::test]
async fn records_stored_before_reports_existed_are_counted_as_known_when_received() {
    let app = TestApp::start().await;
    app.submit(clean_order("8400")).await.unwrap();
    let mut corrected = invoice("8400", "95.00");
    corrected.source_update_time = ts("2026-11-05T08:00:00Z");
    app.submit(vec![corrected]).await.unwrap();
    app.submit(discounted("8401")).await.unwrap();
    pause().await;
    let before = report(&app, None).await;
    let at = before.as_of;

    // The database as an upgrade finds it: records, but no record figures
    // counted (deleted here behind the guard: triggers off for one
    // transaction, on Citus's worker connections too, where the shards'
    // triggers fire; Citus refuses DISABLE TRIGGER on a distributed table,
    // and a SET it propagates must be a statement of its own), and the
    // backfill pending.
    let db = app.db.client().await;
    for sql in [
        "BEGIN",
        "SET LOCAL citus.propagate_set_commands = 'local'",
        "SET LOCAL session_replication_role = replica",
        "DELETE FROM report_deltas
          WHERE merchant_id = 'acme' AND figure ~ '^(storefront|processor|erp|bank)\\.'",
        "COMMIT",
        "INSERT INTO report_backfills (merchant_id, upto_record_id)
         SELECT merchant_id, max(record_id) FROM record_log GROUP BY merchant_id",
    ] {
        db.batch_execute(sql).await.unwrap();
    }
    assert_ne!(report(&app, at).await.digest, before.digest);

    let store = tally::storage::Store::connect(&app.db.url, 2).unwrap();
    let counted = tally::app::reports::backfill::run(&store).await.unwrap();
    assert_eq!(
        counted, 7,
        "every stored version, the superseded one included"
    );
    assert_eq!(
        report(&app, at).await,
        before,
        "the same report as of the same time"
    );
    assert_eq!(app.count("SELECT count(*) FROM report_backfills").await, 0);
    // Running it again counts nothing twice.
    assert_eq!(tally::app::reports::backfill::run(&store).await.unwrap(), 0);
    assert_eq!(report(&app, at).await, before);
}

/// Every line `figure` lists for November as of `as_of` (one page).
async fn lines_of(
    app: &TestApp,
    figure: &str,
    as_of: Option<prost_types::Timestamp>,
) -> Vec<pb::ReportFact> {
    ReportServiceClient::new(app.channel.clone())
        .list_report_lines(pb::ListReportLinesRequest {
            parent: "merchants/acme".into(),
            period: november(),
            figure: figure.into(),
            as_of,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .lines
}

/// What `lines` move in `currency`.
fn sum_of(lines: &[pb::ReportFact], currency: &str) -> rust_decimal::Decimal {
    lines
        .iter()
        .filter_map(|l| l.r#move.as_ref())
        .filter(|m| m.currency_code == currency)
        .map(|m| m.amount.parse::<rust_decimal::Decimal>().unwrap())
        .sum()
}

/// Each ledger balance of `r` is the sum of the entries its lines list.
async fn ledger_lines_add_up(app: &TestApp, r: &pb::GetPeriodReportResponse) -> usize {
    let mut seen = 0;
    for f in r.figures.iter().filter(|f| f.figure.starts_with("ledger.")) {
        let lines = lines_of(app, &f.figure, r.as_of).await;
        assert_eq!(
            sum_of(&lines, &f.currency_code),
            f.amount.parse().unwrap(),
            "{}",
            f.figure
        );
        assert!(lines.iter().all(|l| l.source == "journal_entry"));
        seen += 1;
    }
    seen
}

#[tokio::test]
async fn the_ledger_balances_follow_the_worker_and_the_diff_names_its_entries() {
    let app = TestApp::start().await;
    app.submit(crate::cash::realistic_batch()).await.unwrap();
    pause().await;
    let before = report(&app, None).await;
    let worker = crate::cash::worker(&app).await;
    crate::cash::drain(&worker, "acme").await;
    pause().await;
    let after = report(&app, None).await;
    assert!(
        ledger_lines_add_up(&app, &after).await >= 2,
        "{:?}",
        after.figures
    );
    assert_ne!(
        figure(&after.figures, "ledger.processor_clearing", "USD"),
        figure(&before.figures, "ledger.processor_clearing", "USD")
    );
    let diff = ReportServiceClient::new(app.channel.clone())
        .diff_period_reports(pb::DiffPeriodReportsRequest {
            parent: "merchants/acme".into(),
            period: november(),
            from_as_of: before.as_of,
            to_as_of: after.as_of,
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for m in diff
        .moves
        .iter()
        .filter(|m| m.figure.starts_with("ledger."))
    {
        let facts: rust_decimal::Decimal = diff
            .facts
            .iter()
            .filter_map(|f| f.r#move.as_ref())
            .filter(|x| x.figure == m.figure && x.currency_code == m.currency_code)
            .map(|x| x.amount.parse::<rust_decimal::Decimal>().unwrap())
            .sum();
        assert_eq!(facts, m.amount.parse().unwrap(), "{}", m.figure);
    }
    assert!(diff.facts.iter().any(|f| f.source == "journal_entry"));
}

#[tokio::test]
async fn a_record_figure_pages_through_the_current_versions_it_sums() {
    let app = TestApp::start().await;
    for o in ["8500", "8501", "8502"] {
        app.submit(clean_order(o)).await.unwrap();
    }
    let mut corrected = invoice("8501", "80.00");
    corrected.source_update_time = ts("2026-11-05T08:00:00Z");
    app.submit(vec![corrected]).await.unwrap();
    pause().await;
    let r = report(&app, None).await;
    let (mut names, mut total, mut token) = (vec![], rust_decimal::Decimal::ZERO, String::new());
    loop {
        let page = ReportServiceClient::new(app.channel.clone())
            .list_report_lines(pb::ListReportLinesRequest {
                parent: "merchants/acme".into(),
                period: november(),
                figure: "erp.invoiced".into(),
                as_of: r.as_of,
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        total += sum_of(&page.lines, "USD");
        names.extend(page.lines.iter().map(|l| l.description.clone()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        total,
        "280".parse().unwrap(),
        "only the current version of INV-8501 counts"
    );
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(figure(&r.figures, "erp.invoiced", "USD").0, "280");
}

/// The settled horizon never moves back, so an as-of time Tally returned
/// is never refused later. Only client transactions count: Citus's
/// maintenance daemon never sets its statement time, and its transactions
/// showed starts 16 s old in `pg_stat_activity`, which moved the horizon
/// back (an autovacuum worker's showed up to 50 ms). Polled for 3 s: the
/// daemon wakes every 2 s.
#[tokio::test]
async fn the_settled_horizon_never_moves_back() {
    let app = TestApp::start().await;
    let store = tally::storage::Store::connect(&app.db.url, 1).unwrap();
    let mut conn = store.conn().await.unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(3);
    let mut last = tally::storage::reports::horizon(&mut conn).await.unwrap();
    let mut polls = 0;
    while std::time::Instant::now() < until {
        let now = tally::storage::reports::horizon(&mut conn).await.unwrap();
        assert!(now >= last, "the horizon moved back from {last} to {now}");
        last = now;
        polls += 1;
    }
    assert!(polls > 100, "only {polls} polls");
}
