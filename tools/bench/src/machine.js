'use strict';
// What the figures were measured on: a result without its machine, kernel
// and accelerator (a TCG guest is 15-20x slower than KVM) is not comparable.
const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');

function describeHere() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    arch: os.arch(),
    node: process.version,
    hypervisorFlag: /\bhypervisor\b/.test(readOr('/proc/cpuinfo', '')),
    // Other work on the machine is the main source of noise in the medians.
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function readOr(file, fallback) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * Which code was measured: the commit, and whether the library packages
 * had uncommitted changes (then the figures describe no commit exactly).
 */
function sourceState(repoRoot) {
  const git = (...args) => execFileSync('git', ['-C', repoRoot, ...args], { encoding: 'utf8' }).trim();
  try {
    const dirty = git('status', '--porcelain', '--', 'packages').split('\n').filter(Boolean);
    return { commit: git('rev-parse', 'HEAD'), packagesDirty: dirty.length > 0, dirtyFiles: dirty.slice(0, 20) };
  } catch {
    return null;
  }
}

module.exports = { describeHere, sourceState };
