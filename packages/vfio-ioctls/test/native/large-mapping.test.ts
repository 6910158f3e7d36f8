import * as fs from 'node:fs';
import * as path from 'node:path';
import { MAX_MAPPING_LENGTH } from '../../src/core/backend';
import { nativeBackend as native, O_RDWR, PROT_READ, PROT_WRITE } from '../../src/core/native';
import { runChild } from './child';
import { removeTempDirs, tempDir } from './helpers';

// Mappings and file offsets past 4 GiB, on sparse files (the kernel
// allocates only the pages written, so a 17 GiB file costs a few pages).
// Whatever can crash the process runs in a child, so that a crash is a
// failed test (signal set) rather than a dead test runner.

const GiB = 2 ** 30;
const page = native.pageSize();

afterAll(removeTempDirs);

function sparseFile(size: number): string {
  const file = path.join(tempDir(), 'sparse');
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return file;
}

/** Runs `body` in a child with `fd` open O_RDWR on `file` and `mapped()` counting its mappings of the file. */
function inChild(file: string, body: string) {
  const result = runChild(`
    const fs = require('node:fs');
    const file = ${JSON.stringify(file)};
    const mapped = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(file)).length;
    const fd = addon.open(file, addon.constants.O_RDWR);
    const attempt = (fn) => { try { return { value: fn() }; } catch (e) { return { name: e.name, code: e.code, message: e.message }; } };
    ${body}
  `);
  // A crash inside the addon shows here as a signal, never as a thrown error.
  expect({ signal: result.signal, status: result.status, stderr: result.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('mappings longer than one ArrayBuffer', () => {
  const file = () => sparseFile(17 * GiB);

  it('the addon alone assumes Node 20\'s 2^32 and refuses more before mmap, naming the length', () => {
    const out = inChild(file(), `
      const results = [2 ** 32 + 4096, 8 * 2 ** 30, 2 ** 53 - 1].map((length) => attempt(() => addon.mmap(fd, length, 3, 0n)));
      console.log(JSON.stringify({ results, left: mapped() }));
    `);
    for (const result of out.results as Record<string, unknown>[]) {
      expect(result).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/"length".*<= 4294967296/) });
    }
    expect(out.left).toBe(0);
  });

  it('a limit set past what Node allows fails cleanly (was SIGSEGV in ExposeMapping) and leaves nothing mapped', () => {
    const out = inChild(file(), `
      addon.setMaxMappingLength(2 ** 40);
      const results = [2 ** 32 + 4096, 8 * 2 ** 30].map((length) => {
        const r = attempt(() => addon.mmap(fd, length, 3, 0n));
        if (r.value) { r.value = r.value.byteLength; }
        return r;
      });
      console.log(JSON.stringify({ results, left: mapped(), maxLength: require('node:buffer').constants.MAX_LENGTH }));
    `);
    const results = out.results as Record<string, unknown>[];
    [2 ** 32 + 4096, 8 * GiB].forEach((length, i) => {
      // Node 20 refuses (ERR_BUFFER_TOO_LARGE); a Node whose limit is higher maps it.
      if (length > (out.maxLength as number)) expect(results[i]).toMatchObject({ code: 'ERR_BUFFER_TOO_LARGE' });
      else expect(results[i]).toEqual({ value: length });
    });
    expect(out.left).toBe(0);
  });

  it('allocDma refuses more than one ArrayBuffer before allocating (MAP_POPULATE would fault it all in)', () => {
    const out = inChild(file(), `
      addon.setMaxMappingLength(64 * 1024);
      const over = attempt(() => addon.allocDma(64 * 1024 + 1));
      const fits = attempt(() => addon.allocDma(64 * 1024).byteLength);
      console.log(JSON.stringify({ over, fits }));
    `);
    expect(out.over).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/"size".*<= 65536/) });
    expect(out.fits).toEqual({ value: 64 * 1024 });
  });

  it('nativeBackend tells the addon this Node\'s limit', () => {
    const fd = native.open(sparseFile(page), O_RDWR);
    try {
      expect(() => native.mmap(fd, MAX_MAPPING_LENGTH + 1, PROT_READ, 0n)).toThrow(
        expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining(`<= ${MAX_MAPPING_LENGTH}.`) }),
      );
      expect(() => native.allocDma(MAX_MAPPING_LENGTH + 1)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('"size"') }));
    } finally {
      native.close(fd);
    }
  });
});

