#!/usr/bin/env bash
# Makes this machine ready for kumo: Debian packages, npm dependencies, the build, and a
# running libvirtd/virtlogd. Safe to run again: each step checks before it acts.
# Usage: scripts/bootstrap.sh [--test]   (--test adds what only the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "kumo's set-up needs root (it installs packages and runs libvirtd)" >&2; exit 1; }

PACKAGES=(qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-daemon-system dnsmasq-base genisoimage xorriso libxml2-utils nftables iptables
  cpio busybox-static e2fsprogs xz-utils ca-certificates nfs-ganesha nfs-ganesha-vfs
  iproute2 util-linux curl mmdebstrap extlinux fdisk mount haproxy nginx-light libnginx-mod-http-modsecurity modsecurity-crs socat)
# Only used by tests: cloud-init's schema validator, Open vSwitch for the ovs network mode,
# tmux for looking at the wizard by hand, an OpenSSH server the ssh tests start on loopback,
# Chromium for the dashboard's browser tests, and prometheus for promtool (checks /metrics).
TEST_PACKAGES=(cloud-init openvswitch-switch tmux openssh-server chromium prometheus wrk)
[ "${1:-}" = --test ] && PACKAGES+=("${TEST_PACKAGES[@]}")
command -v node >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The tests run their own sshd on 127.0.0.1 and need only promtool of prometheus: the
  # packaged services, started by the installation under systemd, are not wanted.
  if [ -d /run/systemd/system ]; then
    for pair in openssh-server:ssh prometheus:prometheus; do
      if [[ " ${missing[*]} " == *" ${pair%%:*} "* ]]; then systemctl disable --now "${pair#*:}" >/dev/null 2>&1 || true; fi
    done
  fi
fi
# The tiny image recipe downloads .debs with apt-get: make sure the package lists exist.
if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  log "refreshing the Debian package lists"
  apt-get update -qq
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || echo "warning: kumo is built for Node.js 20 or newer; this is $(node --version)" >&2

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build

# libvirt: systemd where there is one, by hand where there is not (containers, CI).
if ! virsh -c qemu:///system uri >/dev/null 2>&1; then
  log "starting virtlogd and libvirtd"
  if [ -d /run/systemd/system ]; then
    systemctl start virtlogd libvirtd
  else
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
  fi
  for _ in $(seq 50); do virsh -c qemu:///system uri >/dev/null 2>&1 && break; sleep 0.2; done
  virsh -c qemu:///system uri >/dev/null || { echo "libvirtd did not come up; see /var/log/libvirt/" >&2; exit 1; }
fi

# kumo runs its own nfs-ganesha (kumo share) with its own exports: the packaged service
# would hold port 2049 with Debian's sample config.
# The same for HAProxy and nginx: kumo runs private instances on its load-balancer nodes.
if [ -d /run/systemd/system ]; then
  for unit in nfs-ganesha haproxy nginx; do
    if systemctl is-enabled "$unit" >/dev/null 2>&1; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
  done
fi

# Open vSwitch (for ovs networks), where it is installed: its daemons, without systemd too.
# Without the kernel module, kumo uses OVS's userspace datapath.
if command -v ovs-vsctl >/dev/null && ! ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  log "starting Open vSwitch"
  if [ -d /run/systemd/system ]; then
    systemctl start openvswitch-switch
  else
    /usr/share/openvswitch/scripts/ovs-ctl --no-monitor --system-id=random start >/dev/null 2>&1 || true
  fi
  ovs-vsctl --timeout=5 show >/dev/null || echo "warning: Open vSwitch did not start; ovs networks will not work" >&2
fi
