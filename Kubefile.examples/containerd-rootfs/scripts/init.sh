#!/bin/bash
# init.sh: node settings every Kubernetes node needs.
source common.sh
modprobe br_netfilter || true
cat >/etc/sysctl.d/k8s.conf <<SYSCTL
net.bridge.bridge-nf-call-iptables = 1
net.ipv4.ip_forward = 1
SYSCTL
sysctl --system >/dev/null
swapoff -a
log "node initialised"
