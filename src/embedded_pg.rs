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

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::process::{Child, Command};

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
const MAX_SOCKET_PATH: usize = 100;
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

/// A running (or adopted) PostgreSQL server.
pub struct EmbeddedPostgres {
    /// `None` when we adopted a postmaster started by an earlier Tally: that
    /// server is not ours to stop.
    child: Option<Child>,
    /// Kept separately because tokio forgets the pid once the child is reaped.
    pid: Option<u32>,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// Set for `start_temporary`: the whole tree is deleted after shutdown.
    temp_root: Option<PathBuf>,
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

#[derive(Debug)]
struct PgBins {
    initdb: PathBuf,
    postgres: PathBuf,
}

#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl EmbeddedPostgres {
    /// Default data dir: `$TALLY_DATA_DIR/postgres` if `TALLY_DATA_DIR` is set;
    /// else for non-root users `$XDG_DATA_HOME/tally/postgres` or
    /// `~/.local/share/tally/postgres`; for root `/var/lib/tally/postgres`
    /// (the server then runs as the `postgres` system user, which cannot enter
    /// `/root`).
    ///
    /// `TALLY_DATA_DIR` names the tally directory rather than the cluster
    /// itself because the socket dir and log are created next to the cluster;
    /// pointing it at e.g. `/srv/tally` must not scatter `run/` into `/srv`.
    pub fn default_data_dir() -> PathBuf {
        if let Some(dir) = non_empty_env("TALLY_DATA_DIR") {
            return PathBuf::from(dir).join("postgres");
        }
        if is_root() {
            return PathBuf::from("/var/lib/tally/postgres");
        }
        let data_home = non_empty_env("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty_env("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .or_else(home_from_passwd)
            // Last resort so we never return a relative path that depends on cwd.
            .unwrap_or_else(|| {
                std::env::temp_dir().join(format!("tally-{}", unsafe { libc::geteuid() }))
            });
        data_home.join("tally").join("postgres")
    }

    /// initdb if the data dir has no `PG_VERSION`, then start `postgres` and
    /// wait until it accepts connections (up to 30 s). Idempotent across runs:
    /// reuses an existing cluster, and adopts a postmaster that is already
    /// running on it (e.g. left behind by a Tally that was SIGKILLed).
    pub async fn start(data_dir: &Path) -> Result<EmbeddedPostgres, EmbeddedPgError> {
        let data_dir = std::path::absolute(data_dir)
            .map_err(io_err(format!("resolving {}", data_dir.display())))?;
        let base = tally_dir_of(&data_dir);
        let socket_dir = base.join("run");
        let log_path = base.join("postgres.log");
        check_socket_path(&socket_dir, PORT)?;

        if let Some(existing) = adopt_running(&data_dir, &socket_dir, &log_path).await? {
            return Ok(existing);
        }

        let bins = find_binaries()?;
        let run_as = run_as()?;

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
            init_cluster(&bins, &data_dir, &log_path, run_as, false).await?;
        }

        let mut pg = spawn_postgres(
            &bins,
            &data_dir,
            &socket_dir,
            &log_path,
            run_as,
            false,
            None,
        )?;
        pg.wait_ready(&log_path).await?;
        tracing::info!(
            pid = pg.pid,
            data_dir = %data_dir.display(),
            socket_dir = %socket_dir.display(),
            "embedded PostgreSQL started"
        );
        Ok(pg)
    }

