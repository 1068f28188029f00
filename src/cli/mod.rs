//! The command line: `tally serve | migrate | worker | trace | journals | audit | import`. Every option is also read from
//! its environment variable (the flag wins); clap parses, and
//! [`crate::config::Config`] validates, so an error names the flag, the
//! variable and the bad value. A new command is one variant of [`Command`]
//! with the options it needs.

pub mod api_keys;
pub mod audit;
pub mod import;
pub mod progress;
pub mod report;
pub mod simulate;
pub mod trace;

use clap::{Args, Parser, Subcommand};

use crate::config::keys;

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Reconciles retail money flows: one canonical transaction per order",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run pending migrations, then serve gRPC until SIGINT/SIGTERM
    Serve(Box<ServeArgs>),
    /// Run pending migrations and exit
    Migrate(DatabaseArgs),
    /// Run cash-application workers only (scale out); serves gRPC health on --grpc-addr
    Worker(WorkerArgs),
    /// Journal entries: `tally journals export --format netsuite-csv`
    Journals(JournalsArgs),
    /// Print one order's handoffs as a timeline, the lagging one marked (asks a running Tally)
    Trace(TraceArgs),
    /// Print a period report as of a knowledge time (asks a running Tally)
    Report(ReportArgs),
    /// API keys: `tally keys create --merchant M --scopes read`, `list`, `revoke ID`
    Keys(api_keys::KeysArgs),
    /// Three-way match of storefront, processor and ledger exports, offline (no server, no database)
    Audit(AuditArgs),
    /// Submit exports (Stripe, Shopify, NetSuite files or a directory) to a running Tally
    Import(ImportArgs),
    /// Generate a seeded month of a retailer's records with planted faults; stream it to a running Tally and score what it finds
    Simulate(SimulateArgs),
}

/// Where a running Tally is and the key to call it with: every command
/// that asks one takes these.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Tally gRPC address (https:// for TLS)
    #[arg(long, env = "TALLY_GRPC_ADDR", value_name = "ADDR", default_value = crate::config::DEFAULT_GRPC_ADDR)]
    pub addr: String,
    /// API key, for a server that requires one (--auth keys)
    #[arg(
        long,
        env = "TALLY_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The merchant
    #[arg(long)]
    pub merchant: String,
    /// The period: a month (2026-10) or a day (2026-10-05)
    #[arg(long)]
    pub period: String,
    /// The reporting time zone (IANA name); UTC when unset
    #[arg(long, default_value = "")]
    pub time_zone: String,
    /// The knowledge time (RFC 3339); now when unset
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Also list what moved the figures since (or until) this knowledge time
    #[arg(long, value_name = "TIME")]
    pub compare_as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Output: a readable table, CSV, JSON, or one self-contained HTML page
    #[arg(long, value_parser = ["table", "csv", "json", "html"], default_value = "table")]
    pub format: String,
    /// Write to this file instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Storefront exports (Shopify orders or payments transactions, Admin API JSON)
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub storefront: Vec<std::path::PathBuf>,
    /// Processor exports (Stripe itemized reports, balance history, API JSON)
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub processor: Vec<std::path::PathBuf>,
    /// Ledger exports (NetSuite journal-import CSV, or any ERP's with --mapping)
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub ledger: Vec<std::path::PathBuf>,
    /// table: the summary; csv: every exception row; html: a self-contained page
    #[arg(long, value_parser = ["table", "csv", "html"], default_value = "table")]
    pub format: String,
    /// Write the report here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Also write every exception row as CSV here
    #[arg(long, value_name = "FILE")]
    pub exceptions: Option<std::path::PathBuf>,
    /// TOML column mapping for a ledger CSV that is not NetSuite's (see docs/importers.md)
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Orders in the month (100 to 1000000)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub orders: u64,
    /// The seed: the same seed gives the same month, byte for byte
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The merchant to stream the month to
    #[arg(long, default_value = "sim")]
    pub merchant: String,
    /// Share of orders (and of payouts) hit by a fault, all kinds mixed (0-1)
    #[arg(long, value_name = "R")]
    pub fault_rate: Option<f64>,
    /// Faults of chosen kinds: KIND=RATE,... (e.g. refund_not_propagated=0.02)
    #[arg(long, value_name = "KIND=RATE,...")]
    pub faults: Option<String>,
    /// Write the month to this directory (the ground truth and the exports
    /// `tally audit` reads); nothing is streamed unless --score is given too
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Stream the month, wait for Tally to settle and score its exceptions against the ground truth
    #[arg(long)]
    pub score: bool,
    /// With --out: run `tally audit` on the exports written there (in process)
    /// and score its exception rows against the ground truth
    #[arg(long, requires = "out")]
    pub audit: bool,
    /// Every handoff contract's max lag for the merchant, in seconds (a month arrives in minutes)
    #[arg(long, default_value_t = 5)]
    pub lag: u64,
    /// Give up settling after this many seconds
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
    /// Records per streamed message (1-1000)
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chunk: u32,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files, or directories of them (read in name order)
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<std::path::PathBuf>,
    /// The merchant the records belong to
    #[arg(long)]
    pub merchant: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Parse and validate only; send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Read every file as this format instead of detecting it from its header
    #[arg(long, value_parser = crate::import::Format::ALL.map(|f| f.as_str()))]
    pub format: Option<String>,
    /// TOML column mapping for a ledger CSV that is not NetSuite's
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<std::path::PathBuf>,
    /// Records per streamed chunk (1-1000)
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub chunk: u32,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The order id
    pub order: String,
    /// The merchant the order belongs to
    #[arg(long)]
    pub merchant: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct JournalsArgs {
    #[command(subcommand)]
    pub command: JournalsCommand,
}

