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
# Chromium for the dashboard's browser tests, prometheus for promtool (checks /metrics), and
# tcpdump to capture a migration stream (shows --encrypted hides the guest's memory), and the
# OpenStack clients (the `openstack` command, openstacksdk) that drive kumo's OpenStack API;
# zsh for the completion test (bash is always there), groff and man for the manual pages' test;
# systemd for systemd-analyze, which checks the Debian package's units (no systemd needs to run).
TEST_PACKAGES=(cloud-init openvswitch-switch tmux openssh-server chromium prometheus wrk tcpdump zsh groff-base man-db
  python3-openstackclient python3-openstacksdk systemd)
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
# Where /dev/kvm exists but does not work (kumo's own probe: `kumo host info` says why), libvirtd
# must not see it: it would probe QEMU again on every define (30-110 s each). Then it runs with
# /dev/kvm masked by an inaccessible device, as systemd's InaccessiblePaths does.
kumo_cli() { node dist/bin/kumo.js "$@"; }
mask_kvm=$(kumo_cli host accel --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).kvmMask')
NO_KVM=/run/kumo/no-kvm
DROPIN_NAME=kumo-no-kvm.conf

# The pid of the running system libvirtd, if any.
libvirtd_pid() {
  local pid
  pid=$(cat /run/libvirtd.pid 2>/dev/null) || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] && echo "$pid"
}
# Whether process $1 sees this machine's /dev/kvm device (through its own mount namespace).
sees_kvm() { [ "$(stat -L -c %t:%T "/proc/$1/root/dev/kvm" 2>/dev/null)" = "$(stat -c %t:%T /dev/kvm)" ]; }

if [ -d /run/systemd/system ]; then
  changed=0
  for unit in libvirtd virtqemud; do
    systemctl list-unit-files "$unit.service" >/dev/null 2>&1 || continue
    dropin="/etc/systemd/system/$unit.service.d/$DROPIN_NAME"
    if [ "$mask_kvm" = true ] && [ ! -f "$dropin" ]; then
      log "/dev/kvm does not work here: $unit gets a drop-in that hides it ($dropin)"
      mkdir -p "$(dirname "$dropin")"
      printf '# kumo: /dev/kvm exists but does not work here; libvirt would probe QEMU again on every define.\n[Service]\nInaccessiblePaths=-/dev/kvm\n' >"$dropin"
      changed=1
    elif [ "$mask_kvm" != true ] && [ -f "$dropin" ]; then
      log "KVM works here: removing $dropin"
      rm -f "$dropin"
      changed=1
    fi
  done
  if [ "$changed" = 1 ]; then
    systemctl daemon-reload
    systemctl is-active --quiet libvirtd && systemctl restart libvirtd
  fi
  virsh -c qemu:///system uri >/dev/null 2>&1 || { log "starting virtlogd and libvirtd"; systemctl start virtlogd libvirtd; }
else
  if [ "$mask_kvm" = true ] && pid=$(libvirtd_pid) && sees_kvm "$pid"; then
    log "/dev/kvm does not work here: restarting libvirtd (pid $pid) with /dev/kvm masked (its guests keep running)"
    kill "$pid"
    # Gone, or a zombie nobody reaps (PID 1 does not, on machines without an init system).
    for _ in $(seq 150); do [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* || ! -e "/proc/$pid" ]] && break; sleep 0.1; done
  fi
  if ! virsh -c qemu:///system uri >/dev/null 2>&1; then
    pgrep -x virtlogd >/dev/null || virtlogd -d
    if [ "$mask_kvm" = true ]; then
      log "starting virtlogd and libvirtd, with /dev/kvm masked (it does not work here)"
      mkdir -p "$(dirname "$NO_KVM")"
      rm -f "$NO_KVM" && mknod -m 000 "$NO_KVM" c 0 0
      unshare -m --propagation private sh -c 'mount --bind "$1" /dev/kvm && exec libvirtd -d' sh "$NO_KVM"
    else
      log "starting virtlogd and libvirtd"
      libvirtd -d
    fi
  fi
fi
for _ in $(seq 50); do virsh -c qemu:///system uri >/dev/null 2>&1 && break; sleep 0.2; done
virsh -c qemu:///system uri >/dev/null || { echo "libvirtd did not come up; see /var/log/libvirt/" >&2; exit 1; }

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
