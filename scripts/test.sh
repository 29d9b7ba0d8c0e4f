#!/usr/bin/env bash
# The whole test suite against real libvirt/QEMU: installs what is missing first.
# Each test uses a per-run name prefix and its own KUMO_HOME, and cleans up pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
export KUMO_TEST_CACHE=${KUMO_TEST_CACHE:-/var/lib/kumo/cache}
exec node --test --test-concurrency=1 --test-reporter=spec "$@" dist/test/
