//! `tally serve | migrate`; `tally --help` lists the options and their
//! environment variables.

use std::process::ExitCode;

use clap::Parser;

use tally::cli::{Cli, Command};
use tally::config::Config;
use tally::domain::handoff::Defaults;
use tally::embedded_pg::{EmbeddedPostgres, RestartPolicy, Supervised};
use tally::storage::{Store, run_migrations};

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    // Usage errors, --help and --version exit here (2 or 0).
    let cli = Cli::parse();
    let config = match Config::from_lookup(|k| {
        if Command::is_option(k) {
            cli.command.setting(k)
        } else {
            // Platform variables the defaults derive from (HOME, PATH, ...).
            std::env::var(k).ok()
        }
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tally: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // The file is checked before anything starts: a mistake names its
    // file, line and key.
    let handoffs = match handoff_defaults(&config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tally: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
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
    // Logs, and traces when OTEL_EXPORTER_OTLP_ENDPOINT is set (the
    // standard OTEL_* variables are read from the process environment).
    let telemetry = {
        let _in_runtime = runtime.enter();
        tally::telemetry::init(config.log_format, |k| std::env::var(k).ok())
    };
    let code = match runtime.block_on(run(&cli.command, &config, &handoffs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("tally: {e}");
            ExitCode::FAILURE
        }
    };
    // The last batch of spans leaves while the runtime still runs.
    telemetry.shutdown();
    code
}

async fn run(command: &Command, config: &Config, handoffs: &Defaults) -> Result<(), AnyError> {
    if let Some(url) = &config.database_url {
        return run_on(command, config, handoffs, url).await;
    }
    tracing::info!(data_dir = %config.embedded.tally_dir.display(),
        "DATABASE_URL is not set: starting an embedded PostgreSQL");
    let pg = EmbeddedPostgres::start(&config.embedded).await?;
    let url = pg.database_url();
    // Restarted if it dies; if it cannot be, Tally exits non-zero so that
    // its own supervisor restarts it.
    let mut supervised = Supervised::start(pg, RestartPolicy::default());
    let result = tokio::select! {
        result = run_on(command, config, handoffs, &url) => result,
        e = supervised.failed() => return Err(e.into()),
    };
    if let Err(e) = supervised.stop().await {
        tracing::warn!(error = %e, "stopping the embedded PostgreSQL");
    }
    result
}

async fn run_on(
    command: &Command,
    config: &Config,
    handoffs: &Defaults,
    database_url: &str,
) -> Result<(), AnyError> {
    let applied = run_migrations(database_url).await?;
    for m in &applied {
        tracing::info!(migration = %m, "applied");
    }
    match command {
        Command::Migrate(_) => {
            println!("{} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Serve(_) => serve(config, handoffs, database_url).await,
    }
}

/// The handoff contract defaults of the configuration file, if any.
fn handoff_defaults(config: &Config) -> Result<Defaults, String> {
    let Some(file) = &config.config_file else {
        return Ok(Defaults::default());
    };
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    tally::domain::handoff::settings::parse(&name, &text).map_err(|e| e.to_string())
}

async fn serve(config: &Config, handoffs: &Defaults, database_url: &str) -> Result<(), AnyError> {
    if let Some(file) = &config.config_file {
        tracing::info!(file = %file.display(), "configuration file");
    }
    let store = Store::connect(database_url, config.pool_size)?;
    if let Some(addr) = config.metrics_addr {
        let bound = tally::telemetry::metrics::serve(addr, Some(store.clone())).await?;
        tracing::info!(addr = %bound, "serving metrics at /metrics");
    }
    // Every merchant's contract defaults, from this file (replacing those of
    // an earlier start).
    tally::app::App::new(store.clone())
        .install_handoff_defaults(handoffs, true)
        .await?;
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
    let grace = config.shutdown_grace;
    tokio::select! {
        result = server => result?,
        _ = async {
            let _ = drain.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "calls still in flight after the grace period; exiting"),
    }
    tracing::info!("shut down");
    Ok(())
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
