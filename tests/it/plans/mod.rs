//! Plans of the hot statements do not depend on table statistics: on fresh,
//! never-analysed tables grown by one merchant, each is index probes (or,
//! for a page, an index scan in the page's order), never a scan of the
//! merchant's rows. Plan shapes are deterministic where timings are not,
//! and the old shapes (a join of the keys to record_log, `= ANY($orders)`,
//! a bitmap scan and a sort for a page) fail these checks at this size.

use tally::domain::matching::ExceptionType;
use tally::domain::record::Handoff;
use tally::domain::transaction::ReconciliationState;
use tally::storage::exceptions::{self, ExceptionFilter, ExceptionState};
use tally::storage::transactions::{self, TransactionFilter};
use tally::storage::{Cursor, TimeWindow, links, record_log, record_versions};

use crate::common::TestDb;

mod explain;

use explain::{assert_page, assert_probes};
pub(crate) use explain::{check_probes, describe, explained, plans};

/// Orders of the one merchant; three records each, as a batch writes them.
const ORDERS: i32 = 3000;

const TABLES: [&str; 7] = [
    "jobs",
    "record_log",
    "order_refs",
    "record_refs",
    "record_links",
    "transactions",
    "exceptions",
];

/// Keeps autovacuum (and its ANALYZE) away from the tables, whatever the
/// server's setting. DDL: done before anything is prepared, as it would
/// make PostgreSQL replan every cached statement.
pub(crate) async fn quiet(c: &tokio_postgres::Client) {
    for t in TABLES {
        c.batch_execute(&format!("ALTER TABLE {t} SET (autovacuum_enabled = false)"))
            .await
            .unwrap();
    }
}

/// One merchant's rows: ORDERS orders, three records each.
async fn grow(c: &tokio_postgres::Client) {
    c.batch_execute(&format!(
        "INSERT INTO record_log (merchant_id, source_system, kind, source_id, order_id, outcome,
             content_hash, payload, currency_code, amount, event_time)
         SELECT 'm1', s, k, s || '-' || i, 'o' || i, 'accepted', sha256(i::text::bytea), '{{}}',
             'USD', 100, now()
         FROM generate_series(1, {ORDERS}) i,
             (VALUES ('shopify', 'storefront_order'), ('stripe', 'processor_payment'),
                     ('netsuite', 'invoice')) v(s, k);
         INSERT INTO transactions
         SELECT 'm1', 'o' || i, 'matched', '{{}}', 'USD', now() - i * interval '1 s', now(), now()
         FROM generate_series(1, {ORDERS}) i;
         INSERT INTO order_refs SELECT 'm1', 'ch_o' || i, 'o' || i FROM generate_series(1, {ORDERS}) i;
         INSERT INTO record_refs SELECT 'm1', 'ch_o' || i, i FROM generate_series(1, {ORDERS}) i;
         INSERT INTO record_links SELECT 'm1', 'o' || i, i FROM generate_series(1, {ORDERS}) i;
         INSERT INTO exceptions (merchant_id, exception_id, order_id, type, handoff, state, rule,
             subject, summary, details)
         SELECT 'm1', md5(i::text)::uuid, 'o' || i, 'amount_mismatch', 'invoice_to_payment',
             'open', 'r', 's' || i, 's', '{{}}'
         FROM generate_series(1, {ORDERS}) i;
         INSERT INTO jobs (merchant_id, kind, subject_id, run_after)
         SELECT 'm1', 'apply_order', 'o' || i, now() - i * interval '1 s'
         FROM generate_series(1, {ORDERS}) i;"
    ))
    .await
    .unwrap();
}

/// A database whose tables hold one merchant's rows and no statistics
/// (autovacuum kept away, whatever the server's setting).
async fn grown() -> (TestDb, tokio_postgres::Client) {
    let db = TestDb::new().await;
    let c = db.client().await;
    quiet(&c).await;
    grow(&c).await;
    let never: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_user_tables
             WHERE relname = ANY($1) AND last_analyze IS NULL AND last_autoanalyze IS NULL",
            &[&TABLES.to_vec()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        never,
        TABLES.len() as i64,
        "the tables must never have been analysed"
    );
    (db, c)
}

