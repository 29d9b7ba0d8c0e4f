#!/usr/bin/env bash
# The main job: set this machine up for kumo, bring up the course's datacenter lab on it
# (internet, lb, kvm1, kvm2 and stg in network namespaces, a libvirtd per hypervisor, NFS on
# stg) and a first instance there that serves HTTP on port 8080.
# Running it again is harmless: what exists is kept, what is missing or dead is made again.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
kumo() { node dist/src/cli/main.js "$@"; }
NAME=${KUMO_DEMO_NAME:-web1}

kumo host info
kumo image build tiny
kumo lab up
if ! kumo instance show "$NAME" >/dev/null 2>&1; then
  # The root password is random and printed once; nothing stores it in plain text.
  pwfile=$(mktemp); trap 'rm -f "$pwfile"' EXIT
  head -c 12 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
  kumo instance create "$NAME" --image tiny --flavor small --password-file "$pwfile"
  echo "root password of $NAME: $(cat "$pwfile")"
else
  kumo instance start "$NAME"
fi
kumo instance wait "$NAME"
kumo instance list
ip=$(kumo instance show "$NAME" --json | node -e 'const i = JSON.parse(require("fs").readFileSync(0, "utf8")); process.stdout.write(i.nics.find((n) => n.ipv4)?.ipv4 ?? "")')
lab=$(kumo lab status --json | node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(0, "utf8")).name)')
cat <<INFO

kumo is ready: the course's datacenter runs as lab "$lab" on this machine.
  ip netns exec $lab-lb curl http://$ip:8080/          # $NAME, from the load balancer node
  node dist/src/cli/main.js lab status                 # nodes, segments, daemons (or: npm link, then just 'kumo')
  node dist/src/cli/main.js host list                  # kvm1 and kvm2 as hypervisors, stg, lb
  node dist/src/cli/main.js instance console $NAME     # serial console (Ctrl+] leaves)
  node dist/src/cli/main.js create                     # the course's interactive wizard
  node dist/src/cli/main.js instance migrate $NAME --to kvm2
  node dist/src/cli/main.js lab down                   # remove the lab and everything in it
INFO
