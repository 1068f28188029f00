//! The test harness: a real PostgreSQL, a database per test cloned from a
//! migrated template (here), and a real server on 127.0.0.1:0 driven
//! through the generated clients (`app`), fed the records `records` builds.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

use super::citus_nodes;

mod app;
mod records;

pub use app::TestApp;
pub use records::*;

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