/// An array literal of `n` values, every seventh `prefix || i`.
fn array(prefix: &str, n: i32) -> String {
    let items: Vec<String> = (1..=n)
        .map(|i| format!("{prefix}{}", i * 7 % ORDERS + 1))
        .collect();
    format!("'{{{}}}'", items.join(","))
}

fn repeated(value: &str, n: i32) -> String {
    format!("'{{{}}}'", vec![value; n as usize].join(","))
}

#[tokio::test]
async fn write_path_lookups_are_index_probes_without_statistics() {
    let (_db, c) = grown().await;
    let m = "'m1'".to_string();
    let keys = [
        repeated("shopify", 1000),
        repeated("storefront_order", 1000),
        array("shopify-", 1000),
    ];
    let args = [vec![m.clone()], keys.to_vec()].concat();
    assert_probes(&c, "key lookup", record_log::FETCH_ACCEPTED, &args).await;
    for n in [334, 1] {
        let orders = array("o", n);
        assert_probes(
            &c,
            "order load",
            record_log::LOAD_RECORDS,
            &[m.clone(), orders.clone(), "NULL".into()],
        )
        .await;
        assert_probes(
            &c,
            "order load of some kinds",
            record_log::LOAD_RECORDS,
            &[
                m.clone(),
                orders.clone(),
                "'{storefront_order,invoice}'".into(),
            ],
        )
        .await;
        assert_probes(
            &c,
            "conflicted orders",
            exceptions::CONFLICTED_ORDERS,
            &[m.clone(), orders.clone()],
        )
        .await;
        assert_probes(
            &c,
            "exceptions to resolve",
            exceptions::RESOLVABLE,
            &[
                m.clone(),
                orders,
                "'{amount_mismatch,out_of_sequence}'".into(),
                "'{}'".into(),
            ],
        )
        .await;
    }
    assert_probes(&c, "links", links::LINK, &[m.clone(), array("ch_o", 1000)]).await;
    // Sent unnamed, so planned at each run with its values (no kept plan).
    let by_key = tally::storage::deposits::RESOLVE_BY_RULES
        .replace("$1", &m)
        .replace("$2", "'{00000000-0000-0000-0000-000000000001}'::uuid[]");
    check_probes(
        "exceptions resolved by the rules, by key",
        &explained(&c, &by_key).await,
    );
    let by_key = exceptions::RESOLVE_BY_KEY
        .replace("$1", &m)
        .replace("$2", "'{00000000-0000-0000-0000-000000000001}'::uuid[]");
    check_probes("exceptions resolved by key", &explained(&c, &by_key).await);
    let ids: Vec<String> = (1..=20)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    assert_probes(
        &c,
        "exceptions a person resolved",
        exceptions::PERSON_RESOLVED,
        &[m.clone(), format!("'{{{}}}'::uuid[]", ids.join(","))],
    )
    .await;
}

#[tokio::test]
async fn one_order_reads_are_index_probes_without_statistics() {
    let (_db, c) = grown().await;
    let m = "'m1'".to_string();
    let one = "'o77'".to_string();
    assert_probes(
        &c,
        "GetTransaction",
        &transactions::get_sql(),
        &[m.clone(), one.clone()],
    )
    .await;
    assert_probes(
        &c,
        "GetTransaction's records",
        record_log::LOAD_RECORDS,
        &[m.clone(), "'{o77}'".into(), "NULL".into()],
    )
    .await;
    for orders in ["'{o77}'".to_string(), array("o", 50)] {
        assert_probes(
            &c,
            "the orders' record versions",
            record_versions::ORDER_HISTORIES,
            &[m.clone(), orders],
        )
        .await;
    }
    assert_probes(
        &c,
        "GetReconciliationStatus's exceptions",
        &exceptions::unresolved_sql(),
        &[m, one],
    )
    .await;
}

