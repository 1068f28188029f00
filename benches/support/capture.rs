//! The `COPY` baseline of ingest: the very rows a Tally call writes, in the
//! very tables it writes them to, loaded with binary `COPY`.
//!
//! A second Tally (no worker) on a scratch "capture" database ingests the
//! same shape of batch under other keys; every table it wrote is dumped
//! with `COPY ... TO STDOUT (FORMAT binary)`. The baseline then loads those
//! rows into the bench database in one transaction and one commit, with
//! every index and constraint of the real tables maintained. Triggers are
//! off for the load (`session_replication_role = replica`): the rows are
//! already what the triggers produced, and firing them again would write
//! their report and history rows twice. So the baseline is the floor for
//! making the same rows durable: no judging, matching or reading back.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt};
use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;
use tally::server::Running;
use tally::storage::{Store, run_migrations};
use tokio_postgres::{Client, NoTls};

use super::scratch_database;

/// One table's rows as binary `COPY` data, and the statement that loads them.
pub struct TableRows {
    pub copy_in: String,
    pub data: Bytes,
    pub rows: u64,
}

pub struct Capture {
    admin: Client,
    db: String,
    raw: Client,
    server: Running,
    client: IngestServiceClient<tonic::transport::Channel>,
    /// Tables empty after the migrations (what ingest fills), each with its
    /// non-generated columns.
    tables: Vec<(String, String)>,
}

impl Capture {
    pub async fn new() -> Capture {
        let (admin, db, url) = scratch_database("tally_bench_capture").await;
        run_migrations(&url).await.unwrap();
        let (raw, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        let mut tables = vec![];
        for row in raw
            .query(
                "SELECT c.relname::text,
                        string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                      AND NOT a.attisdropped AND a.attgenerated = ''
                 WHERE n.nspname = 'public' AND c.relkind = 'r'
                   AND c.relname NOT LIKE '\\_\\_%'
                 GROUP BY c.relname ORDER BY c.relname",
                &[],
            )
            .await
            .unwrap()
        {
            let (name, cols): (String, String) = (row.get(0), row.get(1));
            let empty: bool = raw
                .query_one(&format!("SELECT NOT EXISTS (SELECT FROM {name})"), &[])
                .await
                .unwrap()
                .get(0);
            if empty {
                tables.push((name, cols));
            }
        }
        let (server, channel) = super::serve(Store::connect(&url, 4).unwrap()).await;
        Capture {
            admin,
            db,
            raw,
            server,
            client: IngestServiceClient::new(channel).max_decoding_message_size(64 << 20),
            tables,
        }
    }

    /// The rows Tally writes for `records` submitted in one call to empty
    /// tables. Every sequence starts past `id_base`, so generated ids do not
    /// collide with the bench database's (give each call its own base).
    pub async fn rows_of(&self, records: Vec<pb::Record>, id_base: i64) -> Vec<TableRows> {
        let names: Vec<&str> = self.tables.iter().map(|(t, _)| t.as_str()).collect();
        self.raw
            .batch_execute(&format!("TRUNCATE {}", names.join(", ")))
            .await
            .unwrap();
        self.raw
            .execute(
                "SELECT setval(c.oid::regclass, $1) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind = 'S'",
                &[&id_base],
            )
            .await
            .unwrap();
        let n = records.len();
        let r = super::submit(&self.client, "bench", records).await;
        assert_eq!(r.results.len(), n);
        let mut out = vec![];
        for (table, cols) in &self.tables {
            let stream = self
                .raw
                .copy_out(&format!(
                    "COPY (SELECT {cols} FROM {table}) TO STDOUT (FORMAT binary)"
                ))
                .await
                .unwrap();
            let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
            let rows: i64 = self
                .raw
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap()
                .get(0);
            if rows > 0 {
                out.push(TableRows {
                    copy_in: format!("COPY {table} ({cols}) FROM STDIN (FORMAT binary)"),
                    data: Bytes::from(chunks.concat()),
                    rows: rows as u64,
                });
            }
        }
        out
    }

    pub async fn drop(self) {
        self.server.stop().await.unwrap();
        drop(self.raw);
        let _ = self
            .admin
            .execute(&format!("DROP DATABASE {} WITH (FORCE)", self.db), &[])
            .await;
    }
}

/// Loads captured rows into the tables of `raw`'s database: one
/// transaction, one `COPY` per table, one commit. Returns the time taken.
pub async fn copy_in(raw: &mut Client, rows: &[TableRows]) -> Duration {
    let t = Instant::now();
    let tx = raw.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL session_replication_role = replica")
        .await
        .unwrap();
    for table in rows {
        let sink = tx.copy_in(&table.copy_in).await.unwrap();
        futures::pin_mut!(sink);
        sink.send(table.data.clone()).await.unwrap();
        let n = sink.finish().await.unwrap();
        assert_eq!(n, table.rows);
    }
    tx.commit().await.unwrap();
    t.elapsed()
}
