#!/bin/sh
# /usr/bin/kumo: the bundled CLI on the system's Node.js. KUMO_CONFIG names the config file kumo
# reads (a variable set in the environment wins over the file's).
: "${KUMO_CONFIG:=/etc/kumo/kumo.conf}"
export KUMO_CONFIG
exec node /usr/lib/kumo/dist/bin/kumo.js "$@"
