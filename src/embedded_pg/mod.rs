//! A PostgreSQL server owned by Tally.
//!
//! `tally serve` without `DATABASE_URL` starts one of these so a new user needs
//! no database set-up; the test harness uses [`EmbeddedPostgres::start_temporary`]
//! when no test database server is reachable.
//!
//! Layout under the tally directory (the parent of the data dir):
//!
//! ```text
//! <tally dir>/postgres/       cluster (PGDATA)
//! <tally dir>/run/            unix socket `.s.PGSQL.<port>`; no TCP port is opened
//! <tally dir>/postgres.log    server and initdb output (appended)
//! ```

mod binaries;
mod cluster;
mod files;
mod supervise;
pub mod sys;
#[cfg(test)]
mod tests;
mod users;

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::process::Child;

use binaries::find_binaries;
use files::{RemoveOnDrop, check_socket_path, create_owned_dirs, log_tail, pid_file_says_ready};
use files::{chown, remove_tree, set_mode, tally_dir_of, warn_if_not_traversable};
use sys::Signal;

pub use supervise::{RestartPolicy, Supervised, SupervisorError};
pub use users::default_tally_dir;

/// The port only names the socket file; with `listen_addresses=''` nothing
/// binds TCP, so a fixed port cannot clash with another server on the host.
const PORT: u16 = 5432;
const SUPERUSER: &str = "tally";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const TEMP_DROP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Linux `sun_path` holds 108 bytes; postgres refuses longer paths with an
/// obscure error, so we fail early with a clear one and keep some margin.
pub(crate) const MAX_SOCKET_PATH: usize = 100;
const LOG_TAIL_LINES: usize = 20;

const NO_BINARIES_MSG: &str = "no PostgreSQL server binaries (initdb, postgres) found on PATH or in /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to an existing database";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error("{NO_BINARIES_MSG}")]
    NoBinaries { searched: Vec<PathBuf> },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("initdb failed ({status}): {stderr}")]
    InitDb { status: ExitStatus, stderr: String },

    #[error(
        "PostgreSQL did not accept connections within {}s; see {}",
        START_TIMEOUT.as_secs(),
        log_path.display()
    )]
    StartTimeout { log_path: PathBuf },

    #[error("PostgreSQL exited during start-up ({status}); last lines of {}:\n{log_tail}", log_path.display())]
    Exited {
        status: ExitStatus,
        log_path: PathBuf,
        log_tail: String,
    },

    #[error(
        "running as root, but there is no `postgres` system user to run the embedded PostgreSQL server as \
         (initdb and postgres refuse to run as root); install the postgresql package (which creates it), \
         create the user (useradd --system postgres), or set DATABASE_URL to an existing database"
    )]
    NoPostgresUser,

    #[error(
        "socket path {} is {len} bytes, over the {MAX_SOCKET_PATH}-byte unix socket limit; \
         set TALLY_DATA_DIR to a shorter directory",
        path.display()
    )]
    SocketPathTooLong { path: PathBuf, len: usize },

    #[error("PostgreSQL (pid {pid}) did not shut down within {}s", STOP_TIMEOUT.as_secs())]
    StopTimeout { pid: u32 },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedPgError {
    let context = context.into();
    move |source| EmbeddedPgError::Io { context, source }
}

/// Where the embedded server lives and where its binaries are looked for.
/// Built by [`crate::config`] from flags and the environment, so this module
/// reads no environment of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Holds `postgres/` (the cluster), `run/` and `postgres.log`
    /// (TALLY_DATA_DIR). It names the tally directory rather than the
    /// cluster because the socket dir and log are created next to the
    /// cluster; pointing it at e.g. `/srv/tally` must not scatter `run/` into
    /// `/srv`.
    pub tally_dir: PathBuf,
    /// A directory holding `initdb` and `postgres`, searched first
    /// (TALLY_PG_BIN).
    pub pg_bin: Option<PathBuf>,
    /// Searched after `/usr/lib/postgresql/*/bin` (PATH).
    pub search_path: Vec<PathBuf>,
    /// Where throwaway test servers are created (the system temp dir).
    pub temp_dir: PathBuf,
}

impl Settings {
    /// The cluster directory (PGDATA).
    pub fn data_dir(&self) -> PathBuf {
        self.tally_dir.join("postgres")
    }
}

