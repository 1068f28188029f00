//! A server over a test's own database, and its clients.

use std::time::Duration;

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use tally::server::Running;
use tally::storage::Store;
use tonic::transport::Channel;

use super::{TestDb, loopback_webhooks};

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
