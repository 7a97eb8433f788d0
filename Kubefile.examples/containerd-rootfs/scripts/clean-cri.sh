#!/bin/bash
# clean-cri.sh DATA: stop containerd and remove its data directory.
source common.sh
data=${1:-/var/lib/containerd}
systemctl disable --now containerd || true
rm -rf /etc/containerd /etc/systemd/system/containerd.service "$data"
systemctl daemon-reload
log "containerd removed"
