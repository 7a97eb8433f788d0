#!/bin/bash
# init-cri.sh DOMAIN PORT: install containerd and point it at the cluster's registry.
source common.sh
domain=${1:-sealos.hub}
port=${2:-5000}
mkdir -p /etc/containerd "/etc/containerd/certs.d/${domain}:${port}"
cp -f "$ROOTFS/etc/config.toml" /etc/containerd/config.toml
cat >"/etc/containerd/certs.d/${domain}:${port}/hosts.toml" <<HOSTS
server = "http://${domain}:${port}"
[host."http://${domain}:${port}"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
HOSTS
cp -f "$ROOTFS/etc/containerd.service" /etc/systemd/system/containerd.service
systemctl daemon-reload
systemctl enable --now containerd
log "containerd is running, registry ${domain}:${port}"
