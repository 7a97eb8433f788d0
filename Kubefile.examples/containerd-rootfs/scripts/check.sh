#!/bin/bash
# check.sh DATA: refuse to install over a registry data directory that is a mount point.
source common.sh
data=${1:-/var/lib/registry}
if mountpoint -q "$data"; then
  log "$data is a mount point; use another registryData"
  exit 1
fi
log "check passed"