#[derive(Debug, Subcommand)]
pub enum JournalsCommand {
    /// Write journal entries after a cursor to stdout, in export order
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The merchant whose entries to export
    #[arg(long)]
    pub merchant: String,
    /// Output format (netsuite-csv: NetSuite's journal-import columns)
    #[arg(long, value_parser = ["netsuite-csv"], default_value = "netsuite-csv")]
    pub format: String,
    /// Export entries after this export sequence (the cursor the last export printed)
    #[arg(long, default_value_t = 0)]
    pub after: i64,
    /// At most this many entries
    #[arg(long, default_value_t = 10_000)]
    pub limit: i64,
    /// NetSuite subsidiary column
    #[arg(long, default_value = "")]
    pub subsidiary: String,
    /// The subsidiary's base currency (its journals carry exchange rate 1)
    #[arg(long, default_value = "USD")]
    pub base_currency: String,
}

/// Where the database is; every command that touches it takes these.
#[derive(Debug, Default, Args)]
pub struct DatabaseArgs {
    /// postgres://user@host:port/db; unset: an embedded PostgreSQL under --data-dir
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The embedded PostgreSQL's home [default: ~/.local/share/tally, /var/lib/tally as root]
    #[arg(long, env = "TALLY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Directory holding initdb and postgres, searched before /usr/lib/postgresql/*/bin and PATH
    #[arg(long, env = "TALLY_PG_BIN", value_name = "DIR")]
    pub pg_bin: Option<String>,
    /// Database connections per process [default: 16]
    #[arg(long, env = "TALLY_DB_POOL_SIZE", value_name = "N")]
    pub pool_size: Option<String>,
    /// Log lines as text (coloured only on a terminal) or json [default: text]
    #[arg(long, env = "TALLY_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// TOML file of handoff contracts and the chart of accounts (must be readable)
    #[arg(long, env = "TALLY_CONFIG", value_name = "FILE")]
    pub config: Option<String>,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to serve gRPC on [default: 127.0.0.1:50051]
    #[arg(long, env = "TALLY_GRPC_ADDR", value_name = "ADDR")]
    pub grpc_addr: Option<String>,
    /// Address to serve Prometheus metrics on, at /metrics (unset: none)
    #[arg(long, env = "TALLY_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// How long in-flight calls may finish after SIGTERM [default: 20]
    #[arg(long, env = "TALLY_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<String>,
    /// Run the cash-application worker inside `serve` [default: true]
    #[arg(long, env = "TALLY_IN_PROCESS_WORKER", value_name = "BOOL")]
    pub in_process_worker: Option<String>,
    /// Worker loops of the in-process worker [default: 2]
    #[arg(long, env = "TALLY_WORKER_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<String>,
    /// PEM file of CA certificates that https:// alert webhooks are also trusted by (a private CA), besides Mozilla's roots
    #[arg(long, env = "TALLY_ALERT_CA_FILE", value_name = "FILE")]
    pub alert_ca_file: Option<String>,
    /// Internal address block alert webhooks may reach (loopback, private, link-local... are refused otherwise); repeatable or comma-separated
    #[arg(
        long,
        env = "TALLY_ALERT_ALLOW_CIDR",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub alert_allow_cidr: Vec<String>,
    /// Who may call: `keys` (an API key in `authorization: Bearer`) or `none` (loopback only, unless --insecure-no-auth) [default: none]
    #[arg(long, env = "TALLY_AUTH", value_name = "MODE")]
    pub auth: Option<String>,
    /// Serve a non-loopback address without authentication (anyone who reaches the port reads and changes every merchant)
    #[arg(long, env = "TALLY_INSECURE_NO_AUTH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_no_auth: Option<String>,
    /// PEM certificate chain to serve gRPC over TLS with (needs --tls-key)
    #[arg(long, env = "TALLY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "TALLY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,
    /// PEM CA bundle client certificates are verified against (mutual TLS; a certificate's CN maps to a key made with --client-cn)
    #[arg(long, env = "TALLY_TLS_CLIENT_CA", value_name = "FILE")]
    pub tls_client_ca: Option<String>,
    /// Calls in progress past which more are refused with RESOURCE_EXHAUSTED and a RetryInfo (0: no limit) [default: 1024]
    #[arg(long, env = "TALLY_MAX_CONCURRENT_CALLS", value_name = "N")]
    pub max_concurrent_calls: Option<String>,
    /// Calls a second each API key may make, per server (0: no limit) [default: 200]
    #[arg(long, env = "TALLY_RATE_LIMIT_PER_KEY", value_name = "N")]
    pub rate_limit_per_key: Option<String>,
    /// Also serve grpc.health.v1 alone, in plaintext, on this address: for probes that cannot speak TLS (unset: none)
    #[arg(long, env = "TALLY_HEALTH_ADDR", value_name = "ADDR")]
    pub health_addr: Option<String>,
}

