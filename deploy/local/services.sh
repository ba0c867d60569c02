#!/usr/bin/env bash
# Brings up recordbridge's local dependencies.
#
#   deploy/local/services.sh            RabbitMQ running, hfs installed, R4 search
#                                       parameters and schema cached
#   deploy/local/services.sh --fhir     ... and a long-lived hfs on 127.0.0.1:8090
#                                       (data in ~/.local/share/recordbridge/hfs),
#                                       seeded with fixtures/patients.json
#   deploy/local/services.sh --stop     stops that long-lived hfs
#
# Options: --port N (default 8090; env RECORDBRIDGE_TEST_HFS_PORT),
#          --data-dir DIR (env RECORDBRIDGE_TEST_HFS_DATA_DIR), --no-seed,
#          --patients FILE (default fixtures/patients.json; env RECORDBRIDGE_TEST_PATIENTS).
# Prints `export ...` lines for the variables the tests use at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
# shellcheck source=deploy/local/lib.sh
source "$here/lib.sh"

fhir=0 stop=0 seed=1
patients="${RECORDBRIDGE_TEST_PATIENTS:-fixtures/patients.json}"
port="${RECORDBRIDGE_TEST_HFS_PORT:-8090}"
data_dir="${RECORDBRIDGE_TEST_HFS_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/recordbridge/hfs}"
while [ $# -gt 0 ]; do
    case "$1" in
        --fhir) fhir=1 ;;
        --stop) stop=1 ;;
        --no-seed) seed=0 ;;
        --patients) patients="${2:?--patients needs a value}"; shift ;;
        --patients=*) patients="${1#*=}" ;;
        --port) port="${2:?--port needs a value}"; shift ;;
        --port=*) port="${1#*=}" ;;
        --data-dir) data_dir="${2:?--data-dir needs a value}"; shift ;;
        --data-dir=*) data_dir="${1#*=}" ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) rb_err "unknown argument: $1 (see --help)"; exit 2 ;;
    esac
    shift
done

if [ "$stop" -eq 1 ]; then
    rb_section "Stopping the local hfs (${data_dir})"
    stop_hfs "$data_dir"
    exit 0
fi

rb_section "RabbitMQ"
ensure_rabbitmq

rb_section "Helios FHIR Server (hfs ${RB_HFS_VERSION})"
ensure_hfs_installed

rb_section "FHIR R4 definitions"
ensure_search_params
ensure_fhir_schema

if [ "$fhir" -eq 1 ]; then
    rb_section "Long-lived hfs on 127.0.0.1:${port}"
    start_hfs "$data_dir" "$port"
    if [ "$seed" -eq 1 ]; then
        rb_section "Seeding synthetic patients"
        if [ -f "$patients" ]; then
            python3 "$here/seed_patients.py" --base "http://127.0.0.1:${port}" --patients "$patients"
        else
            rb_log "${patients} does not exist (yet); skipping patient seeding"
        fi
    fi
fi

rb_section "Environment"
printf 'export HFS_BIN=%q\n' "$HFS_BIN"
printf 'export RECORDBRIDGE_TEST_SEARCH_PARAMS=%q\n' "$RECORDBRIDGE_TEST_SEARCH_PARAMS"
printf 'export RECORDBRIDGE_TEST_FHIR_SCHEMA=%q\n' "$RECORDBRIDGE_TEST_FHIR_SCHEMA"
printf 'export RECORDBRIDGE_TEST_AMQP_URL=%q\n' "$RECORDBRIDGE_TEST_AMQP_URL"
if [ "$fhir" -eq 1 ]; then
    printf 'export RECORDBRIDGE_TEST_FHIR_BASE_URL=%q\n' "http://127.0.0.1:${port}"
    printf '# e.g. target/release/recordbridge run --source file:fixtures/ward-chat.ndjson --sink fhir:%s\n' "http://127.0.0.1:${port}"
    printf '# stop it with: deploy/local/services.sh --stop --data-dir %q\n' "$data_dir"
fi
