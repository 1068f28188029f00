#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for user `postgres`
# with trust auth (no password), which is what the integration tests expect
# (TALLY_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres).
#
# Idempotent: if the server is already up and accepts `postgres` without a
# password, this does nothing. Otherwise it
#   1. starts an existing Debian cluster (pg_ctlcluster), or
#   2. installs PostgreSQL from Debian's packages, switches the cluster's
#      pg_hba.conf to trust, listens on localhost and starts it.
# Used by .ci/run; developers can run it directly too. Needs root (or sudo)
# only when it has to install, configure or start something.
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
WAIT_SECONDS=30

log() { printf '[ensure-postgres] %s\n' "$*"; }
die() { printf '[ensure-postgres] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ ${EUID} -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

# Is something accepting connections on the port?
pg_reachable() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        (exec 3<>"/dev/tcp/${PG_HOST}/${PG_PORT}") 2>/dev/null
    fi
}

# Does it let `postgres` in without a password? Only checkable with psql;
# without it, reachability has to do.
pg_trusts_us() {
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT=5 psql -w -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" \
            -d postgres -c 'SELECT 1' >/dev/null 2>&1
    else
        return 0
    fi
}

wait_ready() {
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if pg_reachable; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# Newest Debian cluster version under /etc/postgresql (empty if none).
debian_cluster_version() {
    if [[ -d /etc/postgresql ]]; then
        ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1
    fi
}

# Switch a Debian cluster's config to trust auth on localhost.
configure_cluster() {
    local ver=$1
    local conf_dir="/etc/postgresql/${ver}/main"
    local hba="${conf_dir}/pg_hba.conf"
    local conf="${conf_dir}/postgresql.conf"
    [[ -f $hba && -f $conf ]] || die "no config for cluster ${ver}/main in ${conf_dir}"

    log "configuring ${hba} for trust auth"
    # Replace the auth method (last field, plus any options) of every
    # local/host rule that uses peer, ident, md5, password or scram-sha-256.
    "${SUDO[@]}" sed -E -i \
        '/^[[:space:]]*(local|host)/ s/[[:space:]](peer|ident|md5|password|scram-sha-256)([[:space:]].*)?$/ trust/' \
        "$hba"
    # Make sure the three rules we rely on exist at all.
    if ! grep -Eq '^[[:space:]]*local[[:space:]]+all[[:space:]]+all[[:space:]]+trust' "$hba"; then
        echo 'local   all             all                                     trust' | "${SUDO[@]}" tee -a "$hba" >/dev/null
    fi
    if ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        echo 'host    all             all             127.0.0.1/32            trust' | "${SUDO[@]}" tee -a "$hba" >/dev/null
    fi
    if ! grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+all[[:space:]]+::1/128[[:space:]]+trust' "$hba"; then
        echo 'host    all             all             ::1/128                 trust' | "${SUDO[@]}" tee -a "$hba" >/dev/null
    fi

    log "setting listen_addresses = 'localhost' in ${conf}"
    if grep -Eq '^[[:space:]]*#?[[:space:]]*listen_addresses[[:space:]]*=' "$conf"; then
        "${SUDO[@]}" sed -E -i "s/^[[:space:]]*#?[[:space:]]*listen_addresses[[:space:]]*=.*/listen_addresses = 'localhost'/" "$conf"
    else
        echo "listen_addresses = 'localhost'" | "${SUDO[@]}" tee -a "$conf" >/dev/null
    fi
}

# Start the cluster, or restart it when it is already running (to pick up
# configuration changes).
start_cluster() {
    local ver=$1
    if "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main status >/dev/null 2>&1; then
        log "restarting cluster ${ver}/main"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
    else
        log "starting cluster ${ver}/main"
        "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    fi
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not running and apt-get is not available to install it"
    log "installing PostgreSQL from Debian's packages"
    "${SUDO[@]}" apt-get update
    # C.UTF-8 always exists on Debian; an unset or ungenerated locale would
    # make initdb (run by the package to create <ver>/main) fail.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 LC_ALL=C.UTF-8 \
        apt-get install -y --no-install-recommends postgresql postgresql-client ssl-cert
}

ok() {
    log "PostgreSQL is ready on ${PG_HOST}:${PG_PORT} (user ${PG_USER}, trust auth)"
    exit 0
}

# --- 1. Already fine? ---------------------------------------------------------
if pg_reachable; then
    if pg_trusts_us; then
        ok
    fi
    log "server is up but does not let '${PG_USER}' in without a password"
fi

# --- 2. Get a Debian cluster: existing, or freshly installed --------------------
ver=$(debian_cluster_version)
if [[ -z $ver ]]; then
    install_postgres
    ver=$(debian_cluster_version)
    if [[ -z $ver ]]; then
        # The package normally creates <ver>/main; create it if it did not.
        server_ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
        [[ -n $server_ver ]] || die "PostgreSQL installed but no server version found in /usr/lib/postgresql"
        log "creating cluster ${server_ver}/main"
        "${SUDO[@]}" env LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster "$server_ver" main
        ver=$server_ver
    fi
fi
[[ -d /etc/postgresql/${ver}/main ]] || die "expected a cluster at /etc/postgresql/${ver}/main"

# --- 3. Configure trust auth and (re)start ----------------------------------------
configure_cluster "$ver"
start_cluster "$ver"

# --- 4. Wait for it -------------------------------------------------------------
log "waiting up to ${WAIT_SECONDS}s for ${PG_HOST}:${PG_PORT}"
if ! wait_ready; then
    "${SUDO[@]}" tail -n 50 "/var/log/postgresql/postgresql-${ver}-main.log" >&2 2>/dev/null || true
    die "PostgreSQL did not become ready within ${WAIT_SECONDS}s"
fi
pg_trusts_us || die "PostgreSQL is up but '${PG_USER}' cannot log in without a password"
ok
