#!/usr/bin/env bash
# Runs the release binary on the ward-chat fixture, writing transaction Bundles
# to a temp dir, and validates them with validate_bundles.py (FHIR R4 schema +
# R4 rules). Used by deploy/local/test.sh; can be run on its own:
#
#   deploy/local/validate_fixture_bundles.sh [FIXTURE.ndjson]   (default fixtures/ward-chat.ndjson,
#                                                              or $RECORDBRIDGE_TEST_FIXTURE_CHAT)
#
# Env: RECORDBRIDGE_TEST_FHIR_SCHEMA (fetched if unset),
#      RECORDBRIDGE_TEST_KEEP_BUNDLES=1 keeps the temp dir even on success,
#      RECORDBRIDGE_TEST_RUN_TIMEOUT (seconds for `recordbridge run`, default 600).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"

fixture="${1:-${RECORDBRIDGE_TEST_FIXTURE_CHAT:-fixtures/ward-chat.ndjson}}"
if [ ! -f "$fixture" ]; then
    rb_err "fixture ${fixture} not found"
    exit 1
fi
if [ -z "${RECORDBRIDGE_TEST_FHIR_SCHEMA:-}" ] || [ ! -f "${RECORDBRIDGE_TEST_FHIR_SCHEMA}" ]; then
    ensure_fhir_schema
fi
ensure_python_deps

if [ -n "${RECORDBRIDGE_TEST_BIN:-}" ] && [ -x "${RECORDBRIDGE_TEST_BIN}" ]; then
    # test.sh passes the binary `cargo test --release` just built (same sources).
    bin="${RECORDBRIDGE_TEST_BIN}"
else
    cargo build --release --locked --bin recordbridge </dev/null
    bin="${CARGO_TARGET_DIR:-target}/release/recordbridge"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/recordbridge-bundles.XXXXXX")"
cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ "${RECORDBRIDGE_TEST_KEEP_BUNDLES:-0}" = "1" ]; then
        rb_log "kept ${tmp} for inspection (bundles, recordbridge-run.log)"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

rb_log "running: ${bin} run --source file:${fixture} --sink dir:${tmp}/bundles"
mkdir -p "$tmp/bundles"
# Like the Rust black-box tests: the binary reads RECORDBRIDGE_* (not _TEST*)
# variables as configuration and rejects unknown ones, so a developer's own
# settings must not leak in.
unset_args=()
while IFS= read -r name; do
    case "$name" in
        RECORDBRIDGE_TEST*) ;;
        RECORDBRIDGE_*) unset_args+=(-u "$name") ;;
    esac
done < <(compgen -e)
rc=0
timeout "${RECORDBRIDGE_TEST_RUN_TIMEOUT:-600}" env "${unset_args[@]}" \
    "$bin" run --source "file:${fixture}" --sink "dir:${tmp}/bundles" \
    </dev/null >"$tmp/recordbridge-run.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    [ "$rc" -eq 124 ] && rb_err "recordbridge run did not finish within ${RECORDBRIDGE_TEST_RUN_TIMEOUT:-600} s"
    rb_err "recordbridge run failed (exit ${rc}); last lines of its output:"
    tail -n 40 "$tmp/recordbridge-run.log" >&2
    exit 1
fi
rb_log "recordbridge run wrote $(find "$tmp/bundles" -maxdepth 1 -name '*.json' ! -name '.*' | wc -l) bundle file(s)"

python3 "$here/validate_bundles.py" "$tmp/bundles"
