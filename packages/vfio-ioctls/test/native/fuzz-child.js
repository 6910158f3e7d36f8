'use strict';
// Run by fuzz.test.ts in a child process (a crash must end the child, not
// the test runner): drives the addon's entry points that take sizes,
// offsets, fds or buffers with hostile values, and prints one JSON line.
//   node fuzz-child.js PACKAGE_ROOT SEED CALLS FILE [no-alloc]
// `no-alloc` leaves allocDma out, for a run without an address-space cap
// (allocDma populates every size it accepts, up to 4 GiB).
// Phase 1 (the edge sweep): every edge value at every argument of every
// entry point, the other arguments valid; a value the argument can never
// take must be a TypeError or RangeError naming the argument. Phase 2:
// CALLS calls with every argument drawn from edge values, valid values and
// random magnitudes (seeded, so a failure can be replayed).
// Left out: open/close/ioctl, which act on fds and memory the fuzzer does
// not own (a random fd closed, a random ioctl writing through a pointer).
const fs = require('node:fs');

const [root, seedText, callsText, file, mode] = process.argv.slice(2);
const addon = require(require.resolve('node-gyp-build', { paths: [root] }))(root);
const page = addon.pageSize();

// mulberry32: small, seedable, good enough to spread the draws.
let state = Number(seedText) >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}
const pick = (list) => list[Math.floor(random() * list.length)];

const EDGES = [
  0, -0, 1, -1, 0.5, 4095, 4096, 4097, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 33,
  2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64, -(2 ** 53), NaN, Infinity, -Infinity, Number.MIN_VALUE,
  0n, 1n, -1n, 4096n, 2n ** 32n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n),
  '4096', '', null, undefined, true, {}, [], () => 0, Symbol('s'),
];

// The fds and buffers the calls may use; rebuilt when a call unmaps or frees them.
const fileFd = addon.open(file, addon.constants.O_RDWR);
const efd = addon.eventfd(0, 0);
const pool = {};
function refill() {
  const live = (b) => b?.byteLength > 0;
  if (live(pool.map) && live(pool.readOnly) && live(pool.dma)) return;
  // A fuzzed setMaxMappingLength may be below the pool's sizes.
  addon.setMaxMappingLength(2 ** 32);
  if (!(pool.map?.byteLength > 0)) pool.map = addon.mmap(fileFd, 16 * page, 3, 0n);
  if (!(pool.readOnly?.byteLength > 0)) pool.readOnly = addon.mmap(fileFd, page, 1, 0n);
  if (!(pool.dma?.byteLength > 0)) pool.dma = addon.allocDma(2 * page);
}
refill();
const foreign = () => pick([new ArrayBuffer(8), new ArrayBuffer(0), new Uint8Array(8), new SharedArrayBuffer(8), new DataView(new ArrayBuffer(8))]);

// Argument kinds: what is valid, and what an argument of the kind can never take.
const KINDS = {
  fd: { valid: () => fileFd, max: 2 ** 31 - 1 },
  efd: { valid: () => efd, max: 2 ** 31 - 1 },
  length: { valid: () => page, min: 1, max: 2 ** 53 - 1 },
  int32: { valid: () => 3, max: 2 ** 31 - 1 },
  count: { valid: () => 8, max: 2 ** 53 - 1 },
  positive: { valid: () => 2 ** 32, min: 1, max: 2 ** 53 - 1 },
  u8: { valid: () => 0x5a, max: 0xff },
  u16: { valid: () => 0x5a5a, max: 0xffff },
  u32: { valid: () => 7, max: 0xffffffff },
  offset: { valid: () => 0n, max: 2 ** 53 - 1, bigMax: 2n ** 63n - 1n },
  u64: { valid: () => 1n, max: 2 ** 53 - 1, bigMax: 2n ** 64n - 1n },
  mapping: { valid: () => pool.map, buffer: true },
  dma: { valid: () => pool.dma, buffer: true },
  bytes: { valid: () => new Uint8Array(8), bytes: true },
  name: { valid: () => 'fuzz', string: true },
};

/** Whether `value` can never be an argument of `kind` (so the call must refuse it, naming it). */
function neverValid(kind, value) {
  const k = KINDS[kind];
  if (k.buffer) return !(value instanceof ArrayBuffer) || !Object.values(pool).includes(value);
  if (k.bytes) return !(value instanceof Uint8Array);
  if (k.string) return typeof value !== 'string';
  if (typeof value === 'bigint') return k.bigMax === undefined || value < 0n || value > k.bigMax;
  if (typeof value !== 'number') return true;
  return !Number.isSafeInteger(value) || value < (k.min ?? 0) || value > k.max;
}