    /// A throwaway server for tests: fresh directory under the system temp
    /// dir, durability switched off for speed, and the directory is deleted
    /// once the server has exited (in `stop` or `Drop`).
    pub async fn start_temporary() -> Result<EmbeddedPostgres, EmbeddedPgError> {
        let bins = find_binaries()?;
        let run_as = run_as()?;

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let root = std::path::absolute(std::env::temp_dir())
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

        init_cluster(&bins, &data_dir, &log_path, run_as, true).await?;
        let mut pg = spawn_postgres(
            &bins,
            &data_dir,
            &socket_dir,
            &log_path,
            run_as,
            true,
            Some(root),
        )?;
        // `pg` now owns the directory's removal (it must outlive the server).
        std::mem::forget(cleanup);
        pg.wait_ready(&log_path).await?;
        Ok(pg)
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

    /// Fast shutdown (SIGINT to the postmaster: running transactions are
    /// aborted, data is flushed), waiting up to 10 s for exit. A no-op for an
    /// adopted server we did not start.
    pub async fn stop(mut self) -> Result<(), EmbeddedPgError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = self.pid.unwrap_or(0);
        signal(self.pid, libc::SIGINT);
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => {
                tracing::info!(pid, %status, "embedded PostgreSQL stopped");
            }
            Ok(Err(e)) => return Err(io_err(format!("waiting for postgres (pid {pid})"))(e)),
            Err(_) => {
                // Immediate shutdown: crash-safe (WAL replay on next start) and
                // better than leaving a server nobody will stop.
                signal(self.pid, libc::SIGQUIT);
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

    async fn wait_ready(&mut self, log_path: &Path) -> Result<(), EmbeddedPgError> {
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let pid_file = self.data_dir.join("postmaster.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().map_err(io_err("polling postgres"))? {
                    self.child = None;
                    return Err(EmbeddedPgError::Exited {
                        status,
                        log_path: log_path.to_path_buf(),
                        log_tail: log_tail(log_path, LOG_TAIL_LINES),
                    });
                }
            }
            // The socket appears before recovery finishes; postmaster.pid's
            // status line is what pg_ctl waits on, so use it when readable.
            if tokio::net::UnixStream::connect(&socket).await.is_ok()
                && pid_file_status(&pid_file).is_none_or(|s| s == "ready" || s == "standby")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(EmbeddedPgError::StartTimeout {
                    log_path: log_path.to_path_buf(),
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
            signal(self.pid, libc::SIGINT);
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

// ---------------------------------------------------------------------------
// start-up steps

async fn init_cluster(
    bins: &PgBins,
    data_dir: &Path,
    log_path: &Path,
    run_as: Option<RunAs>,
    temporary: bool,
) -> Result<(), EmbeddedPgError> {
    let parent = tally_dir_of(data_dir);
    // A Tally killed mid-initdb would leave a half-built cluster that already
    // has PG_VERSION and then fails on every start. Building it next door and
    // renaming makes the cluster appear atomically. An existing empty dir
    // (possibly a mount point, which cannot be renamed onto) is used in place.
    // We create (and as root chown) the target ourselves and do the rename
    // ourselves, so the server user needs no write access to the parent.
    let in_place = data_dir.exists();
    let target = if in_place {
        data_dir.to_path_buf()
    } else {
        let mut name = OsString::from(".");
        name.push(data_dir.file_name().unwrap_or(OsStr::new("postgres")));
        name.push(".initdb");
        let tmp = parent.join(name);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)
                .map_err(io_err(format!("removing stale {}", tmp.display())))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .map_err(io_err(format!("creating {}", tmp.display())))?;
        tmp
    };
    if let Some(r) = run_as {
        chown(&target, r)?;
    }

    let mut cmd = Command::new(&bins.initdb);
    cmd.arg("-D")
        .arg(&target)
        .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"]);
    if temporary {
        cmd.arg("--no-sync");
    }
    cmd.current_dir(&parent).stdin(Stdio::null());
    apply_run_as(&mut cmd, run_as);

    tracing::info!(data_dir = %data_dir.display(), "initializing embedded PostgreSQL cluster");
    let out = cmd
        .output()
        .await
        .map_err(io_err(format!("running {}", bins.initdb.display())))?;
    if let Ok(mut log) = open_log(log_path) {
        let _ = writeln!(log, "--- initdb {} ---", data_dir.display());
        let _ = log.write_all(&out.stdout);
        let _ = log.write_all(&out.stderr);
    }
    if !out.status.success() {
        return Err(EmbeddedPgError::InitDb {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    if !in_place {
        fs::rename(&target, data_dir).map_err(io_err(format!(
            "renaming {} to {}",
            target.display(),
            data_dir.display()
        )))?;
    }
    Ok(())
}

fn spawn_postgres(
    bins: &PgBins,
    data_dir: &Path,
    socket_dir: &Path,
    log_path: &Path,
    run_as: Option<RunAs>,
    temporary: bool,
    temp_root: Option<PathBuf>,
) -> Result<EmbeddedPostgres, EmbeddedPgError> {
    let mut log = open_log(log_path)?;
    // Marks where this run starts, so a start-up failure's log tail is not
    // mistaken for an older run's.
    let _ = writeln!(
        log,
        "--- postgres -D {} (started by pid {}) ---",
        data_dir.display(),
        std::process::id()
    );
    let log_err = log.try_clone().map_err(io_err("duplicating log handle"))?;

    let mut cmd = Command::new(&bins.postgres);
    cmd.arg("-D")
        .arg(data_dir)
        .arg("-k")
        .arg(socket_dir)
        .arg("-p")
        .arg(PORT.to_string())
        .args([
            "-c",
            "listen_addresses=",
            "-c",
            "unix_socket_permissions=0700",
        ]);
    if temporary {
        cmd.args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]);
    }
    cmd.current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        // Own process group: a terminal Ctrl-C should reach only Tally, which
        // then drains requests and stops the database itself, in that order.
        .process_group(0);
    apply_run_as(&mut cmd, run_as);

    let child = cmd
        .spawn()
        .map_err(io_err(format!("starting {}", bins.postgres.display())))?;
    let pid = child.id();
    Ok(EmbeddedPostgres {
        child: Some(child),
        pid,
        data_dir: data_dir.to_path_buf(),
        socket_dir: socket_dir.to_path_buf(),
        port: PORT,
        temp_root,
    })
}

/// If a postmaster is already running on `data_dir`, connect to it instead
/// of starting a second one (postgres would refuse anyway).
async fn adopt_running(
    data_dir: &Path,
    socket_dir: &Path,
    log_path: &Path,
) -> Result<Option<EmbeddedPostgres>, EmbeddedPgError> {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(contents) = fs::read_to_string(&pid_file) else {
        return Ok(None);
    };
    let lines: Vec<&str> = contents.lines().collect();
    let Some(pid) = lines
        .first()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
    else {
        return Ok(None);
    };
    if !pid_alive(pid) {
        // Stale file from a crash; postgres removes it itself on start.
        return Ok(None);
    }
    if !looks_like_postgres(pid) {
        // In containers a restarted Tally often finds its old postmaster's pid
        // reused by an unrelated process; postgres would then refuse to start
        // ("lock file already exists") until someone deletes the file by hand.
        tracing::warn!(pid, file = %pid_file.display(),
            "postmaster.pid names a live process that is not postgres; removing stale lock file");
        fs::remove_file(&pid_file).map_err(io_err(format!("removing {}", pid_file.display())))?;
        return Ok(None);
    }

    // Prefer what the running server says over our defaults: it may have
    // been started with another socket dir or port.
    let port = lines
        .get(3)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(PORT);
    let socket_dir = lines
        .get(4)
        .map(|l| l.trim())
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| socket_dir.to_path_buf());
    tracing::info!(pid, data_dir = %data_dir.display(),
        "embedded PostgreSQL already running; reusing it (it will not be stopped by this process)");
    let mut pg = EmbeddedPostgres {
        child: None,
        pid: Some(pid as u32),
        data_dir: data_dir.to_path_buf(),
        socket_dir,
        port,
        temp_root: None,
    };
    pg.wait_ready(log_path).await?;
    Ok(Some(pg))
}

// ---------------------------------------------------------------------------
// binaries

fn find_binaries() -> Result<PgBins, EmbeddedPgError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = non_empty_env("TALLY_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    // Before PATH: Debian keeps `postgres` only here, and PATH may hold just
    // client tools or wrappers (e.g. /usr/local/bin/initdb without postgres).
    candidates.extend(versioned_pg_dirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).filter(|p| p.is_absolute()));
    }
    find_binaries_in(candidates)
}

/// The first directory holding both `initdb` and `postgres`.
fn find_binaries_in(candidates: Vec<PathBuf>) -> Result<PgBins, EmbeddedPgError> {
    let mut searched = Vec::new();
    for dir in candidates {
        let initdb = dir.join("initdb");
        let postgres = dir.join("postgres");
        if is_executable(&initdb) && is_executable(&postgres) {
            tracing::debug!(dir = %dir.display(), "using PostgreSQL binaries");
            return Ok(PgBins { initdb, postgres });
        }
        if !searched.contains(&dir) {
            searched.push(dir);
        }
    }
    Err(EmbeddedPgError::NoBinaries { searched })
}

/// `<root>/<version>/bin`, highest version first (numeric, so 16 > 9.6).
fn versioned_pg_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let key: Option<Vec<u64>> = name
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect();
            Some((key?, e.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, p)| p).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---------------------------------------------------------------------------
// users and filesystem

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// initdb and postgres refuse to run as root, so as root they run as the
/// `postgres` system user; otherwise as ourselves.
fn run_as() -> Result<Option<RunAs>, EmbeddedPgError> {
    if !is_root() {
        return Ok(None);
    }
    let (uid, gid, _) = getpwnam("postgres").ok_or(EmbeddedPgError::NoPostgresUser)?;
    Ok(Some(RunAs { uid, gid }))
}

fn apply_run_as(cmd: &mut Command, run_as: Option<RunAs>) {
    if let Some(r) = run_as {
        // std drops root's supplementary groups (setgroups(0)) when setting uid.
        cmd.uid(r.uid).gid(r.gid);
    }
}

/// (uid, gid, home) via the reentrant getpwnam_r.
fn getpwnam(name: &str) -> Option<(u32, u32, PathBuf)> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::new()
        } else {
            PathBuf::from(OsStr::from_bytes(
                unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes(),
            ))
        };
        return Some((pwd.pw_uid, pwd.pw_gid, home));
    }
}

