//! `tally serve | migrate | worker`; `tally --help` lists the options and their
//! environment variables.

use std::process::ExitCode;

use clap::Parser;

use tally::app::App;
use tally::app::egress::Egress;
use tally::app::webhook::Webhooks;
use tally::app::worker::{self, WorkerConfig};
use tally::cli::api_keys::KeysCommand;
use tally::cli::{Cli, Command, ExportArgs, JournalsCommand};
use tally::config::Config;
use tally::domain::handoff::Defaults;
use tally::embedded_pg::{EmbeddedPostgres, RestartPolicy, Supervised};
use tally::storage::{Store, run_migrations};

type AnyError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    // Usage errors, --help and --version exit here (2 or 0).
    let cli = Cli::parse();
    // A client of a running Tally: no configuration, no database.
    if let Command::Trace(t) = &cli.command {
        return trace(t);
    }
    if let Command::Report(r) = &cli.command {
        return report(r);
    }
    if let Command::Audit(a) = &cli.command {
        return tally::cli::audit::main(a);
    }
    if let Command::Import(i) = &cli.command {
        return tally::cli::import::main(i);
    }
    if let Command::Simulate(s) = &cli.command {
        return tally::cli::simulate::main(s);
    }
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
    if let Err(e) = chart_of_accounts(&config) {
        eprintln!("tally: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = alert_webhooks(&config) {
        eprintln!("tally: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    // A server reachable from the network without keys is refused unless
    // asked for by name.
    if let Command::Serve(_) = &cli.command
        && let Err(e) = config.exposure()
    {
        eprintln!("tally: invalid configuration: {e}");
        return ExitCode::from(2);
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

/// `tally trace`: the order's handoff timeline on stdout.
fn report(args: &tally::cli::ReportArgs) -> ExitCode {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("tally: cannot start the runtime");
        return ExitCode::FAILURE;
    };
    let q = tally::cli::report::ReportQuery {
        addr: &args.server.addr,
        merchant: &args.merchant,
        period: &args.period,
        time_zone: &args.time_zone,
        as_of: args.as_of,
        compare_as_of: args.compare_as_of,
        format: &args.format,
        key: args.server.key.as_deref(),
    };
    let text = match runtime.block_on(tally::cli::report::fetch(&q)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tally report: {e}");
            return ExitCode::FAILURE;
        }
    };
    match &args.out {
        None => print!("{text}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("tally report: --out {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn trace(args: &tally::cli::TraceArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tally: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tally::cli::trace::fetch(
        &args.server.addr,
        &args.merchant,
        &args.order,
        args.server.key.as_deref(),
    )) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tally trace: {e}");
            ExitCode::FAILURE
        }
    }
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
    // Records stored before period reports existed are counted once, by
    // whichever process gets there first (a no-op afterwards).
    let counted = tally::app::reports::backfill::run(&Store::connect(database_url, 2)?).await?;
    if counted > 0 {
        tracing::info!(
            records = counted,
            "period reports count the records stored before them"
        );
    }
    match command {
        Command::Migrate(_) => {
            println!("{} migration(s) applied", applied.len());
            Ok(())
        }
        Command::Serve(_) => serve(config, handoffs, database_url).await,
        Command::Worker(_) => worker(config, database_url).await,
        Command::Journals(j) => match &j.command {
            JournalsCommand::Export(e) => export(config, database_url, e).await,
        },
        Command::Keys(k) => keys(database_url, &k.command).await,
        // Handled in main before any configuration is read.
        Command::Trace(_)
        | Command::Report(_)
        | Command::Audit(_)
        | Command::Import(_)
        | Command::Simulate(_) => Ok(()),
    }
}

/// `tally keys create | list | revoke`. A new key goes to stdout alone
/// (`KEY=$(tally keys create ...)`), what it holds to stderr.
async fn keys(database_url: &str, command: &KeysCommand) -> Result<(), AnyError> {
    use tally::cli::api_keys as k;
    let app = App::new(Store::connect(database_url, 1)?);
    let now = chrono::Utc::now();
    match command {
        KeysCommand::Create(args) => {
            let new = k::new_key(args, now)?;
            let (info, whole) = app.create_key(new).await?;
            eprintln!("created {}", k::describe(&info, now));
            eprintln!("the key is shown this once; only its hash is stored:");
            println!("{whole}");
        }
        KeysCommand::List(_) => {
            for info in app.list_keys().await? {
                println!("{}", k::describe(&info, now));
            }
        }
        KeysCommand::Revoke(args) => {
            app.revoke_key(&args.key_id).await?;
            eprintln!(
                "revoked {}: refused by every server within {} s",
                args.key_id,
                tally::app::keys::KEY_CACHE_TTL.as_secs()
            );
        }
    }
    Ok(())
}

/// The chart of accounts: the built-in codes, overridden by the
/// configuration file's `[accounts]` section (`processing_fees = { code =
/// "6150" }`). Booked journals name account roles, so a new code applies to
/// every export from then on without rewriting history.
fn chart_of_accounts(config: &Config) -> Result<tally::domain::ledger::ChartOfAccounts, String> {
    use tally::domain::ledger::{ChartConfig, ChartOfAccounts};
    let Some(file) = &config.config_file else {
        return Ok(ChartOfAccounts::default());
    };
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
    let parsed: ChartConfig = toml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    ChartOfAccounts::from_config(&parsed).map_err(|e| format!("{name}: {e}"))
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

/// `tally journals export`: the CSV on stdout, the cursor to continue from on stderr.
async fn export(config: &Config, database_url: &str, args: &ExportArgs) -> Result<(), AnyError> {
    let base_currency = tally::domain::currency::Currency::from_code(&args.base_currency)
        .ok_or_else(|| {
            format!(
                "--base-currency: '{}' is not a currency",
                args.base_currency
            )
        })?;
    let options = tally::domain::ledger::NetsuiteOptions {
        subsidiary: args.subsidiary.clone(),
        base_currency,
        rates: Default::default(),
        date_format: "%m/%d/%Y".into(),
    };
    let chart = chart_of_accounts(config)?;
    let app = App::new(Store::connect(database_url, config.pool_size.min(2))?);
    let (csv, last) = app
        .export_netsuite(&args.merchant, args.after, args.limit, &chart, &options)
        .await?;
    print!("{csv}");
    eprintln!("next cursor: --after {last}");
    Ok(())
}

/// The alert client: Mozilla's roots plus the --alert-ca-file bundle
/// (already read and checked by `Config`). Built once in `main` as a check,
/// again where a worker starts.
fn alert_webhooks(config: &Config) -> Result<Webhooks, String> {
    let extra = config.alert_ca.as_ref().map_or(&[][..], |ca| &ca.certs);
    let webhooks =
        Webhooks::new(extra).with_egress(Egress::allowing(config.alert_allow.iter().copied()));
    match webhooks.tls_error() {
        Some(e) => Err(format!("alert webhooks: {e}")),
        None => Ok(webhooks),
    }
}

/// Internal addresses webhooks may reach are a hole in the SSRF guard an
/// operator made on purpose: said at start.
fn log_allow_list(config: &Config) {
    if !config.alert_allow.is_empty() {
        let blocks: Vec<String> = config.alert_allow.iter().map(|c| c.to_string()).collect();
        tracing::warn!(allowed = %blocks.join(","),
            "alert webhooks may reach these internal addresses (--alert-allow-cidr)");
    }
}

fn worker_config(config: &Config) -> WorkerConfig {
    WorkerConfig {
        concurrency: config.worker_concurrency,
        ..WorkerConfig::default()
    }
}

/// `tally worker`: cash-application loops (and alert delivery), gRPC health
/// for probes, and metrics when TALLY_METRICS_ADDR is set. On a
/// signal, jobs in progress finish (bounded by the grace period); one cut
/// short is rolled back by PostgreSQL and picked up by another worker.
async fn worker(config: &Config, database_url: &str) -> Result<(), AnyError> {
    // One connection per loop, plus the health check's and a scrape's.
    let store = Store::connect(database_url, config.worker_concurrency + 2)?;
    let webhooks = alert_webhooks(config)?;
    log_allow_list(config);
    if let Some(ca) = &config.alert_ca {
        tracing::info!(file = %ca.path.display(), certificates = ca.certs.len(),
            "alert webhooks also trust this CA bundle");
    }
    if let Some(addr) = config.metrics_addr {
        let bound = tally::telemetry::metrics::serve(addr, Some(store.clone())).await?;
        tracing::info!(addr = %bound, "serving metrics at /metrics");
    }
    let otlp =
        tally::telemetry::metrics::otlp::start(&|k| std::env::var(k).ok(), Some(store.clone()));
    let listener = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, concurrency = config.worker_concurrency,
        "serving gRPC health; running workers");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    let mut stop = rx.clone();
    let health = tokio::spawn(tally::server::serve_health(
        store.clone(),
        listener,
        config.health_interval,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ));
    let mut drain = rx.clone();
    let grace = config.shutdown_grace;
    tokio::select! {
        _ = worker::run(App::new(store).with_webhooks(webhooks), worker_config(config), rx) => {},
        _ = async {
            let _ = drain.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "jobs still running after the grace period; exiting"),
    }
    health.abort();
    if let Some(otlp) = otlp {
        otlp.shutdown().await;
    }
    tracing::info!("shut down");
    Ok(())
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
    // Pushed over OTLP too when an endpoint is configured.
    let otlp =
        tally::telemetry::metrics::otlp::start(&|k| std::env::var(k).ok(), Some(store.clone()));
    // Every merchant's contract defaults, from this file (replacing those of
    // an earlier start).
    tally::app::App::new(store.clone())
        .install_handoff_defaults(handoffs, true)
        .await?;
    let listener = tokio::net::TcpListener::bind(config.grpc_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving gRPC");
    let guard = guard(config, &store)?;
    // Long-lived streams would hold a graceful drain open forever: after a
    // signal, in-flight calls get a bounded grace period.
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    let webhooks = alert_webhooks(config)?;
    log_allow_list(config);
    let in_process = config.in_process_worker.then(|| {
        if let Some(ca) = &config.alert_ca {
            tracing::info!(file = %ca.path.display(), certificates = ca.certs.len(),
                "alert webhooks also trust this CA bundle");
        }
        tracing::info!(
            concurrency = config.worker_concurrency,
            "running the in-process worker"
        );
        tokio::spawn(worker::run(
            App::new(store.clone()).with_webhooks(webhooks.clone()),
            worker_config(config),
            rx.clone(),
        ))
    });
    // Probes that cannot speak TLS get health alone, in plaintext, apart.
    let health = match config.health_addr {
        None => None,
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "serving gRPC health in plaintext");
            let mut stop = rx.clone();
            Some(tokio::spawn(tally::server::serve_health(
                store.clone(),
                listener,
                config.health_interval,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )))
        }
    };
    let mut drain = rx.clone();
    // The server vets webhook URIs with the same allow-list the worker
    // delivers with.
    let app = App::new(store)
        .with_chart(chart_of_accounts(config)?)
        .with_webhooks(webhooks);
    let server =
        tally::server::serve_guarded(app, guard, listener, config.health_interval, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
    let grace = config.shutdown_grace;
    let served = tokio::select! {
        result = server => result,
        _ = async {
            let _ = drain.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "calls still in flight after the grace period; exiting");
            Ok(())
        }
    };
    if let Some(w) = in_process {
        let _ = tokio::time::timeout(grace, w).await;
    }
    if let Some(h) = health {
        h.abort();
    }
    // The last values leave after the last calls and jobs counted.
    if let Some(otlp) = otlp {
        otlp.shutdown().await;
    }
    served?;
    tracing::info!("shut down");
    Ok(())
}

/// What every call passes first, as configured; says at start who may call.
fn guard(config: &Config, store: &Store) -> Result<tally::api::guard::Guard, AnyError> {
    use tally::config::Exposure;
    let exposure = config.exposure()?;
    match exposure {
        Exposure::Authenticated => {
            tracing::info!("authentication: an API key is required on every call (--auth keys)")
        }
        Exposure::LoopbackOnly => tracing::info!(
            "authentication off: serving loopback only, so only this machine can call \
             (--auth keys to require API keys)"
        ),
        Exposure::Insecure => {
            let warning = format!(
                "INSECURE: serving {} WITHOUT AUTHENTICATION (--insecure-no-auth): anyone who \
                 reaches this port can read and change every merchant's data",
                config.grpc_addr
            );
            tracing::error!("{warning}");
            eprintln!("tally: {warning}");
        }
    }
    if let Some(tls) = &config.tls {
        tracing::info!(cert = %tls.cert_path.display(), mutual = tls.client_ca_pem.is_some(),
            "serving gRPC over TLS");
    }
    Ok(tally::api::guard::Guard {
        auth: (exposure == Exposure::Authenticated)
            .then(|| tally::app::keys::Authenticator::new(store.clone())),
        tls: config.tls.as_ref().map(tally::api::guard::server_tls),
        max_concurrent_calls: config.max_concurrent_calls,
        rate_per_key: config.rate_limit_per_key,
    })
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
