# Sourced by bin/demo, bin/test and .ci/run: find Python >= 3.12 and prepare .venv.
# shellcheck shell=bash

STEPWISE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STEPWISE_VENV:-$STEPWISE_ROOT/.venv}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Runs a command and starts it again whenever it exits (after KEEP_ALIVE_PAUSE seconds, 2 by
# default): bin/demo's only worker, once killed, would otherwise leave every run queued.
# Meant to run in the background (`keep_alive worker cmd ... &`); a TERM to it stops the
# command too (waiting for it to finish its current step) and ends the loop, so the caller's
# `kill $pid` on exit still stops everything.
keep_alive() {
    local name="$1" child="" rc
    shift
    trap 'if [ -n "$child" ]; then kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi; exit 0' TERM INT HUP
    while :; do
        "$@" &
        child=$!
        if wait "$child"; then rc=0; else rc=$?; fi
        child=""
        log "$name exited (status $rc); starting it again in ${KEEP_ALIVE_PAUSE:-2} s"
        # in the background so that a TERM during the pause is handled at once
        sleep "${KEEP_ALIVE_PAUSE:-2}" &
        child=$!
        wait "$child" || true
        child=""
    done
}

# Prints a command that runs Python >= 3.12, or fails with a message saying what to install.
# pyenv shims exist for versions that are installed but not selected, and fail when run, so every
# candidate is tried by running it, never by looking it up.
find_python() {
    local candidate version
    local ok='import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'
    for candidate in python3.12 python3.13 python3.14 python3; do
        if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$ok" >/dev/null 2>&1; then
            command -v "$candidate"; return 0
        fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -V); do
            candidate="$(pyenv root)/versions/$version/bin/python3"
            if [ -x "$candidate" ] && "$candidate" -c "$ok" >/dev/null 2>&1; then
                echo "$candidate"; return 0
            fi
        done
    fi
    for candidate in /usr/bin/python3.1[2-9] /usr/local/bin/python3.1[2-9] "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3; do
        if [ -x "$candidate" ] && "$candidate" -c "$ok" >/dev/null 2>&1; then
            echo "$candidate"; return 0
        fi
    done
    echo "Stepwise needs Python 3.12 or newer and found none." >&2
    echo "Install it (Debian 13: apt-get install python3; older: pyenv install 3.12) and retry." >&2
    return 1
}

# Creates .venv if needed and installs the project with the given extras, e.g. "test".
ensure_venv() {
    local extras="$1" python
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
        python="$(find_python)" || return 1
        log "creating $VENV with $("$python" --version)"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    log "installing Stepwise${extras:+ [$extras]}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$STEPWISE_ROOT${extras:+[$extras]}"
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    if ! is_root; then
        echo "missing system packages: $*; install them with: sudo apt-get install -y $*" >&2
        return 1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Starts PostgreSQL and Redis if they are installed and down (this machine type runs both).
ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && is_root; then
        log "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
    fi
    return 1
}

ensure_redis() {
    if command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
    if command -v redis-server >/dev/null 2>&1; then
        log "starting Redis"
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
        for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0; sleep 0.5; done
    fi
    return 1
}

ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then return 0; fi
    apt_install chromium fonts-liberation
}
