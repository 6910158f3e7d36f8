#!/usr/bin/env bash
# One entry point for a newcomer on a fresh Debian machine:
#   bash tools/scripts/bootstrap.sh demo   sets everything up, boots the QEMU guest and runs the edu driver example
#   bash tools/scripts/bootstrap.sh test   sets everything up and runs every test: unit tests on the host, then the
#                                          integration suite in the guest against the real kernel
# Each step is idempotent and cached, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-test}

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_ready=
need_pkg() {
  # Installs Debian packages only when a command they provide is missing.
  local cmd=$1; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ -z "$apt_ready" ]; then as_root apt-get update -qq; apt_ready=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "toolchain"
need_pkg gcc gcc g++ make python3
need_pkg node nodejs npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node -v) is too old: this project needs Node 20 or newer on the PATH." >&2
  exit 1
fi
command -v pnpm >/dev/null 2>&1 && [ "$(pnpm -v)" = 10.34.8 ] || npm install -g --silent pnpm@10.34.8
# node-gyp must build against the installed Node headers: it cannot download them here.
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

step "install (pnpm, frozen lockfile)"
pnpm install --frozen-lockfile --reporter=append-only

step "kernel headers for the bindings (Linux 6.12+, cached)"
pnpm --filter gen-bindings run fetch-headers

step "build"
pnpm run build

case "$mode" in
  test)
    # Both stages run even when the first fails, so one run reports every failure.
    results=.cache/test-results
    rm -rf "$results" && mkdir -p "$results"
    status=0
    step "unit tests (host)"
    pnpm run test || status=1
    step "integration suite (QEMU guest, real VFIO)"
    pnpm run test:guest || status=1
    step "summary"
    node tools/scripts/summarize-tests.js "$results" || status=1
    exit $status
    ;;
  demo)
    step "demo: the edu driver example in the QEMU guest"
    pnpm run demo
    ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
