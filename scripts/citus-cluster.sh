#!/usr/bin/env bash
# A Citus cluster on loopback for development and CI:
#   bash scripts/citus-cluster.sh up|down|status
# A coordinator and two workers, each its own PostgreSQL 15 cluster with
# shared_preload_libraries = 'citus', under target/citus/{coord,w1,w2}, on
# ports CITUS_PORT (default 9700), +1 and +2. Trust auth on loopback only.
#
# Citus: the installed one when `pg_config --pkglibdir` has citus.so;
# otherwise built from CITUS_SRC (default ../shared/citus/citus-13.2.2.tar.gz)
# in target/citus-build (kept, so a second run only reinstalls: seconds).
# Build dependencies come from Debian (postgresql-server-dev-15, liblz4-dev,
# libzstd-dev, libkrb5-dev for gssapi.h); the build needs root (or sudo) to
# install into PostgreSQL's lib directory, as any PostgreSQL extension does.
#
# `up` leaves the cluster empty: a database is a Citus database once the
# extension exists in it on every node and the workers are added from the
# coordinator (CREATE DATABASE is not propagated). `create-db NAME` does that;
# the test harness (tests/it/common.rs) does the same per test template.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

PORT=${CITUS_PORT:-9700}
PORTS=("$PORT" "$((PORT + 1))" "$((PORT + 2))")
NAMES=(coord w1 w2)
BASE=${CITUS_DIR:-$ROOT/target/citus}
# As root the nodes run as `postgres`, which may not be able to enter the
# checkout (a clone in a private mktemp directory): then they live in
# /var/tmp, one directory per port.
if [[ -z ${CITUS_DIR:-} && ${EUID} -eq 0 ]] && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
    BASE=/var/tmp/tally-citus-$PORT
fi
BUILD=$ROOT/target/citus-build
CITUS_SRC=${CITUS_SRC:-$ROOT/../shared/citus/citus-13.2.2.tar.gz}

