//! The `tally` binary as an operator runs it: migrate, serve, stop on a
//! signal; and with no DATABASE_URL, with the PostgreSQL it owns.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use tally::proto::tally::v1 as pb;

use crate::common::*;

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn wait_serving(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "tally exited early");
        if is_serving(port).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tally never became SERVING");
}

/// SIGTERM, then the exit status within `limit`.
pub(crate) async fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    tally::embedded_pg::sys::kill(child.id(), tally::embedded_pg::sys::Signal::Terminate);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "tally did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits `records` for merchant acme to the `tally serve` on `port`,
/// continuing the caller's trace when a `traceparent` is given.
pub(crate) async fn submit_to(
    port: u16,
    records: Vec<pb::Record>,
    traceparent: Option<&str>,
) -> pb::SubmitRecordsResponse {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut req = tonic::Request::new(pb::SubmitRecordsRequest {
        parent: "merchants/acme".into(),
        request_id: String::new(),
        records,
    });
    if let Some(tp) = traceparent {
        req.metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    pb::ingest_service_client::IngestServiceClient::new(channel)
        .submit_records(req)
        .await
        .unwrap()
        .into_inner()
}

pub(crate) fn tally() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
    c.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[tokio::test]
async fn migrate_then_serve_then_stop_on_sigterm() {
    let db = TestDb::new().await;
    let status = tally()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .status()
        .unwrap();
    assert!(status.success());

    let port = free_port();
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
}

#[tokio::test]
async fn serve_without_a_database_url_runs_its_own_postgres() {
    if !std::path::Path::new("/usr/lib/postgresql").exists() && which("initdb").is_none() {
        // The binaries are what `serve` needs here; CI installs them.
        panic!(
            "PostgreSQL server binaries are required for this test (apt-get install postgresql)"
        );
    }
    let dir = std::env::temp_dir().join(format!("tally-embedded-test-{}", std::process::id()));
    let port = free_port();
    let mut child = embedded_serve(&dir, port);
    wait_serving(port, &mut child).await;
    stop_embedded_serve(child, &dir).await;
}

/// SIGTERM: it exits cleanly and stops the PostgreSQL it started.
async fn stop_embedded_serve(mut child: Stopped, dir: &std::path::Path) {
    assert!(
        terminate(&mut child, Duration::from_secs(30))
            .await
            .success()
    );
    assert!(
        !dir.join("postgres/postmaster.pid").exists(),
        "embedded PostgreSQL left running"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(bin))
        .find(|p| p.exists())
}

#[test]
fn unknown_commands_print_usage_and_fail() {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // clap's usage line; it names what it did not understand.
    assert!(stderr.to_lowercase().contains("usage: tally"), "{stderr}");
    assert!(stderr.contains("frobnicate"), "{stderr}");
}

#[tokio::test]
async fn an_open_stream_cannot_hold_shutdown_past_the_grace_period() {
    use tally::proto::tally::v1 as pb;
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = tally()
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("TALLY_SHUTDOWN_GRACE_SECS", "1")
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::StreamRecordsRequest>(1);
    let mut client = pb::ingest_service_client::IngestServiceClient::new(channel);
    // A stream the client never closes.
    let _responses = client
        .stream_records(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap();
    let started = Instant::now();
    assert!(
        terminate(&mut child, Duration::from_secs(10))
            .await
            .success()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it did wait for the stream a while"
    );
    drop(tx);
}

/// Serves on the log output of `args` (stderr to a pipe), then stops it.
async fn logs_of_serve(db_url: &str, args: &[&str]) -> String {
    let port = free_port();
    let mut child = tally()
        .arg("serve")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "info")
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn_stopped();
    wait_serving(port, &mut child).await;
    assert!(
        terminate(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("serving gRPC"), "{logs}");
    logs
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let db = TestDb::new().await;
    let logs = logs_of_serve(&db.url, &[]).await;
    assert!(
        !logs.contains('\x1b'),
        "ANSI escape in piped logs: {logs:?}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let db = TestDb::new().await;
    let logs = logs_of_serve(&db.url, &["--log-format", "json"]).await;
    let mut messages = Vec::new();
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(v["fields"]["message"].as_str().unwrap_or("").to_string());
    }
    assert!(messages.iter().any(|m| m == "serving gRPC"), "{messages:?}");
}

#[test]
fn bad_settings_name_the_flag_variable_and_value() {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("serve")
        .env("TALLY_DB_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in ["--pool-size", "TALLY_DB_POOL_SIZE", "lots"] {
        assert!(stderr.contains(part), "{stderr}");
    }
}

#[test]
fn help_lists_every_command_and_version_prints_the_version() {
    let help = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("serve") && text.contains("migrate"), "{text}");
    let serve = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&serve.stdout);
    for env in ["DATABASE_URL", "TALLY_GRPC_ADDR", "TALLY_IN_PROCESS_WORKER"] {
        assert!(text.contains(env), "{text}");
    }
    let version = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("tally {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The postmaster's pid from its lock file.
fn postmaster_pid(data_dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Children of `parent` that exited and were never reaped.
fn zombie_children(parent: u32) -> Vec<String> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (fields.next(), fields.next());
        if state == Some("Z") && ppid == Some(&parent.to_string()) {
            zombies.push(stat);
        }
    }
    zombies
}

/// A `tally` that a failing test does not leave running (with its
/// PostgreSQL): stopped with SIGTERM on drop, SIGKILL if it lingers.
pub(crate) struct Stopped(pub(crate) Child);

/// `Command::spawn` for a `tally` a panicking test must not leave behind.
pub(crate) trait SpawnStopped {
    fn spawn_stopped(&mut self) -> Stopped;
}

impl SpawnStopped for std::process::Command {
    fn spawn_stopped(&mut self) -> Stopped {
        Stopped(self.spawn().expect("spawn tally"))
    }
}

impl std::ops::Deref for Stopped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Stopped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        use tally::embedded_pg::sys::{Signal, kill};
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        kill(self.0.id(), Signal::Terminate);
        let deadline = Instant::now() + Duration::from_secs(15);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn embedded_serve(dir: &std::path::Path, port: u16) -> Stopped {
    Stopped(
        tally()
            .arg("serve")
            .env("TALLY_DATA_DIR", dir)
            .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap(),
    )
}

async fn is_serving(port: u16) -> bool {
    let Ok(ch) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
    else {
        return false;
    };
    HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving)
}

