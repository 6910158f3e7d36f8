'use strict';
// What a leak would show: open fds, memory locked for DMA (vfio type1
// charges pinned pages to locked_vm, VmLck), pinned pages (VmPin) and RSS.
const fs = require('node:fs');

function kib(status, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : null;
}

function snapshot() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  return {
    fds: fs.readdirSync('/proc/self/fd').length,
    lockedKiB: kib(status, 'VmLck'),
    pinnedKiB: kib(status, 'VmPin'),
    rssKiB: kib(status, 'VmRSS'),
  };
}

module.exports = { snapshot };
