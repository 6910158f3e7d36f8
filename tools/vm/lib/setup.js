'use strict';
const fs = require('node:fs');
const { ensureHostPackages } = require('./host-packages');
const { ensureKernel } = require('./kernel');
const { ensureInitramfs } = require('./initramfs');
const paths = require('./paths');

// setup resolves the kernel through apt (which may move on after an apt-get
// update); run uses the kernel that the last setup recorded in state.json, so
// a run never downloads behind the caller's back once set up. The initramfs
// is re-keyed on every run, so an edited recipe takes effect at once.

function setup({ log = () => {} } = {}) {
  const started = Date.now();
  const installed = ensureHostPackages(log);
  const kernel = ensureKernel(log);
  const initramfs = ensureInitramfs(kernel, log);
  const state = { kernel, initramfs, setupAt: new Date().toISOString() };
  fs.mkdirSync(paths.cacheDir, { recursive: true });
  fs.writeFileSync(paths.statePath, JSON.stringify(state, null, 2) + '\n');
  return { ...state, installed, seconds: (Date.now() - started) / 1000 };
}

function readState() {
  try {
    return JSON.parse(fs.readFileSync(paths.statePath, 'utf8'));
  } catch {
    return null;
  }
}

// What a run needs: the recorded kernel and an initramfs for today's recipe.
function prepare({ log = () => {} } = {}) {
  const state = readState();
  if (!state || !fs.existsSync(state.kernel.vmlinuz) || !fs.existsSync(state.kernel.root)) {
    log('test bed not set up yet: running setup');
    return setup({ log });
  }
  const initramfs = ensureInitramfs(state.kernel, log);
  // The path is compared too: a state written through another checkout of
  // the same cache (a symlinked .cache) may name an image that is gone.
  if (initramfs.key !== state.initramfs.key || initramfs.path !== state.initramfs.path) {
    state.initramfs = initramfs;
    fs.writeFileSync(paths.statePath, JSON.stringify(state, null, 2) + '\n');
  }
  return state;
}

module.exports = { setup, prepare, readState };
