//! Cluster lifecycle steps: initdb, starting the postmaster, adopting one
//! that is already running.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::binaries::PgBins;
use super::files::{chown, open_log, tally_dir_of};
use super::users::{RunAs, apply_run_as};
use super::{EmbeddedPgError, PORT, SUPERUSER, io_err, sys};

pub(super) async fn init_cluster(
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

pub(super) fn spawn_postgres(
    bins: &PgBins,
    data_dir: &Path,
    socket_dir: &Path,
    log_path: &Path,
    port: u16,
    run_as: Option<RunAs>,
    temporary: bool,
) -> Result<Child, EmbeddedPgError> {
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
        .arg(port.to_string())
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

    cmd.spawn()
        .map_err(io_err(format!("starting {}", bins.postgres.display())))
}

/// A postmaster found running on a cluster: its pid and where it listens.
pub(super) struct Running {
    pub pid: u32,
    pub socket_dir: PathBuf,
    pub port: u16,
}

/// If a postmaster is already running on `data_dir`, connect to it instead
/// of starting a second one (postgres would refuse anyway).
pub(super) fn adopt_running(
    data_dir: &Path,
    socket_dir: &Path,
) -> Result<Option<Running>, EmbeddedPgError> {
    let pid_file = data_dir.join("postmaster.pid");
    let Ok(contents) = fs::read_to_string(&pid_file) else {
        return Ok(None);
    };
    let lines: Vec<&str> = contents.lines().collect();
    let Some(pid) = lines
        .first()
        .and_then(|l| l.trim().parse::<u32>().ok())
        .filter(|p| *p > 0)
    else {
        return Ok(None);
    };
    if !sys::pid_alive(pid) {
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
    Ok(Some(Running {
        pid,
        socket_dir,
        port,
    }))
}

/// False only when /proc positively says the process is something else;
/// without /proc we cannot tell and assume it is a postmaster.
fn looks_like_postgres(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => {
            let comm = comm.trim();
            comm.starts_with("postgres") || comm.starts_with("postmaster")
        }
        Err(_) => true,
    }
}