log() { printf '[citus-cluster] %s\n' "$*"; }
die() { printf '[citus-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ ${EUID} -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi

PG_CONFIG=${PG_CONFIG:-pg_config}
command -v "$PG_CONFIG" >/dev/null || die "pg_config not found (install postgresql-15 or set PG_CONFIG)"
PG_BIN=$("$PG_CONFIG" --bindir)
PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')

# initdb and postgres refuse to run as root: as root, run them as `postgres`.
as_pg() {
    if [[ ${EUID} -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

psql_on() { # <port> <database> <sql>
    "$PG_BIN/psql" -w -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$2" -c "$3"
}

apt_install() {
    [[ ${EUID} -eq 0 || ${#SUDO[@]} -gt 0 ]] || die "need root to install $*"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

# PostgreSQL 15.20 exports have_createdb_privilege() from
# commands/dbcommands.h; Citus 13.2.2's compatibility header defines a static
# copy for PG < 16, which no longer compiles next to it. Use the exported one.
patch_createdb_privilege() { # <source dir>
    local header=$1/src/include/pg_version_compat.h
    if grep -q 'extern bool have_createdb_privilege' \
        "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h" &&
        grep -q '^have_createdb_privilege(void)' "$header"; then
        log "patching pg_version_compat.h for PostgreSQL $("$PG_CONFIG" --version)"
        python3 - "$header" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
pattern = re.compile(r"static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n", re.S)
text, n = pattern.subn('#include "commands/dbcommands.h"\n', text, count=1)
assert n == 1, "have_createdb_privilege definition not found"
open(path, "w").write(text)
EOF
    fi
}

ensure_citus() {
    local libdir
    libdir=$("$PG_CONFIG" --pkglibdir)
    if [[ -f $libdir/citus.so ]]; then
        return
    fi
    local src=$BUILD/src
    if [[ ! -f $src/src/backend/distributed/citus.so ]]; then
        [[ -f $CITUS_SRC ]] || die "no citus.so in $libdir and no source at CITUS_SRC=$CITUS_SRC"
        if [[ ! -f $("$PG_CONFIG" --includedir-server)/postgres.h || ! -f /usr/include/gssapi/gssapi.h ]] ||
            [[ ! -f /usr/include/lz4.h || ! -f /usr/include/zstd.h ]]; then
            apt_install "postgresql-server-dev-$PG_MAJOR" liblz4-dev libzstd-dev libkrb5-dev
        fi
        log "building Citus from $CITUS_SRC (about a minute per core)"
        rm -rf "$src"
        mkdir -p "$src"
        tar -xzf "$CITUS_SRC" -C "$src" --strip-components=1
        patch_createdb_privilege "$src"
        (cd "$src" && ./configure --without-libcurl PG_CONFIG="$PG_CONFIG" >"$BUILD/configure.log" 2>&1) ||
            { tail -30 "$BUILD/configure.log" >&2; die "configure failed"; }
        (cd "$src" && make -j"$(nproc)" >"$BUILD/make.log" 2>&1) ||
            { tail -30 "$BUILD/make.log" >&2; die "make failed"; }
    fi
    log "installing Citus into $libdir"
    (cd "$src" && "${SUDO[@]}" make install >"$BUILD/install.log" 2>&1) ||
        { tail -30 "$BUILD/install.log" >&2; die "make install failed"; }
}

node_running() { # <index>
    as_pg "$PG_BIN/pg_ctl" -D "$BASE/${NAMES[$1]}" status >/dev/null 2>&1
}

init_node() { # <index>
    local dir=$BASE/${NAMES[$1]}
    if [[ -f $dir/PG_VERSION ]]; then
        return
    fi
    mkdir -p "$dir"
    if [[ ${EUID} -eq 0 ]]; then
        chown postgres:postgres "$BASE" "$dir"
    fi
    as_pg "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    # wal_level=logical: citus_move_shard_placement copies a shard with
    # logical replication while it keeps taking writes.
    cat >>"$dir/postgresql.conf" <<EOF
shared_preload_libraries = 'citus'
listen_addresses = '127.0.0.1'
port = ${PORTS[$1]}
unix_socket_directories = '$dir'
wal_level = logical
max_connections = 300
max_wal_senders = 20
max_replication_slots = 20
shared_buffers = 128MB
fsync = ${CITUS_FSYNC:-on}
citus.max_client_connections = 250
EOF
}

up() {
    ensure_citus
    mkdir -p "$BASE"
    local i
    for i in 0 1 2; do
        init_node "$i"
        if ! node_running "$i"; then
            as_pg "$PG_BIN/pg_ctl" -D "$BASE/${NAMES[$i]}" -l "$BASE/${NAMES[$i]}.log" -w -t 60 start >/dev/null ||
                { tail -20 "$BASE/${NAMES[$i]}.log" >&2; die "node ${NAMES[$i]} did not start"; }
        fi
    done
    log "up: coordinator 127.0.0.1:${PORTS[0]}, workers ${PORTS[1]} and ${PORTS[2]}"
}

down() {
    local i
    for i in 0 1 2; do
        if [[ -f $BASE/${NAMES[$i]}/PG_VERSION ]] && node_running "$i"; then
            as_pg "$PG_BIN/pg_ctl" -D "$BASE/${NAMES[$i]}" -m fast -w stop >/dev/null
        fi
    done
    log "down"
}

status() {
    local i rc=0
    for i in 0 1 2; do
        if [[ -f $BASE/${NAMES[$i]}/PG_VERSION ]] && node_running "$i"; then
            log "${NAMES[$i]} running on ${PORTS[$i]}"
        else
            log "${NAMES[$i]} stopped"
            rc=1
        fi
    done
    return $rc
}

# A database with Citus on every node and the workers added: what a
# deployment does once, by hand or from its provisioning.
create_db() { # <name>
    local db=$1 i
    for i in 0 1 2; do
        psql_on "${PORTS[$i]}" postgres "CREATE DATABASE \"$db\""
        psql_on "${PORTS[$i]}" "$db" "CREATE EXTENSION citus"
    done
    psql_on "${PORTS[0]}" "$db" "SELECT citus_set_coordinator_host('127.0.0.1', ${PORTS[0]})"
    for i in 1 2; do
        psql_on "${PORTS[0]}" "$db" "SELECT citus_add_node('127.0.0.1', ${PORTS[$i]})" >/dev/null
    done
    log "database $db: postgres://postgres@127.0.0.1:${PORTS[0]}/$db"
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
build) ensure_citus ;;
create-db) [[ -n ${2:-} ]] || die "usage: $0 create-db NAME"; create_db "$2" ;;
destroy) down; rm -rf "$BASE" ;;
*) die "usage: $0 up|down|status|build|create-db NAME|destroy" ;;
esac
