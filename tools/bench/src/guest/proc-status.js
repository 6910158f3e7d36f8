'use strict';
// What a leak would show: open fds (and what they are, to name a leak),
// memory locked for DMA (vfio type1 charges pinned pages to locked_vm,
// VmLck), pinned pages (VmPin), RSS, V8's own view (heap vs external
// memory) and the bytes malloc has handed out: the last two tell a JS-side
// leak from a native one, and neither moves with fragmentation or heap
// sizing, which RSS does.
const fs = require('node:fs');

// c/malloc_stats.c, built on the host; its path comes in the environment.
const mallocStats = process.env.BENCH_MALLOC_STATS ? require(process.env.BENCH_MALLOC_STATS) : null;

function kib(status, key) {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : null;
}

function fdTargets() {
  const out = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out[fd] = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // the fd of the readdir itself is gone by now
    }
  }
  return out;
}

/**
 * Mappings of VFIO device files (BAR mmaps). Each holds the device file,
 * and with it the group, open in the kernel although no fd shows it: a
 * dropped mapping is released by its buffer's finalizer, and until then
 * the group node answers EBUSY.
 */
function vfioMapCount() {
  let n = 0;
  // Not the addon's own segments (vfio-ioctls.node), which load on first use.
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) if (line.includes('vfio') && !line.endsWith('.node')) n++;
  return n;
}

/** Open fds (cheap: the soak polls it while finalizers run). */
function fdCount() {
  return fs.readdirSync('/proc/self/fd').length;
}

function snapshot({ detail = false } = {}) {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const mem = process.memoryUsage();
  const s = {
    fds: fdCount(),
    vfioMaps: vfioMapCount(),
    lockedKiB: kib(status, 'VmLck'),
    pinnedKiB: kib(status, 'VmPin'),
    rssKiB: kib(status, 'VmRSS'),
    heapUsedKiB: Math.round(mem.heapUsed / 1024),
    externalKiB: Math.round(mem.external / 1024),
    mallocKiB: mallocStats ? Math.round(mallocStats.inUse() / 1024) : null,
  };
  if (detail) s.fdTargets = fdTargets();
  return s;
}

/** The fds open at `end` that were not at `start` (number -> target). */
function newFds(start, end) {
  const out = {};
  for (const [fd, target] of Object.entries(end.fdTargets ?? {})) if (start.fdTargets?.[fd] !== target) out[fd] = target;
  return out;
}

module.exports = { snapshot, newFds, fdCount, vfioMapCount };
