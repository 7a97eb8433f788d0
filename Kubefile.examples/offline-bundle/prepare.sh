#!/bin/sh
# Make the two archives images/skopeo/tar.txt names: build two tiny images and save one as a
# docker-archive (what `docker save` writes) and one as an oci-archive (what skopeo writes).
#
#   ./prepare.sh [CLUSTERIMAGE]     # the command to run (default: clusterimage on PATH)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ci=${1:-clusterimage}
$ci build -q -t localhost/example/tools:v1 "$here/src/tools" >/dev/null
$ci build -q -t localhost/example/config:v1 "$here/src/config" >/dev/null
$ci save -q --format docker-archive -o "$here/images/skopeo/tools.tar" localhost/example/tools:v1
$ci save -q --format oci-archive -o "$here/images/skopeo/config.tar" localhost/example/config:v1