fn home_from_passwd() -> Option<PathBuf> {
    let uid = unsafe { libc::geteuid() };
    let mut buf = vec![0u8; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    let home = PathBuf::from(OsStr::from_bytes(
        unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes(),
    ));
    Some(home.join(".local/share"))
}

/// Creates `dir` and any missing parents; as root, hands the ones we created
/// to the postgres user so the server can enter them. Pre-existing
/// directories are left alone: the data dir's parent may be something like
/// /srv that must not change owner.
fn create_owned_dirs(dir: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedPgError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    if let Some(r) = run_as {
        for p in &missing {
            chown(p, r)?;
        }
    }
    Ok(())
}

fn chown(path: &Path, r: RunAs) -> Result<(), EmbeddedPgError> {
    std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
        .map_err(io_err(format!("chown {} to postgres", path.display())))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), EmbeddedPgError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// An existing ancestor the postgres user cannot traverse (say, under /root)
/// would otherwise surface as a cryptic initdb/postgres "Permission denied".
/// Only a warning: ACLs and supplementary groups may still grant access.
fn warn_if_not_traversable(dir: &Path, r: RunAs) {
    for anc in dir.ancestors().skip(1) {
        let Ok(m) = fs::metadata(anc) else { continue };
        let bit = if m.uid() == r.uid {
            0o100
        } else if m.gid() == r.gid {
            0o010
        } else {
            0o001
        };
        if m.mode() & bit == 0 {
            tracing::warn!(dir = %anc.display(),
                "the postgres user may not be able to enter this directory; choose a data dir outside it (TALLY_DATA_DIR)");
            return;
        }
    }
}

/// The directory that holds the cluster, `run/` and the log.
fn tally_dir_of(data_dir: &Path) -> PathBuf {
    match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

fn check_socket_path(socket_dir: &Path, port: u16) -> Result<(), EmbeddedPgError> {
    let path = socket_dir.join(format!(".s.PGSQL.{port}"));
    let len = path.as_os_str().len();
    if len >= MAX_SOCKET_PATH {
        return Err(EmbeddedPgError::SocketPathTooLong { path, len });
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<File, EmbeddedPgError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(format!("opening log {}", path.display())))
}

fn log_tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(could not read log: {e})"),
    }
}

