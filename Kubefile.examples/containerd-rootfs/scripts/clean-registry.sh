#!/bin/bash
# clean-registry.sh DATA CONFIG: stop the registry and remove its data.
source common.sh
data=${1:-/var/lib/registry}
config=${2:-/etc/registry}
systemctl disable --now registry || true
rm -rf "$data" "$config" /etc/systemd/system/registry.service
systemctl daemon-reload
log "registry removed"
