//! Finding `initdb` and `postgres`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{EmbeddedPgError, Settings};

#[derive(Debug, Clone)]
pub(super) struct PgBins {
    pub initdb: PathBuf,
    pub postgres: PathBuf,
}

/// TALLY_PG_BIN first, then Debian's versioned directories, then PATH.
pub(super) fn find_binaries(settings: &Settings) -> Result<PgBins, EmbeddedPgError> {
    let mut candidates: Vec<PathBuf> = settings.pg_bin.iter().cloned().collect();
    // Before PATH: Debian keeps `postgres` only here, and PATH may hold just
    // client tools or wrappers (e.g. /usr/local/bin/initdb without postgres).
    candidates.extend(versioned_pg_dirs(Path::new("/usr/lib/postgresql")));
    candidates.extend(
        settings
            .search_path
            .iter()
            .filter(|p| p.is_absolute())
            .cloned(),
    );
    find_binaries_in(candidates)
}

/// The first directory holding both `initdb` and `postgres`.
pub(super) fn find_binaries_in(candidates: Vec<PathBuf>) -> Result<PgBins, EmbeddedPgError> {
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
pub(super) fn versioned_pg_dirs(root: &Path) -> Vec<PathBuf> {
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

pub(super) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
