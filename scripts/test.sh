#!/usr/bin/env bash
# Install what the tests need (when missing) and run lint, format check, type check and the tests.
#
#   ./scripts/test.sh                       # everything
#   ./scripts/test.sh tests/unit -k ref     # arguments go to pytest
#
# Installs with apt-get the tools the integration tests drive (buildah, skopeo, docker-registry,
# umoci, oci-image-tool, runc, dockerd from docker.io, htpasswd from apache2-utils), creates
# .venv and installs the package with its test extras. Already-installed pieces are skipped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

say() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        say "need root to run: $*"
        exit 1
    fi
}

# --- system tools ---------------------------------------------------------------------------
# command -> Debian package that provides it
tools=(
    "buildah:buildah"
    "podman:podman"
    "skopeo:skopeo"
    "docker-registry:docker-registry"
    "umoci:umoci"
    "oci-image-tool:oci-image-tool"
    "runc:runc"
    "dockerd:docker.io"
    "htpasswd:apache2-utils"
    "busybox:busybox-static"
    "curl:curl"
)
have() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }

missing=()
for entry in "${tools[@]}"; do
    have "${entry%%:*}" || missing+=("${entry#*:}")
done

# A Python >= 3.11 that can create a venv (Debian splits ensurepip into python3-venv).
python_ok() {
    "$1" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ] && [ ! -x .venv/bin/python ]; then
    missing+=(python3 python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
    say "installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}" >/dev/null
    [ -n "$python" ] || python=/usr/bin/python3
fi

# --- Python environment ---------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $python"
    "$python" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install (or it never happened).
stamp=.venv/.clusterimage-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] \
    || ! .venv/bin/python -c 'import clusterimage' >/dev/null 2>&1; then
    say "installing clusterimage and its test extras into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$wanted" >"$stamp"
fi

# --- lint -----------------------------------------------------------------------------------
say "ruff check"
.venv/bin/ruff check . || { say "FAILED: ruff check (run .venv/bin/ruff check --fix)"; exit 1; }
say "ruff format --check"
.venv/bin/ruff format --check . || { say "FAILED: ruff format (run .venv/bin/ruff format)"; exit 1; }

say "mypy clusterimage"
.venv/bin/mypy clusterimage || { say "FAILED: mypy (the package is fully typed; keep it so)"; exit 1; }

# --- tests ----------------------------------------------------------------------------------
say "pytest $*"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?
set -e

elapsed=$((SECONDS - started))
case $status in
    0) say "OK: lint clean, tests passed (${elapsed}s)" ;;
    5)
        say "FAILED: pytest collected no tests (exit 5); a test run that runs nothing is a failure"
        status=1
        ;;
    *) say "FAILED: pytest exited $status (${elapsed}s)" ;;
esac
exit "$status"
