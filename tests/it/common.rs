//! The test harness: a real PostgreSQL, a database per test cloned from a
//! migrated template, and a real server on 127.0.0.1:0 driven through the
//! generated clients.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tally::server::Running;
use tally::storage::Store;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::citus_nodes;
use tonic::transport::Channel;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where test databases are created: TALLY_TEST_DATABASE_URL, else the
/// local server, else a throwaway embedded PostgreSQL.
static ADMIN_URL: OnceCell<String> = OnceCell::const_new();
static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static EMBEDDED: std::sync::Mutex<Option<tally::embedded_pg::EmbeddedPostgres>> =
    std::sync::Mutex::new(None);

/// Statics are never dropped, so the fallback server is stopped (and its
/// directory removed) when the test process exits.
extern "C" fn stop_embedded() {
    if let Ok(mut pg) = EMBEDDED.lock() {
        drop(pg.take());
    }
}

#[allow(unsafe_code)] // the crate denies it; this is the tests' one use
fn stop_embedded_at_exit() {
    // SAFETY: `stop_embedded` is an `extern "C" fn()` that takes no
    // arguments, does not unwind (it only locks and drops), and touches only
    // a static that lives until the process ends.
    unsafe { libc::atexit(stop_embedded) };
}

async fn admin_url() -> &'static str {
    ADMIN_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("TALLY_TEST_DATABASE_URL") {
                return url;
            }
            if tokio_postgres::connect(DEFAULT_ADMIN_URL, NoTls)
                .await
                .is_ok()
            {
                return DEFAULT_ADMIN_URL.to_string();
            }
            eprintln!(
                "no PostgreSQL at {DEFAULT_ADMIN_URL}: starting an embedded one for the tests"
            );
            let pg = tally::embedded_pg::EmbeddedPostgres::start_temporary(
                &tally::config::embedded_settings_from_env(),
            )
            .await
            .expect("no PostgreSQL reachable and the embedded one would not start");
            let url = pg.database_url();
            *EMBEDDED.lock().unwrap() = Some(pg);
            stop_embedded_at_exit();
            url
        })
        .await
}

/// The URL of another database on the admin server.
pub fn url_for(admin: &str, db: &str) -> String {
    // Both forms we use end in "/<db>", optionally followed by "?...".
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, Some(q)))
        .unwrap_or((admin, None));
    let base = &base[..base.rfind('/').expect("database URL has a path")];
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(admin_url().await, NoTls)
        .await
        .expect("connect to the admin database");
    tokio::spawn(conn);
    client
}

/// A migrated template named after the migrations' content, built once by
/// whichever test (or test process) gets there first.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
            let mut files: Vec<_> = walk(std::path::Path::new(dir));
            files.sort();
            for f in files {
                std::hash::Hash::hash(&std::fs::read(&f).unwrap(), &mut hasher);
            }
            let name = format!("tally_tmpl_{:016x}", std::hash::Hasher::finish(&hasher));
            if let Some(workers) = citus_nodes::workers() {
                citus_nodes::template(admin_url().await, &workers, &name).await;
                return name;
            }
            let admin = admin().await;
            admin
                .execute("SELECT pg_advisory_lock(7215001)", &[])
                .await
                .unwrap();
            let exists = admin
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .unwrap()
                .is_some();
            // Templates of earlier migrations are dead weight, unless another
            // checkout of a different migration set shares this server
            // (TALLY_TEST_KEEP_TEMPLATES=1): it may still be cloning its own.
            let keep_stale = std::env::var_os("TALLY_TEST_KEEP_TEMPLATES").is_some();
            if !exists && !keep_stale {
                let stale = admin
                    .query(
                        "SELECT datname FROM pg_database WHERE datname LIKE 'tally\\_tmpl\\_%' AND datname <> $1",
                        &[&name],
                    )
                    .await
                    .unwrap();
                for row in stale {
                    let old: String = row.get(0);
                    let _ = admin.execute(&format!("DROP DATABASE IF EXISTS {old}"), &[]).await;
                }
            }
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute(&format!("DROP DATABASE IF EXISTS {building}"), &[])
                    .await
                    .unwrap();
                admin
                    .execute(&format!("CREATE DATABASE {building}"), &[])
                    .await
                    .unwrap();
                tally::storage::run_migrations(&url_for(admin_url().await, &building))
                    .await
                    .expect("migrate the template");
                // Renamed only when complete, so a crash never leaves a half-migrated template.
                let sql = format!("ALTER DATABASE {building} RENAME TO {name}");
                retry(|| admin.execute(&sql, &[])).await;
            }
            admin
                .execute("SELECT pg_advisory_unlock(7215001)", &[])
                .await
                .unwrap();
            name
        })
        .await
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The server sees a just-closed session for a moment; DDL that needs the
/// database to itself retries briefly.
pub async fn retry<F, Fut, T, E>(f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let mut last = None;
    for _ in 0..50 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up: {last:?}");
}

/// `message` carrying `authorization: Bearer <key>`.
pub fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