/// `tally serve` on its own PostgreSQL in a fresh directory, once SERVING.
async fn serving_embedded(name: &str) -> (std::path::PathBuf, u16, Stopped) {
    let dir = std::env::temp_dir().join(format!("tally-{name}-test-{}", std::process::id()));
    let port = free_port();
    let mut child = embedded_serve(&dir, port);
    wait_serving(port, &mut child).await;
    (dir, port, child)
}

/// The embedded PostgreSQL dies (SIGKILL, as the OOM killer does): Tally
/// reaps it, starts it again, and health returns to SERVING.
#[tokio::test]
async fn a_killed_embedded_postgres_is_reaped_and_restarted() {
    let (dir, port, mut child) = serving_embedded("restart").await;
    let data_dir = dir.join("postgres");
    let first = postmaster_pid(&data_dir).expect("postmaster.pid");
    assert!(tally::embedded_pg::sys::kill(
        first,
        tally::embedded_pg::sys::Signal::Kill
    ));

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "tally exited");
        let restarted = postmaster_pid(&data_dir).is_some_and(|p| p != first);
        if restarted && is_serving(port).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health did not return to SERVING after the postmaster was killed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let zombies = zombie_children(child.id());
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    stop_embedded_serve(child, &dir).await;
}

/// When the embedded PostgreSQL cannot be started again, Tally gives up
/// after its bounded attempts and exits non-zero, so that its own
/// supervisor restarts it.
#[tokio::test]
async fn an_embedded_postgres_that_cannot_restart_makes_tally_exit_non_zero() {
    let (dir, _, mut child) = serving_embedded("giveup").await;
    let data_dir = dir.join("postgres");
    let pid = postmaster_pid(&data_dir).expect("postmaster.pid");
    // A cluster without PG_VERSION is refused at every start; the running
    // server does not notice until it is killed.
    std::fs::rename(data_dir.join("PG_VERSION"), dir.join("PG_VERSION.away")).unwrap();
    assert!(tally::embedded_pg::sys::kill(
        pid,
        tally::embedded_pg::sys::Signal::Kill
    ));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tally kept running without its database"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
