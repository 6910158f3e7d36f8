'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { ensureHostPackages } = require('./host-packages');
const { ensureDebianKernel } = require('./kernel');
const { ensureInitramfs } = require('./initramfs');
const { KERNELS, getKernel, DEFAULT_KERNEL } = require('./kernels');
const paths = require('./paths');

// setup resolves each kernel through the private apt lists (which move on as
// Debian publishes new ABIs) or builds it; run uses the kernel the last setup
// recorded in state.json, so a run never downloads or builds behind the
// caller's back once set up. The initramfs is re-keyed on every run, so an
// edited recipe takes effect at once.

// Debian packages a kernel needs on the host to be set up (the build tools
// for a kernel built from source).
function hostPackagesFor(names) {
  const extra = new Set();
  for (const name of names) {
    if (getKernel(name).source.custom) for (const p of require('./custom-kernel').BUILD_PACKAGES) extra.add(p);
  }
  return [...extra];
}

function ensureGuestKernel(name, log) {
  const { source } = getKernel(name);
  if (source.debian) {
    const k = ensureDebianKernel(source.debian, log);
    return { name, version: k.version, vmlinuz: k.vmlinuz, root: k.root, modules: true, id: k.debs.map((d) => path.basename(d)).join(' ') };
  }
  const k = require('./custom-kernel').ensureCustomKernel({ name: source.custom, log });
  return { name, version: k.version, vmlinuz: k.vmlinuz, root: null, modules: false, id: k.key };
}

function readState() {
  try {
    const state = JSON.parse(fs.readFileSync(paths.statePath, 'utf8'));
    return state && state.kernels ? state : null;
  } catch {
    return null;
  }
}

function writeState(state) {
  fs.mkdirSync(paths.cacheDir, { recursive: true });
  const tmp = `${paths.statePath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  fs.renameSync(tmp, paths.statePath);
}

/** Sets up the named kernels ('all' for the whole matrix): host packages, kernel, initramfs. */
function setup({ kernels = [DEFAULT_KERNEL], log = () => {} } = {}) {
  const started = Date.now();
  const names = kernels === 'all' ? Object.keys(KERNELS) : kernels;
  const installed = ensureHostPackages(log, hostPackagesFor(names));
  const state = readState() || { kernels: {} };
  for (const name of names) {
    const t = Date.now();
    const kernel = ensureGuestKernel(name, log);
    const initramfs = ensureInitramfs(kernel, log);
    state.kernels[name] = { kernel, initramfs, setupAt: new Date().toISOString() };
    log(`kernel ${name}: ${kernel.version} ready (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  }
  writeState(state);
  return { state, names, installed, seconds: (Date.now() - started) / 1000 };
}

// What a run on kernel `name` needs: the recorded kernel and an initramfs
// for today's recipe.
function prepare({ kernel: name = DEFAULT_KERNEL, log = () => {} } = {}) {
  getKernel(name);
  let state = readState();
  let entry = state?.kernels[name];
  // A state written through another path to the cache (a checkout that
  // named it by a link) is set up again: its paths may not exist in the guest.
  const stale = (e) => !e.kernel.vmlinuz.startsWith(paths.cacheDir) || !fs.existsSync(e.kernel.vmlinuz) ||
    (e.kernel.root && !fs.existsSync(e.kernel.root));
  if (!entry || stale(entry)) {
    log(`kernel ${name} not set up yet: running setup`);
    state = setup({ kernels: [name], log }).state;
    entry = state.kernels[name];
  }
  const initramfs = ensureInitramfs(entry.kernel, log);
  // The path is compared too: a state written through another checkout of
  // the same cache (a symlinked .cache) may name an image that is gone.
  if (initramfs.key !== entry.initramfs.key || initramfs.path !== entry.initramfs.path) {
    entry.initramfs = initramfs;
    writeState(state);
  }
  return entry;
}

module.exports = { setup, prepare, readState };
