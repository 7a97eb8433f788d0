#!/bin/sh
# prepare.sh [BUSYBOX]: fill base/rootfs/ with a static busybox and one symlink per applet.
# Debian's busybox-static package provides /bin/busybox.
set -eu
busybox=${1:-/bin/busybox}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$here/rootfs"
mkdir -p "$here/rootfs/bin" "$here/rootfs/tmp"
cp "$busybox" "$here/rootfs/bin/busybox"
chmod 0755 "$here/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$here/rootfs/bin/$applet"
done
