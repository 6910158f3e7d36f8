'use strict';
// Programmatic entry for other tools (integration suite runner, bench).
const { runInGuest, DEFAULT_TIMEOUT_MS } = require('./run');
const { setup, readState } = require('./setup');
const { PROFILES, getProfile } = require('./profiles');
const { KERNELS, BOOTS, BACKENDS, MATRIX, DEFAULT_KERNEL, getKernel, getBoot, entryName } = require('./kernels');
const { buildCheck } = require('./checks');
const { VmError } = require('./errors');

module.exports = {
  runInGuest, setup, readState, PROFILES, getProfile, KERNELS, BOOTS, BACKENDS, MATRIX, DEFAULT_KERNEL, getKernel, getBoot, entryName,
  buildCheck, VmError, DEFAULT_TIMEOUT_MS,
};
