'use strict';
// The C reference programs: compiled with gcc -O2 on the host into
// .cache/bench/ (the guest has no compiler but sees the host's files), and
// run as child processes whose stdout is one JSON object per measurement.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { C_DIR, CACHE_DIR } = require('./paths');

const PROGRAMS = ['fionread', 'vfio_bench'];

function binaryPath(name) {
  return path.join(CACHE_DIR, name);
}

/** Compiles every program; only on the host (the guest lacks gcc). */
function buildAll() {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  for (const name of PROGRAMS) {
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binaryPath(name), path.join(C_DIR, `${name}.c`)], {
      stdio: 'inherit',
    });
  }
}

/** Runs a program; returns { op: { batch, samples } } from its JSON lines. */
function run(name, args) {
  const stdout = execFileSync(binaryPath(name), args.map(String), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const byOp = {};
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line);
    byOp[rec.op] = { batch: rec.batch, samples: rec.samples };
  }
  return byOp;
}

module.exports = { buildAll, run, binaryPath };
