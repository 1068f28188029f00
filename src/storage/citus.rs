//! Migrations on a Citus coordinator. Citus forwards the text of some DDL
//! (CREATE INDEX, ALTER TABLE, ...) to its workers as it was received; a
//! migration file sent as one multi-statement query then reaches a worker
//! as several commands in one prepared statement, which PostgreSQL refuses.
//! On Citus each migration therefore runs statement by statement (still in
//! the one transaction diesel gives every migration); on plain PostgreSQL
//! migrations run exactly as diesel runs them.

use diesel::migration::{Migration, MigrationMetadata, MigrationName, MigrationSource};
use diesel::pg::Pg;

// (directory name, up.sql) of every migration, from build.rs.
include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));

/// Diesel's migrations, each run statement by statement.
pub struct StatementWise<S>(pub S);

impl<S: MigrationSource<Pg>> MigrationSource<Pg> for StatementWise<S> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        let inner = self.0.migrations()?;
        inner
            .into_iter()
            .map(|m| {
                let name = m.name().to_string();
                let up = MIGRATION_SQL
                    .iter()
                    .find(|(dir, _)| *dir == name)
                    .map(|(_, sql)| *sql)
                    .ok_or_else(|| format!("no SQL embedded for migration {name}"))?;
                Ok(Box::new(Split { inner: m, up }) as Box<dyn Migration<Pg>>)
            })
            .collect()
    }
}

struct Split {
    inner: Box<dyn Migration<Pg>>,
    up: &'static str,
}

impl Migration<Pg> for Split {
    fn run(
        &self,
        conn: &mut dyn diesel::connection::BoxableConnection<Pg>,
    ) -> diesel::migration::Result<()> {
        for stmt in statements(self.up) {
            conn.batch_execute(stmt)
                .map_err(|e| format!("migration {}: {e}\nin: {stmt}", self.inner.name()))?;
        }
        Ok(())
    }

    fn revert(
        &self,
        conn: &mut dyn diesel::connection::BoxableConnection<Pg>,
    ) -> diesel::migration::Result<()> {
        self.inner.revert(conn)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self.inner.metadata()
    }

    fn name(&self) -> &dyn MigrationName {
        self.inner.name()
    }
}

#[derive(diesel::QueryableByName)]
struct Installed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    installed: bool,
}

/// Whether this database is a Citus one. The worker's "which merchants have
/// work" reads ask before each sweep (one catalog probe): on plain
/// PostgreSQL they are loose index scans (recursive CTEs), which Citus can
/// only run within one merchant; on Citus they are a plain read of every
/// shard, each of which answers for its own merchants.
pub async fn installed(conn: &mut super::Conn) -> crate::error::Result<bool> {
    use diesel_async::RunQueryDsl;
    Ok(diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS installed",
    )
    .get_result::<Installed>(conn)
    .await?
    .installed)
}

/// The statements of a SQL script, split at the semicolons outside
/// comments, quoted strings, quoted identifiers and dollar-quoted bodies;
/// empty and comment-only pieces dropped.
pub fn statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = vec![];
    let (mut start, mut i, mut code) = (0, 0, false);
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            i = sql[i..].find('\n').map_or(b.len(), |n| i + n);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
            continue;
        }
        if c == b'\'' || c == b'"' {
            // A doubled quote inside is an escaped one: the scan just
            // closes and reopens.
            i = sql[i + 1..]
                .find(c as char)
                .map_or(b.len(), |n| i + 1 + n + 1);
            code = true;
            continue;
        }
        if c == b'$'
            && let Some(tag) = dollar_tag(&sql[i..])
        {
            let body = i + tag.len();
            i = sql[body..]
                .find(tag)
                .map_or(b.len(), |n| body + n + tag.len());
            code = true;
            continue;
        }
        if c == b';' {
            if code {
                out.push(sql[start..=i].trim());
            }
            start = i + 1;
            code = false;
        } else if !c.is_ascii_whitespace() {
            code = true;
        }
        i += 1;
    }
    if code {
        out.push(sql[start..].trim());
    }
    out
}

/// `$tag$` or `$$` at the start of `s` (not a `$1` parameter).
fn dollar_tag(s: &str) -> Option<&str> {
    let rest = &s[1..];
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let tag = &rest[..end];
    if rest[end..].starts_with('$') && !tag.starts_with(|c: char| c.is_ascii_digit()) {
        Some(&s[..end + 2])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_outside_quotes_comments_and_bodies() {
        let sql = "-- a; comment\nCREATE TABLE t (a text CHECK (a <> ';'));\n\
                   /* b; */ CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n\
                   BEGIN RETURN 1; END $$;\n\
                   SELECT $1, 'it''s; fine', \"odd;name\" FROM x;\n\
                   DO $body$ BEGIN PERFORM 1; END $body$;\n-- trailing\n";
        let got = statements(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("-- a; comment\nCREATE TABLE t"));
        assert!(got[1].ends_with("BEGIN RETURN 1; END $$;"));
        assert!(got[2].contains("'it''s; fine', \"odd;name\""));
        assert!(got[3].starts_with("DO $body$"));
    }

    #[test]
    fn every_migration_splits_into_whole_statements() {
        for (dir, sql) in super::MIGRATION_SQL {
            let parts = statements(sql);
            assert!(!parts.is_empty(), "{dir}");
            for p in parts {
                assert!(p.ends_with(';'), "{dir}: a statement cut short: {p}");
            }
        }
    }
}