const mmioWidths = { 8: 'u8', 16: 'u16', 32: 'u32', 64: 'u64' };
const ENTRIES = {
  mmap: { args: [['fd', 'fd'], ['length', 'length'], ['prot', 'int32'], ['offset', 'offset']], undo: (b) => addon.munmap(b) },
  munmap: { args: [['buffer', 'mapping']] },
  allocDma: { args: [['size', 'length']], undo: (b) => addon.freeDma(b) },
  freeDma: { args: [['buffer', 'dma']] },
  addressOf: { args: [['buffer', 'mapping']] },
  mlock: { args: [['buffer', 'dma']] },
  munlock: { args: [['buffer', 'dma']] },
  pread: { args: [['fd', 'fd'], ['buffer', 'bytes'], ['offset', 'offset']] },
  pwrite: { args: [['fd', 'fd'], ['buffer', 'bytes'], ['offset', 'offset']] },
  memfd: { args: [['name', 'name'], ['size', 'count']], undo: (fd) => addon.close(fd) },
  eventfd: { args: [['initval', 'u32'], ['flags', 'int32']], undo: (fd) => addon.close(fd) },
  eventfdWrite: { args: [['fd', 'efd'], ['value', 'u64']] },
  setMaxMappingLength: { args: [['length', 'positive']] },
};
for (const [width, kind] of Object.entries(mmioWidths)) {
  ENTRIES[`mmioRead${width}`] = { args: [['buffer', 'mapping'], ['offset', 'count']] };
  ENTRIES[`mmioWrite${width}`] = { args: [['buffer', 'mapping'], ['offset', 'count'], ['value', kind]] };
}
if (mode === 'no-alloc') delete ENTRIES.allocDma;

const outcome = { calls: 0, returned: 0, argErrors: 0, syscallErrors: 0, bad: [] };
const describe = (v) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'symbol' ? 'Symbol' : typeof v === 'function' ? 'function' : v instanceof Object ? v.constructor.name : String(v));

/** One call; `mustRefuse` names the argument that must be refused. */
function call(name, args, mustRefuse) {
  // eventfdWrite writes 8 bytes to whatever fd it gets: never stdout or
  // one of libuv's, only our eventfd or an fd that is not open.
  if (name === 'eventfdWrite' && Number.isSafeInteger(args[0]) && args[0] >= 0 && args[0] < 1024 && args[0] !== efd) args[0] = 1023;
  outcome.calls++;
  const where = () => `${name}(${args.map(describe).join(', ')})`;
  let result;
  try {
    result = addon[name](...args);
  } catch (error) {
    if (!(error instanceof Error) || typeof error.code !== 'string') {
      outcome.bad.push(`${where()} threw ${describe(error)} without a code`);
    } else if (typeof error.syscall === 'string') {
      outcome.syscallErrors++;
      if (mustRefuse) outcome.bad.push(`${where()} reached ${error.syscall} (${error.code}) instead of refusing "${mustRefuse}"`);
    } else {
      outcome.argErrors++;
      const named = error.message.includes(`"${mustRefuse}"`);
      if (mustRefuse && (!['TypeError', 'RangeError'].includes(error.name) || !named)) {
        outcome.bad.push(`${where()} threw ${error.name} "${error.message}", not an argument error naming "${mustRefuse}"`);
      }
    }
    refill();
    return;
  }
  outcome.returned++;
  if (mustRefuse) outcome.bad.push(`${where()} returned instead of refusing "${mustRefuse}"`);
  ENTRIES[name].undo?.(result);
  refill();
}

// Phase 1: the edge sweep.
for (const [name, { args }] of Object.entries(ENTRIES)) {
  args.forEach(([argName, kind], i) => {
    for (const edge of [...EDGES, foreign()]) {
      const values = args.map(([, k], j) => (j === i ? edge : KINDS[k].valid()));
      call(name, values, neverValid(kind, edge) ? argName : undefined);
    }
  });
  // The limit may have been changed by the sweep: back to Node 20's.
  addon.setMaxMappingLength(2 ** 32);
}

// Phase 2: seeded random calls.
function draw(kind) {
  switch (Math.floor(random() * 4)) {
    case 0: return pick(EDGES);
    case 1: return KINDS[kind].valid();
    case 2: {
      const n = 2 ** Math.floor(random() * 65) + pick([-1, 0, 1]);
      return random() < 0.3 ? BigInt(Math.floor(n)) : random() < 0.2 ? -n : n;
    }
    default: return pick([foreign(), pool.map, pool.readOnly, pool.dma, fileFd, efd, 0, 1, 2, 1000]);
  }
}
const names = Object.keys(ENTRIES);
for (let i = 0; i < Number(callsText); i++) {
  const name = pick(names);
  call(name, ENTRIES[name].args.map(([, kind]) => draw(kind)));
}

for (const buffer of [pool.map, pool.readOnly]) if (buffer.byteLength > 0) addon.munmap(buffer);
if (pool.dma.byteLength > 0) addon.freeDma(pool.dma);
addon.close(fileFd);
addon.close(efd);
const left = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(file)).length;
outcome.bad = outcome.bad.slice(0, 20);
console.log(JSON.stringify({ ...outcome, left }));
