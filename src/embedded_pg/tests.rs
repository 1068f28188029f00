//! The embedded server against real PostgreSQL binaries.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

use super::binaries::find_binaries_in;
use super::files::RemoveOnDrop;
use super::*;

fn settings() -> Settings {
    crate::config::embedded_settings_from_env()
}

async fn select_one(url: &str) -> i32 {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let task = tokio::spawn(conn);
    let row = client.query_one("SELECT 1", &[]).await.expect("SELECT 1");
    drop(client);
    let _ = task.await;
    row.get(0)
}

#[test]
fn missing_binaries_say_what_to_install_or_set() {
    let empty = settings()
        .temp_dir
        .join(format!("tally-no-pg-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let err = find_binaries_in(vec![empty.clone()]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, EmbeddedPgError::NoBinaries { ref searched } if searched == &vec![empty.clone()])
    );
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
    assert!(msg.contains("DATABASE_URL"), "{msg}");
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn url_percent_encodes_socket_dir() {
    let pg = EmbeddedPostgres {
        child: None,
        pid: None,
        data_dir: "/var/lib/tally/postgres".into(),
        socket_dir: "/var/lib/tally/run".into(),
        port: 5432,
        temp_root: None,
        log_path: "/var/lib/tally/postgres.log".into(),
        settings: settings(),
    };
    assert_eq!(
        pg.database_url(),
        "postgres://tally@%2Fvar%2Flib%2Ftally%2Frun:5432/postgres"
    );
    assert_eq!(
        pg.database_url_for("tally_test"),
        "postgres://tally@%2Fvar%2Flib%2Ftally%2Frun:5432/tally_test"
    );
}

#[tokio::test]
async fn temporary_server_accepts_queries_and_cleans_up() {
    let pg = EmbeddedPostgres::start_temporary(&settings())
        .await
        .expect("start_temporary");
    let root = pg.temp_root.clone().expect("temp root");
    eprintln!("embedded pg: {pg:?} url={}", pg.database_url());
    assert_eq!(select_one(&pg.database_url()).await, 1);
    let (client, conn) = tokio_postgres::connect(&pg.database_url(), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let listen: String = client
        .query_one("SHOW listen_addresses", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listen, "", "no TCP listener wanted");
    let fsync: String = client.query_one("SHOW fsync", &[]).await.unwrap().get(0);
    assert_eq!(fsync, "off");
    drop(client);
    pg.stop().await.expect("stop");
    assert!(
        !root.exists(),
        "{} should be removed after stop",
        root.display()
    );
}

#[tokio::test]
async fn dropping_temporary_server_stops_it_and_removes_dir() {
    let pg = EmbeddedPostgres::start_temporary(&settings())
        .await
        .expect("start_temporary");
    let root = pg.temp_root.clone().expect("temp root");
    let pid = pg.pid.expect("pid");
    drop(pg);
    assert!(
        !root.exists(),
        "{} should be removed on drop",
        root.display()
    );
    assert!(!looks_like_postgres_alive(pid));
}

fn looks_like_postgres_alive(pid: u32) -> bool {
    // Reaped or a zombie awaiting tokio's reaper both count as gone.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

/// start() reuses a cluster across runs and adopts a server that is
/// already running instead of starting a second one.
#[tokio::test]
async fn start_reuses_cluster_and_adopts_running_server() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let base = settings()
        .temp_dir
        .join(format!("tally-pg-test-{}-{nanos}", std::process::id()));
    let _cleanup = RemoveOnDrop(Some(base.clone()));
    let settings = Settings {
        tally_dir: base.clone(),
        ..settings()
    };
    let data_dir = settings.data_dir();

    let first = EmbeddedPostgres::start(&settings)
        .await
        .expect("first start");
    assert!(data_dir.join("PG_VERSION").exists());
    assert_eq!(select_one(&first.database_url()).await, 1);

    let adopted = EmbeddedPostgres::start(&settings)
        .await
        .expect("adopting start");
    assert!(
        adopted.child.is_none(),
        "must not start a second postmaster"
    );
    assert_eq!(adopted.pid, first.pid);
    assert_eq!(select_one(&adopted.database_url()).await, 1);
    adopted.stop().await.expect("stop adopted is a no-op");
    assert_eq!(
        select_one(&first.database_url()).await,
        1,
        "adopted stop must not stop the server"
    );
    first.stop().await.expect("stop first");

    let again = EmbeddedPostgres::start(&settings)
        .await
        .expect("restart on existing cluster");
    assert!(again.child.is_some());
    assert_eq!(select_one(&again.database_url()).await, 1);
    again.stop().await.expect("stop again");
    assert!(!data_dir.join("postmaster.pid").exists());
}

/// A postmaster killed with SIGKILL is reaped by `exited` (no zombie) and
/// `restart` brings the same cluster back.
#[tokio::test]
async fn a_killed_server_is_reaped_and_restarted() {
    let mut pg = EmbeddedPostgres::start_temporary(&settings())
        .await
        .expect("start_temporary");
    let first = pg.pid().expect("pid");
    assert!(sys::kill(first, sys::Signal::Kill));
    let how = tokio::time::timeout(Duration::from_secs(10), pg.exited())
        .await
        .expect("exit noticed");
    assert!(how.contains("9") || how.contains("KILL"), "{how}");
    assert!(!sys::pid_alive(first), "reaped, not a zombie");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match pg.restart().await {
            Ok(()) => break,
            // Orphaned backends may still hold the old shared memory a moment.
            Err(e) if Instant::now() < deadline => {
                eprintln!("restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    }
    assert_ne!(pg.pid(), Some(first));
    assert_eq!(select_one(&pg.database_url()).await, 1);
    pg.stop().await.expect("stop");
}

/// The socket exists before postmaster.pid has its status line; only
/// "ready" (or "standby") means connections are accepted.
#[test]
fn ready_only_once_the_lock_file_says_so() {
    let dir = settings()
        .temp_dir
        .join(format!("tally-pidfile-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("postmaster.pid");
    let head = "123\n/data\n1700000000\n5432\n/run\n\n  1234 5678\n";
    for (contents, ready) in [
        (head.to_string(), false),
        (format!("{head}starting\n"), false),
        (format!("{head}ready   \n"), true),
        (format!("{head}standby\n"), true),
    ] {
        fs::write(&file, &contents).unwrap();
        assert_eq!(files::pid_file_says_ready(&file), ready, "{contents:?}");
    }
    fs::remove_dir_all(&dir).unwrap();
    assert!(
        files::pid_file_says_ready(&file),
        "unreadable: the socket decides"
    );
}