#[tokio::test]
async fn pages_follow_their_index_without_statistics() {
    let (_db, c) = grown().await;
    let m = "'m1'".to_string();
    let time = "'2026-11-23T00:00:00Z'".to_string();
    let cursor = Cursor {
        time: chrono::Utc::now(),
        id: "00000000-0000-0000-0000-000000000000".into(),
    };
    let filter = TransactionFilter::default();
    let sql = transactions::list_sql(&filter, None, 50);
    assert_page(&c, "ListTransactions", &sql, std::slice::from_ref(&m)).await;
    let filter = TransactionFilter {
        state: Some(ReconciliationState::Matched),
        window: TimeWindow {
            start: Some(chrono::Utc::now()),
            end: None,
        },
    };
    let sql = transactions::list_sql(&filter, Some(&cursor), 50);
    let args = [
        m.clone(),
        "'matched'".into(),
        time.clone(),
        time.clone(),
        "'o5'".into(),
    ];
    assert_page(&c, "ListTransactions by state, after a cursor", &sql, &args).await;

    let sql = exceptions::list_sql(&ExceptionFilter::default(), None, 50).unwrap();
    assert_page(&c, "ListExceptions", &sql, std::slice::from_ref(&m)).await;
    let filter = ExceptionFilter {
        exception_type: Some(ExceptionType::AmountMismatch),
        handoff: Some(Handoff::InvoiceToPayment),
        state: Some(ExceptionState::Open),
        window: TimeWindow::default(),
        ..ExceptionFilter::default()
    };
    let sql = exceptions::list_sql(&filter, Some(&cursor), 50).unwrap();
    let args = [
        m,
        "'amount_mismatch'".into(),
        "'invoice_to_payment'".into(),
        "'open'".into(),
        time,
        format!("'{}'", cursor.id),
    ];
    assert_page(&c, "ListExceptions filtered, after a cursor", &sql, &args).await;
}

/// A connection keeps a prepared statement's generic plan once PostgreSQL
/// picks it (after five runs), and only DDL or ANALYZE replans it; inserts
/// do not. So a plan made while the tables were empty (a new deployment,
/// autovacuum off) is still the plan when they hold millions of rows: each
/// lookup's generic plan, made on empty tables and explained once they have
/// grown, must still be probes.
#[tokio::test]
async fn generic_plans_made_on_empty_tables_stay_probes_as_they_grow() {
    let db = TestDb::new().await;
    let c = db.client().await;
    quiet(&c).await;
    let m = "'m1'".to_string();
    let orders = array("o", 100);
    let lookups: Vec<(&str, String, Vec<String>)> = vec![
        (
            "key lookup",
            record_log::FETCH_ACCEPTED.into(),
            vec![
                m.clone(),
                repeated("shopify", 100),
                repeated("storefront_order", 100),
                array("shopify-", 100),
            ],
        ),
        (
            "order load",
            record_log::LOAD_RECORDS.into(),
            vec![m.clone(), orders.clone(), "NULL".into()],
        ),
        (
            "order load of some kinds",
            record_log::LOAD_RECORDS.into(),
            vec![m.clone(), orders.clone(), "'{invoice}'".into()],
        ),
        (
            "conflicted orders",
            exceptions::CONFLICTED_ORDERS.into(),
            vec![m.clone(), orders.clone()],
        ),
        (
            "exceptions to resolve",
            exceptions::RESOLVABLE.into(),
            vec![
                m.clone(),
                orders.clone(),
                "'{amount_mismatch}'".into(),
                "'{}'".into(),
            ],
        ),
        (
            "links",
            links::LINK.into(),
            vec![m.clone(), array("ch_o", 100)],
        ),
        (
            "GetTransaction",
            transactions::get_sql(),
            vec![m.clone(), "'o77'".into()],
        ),
        (
            "the orders' record versions",
            record_versions::ORDER_HISTORIES.into(),
            vec![m.clone(), orders.clone()],
        ),
        (
            "GetReconciliationStatus's exceptions",
            exceptions::unresolved_sql(),
            vec![m.clone(), "'o77'".into()],
        ),
        (
            "the orders' cash events",
            tally::storage::ledger::LOAD_EVENTS.into(),
            vec![m.clone(), orders.clone()],
        ),
        (
            "a payout's charges' orders",
            tally::storage::ledger::ORDERS_OF_REFS.into(),
            vec![m.clone(), array("ch_o", 100)],
        ),
        (
            "exceptions a person resolved",
            exceptions::PERSON_RESOLVED.into(),
            vec![
                m.clone(),
                "'{00000000-0000-0000-0000-000000000001}'::uuid[]".into(),
            ],
        ),
        (
            "payouts' records, balance transactions and states, for applying them together",
            tally::storage::payout_batch::RECORDS.into(),
            vec![m.clone(), array("po", 8)],
        ),
        (
            "a payout's applications",
            tally::storage::ledger_reads::APPLICATIONS_OF_PAYOUT.into(),
            vec![m.clone(), "'po_1'".into()],
        ),
        (
            "an invoice's applications",
            tally::storage::ledger_reads::APPLICATIONS_OF_INVOICE.into(),
            vec![m.clone(), "'INV-1'".into()],
        ),
        (
            "journals naming payouts",
            tally::storage::payout_journals::JOURNALS_OF.into(),
            vec![m.clone(), array("ch_o", 16)],
        ),
        (
            "open exceptions of rules, to settle",
            tally::storage::deposits::RULED_OPEN.into(),
            vec![m.clone(), "'{r}'".into(), array("s", 8)],
        ),
        (
            "the cash worker's batch claim",
            tally::storage::jobs::claim_sql(&[
                ("apply_payout", 1, None),
                ("apply_order", 32, Some("apply_payout")),
                ("check_payout", 32, None),
            ])
            .unwrap(),
            vec![m.clone()],
        ),
    ];
    c.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    for (i, (_, sql, args)) in lookups.iter().enumerate() {
        c.batch_execute(&format!(
            "PREPARE kept{i} AS {sql}; EXECUTE kept{i}({})",
            args.join(", ")
        ))
        .await
        .unwrap();
    }
    grow(&c).await;
    for (i, (what, _, args)) in lookups.iter().enumerate() {
        let plan = explained(&c, &format!("EXECUTE kept{i}({})", args.join(", "))).await;
        check_probes(&format!("{what}, planned on empty tables"), &plan);
    }
}

