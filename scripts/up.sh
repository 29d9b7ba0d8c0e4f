#!/usr/bin/env bash
# The main job: set this machine up for kumo and bring up the course's datacenter on it, from
# examples/course-datacenter.yaml: the lab (internet, lb, kvm1, kvm2 and stg in network
# namespaces, a libvirtd per hypervisor, NFS on stg), four instances serving STG's index.html on
# 8080 (two per hypervisor), and the load balancer with its web firewall as the only way in.
# Running it again converges (restarts what died, recreates what was deleted) instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
kumo() { node dist/bin/kumo.js "$@"; }
FILE=${KUMO_DATACENTER:-examples/course-datacenter.yaml}

kumo host info
kumo apply "$FILE"
kumo instance list
cat <<INFO

kumo is ready: the course's datacenter runs on this machine (root password of the instances: test123).
  ip netns exec kumo-internet curl http://10.5.1.213/      # the website, from the "outside", through the LB
  node dist/bin/kumo.js lb show front                      # backends and their health (or: npm link, then 'kumo')
  node dist/bin/kumo.js waf log front                      # what the web firewall blocked
  node dist/bin/kumo.js lab status                         # nodes, segments, daemons
  node dist/bin/kumo.js top                                # live traffic per instance (collected every 5 s in the background)
  node dist/bin/kumo.js instance migrate web-1 --to kvm2
  node dist/bin/kumo.js create                             # the course's interactive wizard
  node dist/bin/kumo.js serve                              # REST API + dashboard on 127.0.0.1:8780
  node dist/bin/kumo.js destroy $FILE                      # remove it all
INFO