#[derive(Debug, Default, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Address to serve gRPC health on (for probes) [default: 127.0.0.1:50051]
    #[arg(long, env = "TALLY_GRPC_ADDR", value_name = "ADDR")]
    pub grpc_addr: Option<String>,
    /// Worker loops (jobs applied at once) [default: 2]
    #[arg(long, env = "TALLY_WORKER_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<String>,
    /// How long a job in progress may finish after SIGTERM [default: 20]
    #[arg(long, env = "TALLY_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<String>,
    /// Address to serve Prometheus metrics on, at /metrics (unset: none)
    #[arg(long, env = "TALLY_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// PEM file of CA certificates that https:// alert webhooks are also trusted by (a private CA), besides Mozilla's roots
    #[arg(long, env = "TALLY_ALERT_CA_FILE", value_name = "FILE")]
    pub alert_ca_file: Option<String>,
    /// Internal address block alert webhooks may reach (loopback, private, link-local... are refused otherwise); repeatable or comma-separated
    #[arg(
        long,
        env = "TALLY_ALERT_ALLOW_CIDR",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub alert_allow_cidr: Vec<String>,
}

/// A repeatable option as the one comma-separated value its variable
/// would hold; None when not given.
fn joined(values: &[String]) -> Option<String> {
    (!values.is_empty()).then(|| values.join(","))
}

