//! The test databases on a Citus cluster (scripts/citus-cluster.sh). Set
//! TALLY_TEST_DATABASE_URL to the coordinator and TALLY_TEST_CITUS_WORKERS
//! to its workers (`host:port,host:port`); the harness then keeps every
//! test database on every node.
//!
//! Citus does not propagate CREATE DATABASE: a database is a Citus
//! database once the extension exists in it on every node and the workers
//! are added from the coordinator. The migrated template is built that way
//! once; each test database is then the template cloned on every node, in
//! about the time of one CREATE DATABASE per node (migrating on Citus takes
//! a minute: every table is created once per shard).

use tokio_postgres::NoTls;

/// The workers' `host:port`s, when the tests run on Citus.
pub fn workers() -> Option<Vec<(String, u16)>> {
    let list = std::env::var("TALLY_TEST_CITUS_WORKERS").ok()?;
    let parsed = list
        .split(',')
        .filter(|w| !w.trim().is_empty())
        .map(|w| {
            let (host, port) = w
                .trim()
                .rsplit_once(':')
                .expect("TALLY_TEST_CITUS_WORKERS: host:port,host:port");
            let port = port.parse().expect("TALLY_TEST_CITUS_WORKERS: a port");
            (host.to_string(), port)
        })
        .collect();
    Some(parsed)
}

/// Every node's `postgres` database: the coordinator's admin URL first.
fn node_urls(admin: &str, workers: &[(String, u16)]) -> Vec<String> {
    let mut urls = vec![admin.to_string()];
    urls.extend(
        workers
            .iter()
            .map(|(h, p)| format!("postgres://postgres@{h}:{p}/postgres")),
    );
    urls
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to Citus node {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Citus's maintenance daemon keeps a session in every Citus database;
/// cloning or renaming one needs it gone (and kept out: see `freeze`).
async fn evict(node: &tokio_postgres::Client, db: &str) {
    node.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
        &[&db],
    )
    .await
    .unwrap();
}

/// Creates `db` on every node with Citus in it, the workers added.
async fn create(admin: &str, workers: &[(String, u16)], db: &str) {
    for url in node_urls(admin, workers) {
        let node = connect(&url).await;
        node.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
        node.batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        connect(&super::common::url_for(&url, db))
            .await
            .batch_execute("CREATE EXTENSION citus")
            .await
            .unwrap();
    }
    let coordinator = connect(&super::common::url_for(admin, db)).await;
    let (host, port) = host_port(admin);
    coordinator
        .execute(
            "SELECT citus_set_coordinator_host($1, $2)",
            &[&host, &i32::from(port)],
        )
        .await
        .unwrap();
    for (h, p) in workers {
        coordinator
            .execute("SELECT citus_add_node($1, $2)", &[h, &i32::from(*p)])
            .await
            .unwrap();
    }
}

/// Makes the migrated `building` the template `name` on every node: no
/// session may enter it again, so it can be cloned at any time.
async fn freeze(admin: &str, workers: &[(String, u16)], building: &str, name: &str) {
    // The coordinator last: a template exists once it has it.
    for url in node_urls(admin, workers).into_iter().rev() {
        let node = connect(&url).await;
        node.batch_execute(&format!(
            "ALTER DATABASE {building} ALLOW_CONNECTIONS false"
        ))
        .await
        .unwrap();
        evict(&node, building).await;
        let sql = format!("ALTER DATABASE {building} RENAME TO {name}");
        super::common::retry(|| node.batch_execute(&sql)).await;
    }
}

/// Clones the template on every node.
pub async fn clone(admin: &str, workers: &[(String, u16)], template: &str, db: &str) {
    for url in node_urls(admin, workers) {
        let node = connect(&url).await;
        node.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
        let sql = format!("CREATE DATABASE {db} TEMPLATE {template}");
        super::common::retry(|| node.batch_execute(&sql)).await;
    }
}

/// Drops `db` on every node.
pub async fn drop_db(admin: &str, workers: &[(String, u16)], db: &str) {
    for url in node_urls(admin, workers) {
        if let Ok((node, conn)) = tokio_postgres::connect(&url, NoTls).await {
            tokio::spawn(conn);
            let _ = node
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await;
        }
    }
}

/// The migrated template `name` on every node, built once by whichever
/// test process gets there first.
pub async fn template(admin: &str, workers: &[(String, u16)], name: &str) {
    let coordinator = connect(admin).await;
    coordinator
        .execute("SELECT pg_advisory_lock(7215002)", &[])
        .await
        .unwrap();
    let exists = coordinator
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        create(admin, workers, &building).await;
        tally::storage::run_migrations(&super::common::url_for(admin, &building))
            .await
            .expect("migrate the Citus template");
        freeze(admin, workers, &building, name).await;
    }
    coordinator
        .execute("SELECT pg_advisory_unlock(7215002)", &[])
        .await
        .unwrap();
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().expect("a port in the URL")),
        None => (hostport.to_string(), 5432),
    }
}
