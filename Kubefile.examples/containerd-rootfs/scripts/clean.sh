#!/bin/bash
# clean.sh: undo init.sh.
source common.sh
rm -f /etc/sysctl.d/k8s.conf
log "node settings removed"
