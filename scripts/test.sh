#!/usr/bin/env bash
# The whole test suite against real libvirt/QEMU: installs what is missing first.
# Each test uses a per-run name prefix and its own KUMO_HOME, and cleans up pass or fail.
# Nothing may skip here: a skipped or todo test fails the run unless test/allowed-skips.txt
# lists it with its reason (dist/test/helpers/skip-policy.js; what skipped goes to
# $KUMO_TEST_SKIPS as JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
export KUMO_TEST_CACHE=${KUMO_TEST_CACHE:-/var/lib/kumo/cache}
exec node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=./dist/test/helpers/skip-policy.js --test-reporter-destination="${KUMO_TEST_SKIPS:-dist/test-skips.json}" \
  "$@" dist/test/
