'use strict';
const path = require('node:path');

// Every path the bench uses, absolute, so the same code works on the host
// and in the guest (which sees the host root at the same paths).
const BENCH_DIR = path.resolve(__dirname, '..');
const REPO_ROOT = path.resolve(BENCH_DIR, '../..');

module.exports = {
  BENCH_DIR,
  REPO_ROOT,
  C_DIR: path.join(BENCH_DIR, 'c'),
  CACHE_DIR: path.join(REPO_ROOT, '.cache', 'bench'),
  RESULTS_JSON: path.join(BENCH_DIR, 'results', 'latest.json'),
  README: path.join(BENCH_DIR, 'README.md'),
  VM_CLI: path.join(REPO_ROOT, 'tools', 'vm', 'bin', 'vm.js'),
  // examples/mini-vmm compiled for the guest (`pnpm --filter vfio-ioctls build:guest`):
  // the nested-guest rows' VMM toolkit and the 8259 set-up bytes.
  MINI_VMM: path.join(REPO_ROOT, 'packages', 'vfio-ioctls', 'dist-guest', 'examples', 'mini-vmm'),
};
