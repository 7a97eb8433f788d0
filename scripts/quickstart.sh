#!/usr/bin/env bash
# First run on a fresh Debian machine: create .venv, install clusterimage, run it.
#
#   ./scripts/quickstart.sh
#
# Everything it stores goes to $CLUSTERIMAGE_HOME (default: ./.quickstart-home), so it never
# touches your real image store. Remove that folder to start over.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '==> %s\n' "$*" >&2; }

# --- install --------------------------------------------------------------------------------
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' \
            >/dev/null 2>&1; then
        python=$candidate
        break
    fi
done
if [ ! -x .venv/bin/python ]; then
    if [ -z "$python" ]; then
        say "need Python >= 3.11 with venv: apt-get install python3 python3-venv"
        exit 1
    fi
    say "creating .venv with $python"
    "$python" -m venv .venv
fi
# Installed means the entry point exists and the package imports from outside this folder: run
# from here, `import clusterimage` finds the source tree itself even when nothing is installed.
# Reinstall when pyproject.toml changed since the last install (new dependencies).
repo=$PWD
stamp=.venv/.clusterimage-quickstart
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/clusterimage ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ] \
    || ! (cd / && "$repo/.venv/bin/python" -c 'import clusterimage') >/dev/null 2>&1; then
    say "installing clusterimage into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    echo "$wanted" >"$stamp"
fi

# --- run --------------------------------------------------------------------------------------
export CLUSTERIMAGE_HOME="${CLUSTERIMAGE_HOME:-$PWD/.quickstart-home}"
mkdir -p "$CLUSTERIMAGE_HOME"

clusterimage() {
    printf '$ clusterimage %s\n' "$*" >&2
    .venv/bin/clusterimage "$@"
}

say "clusterimage home: $CLUSTERIMAGE_HOME"
clusterimage version

# A cluster image that carries its container images, built with no network, daemon or root:
# the example's images come from archives its prepare.sh makes (images/skopeo/tar.txt), and the
# build puts them in registry/, in the layout of the distribution registry.
example="$CLUSTERIMAGE_HOME/offline-bundle"
ref=localhost/quickstart/offline:v1
say "copy Kubefile.examples/offline-bundle to $example and make the archives it names"
rm -rf "$example"
cp -r Kubefile.examples/offline-bundle "$example"
"$example/prepare.sh" .venv/bin/clusterimage
say "lint the Kubefile and list the images registry/ will hold (writes nothing)"
clusterimage build --dry-run "$example"
say "build it into the local store"
clusterimage build -t "$ref" "$example"
say "build again: every layer comes from the cache, the digest is the same"
clusterimage build -t "$ref" "$example"
say "the store now holds"
clusterimage images
say "the images the cluster image carries, recorded in its manifest"
clusterimage inspect -t manifest "$ref"
say "what the cluster runtime would run for it"
clusterimage create "$ref"
say "save it as one file to carry to a site without a registry (load it there)"
clusterimage save -o "$CLUSTERIMAGE_HOME/offline.tar" "$ref"
say "v2 edits a manifest: diff says what changed, and a site that has v1 gets only what v2 adds"
v2=localhost/quickstart/offline:v2
printf '# v2: one more line\n' >> "$example/manifests/tools.yaml"
clusterimage build -q -t "$v2" "$example" > /dev/null
clusterimage diff "$ref" "$v2"
rm -f "$CLUSTERIMAGE_HOME/offline-v2-delta.tar"
clusterimage save -o "$CLUSTERIMAGE_HOME/offline-v2-delta.tar" \
    --delta-from "$CLUSTERIMAGE_HOME/offline.tar" "$v2"
clusterimage bundle verify "$CLUSTERIMAGE_HOME/offline-v2-delta.tar"
say "export it as an OCI layout that skopeo, umoci and buildah read"
rm -rf "$CLUSTERIMAGE_HOME/export"
clusterimage copy "store:$ref" "oci:$CLUSTERIMAGE_HOME/export:v1"
say "unpack it as the cluster runtime lays images out: rootfs/, applications/, one registry"
rm -rf "$CLUSTERIMAGE_HOME/cluster"
clusterimage unpack --layout sealos "$ref" "$CLUSTERIMAGE_HOME/cluster"
say "serve the images it carries straight from the store (nothing unpacked), and read one back"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/clusterimage registry serve "$ref" --address "127.0.0.1:$port" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
clusterimage tags "127.0.0.1:$port/example/tools" --tls-verify=false
kill "$server"
wait "$server" 2>/dev/null || true
trap - EXIT
clusterimage fsck

say "done: try 'clusterimage inspect $ref' or 'clusterimage --help'"
