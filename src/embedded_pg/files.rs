//! The tally directory: creating and owning it, the log, the lock file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::users::RunAs;
use super::{EmbeddedPgError, MAX_SOCKET_PATH, io_err};

/// Creates `dir` and any missing parents; as root, hands the ones we created
/// to the postgres user so the server can enter them. Pre-existing
/// directories are left alone: the data dir's parent may be something like
/// /srv that must not change owner.
pub(super) fn create_owned_dirs(dir: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedPgError> {
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

pub(super) fn chown(path: &Path, r: RunAs) -> Result<(), EmbeddedPgError> {
    std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid))
        .map_err(io_err(format!("chown {} to postgres", path.display())))
}

pub(super) fn set_mode(path: &Path, mode: u32) -> Result<(), EmbeddedPgError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", path.display())))
}

/// An existing ancestor the postgres user cannot traverse (say, under /root)
/// would otherwise surface as a cryptic initdb/postgres "Permission denied".
/// Only a warning: ACLs and supplementary groups may still grant access.
pub(super) fn warn_if_not_traversable(dir: &Path, r: RunAs) {
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
pub(super) fn tally_dir_of(data_dir: &Path) -> PathBuf {
    match data_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

pub(super) fn check_socket_path(socket_dir: &Path, port: u16) -> Result<(), EmbeddedPgError> {
    let path = socket_dir.join(format!(".s.PGSQL.{port}"));
    let len = path.as_os_str().len();
    if len >= MAX_SOCKET_PATH {
        return Err(EmbeddedPgError::SocketPathTooLong { path, len });
    }
    Ok(())
}

pub(super) fn open_log(path: &Path) -> Result<File, EmbeddedPgError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(format!("opening log {}", path.display())))
}

pub(super) fn log_tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(could not read log: {e})"),
    }
}

/// Whether postmaster.pid says the server accepts connections. Line 8 is
/// its status ("starting", "ready", "stopping", "standby"), as pg_ctl reads
/// it. The socket exists before that line is written, while the server still
/// answers "the database system is starting up", so a readable file without
/// the line means not yet; an unreadable one leaves the socket to decide.
pub(super) fn pid_file_says_ready(pid_file: &Path) -> bool {
    let Ok(contents) = fs::read_to_string(pid_file) else {
        return true;
    };
    contents
        .lines()
        .nth(7)
        .is_some_and(|s| matches!(s.trim(), "ready" | "standby"))
}

pub(super) fn remove_tree(root: &Path) {
    if let Err(e) = fs::remove_dir_all(root)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %root.display(), error = %e, "could not remove temporary PostgreSQL dir");
    }
}

pub(super) struct RemoveOnDrop(pub Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            remove_tree(&p);
        }
    }
}
