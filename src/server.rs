//! The gRPC server: Tally's services, health, reflection, and graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::exceptions::ExceptionApi;
use crate::api::guard::Guard;
use crate::api::handoffs::HandoffApi;
use crate::api::ingest::IngestApi;
use crate::api::ledger::LedgerApi;
use crate::api::limits::{MAX_MESSAGE_BYTES, MessageLimit};
use crate::api::reports::ReportApi;
use crate::api::transactions::TransactionApi;
use crate::app::App;
use crate::error::{Error, Result};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::tally::v1::exception_service_server::ExceptionServiceServer;
use crate::proto::tally::v1::handoff_service_server::HandoffServiceServer;
use crate::proto::tally::v1::ingest_service_server::IngestServiceServer;
use crate::proto::tally::v1::ledger_service_server::LedgerServiceServer;
use crate::proto::tally::v1::report_service_server::ReportServiceServer;
use crate::proto::tally::v1::transaction_service_server::TransactionServiceServer;
use crate::storage::Store;
use crate::telemetry::propagation::RpcLayer;

/// Health service that is SERVING for as long as the process runs, whatever
/// the database does: for liveness probes, so that a database outage makes
/// pods unready but does not restart them all.
pub const LIVENESS_SERVICE: &str = "tally.liveness";

/// How often late handoffs are looked for: LATE_HANDOFF is raised within
/// about this long after its deadline.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Every service health reports on; "" is the server as a whole.
const SERVICES: [&str; 7] = [
    "",
    "tally.v1.IngestService",
    "tally.v1.TransactionService",
    "tally.v1.ExceptionService",
    "tally.v1.HandoffService",
    "tally.v1.LedgerService",
    "tally.v1.ReportService",
];

/// Serves only grpc.health.v1 (for the probes of a `tally worker` process),
/// following the database like `serve`, until `shutdown` resolves.
pub async fn serve_health(
    store: Store,
    listener: TcpListener,
    health_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let watcher = tokio::spawn(watch_database(store, reporter, health_interval));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Internal(format!("health server: {e}")));
    watcher.abort();
    result
}

/// Health follows the database: SERVING only while it answers.
async fn watch_database(store: Store, reporter: HealthReporter, every: Duration) {
    let mut last = None;
    loop {
        let status = match store.ping().await {
            Ok(()) => ServingStatus::Serving,
            Err(e) => {
                if last != Some(ServingStatus::NotServing) {
                    tracing::warn!(error = %e, "database unreachable: reporting NOT_SERVING");
                }
                ServingStatus::NotServing
            }
        };
        if last != Some(status) {
            for s in SERVICES {
                reporter.set_service_status(s, status).await;
            }
            if status == ServingStatus::Serving && last.is_some() {
                tracing::info!("database reachable again: reporting SERVING");
            }
            last = Some(status);
        }
        tokio::time::sleep(every).await;
    }
}

/// Serves until `shutdown` resolves, then drains in-flight calls.
pub async fn serve(
    store: Store,
    listener: TcpListener,
    health_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_app(App::new(store), listener, health_interval, shutdown).await
}

/// `serve`, with the use cases as configured (the chart of accounts).
pub async fn serve_app(
    app: App,
    listener: TcpListener,
    health_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_guarded(app, Guard::default(), listener, health_interval, shutdown).await
}

/// `serve_app`, every call passing `guard` first (keys, TLS, limits).
pub async fn serve_guarded(
    app: App,
    guard: Guard,
    listener: TcpListener,
    health_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let store = app.store().clone();
    let (reporter, health) = tonic_health::server::health_reporter();
    for s in SERVICES {
        reporter
            .set_service_status(s, ServingStatus::NotServing)
            .await;
    }
    reporter
        .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
        .await;
    let watcher = tokio::spawn(watch_database(store, reporter, health_interval));
    // Built-in contract defaults where none were installed (a start with a
    // configuration file installs its own first); best effort: the
    // database may still be on its way.
    if let Err(e) = app
        .install_handoff_defaults(&crate::domain::handoff::Defaults::default(), false)
        .await
    {
        tracing::warn!(error = %e, "could not install the handoff contract defaults");
    }
    let sweeper = tokio::spawn(app.clone().run_sweeper(SWEEP_EVERY));

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // So clients can decode the ErrorInfo and BadRequest in our errors.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Internal(e.to_string()))?;
    // grpcurl 1.8 and many other tools speak only v1alpha.
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Internal(e.to_string()))?;

    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = Server::builder();
    if let Some(tls) = guard.tls.clone() {
        builder = match builder.tls_config(tls) {
            Ok(b) => b,
            Err(e) => {
                watcher.abort();
                sweeper.abort();
                return Err(Error::Configuration(format!("TLS: {e}")));
            }
        };
    }
    let result = builder
        .timeout(Duration::from_secs(60))
        // One span per call, continuing the caller's trace, so every log
        // line of a call carries its method and trace id; and its duration.
        .layer(RpcLayer::new(local))
        // Then authentication (and the limits) before any service.
        .layer(guard.layers())
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        // Every request message is at most MAX_MESSAGE_BYTES; past it the
        // caller gets RESOURCE_EXHAUSTED naming the limit (`api::limits`).
        .add_service(MessageLimit::new(
            IngestServiceServer::new(IngestApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .add_service(MessageLimit::new(
            TransactionServiceServer::new(TransactionApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .add_service(MessageLimit::new(
            ExceptionServiceServer::new(ExceptionApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .add_service(MessageLimit::new(
            HandoffServiceServer::new(HandoffApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .add_service(MessageLimit::new(
            LedgerServiceServer::new(LedgerApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .add_service(MessageLimit::new(
            ReportServiceServer::new(ReportApi::new(app))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")));
    watcher.abort();
    sweeper.abort();
    result
}

/// A server running in the background, for tests and embedding.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<()>>,
}

impl Running {
    pub async fn start(
        store: Store,
        addr: SocketAddr,
        health_interval: Duration,
    ) -> Result<Running> {
        Running::start_app(App::new(store), addr, health_interval).await
    }

    /// `start`, with the use cases as configured (the chart of accounts).
    pub async fn start_app(
        app: App,
        addr: SocketAddr,
        health_interval: Duration,
    ) -> Result<Running> {
        Running::start_guarded(app, Guard::default(), addr, health_interval).await
    }

    /// `start_app`, every call passing `guard` first.
    pub async fn start_guarded(
        app: App,
        guard: Guard,
        addr: SocketAddr,
        health_interval: Duration,
    ) -> Result<Running> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Internal(format!("binding {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(serve_guarded(
            app,
            guard,
            listener,
            health_interval,
            async {
                let _ = rx.await;
            },
        ));
        Ok(Running {
            addr,
            shutdown: Some(tx),
            handle,
        })
    }

    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }
}
