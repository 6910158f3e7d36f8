'use strict';
// Programmatic entry for other tools (integration suite runner, bench).
const { runInGuest, DEFAULT_TIMEOUT_MS } = require('./run');
const { setup, readState } = require('./setup');
const { PROFILES, getProfile } = require('./profiles');
const { VmError } = require('./errors');

module.exports = { runInGuest, setup, readState, PROFILES, getProfile, VmError, DEFAULT_TIMEOUT_MS };
