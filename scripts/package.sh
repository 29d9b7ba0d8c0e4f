#!/usr/bin/env bash
# Builds kumo's Debian package, kumo_VERSION_ARCH.deb, from this checkout: the build in dist/
# (run `npm run build` first) and the production part of node_modules, with no network.
# Usage: scripts/package.sh [--out DIR] [--compress xz|gzip|none]
#   --out       where the .deb goes (default: dist/pkg)
#   --compress  dpkg-deb's compression: xz (default, smallest), gzip (level 1: fast), none (fastest)
# Anyone may build it; installing it (apt-get install ./kumo_*.deb) is root's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

out=dist/pkg
compress=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$compress" in
  xz) zflags=(-Zxz) ;;
  gzip) zflags=(-Zgzip -z1) ;;
  none) zflags=(-Znone) ;;
  *) echo "package.sh: --compress must be xz, gzip or none, got $compress" >&2; exit 2 ;;
esac

for f in dist/bin/kumo.js dist/web/index.html; do
  [ -e "$f" ] || { echo "package.sh: $f is missing: run npm run build first" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb is missing: apt-get install dpkg" >&2; exit 1; }

version=$(node -p 'require("./package.json").version')
# Native modules (better-sqlite3, node-pty) are built for this machine: the package is too.
arch=$(dpkg --print-architecture)
# The store schema this build writes, for the preinst's refusal of a downgrade (from the bundle itself).
probe=$(mktemp -d)
schema=$(KUMO_HOME=$probe/home KUMO_CONFIG='' node dist/bin/kumo.js store status --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).known')
rm -rf "$probe"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/kumo
lib=$pkg/usr/lib/kumo
mkdir -p "$lib/dist" "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/usr/share/kumo" "$pkg/usr/share/doc/kumo"

# The program: the bundled CLI and its chunks, the dashboard, package.json (installRoot() finds
# the installation by it), and the guest files the image recipes read at run time.
cp -a dist/bin dist/web "$lib/dist/"
find "$lib/dist/bin" -name '*.map' -delete
node -e 'const p = require("./package.json"); delete p.devDependencies; delete p.scripts; console.log(JSON.stringify(p, null, 2))' >"$lib/package.json"
mkdir -p "$lib/src/drivers/image"
for d in src/drivers/image/*/; do cp -a "$d" "$lib/src/drivers/image/"; done

# The production dependencies (npm's own list: no devDependencies), without the native modules'
# sources and intermediate build files: only what Node loads.
# (npm ls also exits non-zero for an extraneous package: the check below is what counts.)
{ npm ls --omit=dev --all --parseable 2>/dev/null || true; } | { grep "^$ROOT/node_modules/" || true; } | sort -u | while read -r dir; do
  rel=${dir#"$ROOT"/}
  mkdir -p "$lib/$(dirname "$rel")"
  [ -e "$lib/$rel" ] || cp -a "$dir" "$lib/$rel"
done
# Nested copies already came with their parent; a package's own node_modules/.bin links are not needed.
find "$lib/node_modules" -type d -name .bin -prune -exec rm -rf {} +
for dep in $(node -p 'Object.keys(require("./package.json").dependencies).join(" ")'); do
  [ -f "$lib/node_modules/$dep/package.json" ] || { echo "package.sh: the dependency $dep is not in node_modules: run npm ci first" >&2; exit 1; }
done
bs=$lib/node_modules/better-sqlite3
if [ -d "$bs" ]; then
  rm -rf "$bs/deps" "$bs/src"
  find "$bs/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$bs/build/Release" -mindepth 1 ! -name '*.node' -exec rm -rf {} +
fi

install -m 0755 packaging/debian/kumo.sh "$pkg/usr/bin/kumo"
for unit in kumo-api kumo-monitor kumo-ha kumo-lab; do
  install -m 0644 "packaging/debian/$unit.service" "$pkg/lib/systemd/system/"
done
# The documented default config (postinst copies it to /etc/kumo/kumo.conf once).
KUMO_CONFIG='' node dist/bin/kumo.js config defaults >"$pkg/usr/share/kumo/kumo.conf"
cp -a examples "$pkg/usr/share/doc/kumo/examples"
cp README.md "$pkg/usr/share/doc/kumo/"
cp -a docs "$pkg/usr/share/doc/kumo/docs"
printf 'kumo\nLicense: MIT (package.json)\n' >"$pkg/usr/share/doc/kumo/copyright"
# Manual pages (made by the build from the CLI's definitions) and shell completion (from the CLI).
compgen -G 'dist/man/*.1' >/dev/null || { echo "package.sh: dist/man has no manual pages: run npm run build first" >&2; exit 1; }
mkdir -p "$pkg/usr/share/man/man1"
for m in dist/man/*.1; do gzip -9n <"$m" >"$pkg/usr/share/man/man1/$(basename "$m").gz"; done
mkdir -p "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions"
node dist/bin/kumo.js completion bash >"$pkg/usr/share/bash-completion/completions/kumo"
node dist/bin/kumo.js completion zsh >"$pkg/usr/share/zsh/vendor-completions/_kumo"

for s in preinst postinst prerm postrm; do
  sed "s/@VERSION@/$version/g; s/@SCHEMA@/$schema/g" "packaging/debian/$s" >"$pkg/DEBIAN/$s"
  chmod 0755 "$pkg/DEBIAN/$s"
done
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
# What the main job installs (scripts/bootstrap.sh) is what kumo runs: Depends. The tests' extras: Suggests.
cat >"$pkg/DEBIAN/control" <<EOF
Package: kumo
Version: $version
Architecture: $arch
Maintainer: kumo developers <kumo@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Depends: nodejs (>= 20), qemu-system-x86, qemu-utils, libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients,
 libvirt-daemon-system, dnsmasq-base, genisoimage, xorriso, libxml2-utils, nftables, iptables, cpio,
 busybox-static, e2fsprogs, xz-utils, ca-certificates, nfs-ganesha, nfs-ganesha-vfs, iproute2, util-linux,
 curl, mmdebstrap, extlinux, fdisk, mount, haproxy, nginx-light | nginx-core | nginx-full | nginx-extras,
 libnginx-mod-http-modsecurity, modsecurity-crs, socat
Suggests: openvswitch-switch, cloud-init, python3-openstackclient
Homepage: https://localhost/kumo
Description: small private cloud for KVM hosts
 kumo turns a Linux machine with libvirt into a small cloud: instances from cloud images,
 flavors, networks, volumes, snapshots, live migration, load balancers with a web firewall,
 NFS shares, projects with quotas, a REST API with a dashboard, OpenStack's API, and a whole
 datacenter described in one file (kumo apply).
EOF

mkdir -p "$out"
deb="$out/kumo_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${zflags[@]}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