/// The loopback blocks, allow-listed for the tests' receivers.
pub fn loopback_egress() -> tally::app::egress::Egress {
    tally::app::egress::Egress::allowing(["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()])
}

/// Alerts as the tests deliver them: Mozilla's roots, loopback allowed.
pub fn loopback_webhooks() -> tally::app::webhook::Webhooks {
    tally::app::webhook::Webhooks::default().with_egress(loopback_egress())
}

/// A fresh database for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let tmpl = template().await;
        let name = format!(
            "tally_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        if let Some(workers) = citus_nodes::workers() {
            citus_nodes::clone(admin_url().await, &workers, tmpl, &name).await;
        } else {
            let admin = admin().await;
            admin
                .execute(&format!("DROP DATABASE IF EXISTS {name}"), &[])
                .await
                .unwrap();
            let sql = format!("CREATE DATABASE {name} TEMPLATE {tmpl}");
            retry(|| admin.execute(&sql, &[])).await;
        }
        TestDb {
            url: url_for(admin_url().await, &name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    /// Drops the database out from under everything connected to it.
    pub async fn drop_now(&self) {
        if let Some(workers) = citus_nodes::workers() {
            return citus_nodes::drop_db(admin_url().await, &workers, &self.name).await;
        }
        admin()
            .await
            .execute(
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                &[],
            )
            .await
            .unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let Some(url) = ADMIN_URL.get().cloned() else {
            return;
        };
        // Drop cannot await; a helper thread with its own runtime can.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Some(workers) = citus_nodes::workers() {
                    return citus_nodes::drop_db(&url, &workers, &name).await;
                }
                if let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), &[])
                        .await;
                }
            });
        })
        .join();
    }
}

