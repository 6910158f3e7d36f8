import * as fs from 'node:fs';
import { nativeBackend as native } from '../../src/core/native';
import { thrown } from './helpers';

/** The /proc/self/smaps entry of the mapping that starts at `address`. */
function smaps(address: bigint): { rssKb: number; flags: string[] } {
  const start = address.toString(16);
  const blocks = fs.readFileSync('/proc/self/smaps', 'utf8').split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const block = blocks.find((entry) => entry.startsWith(`${start}-`));
  if (!block) throw new Error(`no mapping at 0x${start}`);
  const rss = /^Rss:\s+(\d+) kB$/m.exec(block);
  const flags = /^VmFlags:(.*)$/m.exec(block);
  return { rssKb: Number(rss?.[1]), flags: (flags?.[1] ?? '').trim().split(/\s+/) };
}

const page = native.pageSize();

describe('DMA memory', () => {
  it('pageSize is the system page size', () => {
    expect([4096, 16384, 65536]).toContain(page);
  });

  it('is page-aligned, rounded up to whole pages, and zeroed', () => {
    for (const size of [1, page - 1, page, page + 1, 5 * page]) {
      const buffer = native.allocDma(size);
      try {
        expect(buffer.byteLength).toBe(Math.ceil(size / page) * page);
        expect(native.addressOf(buffer) % BigInt(page)).toBe(0n);
        expect(new Uint8Array(buffer).every((byte) => byte === 0)).toBe(true);
      } finally {
        native.freeDma(buffer);
      }
    }
  });

  it('has its own pages from the start (populated, so a read-only MAP_DMA never pins the zero page) and is not inherited by fork', () => {
    const buffer = native.allocDma(16 * page);
    try {
      const { rssKb, flags } = smaps(native.addressOf(buffer));
      expect(rssKb).toBe((16 * page) / 1024);
      expect(flags).toContain('dc'); // MADV_DONTFORK
    } finally {
      native.freeDma(buffer);
    }
  });

  it('is ordinary memory to JS and to the accessors, at a stable address', () => {
    const buffer = native.allocDma(2 * page);
    const other = native.allocDma(page);
    try {
      const address = native.addressOf(buffer);
      expect(native.addressOf(other)).not.toBe(address);
      new DataView(buffer).setUint32(page, 0x12345678, true);
      expect(native.mmioRead32(buffer, page)).toBe(0x12345678);
      native.mmioWrite16(buffer, 6, 0xabcd);
      expect(new Uint16Array(buffer)[3]).toBe(0xabcd);
      expect(native.addressOf(buffer)).toBe(address);
    } finally {
      native.freeDma(buffer);
      native.freeDma(other);
    }
  });

  it('freeDma detaches, and a second free or any later use throws', () => {
    const buffer = native.allocDma(page);
    const view = new Uint32Array(buffer);
    view[0] = 7;
    native.freeDma(buffer);
    expect(buffer.byteLength).toBe(0);
    expect(view.length).toBe(0);
    for (const call of [() => native.freeDma(buffer), () => native.addressOf(buffer), () => native.mmioRead32(buffer, 0)]) {
      expect(thrown(call)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    }
  });

  it('addressOf and freeDma refuse memory the addon did not allocate', () => {
    for (const call of [() => native.addressOf(new ArrayBuffer(page)), () => native.freeDma(new ArrayBuffer(page))]) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      expect(error.message).toContain('"buffer"');
    }
  });

  it('rejects sizes that are not positive safe integers', () => {
    for (const size of [0, -1, 1.5, 2 ** 53, NaN]) {
      const error = thrown(() => native.allocDma(size));
      expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(error.message).toContain('"size"');
    }
  });
});
