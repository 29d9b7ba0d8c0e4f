#!/usr/bin/env bash
# The main job: set this machine up as a kumo host and bring up a first instance that
# serves HTTP on port 8080. Running it again is harmless: what exists is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
kumo() { node dist/src/cli/main.js "$@"; }
NAME=${KUMO_DEMO_NAME:-demo}

kumo host info
kumo image build tiny
if ! kumo instance show "$NAME" >/dev/null 2>&1; then
  # The demo's root password is random and printed once; nothing stores it in plain text.
  pwfile=$(mktemp); trap 'rm -f "$pwfile"' EXIT
  head -c 12 /dev/urandom | base64 | tr -d '/+=' > "$pwfile"
  kumo instance create "$NAME" --image tiny --flavor small --password-file "$pwfile" --network default
  echo "root password of $NAME: $(cat "$pwfile")"
else
  kumo instance start "$NAME"
fi
kumo instance wait "$NAME"
kumo instance list
cat <<INFO

kumo is ready. Try:
  node dist/src/cli/main.js instance list          # or: npm link, then just 'kumo'
  node dist/src/cli/main.js instance console $NAME  # serial console (Ctrl+] leaves)
  node dist/src/cli/main.js create                  # the course's interactive wizard
INFO
