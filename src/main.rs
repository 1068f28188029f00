//! `tally serve | migrate`.

use std::process::ExitCode;

use tally::config::Config;
use tally::embedded_pg::EmbeddedPostgres;
use tally::storage::{Store, run_migrations};

const USAGE: &str = "usage: tally <command>

commands:
  serve     run migrations, then serve gRPC on TALLY_GRPC_ADDR (default 127.0.0.1:50051)
  migrate   run pending migrations and exit

environment:
  DATABASE_URL        postgres://user@host:port/db; unset: an embedded PostgreSQL under
                      TALLY_DATA_DIR (default ~/.local/share/tally, /var/lib/tally for root)
  TALLY_GRPC_ADDR     address to serve on
  TALLY_DB_POOL_SIZE  database connections per process (default 16)
  TALLY_SHUTDOWN_GRACE_SECS  how long in-flight calls may finish after SIGTERM (default 20)
  RUST_LOG            log filter (default info)";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let command = std::env::args().nth(1).unwrap_or_default();
    if !matches!(command.as_str(), "serve" | "migrate") {
        eprintln!("{USAGE}");
        return if matches!(command.as_str(), "help" | "-h" | "--help") {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tally: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tally: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &str) -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let mut embedded = None;
    let database_url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            let dir = EmbeddedPostgres::default_data_dir();
            tracing::info!(data_dir = %dir.display(), "DATABASE_URL is not set: starting an embedded PostgreSQL");
            let pg = EmbeddedPostgres::start(&dir).await?;
            let url = pg.database_url();
            embedded = Some(pg);
            url
        }
    };

    let result = async {
        let applied = run_migrations(&database_url).await?;
        for m in &applied {
            tracing::info!(migration = %m, "applied");
        }
        if command == "migrate" {
            println!("{} migration(s) applied", applied.len());
            return Ok(());
        }
        let store = Store::connect(&database_url, config.pool_size)?;
        let listener = tokio::net::TcpListener::bind(config.grpc_addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving gRPC");
        // Long-lived streams would hold a graceful drain open forever: after a
        // signal, in-flight calls get a bounded grace period.
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        let mut drain = rx.clone();
        let server = tally::server::serve(store, listener, config.health_interval, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        tokio::select! {
            result = server => result?,
            _ = async {
                let _ = drain.wait_for(|stop| *stop).await;
                tokio::time::sleep(config.shutdown_grace).await;
            } => tracing::warn!(grace = ?config.shutdown_grace, "calls still in flight after the grace period; exiting"),
        }
        tracing::info!("shut down");
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;

    if let Some(pg) = embedded {
        if let Err(e) = pg.stop().await {
            tracing::warn!(error = %e, "stopping the embedded PostgreSQL");
        }
    }
    result
}

/// SIGINT or SIGTERM: stop accepting, finish in-flight calls, exit.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; draining in-flight calls");
}
