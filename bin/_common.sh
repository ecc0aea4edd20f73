# Sourced by bin/demo, bin/test and .ci/run: find Python >= 3.12 and prepare .venv.
# shellcheck shell=bash

STEPWISE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${STEPWISE_VENV:-$STEPWISE_ROOT/.venv}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Runs a command and starts it again whenever it exits: bin/demo's only worker, once killed,
# would otherwise leave every run queued, and under honcho (bin/serve) one process that exits
# stops the whole profile. Meant to run in the background (`keep_alive worker cmd ... &`) or as
# a process of its own (bin/serve-worker, bin/serve-web); a TERM to it stops the command too
# (waiting for it to finish its current step) and ends the loop, so the caller's `kill $pid`
# on exit still stops everything.
#
# The pause before a restart is KEEP_ALIVE_PAUSE seconds (2). A command that keeps dying within
# KEEP_ALIVE_STABLE_SECONDS (60) of its start is in a crash loop (a bad setting, the port taken,
# a broken release): each such exit in a row doubles the pause, up to KEEP_ALIVE_MAX_PAUSE
# (60 s), and the line says so; one run that lasts longer starts the count again.
#
# `keep_alive --reap NAME cmd ...`: before starting the command again, stop what is left of
# the previous one in this process group (uvicorn's server processes go on serving, port and
# all, when their parent is SIGKILLed, and the new parent could not bind the port). Only where
# this loop leads its own process group (honcho, systemd, a terminal), never in bin/demo's.
keep_alive() {
    local reap=0
    if [ "${1:-}" = --reap ]; then reap=1; shift; fi
    local name="$1" child="" rc started lived crashes=0 pause
    local base="${KEEP_ALIVE_PAUSE:-2}" stable="${KEEP_ALIVE_STABLE_SECONDS:-60}"
    local most="${KEEP_ALIVE_MAX_PAUSE:-60}"
    shift
    trap 'if [ -n "$child" ]; then kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi; exit 0' TERM INT HUP
    while :; do
        started=$(date +%s)
        "$@" &
        child=$!
        if wait "$child"; then rc=0; else rc=$?; fi
        child=""
        lived=$(( $(date +%s) - started ))
        if [ "$reap" = 1 ]; then _reap_own_group "$name"; fi
        if [ "$lived" -lt "$stable" ]; then crashes=$((crashes + 1)); else crashes=0; fi
        pause="$base"
        if [ "$crashes" -gt 1 ]; then
            # base * 2^(crashes-1), capped (awk: the pause may be fractional)
            pause=$(awk -v b="$base" -v n="$crashes" -v m="$most" \
                'BEGIN { p = b * 2 ^ (n - 1); if (p > m) p = m; print p }')
            log "$name exited (status $rc) after ${lived} s: crash loop ($crashes exits in a row within ${stable} s of starting); starting it again in $pause s"
        else
            log "$name exited (status $rc); starting it again in $pause s"
        fi
        # in the background so that a TERM during the pause is handled at once
        sleep "$pause" &
        child=$!
        wait "$child" || true
        child=""
    done
}

# Stops the other processes of this shell's process group (what a killed command left behind),
# if this shell leads the group: TERM, then KILL after STEPWISE_DRAIN_SECONDS + 5 s.
_reap_own_group() {
    local name="$1" pgid pid left=() waited=0
    command -v pgrep >/dev/null 2>&1 || return 0
    pgid="$(ps -o pgid= -p $$ 2>/dev/null | tr -d ' ')"
    [ "$pgid" = "$$" ] || return 0
    for pid in $(pgrep -g "$pgid"); do
        [ "$pid" = "$$" ] || left+=("$pid")
    done
    [ "${#left[@]}" -gt 0 ] || return 0
    log "$name left ${#left[@]} process(es) behind (${left[*]}): stopping them first"
    kill -TERM "${left[@]}" 2>/dev/null || true
    while [ "$waited" -lt $(( (${STEPWISE_DRAIN_SECONDS:-20} + 5) * 10 )) ]; do
        _any_alive "${left[@]}" || return 0
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "${left[@]}" 2>/dev/null || true
}

# Whether any of the given processes still runs (a zombie does not).
_any_alive() {
    local pid state
    for pid in "$@"; do
        state="$(ps -o stat= -p "$pid" 2>/dev/null)" || continue
        case "$state" in Z*|"") ;; *) return 0 ;; esac
    done
    return 1
}

# prometheus-client's multiprocess mode (docs/operations.md, Metrics): every process started
# after this writes its counters to files in PROMETHEUS_MULTIPROC_DIR, and any web process's
# /metrics (or `manage.py serve_metrics`) adds up all of them. Without it each uvicorn process
# answered with its own counters only (the scrape alternated between them) and a worker's or
# sweeper's never showed. An explicit setting is honoured; by default var/prometheus. Emptied
# here, once for the whole group, as that mode requires: only its *.db files, whatever
# directory an explicit setting names. A process started again later (keep_alive) keeps the
# files of the one before it, so counters do not go back.
prepare_metrics_dir() {
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$STEPWISE_ROOT/var/prometheus}"
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
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