/// A running (or adopted) PostgreSQL server.
pub struct EmbeddedPostgres {
    /// `None` when we adopted a postmaster started by an earlier Tally: that
    /// server is not ours to stop (or to reap).
    child: Option<Child>,
    /// Kept separately because tokio forgets the pid once the child is reaped.
    pid: Option<u32>,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    /// Set for `start_temporary`: the whole tree is deleted after shutdown.
    temp_root: Option<PathBuf>,
    /// To find the binaries again when the server must be restarted.
    settings: Settings,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("pid", &self.pid)
            .field("owned", &self.child.is_some())
            .field("data_dir", &self.data_dir)
            .field("socket_dir", &self.socket_dir)
            .field("port", &self.port)
            .field("temporary", &self.temp_root.is_some())
            .finish()
    }
}

impl EmbeddedPostgres {
    /// initdb if the data dir has no `PG_VERSION`, then start `postgres` and
    /// wait until it accepts connections (up to 30 s). Idempotent across runs:
    /// reuses an existing cluster, and adopts a postmaster that is already
    /// running on it (e.g. left behind by a Tally that was SIGKILLed).
    pub async fn start(settings: &Settings) -> Result<EmbeddedPostgres, EmbeddedPgError> {
        let data_dir = settings.data_dir();
        let data_dir = std::path::absolute(&data_dir)
            .map_err(io_err(format!("resolving {}", data_dir.display())))?;
        let base = tally_dir_of(&data_dir);
        let socket_dir = base.join("run");
        let log_path = base.join("postgres.log");
        check_socket_path(&socket_dir, PORT)?;

        if let Some(running) = cluster::adopt_running(&data_dir, &socket_dir)? {
            let mut pg = EmbeddedPostgres {
                child: None,
                pid: Some(running.pid),
                data_dir,
                socket_dir: running.socket_dir,
                log_path,
                port: running.port,
                temp_root: None,
                settings: settings.clone(),
            };
            pg.wait_ready().await?;
            return Ok(pg);
        }

        let bins = find_binaries(settings)?;
        let run_as = users::run_as()?;

        create_owned_dirs(&base, run_as)?;
        create_owned_dirs(&socket_dir, run_as)?;
        if let Some(r) = run_as {
            chown(&socket_dir, r)?;
        }
        set_mode(&socket_dir, 0o700)?;
        if let Some(r) = run_as {
            warn_if_not_traversable(&data_dir, r);
        }

        if !data_dir.join("PG_VERSION").exists() {
            cluster::init_cluster(&bins, &data_dir, &log_path, run_as, false).await?;
        }

        let child = cluster::spawn_postgres(
            &bins,
            &data_dir,
            &socket_dir,
            &log_path,
            PORT,
            run_as,
            false,
        )?;
        let mut pg = EmbeddedPostgres::spawned(child, data_dir, socket_dir, log_path, settings);
        pg.wait_ready().await?;
        tracing::info!(
            pid = pg.pid,
            data_dir = %pg.data_dir.display(),
            socket_dir = %pg.socket_dir.display(),
            "embedded PostgreSQL started"
        );
        Ok(pg)
    }

    /// A throwaway server for tests: fresh directory under the temp dir,
    /// durability switched off for speed, and the directory is deleted
    /// once the server has exited (in `stop` or `Drop`).
    pub async fn start_temporary(settings: &Settings) -> Result<EmbeddedPostgres, EmbeddedPgError> {
        let bins = find_binaries(settings)?;
        let run_as = users::run_as()?;

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let root = std::path::absolute(&settings.temp_dir)
            .map_err(io_err("resolving temp dir"))?
            .join(format!("tally-pg-{}-{}", std::process::id(), nanos));
        let data_dir = root.join("postgres");
        let socket_dir = root.join("run");
        let log_path = root.join("postgres.log");
        check_socket_path(&socket_dir, PORT)?;

        // create_dir (not _all) so a name collision fails instead of sharing a dir.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .map_err(io_err(format!("creating {}", root.display())))?;
        // From here on, a failure must not leak the directory.
        let cleanup = RemoveOnDrop(Some(root.clone()));
        create_owned_dirs(&socket_dir, run_as)?;
        if let Some(r) = run_as {
            chown(&root, r)?;
        }
        set_mode(&socket_dir, 0o700)?;

        cluster::init_cluster(&bins, &data_dir, &log_path, run_as, true).await?;
        let child =
            cluster::spawn_postgres(&bins, &data_dir, &socket_dir, &log_path, PORT, run_as, true)?;
        let mut pg = EmbeddedPostgres::spawned(child, data_dir, socket_dir, log_path, settings);
        pg.temp_root = Some(root);
        // `pg` now owns the directory's removal (it must outlive the server).
        std::mem::forget(cleanup);
        pg.wait_ready().await?;
        Ok(pg)
    }

