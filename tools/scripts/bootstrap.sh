#!/usr/bin/env bash
# One entry point for a newcomer on a fresh Debian 12 or 13 machine:
#   bash tools/scripts/bootstrap.sh demo   sets everything up (the guest included), boots the QEMU guest
#                                          and runs the edu driver example
#   bash tools/scripts/bootstrap.sh test   sets everything up (every guest kernel of the matrix included)
#                                          and runs every test: unit tests on the host, then the
#                                          integration suite in the guest on each kernel
# Each step is idempotent and cached, so a second run is quick. A step that
# keeps its output to a log prints the log's end when it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-test}
case "$mode" in demo|test) ;; *) echo "usage: $0 demo|test" >&2; exit 2 ;; esac

logs=.cache/bootstrap
mkdir -p "$logs"
step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Runs a command with its output in $logs/NAME.log; on failure says what
# failed and shows the end of the log, so nothing fails silently.
quietly() {
  local name=$1 rc=0; shift
  "$@" >"$logs/$name.log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    echo "bootstrap: FAILED: $* (exit $rc); the end of $logs/$name.log:" >&2
    tail -n 30 "$logs/$name.log" >&2
    exit 1
  fi
}

apt_ready=
# Installs Debian packages that are not installed yet.
need_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_ready" ]; then
    echo "apt-get update"
    quietly apt-update as_root apt-get update
    apt_ready=1
  fi
  echo "apt-get install ${missing[*]}"
  quietly apt-install as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

step "toolchain"
need_pkgs ca-certificates git gcc g++ make python3
command -v node >/dev/null 2>&1 || need_pkgs nodejs npm
command -v npm >/dev/null 2>&1 || need_pkgs npm
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node -v) is too old: this project needs Node.js 20 or newer on the PATH (Debian 13's nodejs is 20)." >&2
  exit 1
fi
# node-gyp must build against the installed Node headers: it cannot download
# them here (only package registries are reachable). Debian's nodejs ships
# them in libnode-dev; other installs (nodesource, nvm) under their prefix.
node_prefix=$(cd "$(dirname "$(readlink -f "$(command -v node)")")/.." && pwd)
if [ ! -f "$node_prefix/include/node/node_api.h" ] && [ "$node_prefix" = /usr ]; then need_pkgs libnode-dev; fi
if [ ! -f "$node_prefix/include/node/node_api.h" ]; then
  echo "bootstrap: no Node.js headers under $node_prefix/include/node (install them, or set npm_config_nodedir)" >&2
  exit 1
fi
export npm_config_nodedir=$node_prefix
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm -v)" != 10.34.8 ]; then
  echo "npm install -g pnpm@10.34.8"
  quietly pnpm-install as_root npm install -g pnpm@10.34.8
fi
echo "node $(node -v), pnpm $(pnpm -v), Node headers from $node_prefix"

step "install (pnpm, frozen lockfile)"
pnpm install --frozen-lockfile --reporter=append-only

step "kernel headers for the bindings (linux-libc-dev 7.3, cached)"
pnpm --filter gen-bindings run fetch-headers

step "build"
pnpm run build

if [ "$mode" = demo ]; then
  step "test bed: QEMU, the default guest kernel, the initramfs (cached)"
  node tools/vm/bin/vm.js setup
  step "demo: the edu driver example in the QEMU guest"
  exec pnpm run demo
fi

step "test bed: QEMU, every guest kernel of the matrix (the purpose-built one is compiled once), initramfs (cached)"
node tools/vm/bin/vm.js setup --kernel all
# Both stages run even when the first fails, so one run reports every failure.
results=.cache/test-results
rm -rf "$results" && mkdir -p "$results"
status=0
step "unit tests (host)"
pnpm run test || status=1
step "integration suite (QEMU guest, real VFIO, every kernel of the matrix)"
pnpm run test:guest || status=1
step "summary"
node tools/scripts/summarize-tests.js "$results" || status=1
exit $status