impl Command {
    /// The value given for a setting, by its environment variable name;
    /// None when neither flag nor variable was given, or when this command
    /// has no such option.
    pub fn setting(&self, env: &str) -> Option<String> {
        let value = match self {
            Command::Migrate(d) => return Self::database_setting(d, env),
            // Clients and offline tools: they read no server setting.
            Command::Trace(_)
            | Command::Report(_)
            | Command::Audit(_)
            | Command::Import(_)
            | Command::Simulate(_) => {
                return None;
            }
            Command::Journals(j) => match &j.command {
                JournalsCommand::Export(e) => return Self::database_setting(&e.database, env),
            },
            Command::Keys(k) => return Self::database_setting(k.command.database(), env),
            Command::Serve(s) if env == keys::ALERT_ALLOW_CIDR.env => {
                return joined(&s.alert_allow_cidr);
            }
            Command::Worker(w) if env == keys::ALERT_ALLOW_CIDR.env => {
                return joined(&w.alert_allow_cidr);
            }
            Command::Serve(s) => match env {
                e if e == keys::GRPC_ADDR.env => &s.grpc_addr,
                e if e == keys::METRICS_ADDR.env => &s.metrics_addr,
                e if e == keys::SHUTDOWN_GRACE_SECS.env => &s.shutdown_grace_secs,
                e if e == keys::IN_PROCESS_WORKER.env => &s.in_process_worker,
                e if e == keys::WORKER_CONCURRENCY.env => &s.concurrency,
                e if e == keys::ALERT_CA_FILE.env => &s.alert_ca_file,
                e if e == keys::AUTH.env => &s.auth,
                e if e == keys::INSECURE_NO_AUTH.env => &s.insecure_no_auth,
                e if e == keys::TLS_CERT.env => &s.tls_cert,
                e if e == keys::TLS_KEY.env => &s.tls_key,
                e if e == keys::TLS_CLIENT_CA.env => &s.tls_client_ca,
                e if e == keys::MAX_CONCURRENT_CALLS.env => &s.max_concurrent_calls,
                e if e == keys::RATE_LIMIT_PER_KEY.env => &s.rate_limit_per_key,
                e if e == keys::HEALTH_ADDR.env => &s.health_addr,
                _ => return Self::database_setting(&s.database, env),
            },
            Command::Worker(w) => match env {
                e if e == keys::GRPC_ADDR.env => &w.grpc_addr,
                e if e == keys::WORKER_CONCURRENCY.env => &w.concurrency,
                e if e == keys::SHUTDOWN_GRACE_SECS.env => &w.shutdown_grace_secs,
                e if e == keys::METRICS_ADDR.env => &w.metrics_addr,
                e if e == keys::ALERT_CA_FILE.env => &w.alert_ca_file,
                _ => return Self::database_setting(&w.database, env),
            },
        };
        value.clone()
    }

    fn database_setting(database: &DatabaseArgs, env: &str) -> Option<String> {
        let value = match env {
            e if e == keys::DATABASE_URL.env => &database.database_url,
            e if e == keys::DATA_DIR.env => &database.data_dir,
            e if e == keys::PG_BIN.env => &database.pg_bin,
            e if e == keys::POOL_SIZE.env => &database.pool_size,
            e if e == keys::LOG_FORMAT.env => &database.log_format,
            e if e == keys::CONFIG.env => &database.config,
            _ => return None,
        };
        value.clone()
    }

