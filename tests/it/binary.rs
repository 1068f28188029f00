//! The `tally` binary as an operator runs it: migrate, serve, stop on a
//! signal; and with no DATABASE_URL, with the PostgreSQL it owns.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_serving(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        assert!(child.try_wait().unwrap().is_none(), "tally exited early");
        if let Ok(ch) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            let r = HealthClient::new(ch)
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if r.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tally never became SERVING");
}

/// SIGTERM, then the exit status within `limit`.
async fn terminate(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
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

fn tally() -> Command {
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
        .spawn()
        .unwrap();
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
    let mut child = tally()
        .arg("serve")
        .env("TALLY_DATA_DIR", &dir)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    wait_serving(port, &mut child).await;
    assert!(
        terminate(&mut child, Duration::from_secs(30))
            .await
            .success()
    );
    // It stopped the PostgreSQL it started.
    assert!(
        !dir.join("postgres/postmaster.pid").exists(),
        "embedded PostgreSQL left running"
    );
    let _ = std::fs::remove_dir_all(&dir);
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
        .spawn()
        .unwrap();
    wait_serving(port, &mut child).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::StreamRecordsRequest>(1);
    let mut client =
        tally::proto::tally::v1::ingest_service_client::IngestServiceClient::new(channel);
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