/// Line 8 of postmaster.pid ("starting", "ready", "stopping", "standby").
fn pid_file_status(pid_file: &Path) -> Option<String> {
    let contents = fs::read_to_string(pid_file).ok()?;
    contents
        .lines()
        .nth(7)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn remove_tree(root: &Path) {
    if let Err(e) = fs::remove_dir_all(root) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(dir = %root.display(), error = %e, "could not remove temporary PostgreSQL dir");
        }
    }
}

struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            remove_tree(&p);
        }
    }
}

// ---------------------------------------------------------------------------
// processes

fn signal(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 0) {
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // EPERM: alive but owned by another user (e.g. postgres, seen by non-root).
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// False only when /proc positively says the process is something else;
/// without /proc we cannot tell and assume it is a postmaster.
fn looks_like_postgres(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => {
            let comm = comm.trim();
            comm.starts_with("postgres") || comm.starts_with("postmaster")
        }
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------
// misc

fn non_empty_env(key: &str) -> Option<OsString> {
    std::env::var_os(key).filter(|v| !v.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::NoTls;

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
        let empty = std::env::temp_dir().join(format!("tally-no-pg-{}", std::process::id()));
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
        let pg = EmbeddedPostgres::start_temporary()
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
        let pg = EmbeddedPostgres::start_temporary()
            .await
            .expect("start_temporary");
        let root = pg.temp_root.clone().expect("temp root");
        let pid = pg.pid.expect("pid") as i32;
        drop(pg);
        assert!(
            !root.exists(),
            "{} should be removed on drop",
            root.display()
        );
        assert!(!looks_like_postgres_alive(pid));
    }

    fn looks_like_postgres_alive(pid: i32) -> bool {
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
        let base =
            std::env::temp_dir().join(format!("tally-pg-test-{}-{nanos}", std::process::id()));
        let _cleanup = RemoveOnDrop(Some(base.clone()));
        let data_dir = base.join("postgres");

        let first = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("first start");
        assert!(data_dir.join("PG_VERSION").exists());
        assert_eq!(select_one(&first.database_url()).await, 1);

        let adopted = EmbeddedPostgres::start(&data_dir)
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

        let again = EmbeddedPostgres::start(&data_dir)
            .await
            .expect("restart on existing cluster");
        assert!(again.child.is_some());
        assert_eq!(select_one(&again.database_url()).await, 1);
        again.stop().await.expect("stop again");
        assert!(!data_dir.join("postmaster.pid").exists());
    }
}
