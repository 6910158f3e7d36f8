'use strict';
// The C reference programs: compiled with gcc -O2 on the host into
// .cache/bench/ (the guest has no compiler but sees the host's files), and
// run as child processes whose stdout is one JSON object per measurement.
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { C_DIR, CACHE_DIR, REPO_ROOT } = require('./paths');

const PROGRAMS = ['fionread', 'eventfd_wake', 'vfio_bench', 'mig_bench', 'irq_storm', 'kvm_irq_bench'];
function binaryPath(name) {
  return path.join(CACHE_DIR, name);
}

/**
 * One of the bench's own N-API modules (c/NAME.c: malloc_stats, the soak's
 * malloc counter; pkru_probe, the KVM rows' PKRU), built against the
 * headers of the Node that runs the bench. Returns its path, or null (with
 * the reason logged) when they are missing: the run goes on without that
 * figure.
 */
function buildNodeModule(name, log) {
  const include = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  if (!fs.existsSync(path.join(include, 'node_api.h'))) {
    log(`no node_api.h under ${include}: no ${name} figure in this run`);
    return null;
  }
  const out = path.join(CACHE_DIR, `${name}.node`);
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', include, '-o', out, path.join(C_DIR, `${name}.c`)], {
    stdio: 'inherit',
  });
  return out;
}

/**
 * The uapi headers the bindings are generated from (tools/gen-bindings'
 * pinned linux-libc-dev, 7.3): the host's own /usr/include may predate
 * iommufd.h and the cdev ioctls. Fetched once into .cache/linux-headers;
 * the arch folder holds asm/.
 */
function uapiIncludes() {
  const { fetchHeaders } = require(path.join(REPO_ROOT, 'tools', 'gen-bindings', 'src', 'fetch-headers'));
  const dir = fetchHeaders();
  return ['-isystem', dir, '-isystem', path.join(dir, `${process.arch === 'x64' ? 'x86_64' : process.arch}-linux-gnu`)];
}

/** Compiles every program; only on the host (the guest lacks gcc). */
function buildAll() {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const includes = uapiIncludes();
  for (const name of PROGRAMS) {
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', ...includes, '-o', binaryPath(name), path.join(C_DIR, `${name}.c`)], {
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

module.exports = { buildAll, buildNodeModule, run, binaryPath };