/// Every text column compares as bytes (migration 000016), whatever the
/// server's default collation: no strcoll per index comparison, and an
/// order that no C library upgrade can change under an index. A migration
/// that adds a text column must say `COLLATE "C"`.
#[tokio::test]
async fn every_text_column_is_collated_c() {
    let db = TestDb::new().await;
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT table_name || '.' || column_name FROM information_schema.columns
             WHERE table_schema = current_schema() AND data_type = 'text'
               AND table_name NOT LIKE '\\_\\_diesel%'
               AND collation_name IS DISTINCT FROM 'C'
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let other: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(
        other.is_empty(),
        "text columns not collated \"C\": {other:?}"
    );
    let all: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns
             WHERE table_schema = current_schema() AND data_type = 'text'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(all > 50, "the schema's text columns were not found ({all})");
}

/// Taking over a payout's order jobs (and completing a batch of them) on a
/// large queue without statistics: the locked rows found by key, then
/// deleted by a TID scan, never by a read of the merchant's whole queue.
/// The statement is planned at each run (never kept prepared), so a plan
/// made while the queue was small is not the plan for a backlog.
#[tokio::test]
async fn taking_over_jobs_in_a_large_queue_reads_only_those_jobs() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "ALTER TABLE jobs SET (autovacuum_enabled = false);
         INSERT INTO jobs (merchant_id, kind, subject_id)
         SELECT 'm1', 'apply_order', 'o' || i FROM generate_series(1, 30000) i;",
    )
    .await
    .unwrap();
    let subjects = array("o", 100);
    c.batch_execute("BEGIN").await.unwrap();
    let absorb = tally::storage::jobs::ABSORB
        .replace("$1", "'m1'")
        .replace("$2", &repeated("apply_order", 100))
        .replace("$3", &subjects);
    let plan = explained(&c, &absorb).await;
    c.batch_execute("ROLLBACK").await.unwrap();
    let shown = describe(&plan);
    assert!(
        plan.iter().any(|n| n["Node Type"] == "Tid Scan"),
        "no TID scan:\n  {shown}"
    );
    check_probes("taking over jobs", &plan);

    // Through the pool: the delete ran, and the connection kept no
    // prepared statement of it.
    let store = tally::storage::Store::connect(&db.url, 1).unwrap();
    let mut conn = store.conn().await.unwrap();
    let taken = tally::storage::jobs::absorb(
        &mut conn,
        "m1",
        "apply_order",
        &["o1".to_string(), "o2".to_string()],
    )
    .await
    .unwrap();
    assert_eq!(taken.len(), 2);
    #[derive(diesel::QueryableByName)]
    struct Kept {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let kept: Kept = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE '%DELETE FROM jobs%' AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .get_result(&mut *conn)
    .await
    .unwrap();
    assert_eq!(kept.n, 0, "the delete was kept as a prepared statement");
}