/// A running server over its own database, with clients.
pub struct TestApp {
    pub db: TestDb,
    pub ingest: IngestServiceClient<Channel>,
    pub transactions: TransactionServiceClient<Channel>,
    pub exceptions: ExceptionServiceClient<Channel>,
    pub channel: Channel,
    /// Held so the server lives as long as the test.
    _server: Running,
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|app| app).await
    }

    /// A server whose use cases are configured by `configure` (a chart of
    /// accounts).
    pub async fn start_with(configure: impl FnOnce(tally::app::App) -> tally::app::App) -> TestApp {
        TestApp::start_guarded(configure, |_| tally::api::guard::Guard::default()).await
    }

    /// A server requiring API keys (`--auth keys`), their cache short so
    /// that a revocation shows within a test.
    pub async fn start_with_keys() -> TestApp {
        TestApp::start_guarded(
            |app| app,
            |store| tally::api::guard::Guard {
                auth: Some(tally::app::keys::Authenticator::with_ttl(
                    store.clone(),
                    Duration::from_millis(300),
                )),
                ..Default::default()
            },
        )
        .await
    }

    /// A key for `merchants` with `scopes` ("read,submit"), named `name`:
    /// the whole key, as `tally keys create` prints it.
    pub async fn key(&self, merchants: &[&str], scopes: &str, name: &str) -> String {
        let app = tally::app::App::new(Store::connect(&self.db.url, 1).unwrap());
        let (_, key) = app
            .create_key(tally::app::keys::NewKey {
                name: Some(name.into()),
                merchants: merchants.iter().map(|m| m.to_string()).collect(),
                scopes: tally::domain::access::Scope::parse_list(scopes).unwrap(),
                expire_time: None,
                client_cn: None,
            })
            .await
            .unwrap();
        key
    }

    /// A server whose use cases are configured by `configure`, every call
    /// passing the guard `guard` makes first.
    pub async fn start_guarded(
        configure: impl FnOnce(tally::app::App) -> tally::app::App,
        guard: impl FnOnce(&Store) -> tally::api::guard::Guard,
    ) -> TestApp {
        TestApp::start_on(TestDb::new().await, configure, guard).await
    }

    /// As `start_guarded`, over a database the caller prepared.
    pub async fn start_on(
        db: TestDb,
        configure: impl FnOnce(tally::app::App) -> tally::app::App,
        guard: impl FnOnce(&Store) -> tally::api::guard::Guard,
    ) -> TestApp {
        // Server logs (errors above all) land in the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
        let store = Store::connect(&db.url, 8).unwrap();
        // Tests' webhook receivers listen on loopback: allow-listed, as an
        // operator would with --alert-allow-cidr.
        let guard = guard(&store);
        let tls = guard.tls.is_some();
        let app = tally::app::App::new(store).with_webhooks(loopback_webhooks());
        let server = Running::start_guarded(
            configure(app),
            guard,
            "127.0.0.1:0".parse().unwrap(),
            Duration::from_millis(100),
        )
        .await
        .unwrap();
        let endpoint = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
        // A TLS server takes no plaintext connection: the test connects its own.
        let channel = if tls {
            endpoint.connect_lazy()
        } else {
            endpoint.connect().await.unwrap()
        };
        TestApp {
            db,
            ingest: IngestServiceClient::new(channel.clone()),
            transactions: TransactionServiceClient::new(channel.clone()),
            exceptions: ExceptionServiceClient::new(channel.clone()),
            channel,
            _server: server,
        }
    }

    /// The server's address ("127.0.0.1:port").
    pub fn addr(&self) -> std::net::SocketAddr {
        self._server.addr
    }

    pub async fn submit(
        &self,
        records: Vec<pb::Record>,
    ) -> Result<pb::SubmitRecordsResponse, tonic::Status> {
        self.submit_as("acme", "", records).await
    }

    pub async fn submit_as(
        &self,
        merchant: &str,
        request_id: &str,
        records: Vec<pb::Record>,
    ) -> Result<pb::SubmitRecordsResponse, tonic::Status> {
        self.ingest
            .clone()
            .submit_records(pb::SubmitRecordsRequest {
                parent: format!("merchants/{merchant}"),
                request_id: request_id.to_string(),
                records,
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn transaction(&self, order_id: &str) -> Result<pb::Transaction, tonic::Status> {
        self.transactions
            .clone()
            .get_transaction(pb::GetTransactionRequest {
                name: format!("merchants/acme/transactions/{order_id}"),
            })
            .await
            .map(|r| r.into_inner().transaction.unwrap())
    }

    pub async fn status(&self, order_id: &str) -> pb::GetReconciliationStatusResponse {
        self.transactions
            .clone()
            .get_reconciliation_status(pb::GetReconciliationStatusRequest {
                name: format!("merchants/acme/transactions/{order_id}"),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn exceptions(&self, req: pb::ListExceptionsRequest) -> pb::ListExceptionsResponse {
        self.exceptions
            .clone()
            .list_exceptions(req)
            .await
            .unwrap()
            .into_inner()
    }

    /// Rows in one table, straight from the database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

// ---- record builders -------------------------------------------------

pub fn usd(amount: &str) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "USD".into(),
        amount: amount.into(),
    })
}

pub fn ts(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn record(system: &str, id: &str, order: &str, when: &str, kind: pb::record::Kind) -> pb::Record {
    pb::Record {
        source_id: id.into(),
        source_system: system.into(),
        order_id: order.into(),
        references: vec![],
        event_time: ts(when),
        source_update_time: None,
        kind: Some(kind),
    }
}

pub fn order(order: &str, total: &str) -> pb::Record {
    record(
        "shopify",
        order,
        order,
        "2026-11-02T10:00:00Z",
        pb::record::Kind::StorefrontOrder(pb::StorefrontOrder {
            name: format!("#{order}"),
            total: usd(total),
            line_items: vec![pb::LineItem {
                sku: "TEE".into(),
                quantity: 2,
                unit_price: None,
                discount: None,
                tax: None,
            }],
            tenders: vec![pb::Tender {
                r#type: pb::TenderType::Card as i32,
                gateway: "stripe".into(),
                amount: usd(total),
                processor_reference: format!("pi_{order}"),
            }],
            ..Default::default()
        }),
    )
}

pub fn charge(order: &str, amount: &str) -> pb::Record {
    record(
        "stripe",
        &format!("ch_{order}"),
        order,
        "2026-11-02T10:00:05Z",
        pb::record::Kind::ProcessorPayment(pb::ProcessorPayment {
            r#type: pb::ProcessorPaymentType::Charge as i32,
            amount: usd(amount),
            fee: usd("3.20"),
            payment_intent_id: format!("pi_{order}"),
            ..Default::default()
        }),
    )
}

pub fn invoice(order: &str, total: &str) -> pb::Record {
    record(
        "netsuite",
        &format!("INV-{order}"),
        order,
        "2026-11-02T12:00:00Z",
        pb::record::Kind::Invoice(pb::Invoice {
            total: usd(total),
            ..Default::default()
        }),
    )
}

pub fn fulfillment(order: &str, when: &str) -> pb::Record {
    record(
        "shipbob",
        &format!("F-{order}"),
        order,
        when,
        pb::record::Kind::Fulfillment(pb::Fulfillment {
            lines: vec![pb::FulfillmentLine {
                sku: "TEE".into(),
                quantity: 2,
            }],
            ..Default::default()
        }),
    )
}

pub fn journal(id: &str, lines: &[(&str, &str, &str, &str)]) -> pb::Record {
    record(
        "netsuite",
        id,
        "",
        "2026-11-03T09:00:00Z",
        pb::record::Kind::JournalEntry(pb::JournalEntry {
            currency_code: "USD".into(),
            lines: lines
                .iter()
                .map(|(account, debit, credit, reference)| pb::JournalLine {
                    account: account.to_string(),
                    debit: debit.to_string(),
                    credit: credit.to_string(),
                    reference: reference.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    )
}

pub fn clean_order(order_id: &str) -> Vec<pb::Record> {
    vec![
        order(order_id, "100.00"),
        charge(order_id, "100.00"),
        invoice(order_id, "100.00"),
    ]
}

pub fn outcomes(r: &pb::SubmitRecordsResponse) -> Vec<pb::RecordOutcome> {
    r.results.iter().map(|x| x.outcome()).collect()
}

/// The BadRequest field paths of a failed call.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    assert!(
        details.error_info().is_some(),
        "INVALID_ARGUMENT without ErrorInfo: {status:?}"
    );
    details
        .bad_request()
        .expect("INVALID_ARGUMENT without BadRequest")
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}
