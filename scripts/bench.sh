#!/usr/bin/env bash
# Runs the benchmarks in bench/ (see bench/README.md); installs what only they need.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for p in virtinst libguestfs-tools; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends virtinst libguestfs-tools >/dev/null
done
exec node dist/bench/provision.js "$@"