describe('a 4 GiB mapping and offsets past 2^32', () => {
  let fd: number;
  beforeAll(() => {
    fd = native.open(sparseFile(17 * GiB), O_RDWR);
  });
  afterAll(() => native.close(fd));

  function preadBytes(offset: number, length: number): number[] {
    const bytes = new Uint8Array(length);
    expect(native.pread(fd, bytes, BigInt(offset))).toBe(length);
    return [...bytes];
  }

  it('maps 4 GiB whole: every view spans it and the last bytes are the file\'s', () => {
    const buffer = native.mmap(fd, 4 * GiB, PROT_READ | PROT_WRITE, 0n);
    try {
      expect(buffer.byteLength).toBe(4 * GiB);
      // The lengths Region's windows use; `byteLength >>> 1` was 0 here.
      expect(new Uint16Array(buffer, 0, Math.floor(buffer.byteLength / 2)).length).toBe(2 * GiB);
      const u64 = new BigUint64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
      expect(u64.length).toBe(GiB / 2);
      Atomics.store(u64, u64.length - 1, 0x0807060504030201n);
      expect(preadBytes(4 * GiB - 8, 8)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      native.pwrite(fd, Uint8Array.of(0xaa, 0xbb), BigInt(4 * GiB - 2));
      expect(native.mmioRead16(buffer, 4 * GiB - 2)).toBe(0xbbaa);
      expect(native.mmioRead8(buffer, 0)).toBe(0); // nothing wrapped onto the start
    } finally {
      native.munmap(buffer);
    }
  });

  it('maps a page at file offsets past 2^32 and 2^33 (bigint or number) and agrees with pread/pwrite', () => {
    for (const offset of [4 * GiB, 8 * GiB, 12 * GiB + page, 16 * GiB]) {
      const buffer = native.mmap(fd, page, PROT_READ | PROT_WRITE, BigInt(offset));
      const byNumber = native.mmap(fd, page, PROT_READ, offset as unknown as bigint);
      try {
        native.mmioWrite32(buffer, 8, offset / page);
        expect(preadBytes(offset + 8, 4)).toEqual([...new Uint8Array(new Uint32Array([offset / page]).buffer)]);
        native.pwrite(fd, Uint8Array.of(0x5a), BigInt(offset + 100));
        expect(native.mmioRead8(buffer, 100)).toBe(0x5a);
        expect(native.mmioRead32(byNumber, 8)).toBe(offset / page);
        // The same offset modulo 2^32 is a different place.
        expect(preadBytes(offset % (4 * GiB) + 100, 1)).not.toEqual([0x5a]);
      } finally {
        native.munmap(buffer);
        native.munmap(byNumber);
      }
    }
  });

  it('pread/pwrite take every offset a file can have, and refuse past off_t', () => {
    for (const offset of [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 33 - 3, 2 ** 33, 3 * 2 ** 32 + 7]) {
      const data = Uint8Array.of(offset & 0xff, 0x11, 0x22);
      expect(native.pwrite(fd, data, BigInt(offset))).toBe(3);
      expect(preadBytes(offset, 3)).toEqual([...data]);
    }
    expect(() => native.pread(fd, new Uint8Array(1), 2n ** 63n)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('"offset"') }));
    expect(() => native.pread(fd, new Uint8Array(1), 2n ** 64n)).toThrow(expect.objectContaining({ name: 'RangeError' }));
  });
});