    /// A server we just started on the default port.
    fn spawned(
        child: Child,
        data_dir: PathBuf,
        socket_dir: PathBuf,
        log_path: PathBuf,
        settings: &Settings,
    ) -> EmbeddedPostgres {
        EmbeddedPostgres {
            pid: child.id(),
            child: Some(child),
            data_dir,
            socket_dir,
            log_path,
            port: PORT,
            temp_root: None,
            settings: settings.clone(),
        }
    }

    /// URL for database `postgres` as superuser `tally` over the unix socket,
    /// accepted by tokio-postgres and diesel-async.
    pub fn database_url(&self) -> String {
        self.database_url_for("postgres")
    }

    /// Same as [`database_url`](Self::database_url), for another database.
    pub fn database_url_for(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@{}:{}/{}",
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port,
            percent_encode(db.as_bytes())
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The postmaster's pid (the current one, after a restart).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Fast shutdown (SIGINT to the postmaster: running transactions are
    /// aborted, data is flushed), waiting up to 10 s for exit. A no-op for an
    /// adopted server we did not start.
    pub async fn stop(mut self) -> Result<(), EmbeddedPgError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = self.pid.unwrap_or(0);
        sys::kill(pid, Signal::Interrupt);
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => {
                tracing::info!(pid, %status, "embedded PostgreSQL stopped");
            }
            Ok(Err(e)) => return Err(io_err(format!("waiting for postgres (pid {pid})"))(e)),
            Err(_) => {
                // Immediate shutdown: crash-safe (WAL replay on next start) and
                // better than leaving a server nobody will stop.
                sys::kill(pid, Signal::Quit);
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                // Keep the temp dir: deleting under a live server helps nobody.
                self.temp_root = None;
                return Err(EmbeddedPgError::StopTimeout { pid });
            }
        }
        if let Some(root) = self.temp_root.take() {
            remove_tree(&root);
        }
        Ok(())
    }

    /// Resolves once the server has exited, and reaps it (no zombie is left).
    /// A server we adopted is not our child: it is polled instead. Cancel
    /// safe, so it can sit in a `select!` beside a stop request.
    pub async fn exited(&mut self) -> String {
        if let Some(child) = self.child.as_mut() {
            let how = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("unknown ({e})"),
            };
            self.child = None;
            return how;
        }
        while self.pid.is_some_and(sys::pid_alive) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        "exited (adopted server; status unknown)".to_string()
    }

    /// Starts the server again on the same cluster after it exited, and
    /// waits until it accepts connections. The server is ours from then on,
    /// even if it had been adopted.
    pub async fn restart(&mut self) -> Result<(), EmbeddedPgError> {
        if let Some(child) = self.child.as_mut() {
            if child
                .try_wait()
                .map_err(io_err("polling postgres"))?
                .is_none()
            {
                return Ok(()); // still running
            }
            self.child = None;
        }
        let bins = find_binaries(&self.settings)?;
        let run_as = users::run_as()?;
        let child = cluster::spawn_postgres(
            &bins,
            &self.data_dir,
            &self.socket_dir,
            &self.log_path,
            self.port,
            run_as,
            self.temp_root.is_some(),
        )?;
        self.pid = child.id();
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), EmbeddedPgError> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let pid_file = self.data_dir.join("postmaster.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().map_err(io_err("polling postgres"))?
            {
                self.child = None;
                return Err(EmbeddedPgError::Exited {
                    status,
                    log_path: self.log_path.clone(),
                    log_tail: log_tail(&self.log_path, LOG_TAIL_LINES),
                });
            }
            // The socket appears before recovery finishes.
            if tokio::net::UnixStream::connect(&socket).await.is_ok()
                && pid_file_says_ready(&pid_file)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EmbeddedPgError::StartTimeout {
                    log_path: self.log_path.clone(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        let root = self.temp_root.take();
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = self.pid {
                sys::kill(pid, Signal::Interrupt);
            }
            let Some(root) = &root else {
                return;
            };
            // Temporary clusters are removed, which is only safe once the
            // server is gone. try_wait (not kill(pid, 0)) because an unreaped
            // zombie still answers kill(pid, 0).
            let deadline = Instant::now() + TEMP_DROP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        tracing::warn!(pid = self.pid, dir = %root.display(),
                            "temporary PostgreSQL did not exit in time; leaving its directory");
                        return;
                    }
                    Ok(None) => std::thread::sleep(POLL_INTERVAL),
                }
            }
        }
        // Also reached when the server died during start-up.
        if let Some(root) = root {
            remove_tree(&root);
        }
    }
}

/// Everything but RFC 3986 unreserved bytes, so '/' in the socket dir becomes
/// %2F and the URL host is unambiguous.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
