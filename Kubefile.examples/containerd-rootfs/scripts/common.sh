#!/bin/bash
# Shared by every hook: logging and the paths the rootfs is unpacked to.
set -e
readonly ROOTFS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { echo "[$(date +%H:%M:%S)] $*"; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing $1"; exit 1; }; }
