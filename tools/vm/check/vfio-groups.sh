#!/bin/sh
# Runs inside the guest: compiles vfio-groups.c into the guest's /tmp (the
# host root is read-only there) and runs it over every device in testbed.json.
# Usage: node tools/vm/bin/vm.js run --profile suite -- sh tools/vm/check/vfio-groups.sh
set -e
here=$(dirname "$0")
cc -O1 -o /tmp/vfio-groups "$here/vfio-groups.c"
# testbed.json keeps one device per line (see guest/init).
pairs=$(sed -n 's/.*"address": "\([^"]*\)".*"iommuGroup": \([0-9]*\).*/\2 \1/p' "$VFIO_TESTBED")
# shellcheck disable=SC2086
exec /tmp/vfio-groups $pairs