    /// Whether `env` names one of the options (as opposed to a platform
    /// variable such as HOME or PATH).
    pub fn is_option(env: &str) -> bool {
        keys::ALL.iter().any(|k| k.env == env)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::config::Config;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tally").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> Config {
        let cli = parse(args).unwrap();
        Config::from_lookup(|k| cli.command.setting(k)).unwrap()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every setting `Config` reads is a flag of `serve` with the variable
    /// the docs name, so the two lists cannot drift apart.
    #[test]
    fn every_setting_has_its_flag_and_variable() {
        let cmd = Cli::command();
        let serve = cmd.find_subcommand("serve").unwrap();
        for key in keys::ALL {
            let long = key.flag.trim_start_matches("--");
            let arg = serve
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("serve has no {}", key.flag));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(key.env),
                "{}",
                key.flag
            );
        }
    }

    #[test]
    fn flags_reach_the_config() {
        let c = config(&[
            "serve",
            "--grpc-addr",
            "0.0.0.0:7000",
            "--metrics-addr",
            "0.0.0.0:9090",
            "--pool-size",
            "3",
            "--shutdown-grace-secs",
            "5",
            "--log-format",
            "json",
            "--in-process-worker",
            "false",
            "--data-dir",
            "/srv/tally",
            "--database-url",
            "postgres://u@h/db",
        ]);
        assert_eq!(c.grpc_addr.port(), 7000);
        assert_eq!(c.metrics_addr.map(|a| a.port()), Some(9090));
        assert_eq!(c.pool_size, 3);
        assert_eq!(c.shutdown_grace.as_secs(), 5);
        assert_eq!(c.log_format, crate::config::LogFormat::Json);
        assert!(!c.in_process_worker);
        assert_eq!(c.embedded.tally_dir, std::path::PathBuf::from("/srv/tally"));
        assert_eq!(c.database_url.as_deref(), Some("postgres://u@h/db"));
    }

    #[test]
    fn worker_takes_its_concurrency_and_health_address() {
        let c = config(&[
            "worker",
            "--concurrency",
            "4",
            "--grpc-addr",
            "0.0.0.0:7001",
        ]);
        assert_eq!(c.worker_concurrency, 4);
        assert_eq!(c.grpc_addr.port(), 7001);
        assert_eq!(config(&["worker"]).worker_concurrency, 2);
        let cli = parse(&["worker", "--concurrency", "0"]).unwrap();
        let err = Config::from_lookup(|k| cli.command.setting(k)).unwrap_err();
        assert!(
            err.to_string().contains("TALLY_WORKER_CONCURRENCY"),
            "{err}"
        );
        assert!(parse(&["worker", "--in-process-worker", "true"]).is_err());
    }

    /// `serve` and `worker` deliver alerts, so both take the CA file (and
    /// check it); `migrate` does not.
    #[test]
    fn serve_and_worker_take_the_alert_ca_file() {
        for command in ["serve", "worker"] {
            let cli = parse(&[command, "--alert-ca-file", "/nonexistent/ca.pem"]).unwrap();
            assert_eq!(
                cli.command.setting(keys::ALERT_CA_FILE.env).as_deref(),
                Some("/nonexistent/ca.pem")
            );
            let err = Config::from_lookup(|k| cli.command.setting(k)).unwrap_err();
            assert!(
                err.to_string().contains("--alert-ca-file")
                    && err.to_string().contains("/nonexistent/ca.pem"),
                "{err}"
            );
        }
        assert!(config(&["worker"]).alert_ca.is_none());
        assert!(parse(&["migrate", "--alert-ca-file", "/x.pem"]).is_err());
    }

    /// Repeated, comma-separated or both: one list; a bad block is named.
    #[test]
    fn the_alert_allow_list_is_repeatable() {
        for command in ["serve", "worker"] {
            let c = config(&[
                command,
                "--alert-allow-cidr",
                "127.0.0.0/8,fd00::/8",
                "--alert-allow-cidr",
                "10.1.2.3",
            ]);
            let blocks: Vec<String> = c.alert_allow.iter().map(|c| c.to_string()).collect();
            assert_eq!(blocks, ["127.0.0.0/8", "fd00::/8", "10.1.2.3/32"]);
        }
        assert!(config(&["serve"]).alert_allow.is_empty());
        let cli = parse(&["serve", "--alert-allow-cidr", "10.0.0.0/99"]).unwrap();
        let err = Config::from_lookup(|k| cli.command.setting(k)).unwrap_err();
        assert!(
            err.to_string().contains("TALLY_ALERT_ALLOW_CIDR")
                && err.to_string().contains("10.0.0.0/99"),
            "{err}"
        );
    }

    #[test]
    fn migrate_takes_the_database_options_only() {
        let c = config(&["migrate", "--pool-size", "2"]);
        assert_eq!(c.pool_size, 2);
        let err = parse(&["migrate", "--grpc-addr", "0.0.0.0:1"]).unwrap_err();
        assert!(err.to_string().contains("--grpc-addr"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let cli = parse(&["serve", "--grpc-addr", "nowhere"]).unwrap();
        let err = Config::from_lookup(|k| cli.command.setting(k)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--grpc-addr")
                && msg.contains("TALLY_GRPC_ADDR")
                && msg.contains("nowhere"),
            "{msg}"
        );
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&[]).is_err(), "a command is required");
    }
}
