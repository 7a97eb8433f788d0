#!/bin/bash
# init-registry.sh DATA CONFIG: serve the image's registry/ with the stock registry server.
source common.sh
data=${1:-/var/lib/registry}
config=${2:-/etc/registry}
mkdir -p "$data" "$config"
cp -rf "$ROOTFS/registry/." "$data/"
cp -f "$ROOTFS/etc/registry_config.yml" "$config/config.yml"
cp -f "$ROOTFS/etc/registry.service" /etc/systemd/system/registry.service
systemctl daemon-reload
systemctl enable --now registry
log "registry serves $data"
