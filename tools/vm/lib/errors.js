'use strict';
// One error type for every failure of the harness itself (not of the guest
// command), so the CLI can tell "the test bed broke" from "the command failed".
class VmError extends Error {
  constructor(message, { consolePath, cause, cancelled } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'VmError';
    if (consolePath) this.consolePath = consolePath;
    if (cancelled) this.cancelled = true;
  }
}

module.exports = { VmError };
