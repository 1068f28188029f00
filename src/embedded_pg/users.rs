//! Which unix user the server runs as, and where a user's data lives.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::EmbeddedPgError;
use super::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

pub(super) fn is_root() -> bool {
    sys::geteuid() == 0
}

/// initdb and postgres refuse to run as root, so as root they run as the
/// `postgres` system user; otherwise as ourselves.
pub(super) fn run_as() -> Result<Option<RunAs>, EmbeddedPgError> {
    if !is_root() {
        return Ok(None);
    }
    let (uid, gid, _) = sys::user_by_name("postgres").ok_or(EmbeddedPgError::NoPostgresUser)?;
    Ok(Some(RunAs { uid, gid }))
}

pub(super) fn apply_run_as(cmd: &mut Command, run_as: Option<RunAs>) {
    if let Some(r) = run_as {
        // std drops root's supplementary groups (setgroups(0)) when setting uid.
        cmd.uid(r.uid).gid(r.gid);
    }
}

/// The tally directory when TALLY_DATA_DIR is not set: for non-root users
/// `$XDG_DATA_HOME/tally` or `~/.local/share/tally`; for root
/// `/var/lib/tally` (the server then runs as the `postgres` system user,
/// which cannot enter `/root`).
pub fn default_tally_dir(
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    temp_dir: &Path,
) -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/tally");
    }
    let data_home = xdg_data_home
        .or_else(|| home.map(|h| h.join(".local/share")))
        .or_else(|| {
            sys::user_by_uid(sys::geteuid())
                .map(|(_, _, home)| home)
                .filter(|h| !h.as_os_str().is_empty())
                .map(|h| h.join(".local/share"))
        })
        // Last resort so we never return a relative path that depends on cwd.
        .unwrap_or_else(|| temp_dir.join(format!("tally-{}", sys::geteuid())));
    data_home.join("tally")
}
