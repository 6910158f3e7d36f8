import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { nativeBackend as native, PROT_READ } from '../../src/core/native';
import { DmaBuffer, physicalAddress, physicalSegments } from '../../src';
import { packageRoot, tempFile, thrown } from './helpers';

const page = native.pageSize();
const PRESENT = 1n << 63n;
const FRAME = (1n << 55n) - 1n;

/** VmLck of this process, in bytes. */
function lockedBytes(): number {
  const match = /^VmLck:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return Number(match?.[1]) * 1024;
}

/** The pagemap entry of the page at `vaddr`, read through the addon. */
function pagemapEntry(vaddr: bigint): bigint {
  const fd = native.open('/proc/self/pagemap', fs.constants.O_RDONLY);
  try {
    const entry = new Uint8Array(8);
    expect(native.pread(fd, entry, (vaddr / BigInt(page)) * 8n)).toBe(8);
    return new DataView(entry.buffer).getBigUint64(0, true);
  } finally {
    native.close(fd);
  }
}

// The capability tests drop capabilities in a child (setpriv) and lower its
// RLIMIT_MEMLOCK (prlimit); both need root to start from.
const isRoot = process.getuid?.() === 0;
const canDropCaps = isRoot && ['/usr/bin/setpriv', '/usr/bin/prlimit'].every((tool) => fs.existsSync(tool));

/** Runs `body` in a node child without `caps` (capability names) and with RLIMIT_MEMLOCK `memlock` bytes; returns its stdout as JSON. */
function childWithout(caps: string[], memlock: number, body: string): Record<string, unknown> {
  const script = `
    'use strict';
    const root = ${JSON.stringify(packageRoot)};
    const addon = require(require.resolve('node-gyp-build', { paths: [root] }))(root);
    const out = {};
    ${body}
    process.stdout.write(JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  `;
  const drop = caps.map((cap) => `-${cap}`).join(',');
  const result = spawnSync(
    '/usr/bin/prlimit',
    [`--memlock=${memlock}:${memlock}`, '/usr/bin/setpriv', `--bounding-set=${drop}`, `--inh-caps=${drop}`, process.execPath, '-e', script],
    { encoding: 'utf8', timeout: 20000 },
  );
  if (result.status !== 0) throw new Error(`child failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('mlock/munlock of DMA memory', () => {
  it('locks and unlocks the whole buffer (VmLck), counting a second lock once', () => {
    const before = lockedBytes();
    const buffer = native.allocDma(3 * page);
    try {
      native.mlock(buffer);
      native.mlock(buffer);
      expect(lockedBytes() - before).toBe(3 * page);
      native.munlock(buffer);
      expect(lockedBytes()).toBe(before);
    } finally {
      native.freeDma(buffer);
    }
  });

  it('freeDma of a locked buffer drops the lock with the memory (munmap does)', () => {
    const before = lockedBytes();
    const buffer = native.allocDma(2 * page);
    native.mlock(buffer);
    expect(lockedBytes() - before).toBe(2 * page);
    native.freeDma(buffer);
    expect(lockedBytes()).toBe(before);
  });

  it('refuses anything but live allocDma memory, and never crashes', () => {
    const file = native.open(tempFile(page), fs.constants.O_RDWR);
    const mapping = native.mmap(file, page, PROT_READ, 0n);
    const freed = native.allocDma(page);
    native.freeDma(freed);
    try {
      for (const call of [native.mlock, native.munlock]) {
        for (const bad of [new ArrayBuffer(page), mapping, freed]) {
          const error = thrown(() => call(bad));
          expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
          expect(error.message).toContain('"buffer"');
        }
        for (const bad of [undefined, null, 0, 'x', {}, new Uint8Array(page)]) {
          expect(thrown(() => call(bad as unknown as ArrayBuffer))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        }
      }
    } finally {
      native.munmap(mapping);
      native.close(file);
    }
  });

  // The child never hands the addon VfioError (native.ts does), so the class is a plain Error there: the shape is what counts.
  (canDropCaps ? it : it.skip)('past RLIMIT_MEMLOCK without CAP_IPC_LOCK it is an errno error (ENOMEM) from mlock', () => {
    const out = childWithout(['ipc_lock'], page, `
      const buffer = addon.allocDma(${2 * page});
      try { addon.mlock(buffer); out.locked = true; } catch (e) { Object.assign(out, { code: e.code, errno: e.errno, syscall: e.syscall }); }
      addon.freeDma(buffer);
    `);
    expect(out).toEqual({ code: 'ENOMEM', errno: -12, syscall: 'mlock' });
  });
});

describe('/proc/self/pagemap of locked DMA memory', () => {
  (isRoot ? it : it.skip)('as root (CAP_SYS_ADMIN): present, with a non-zero frame', () => {
    const buffer = native.allocDma(page);
    try {
      native.mlock(buffer);
      const entry = pagemapEntry(native.addressOf(buffer));
      expect(entry & PRESENT).toBe(PRESENT);
      expect(entry & FRAME).not.toBe(0n);
    } finally {
      native.freeDma(buffer);
    }
  });

  (canDropCaps ? it : it.skip)('without CAP_SYS_ADMIN: present, frame 0 (what physicalSegments reports as needing root)', () => {
    const out = childWithout(['sys_admin'], 1 << 20, `
      const buffer = addon.allocDma(${page});
      addon.mlock(buffer);
      const fd = addon.open('/proc/self/pagemap', 0);
      const entry = new Uint8Array(8);
      addon.pread(fd, entry, addon.addressOf(buffer) / ${page}n * 8n);
      addon.close(fd);
      out.entry = new DataView(entry.buffer).getBigUint64(0, true);
      addon.freeDma(buffer);
    `);
    const entry = BigInt(out.entry as string);
    expect(entry & PRESENT).toBe(PRESENT);
    expect(entry & FRAME).toBe(0n);
  });

  (isRoot ? it : it.skip)('physicalSegments on the real kernel: locked, page-aligned frames that cover the buffer, agreeing with physicalAddress', () => {
    const before = lockedBytes();
    const buffer = DmaBuffer.alloc(8 * page, { backend: native });
    try {
      const segments = physicalSegments(buffer);
      expect(lockedBytes() - before).toBe(8 * page);
      expect(segments.reduce((sum, s) => sum + s.size, 0)).toBe(8 * page);
      let offset = 0;
      for (const s of segments) {
        expect(s.offset).toBe(offset);
        expect(s.physical).toBeGreaterThan(0n);
        expect(s.physical % BigInt(page)).toBe(0n);
        expect(physicalAddress(buffer, s.offset + 5)).toBe(s.physical + 5n);
        offset += s.size;
      }
    } finally {
      buffer.close();
    }
    expect(lockedBytes()).toBe(before);
  });
});
