import * as b from 'vfio-bindings';
import { Device, DmaBuffer } from '../src';
import { MAX_MAPPING_LENGTH } from '../src/core/backend';
import { EDU, GROUP, kernel, wrap } from './helpers';

// GPU-sized BARs on the fake kernel, which stores a region over 1 GiB
// sparsely (only the pages written exist): offsets around 2^32, 2^33 and
// 3 * 2^32 through pread/pwrite, whole and partial mappings, and the
// argument checks of each, none of which may reach the kernel.

const GiB = 2 ** 30;
const PAGE = 4096;
const RWM = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE | b.VFIO_REGION_INFO_FLAG_MMAP;

/** BAR0 16 GiB, BAR2 4 GiB, BAR4 8 GiB whose mmappable areas leave a hole across 2^32. */
const REGIONS = [
  { index: 0, size: 16 * GiB, flags: RWM },
  { index: 2, size: 4 * GiB, flags: RWM },
  { index: 4, size: 8 * GiB, flags: RWM, sparseAreas: [{ offset: 0, size: 4 * GiB - 16 * PAGE }, { offset: 4 * GiB + 16 * PAGE, size: 4 * GiB - 16 * PAGE }] },
];

/** Offsets just below and above each 2^32 boundary of a 16 GiB BAR, for a `width`-byte access. */
function boundaryOffsets(width: number, size = 16 * GiB): number[] {
  const offsets: number[] = [];
  for (const boundary of [2 ** 32, 2 ** 33, 3 * 2 ** 32]) if (boundary < size) offsets.push(boundary - width, boundary, boundary + 8 * width);
  offsets.push(size - width);
  return offsets;
}

function open(options?: { directMmio?: boolean }) {
  const k = kernel([{ address: EDU, group: GROUP, regions: REGIONS }], options);
  const device = Device.open(EDU, k.env);
  return { ...k, device, fakeDevice: k.devices[0]! };
}

/** A width-byte little-endian value that differs per offset and width. */
function valueAt(offset: number, width: number): bigint {
  return BigInt.asUintN(width * 8, BigInt(offset) * 0x9e37_79b9n + BigInt(width));
}

function bytesOf(value: bigint, width: number): number[] {
  return Array.from({ length: width }, (_, i) => Number((value >> BigInt(8 * i)) & 0xffn));
}

const WIDTHS = [1, 2, 4, 8] as const;

describe('a 16 GiB BAR through pread/pwrite', () => {
  test('typed accessors at every width below and above 2^32, 2^33 and 3 * 2^32 land there and nowhere else', () => {
    const { device, fakeDevice } = open();
    const bar = device.region(0)!;
    expect(bar.size).toBe(16n * 2n ** 30n);
    for (const width of WIDTHS) {
      for (const offset of boundaryOffsets(width)) {
        const value = valueAt(offset, width);
        const at = width === 8 && offset % 2 === 0 ? BigInt(offset) : offset; // numbers and bigints alike
        if (width === 1) bar.writeUint8(at, Number(value));
        if (width === 2) bar.writeUint16(at, Number(value));
        if (width === 4) bar.writeUint32(at, Number(value));
        if (width === 8) bar.writeBigUint64(at, value);
        expect([...fakeDevice.readRegion(0, offset, width)]).toEqual(bytesOf(value, width));
        const back = width === 1 ? bar.readUint8(offset) : width === 2 ? bar.readUint16(offset) : width === 4 ? bar.readUint32(offset) : bar.readBigUint64(offset);
        expect(BigInt(back)).toBe(value);
      }
    }
    // Nothing wrapped onto the same offsets modulo 2^32.
    expect([...fakeDevice.readRegion(0, 0, 64)].every((x) => x === 0)).toBe(true);
    expect(fakeDevice.regionModel(0)!.allocatedPages).toBeLessThan(32);
    device.close();
  });

  test('read()/write() of a span across 2^32, with number and bigint offsets', () => {
    const { device, fakeDevice } = open();
    const bar = device.region(0)!;
    const data = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    bar.write(2 ** 32 - 16, data);
    expect([...fakeDevice.readRegion(0, 2 ** 32 - 16, 32)]).toEqual([...data]);
    expect([...bar.read(2n ** 32n - 16n, 32)]).toEqual([...data]);
    expect([...bar.read(2 ** 32, 16)]).toEqual([...data.subarray(16)]);
    device.close();
  });

  test('bad offsets are refused naming "offset", before the kernel', () => {
    const { fake, device } = open();
    const bar = device.region(0)!;
    void bar.readUint8(0);
    const before = fake.calls.length;
    const cases: [unknown, string][] = [
      [-1, 'RangeError'], [-1n, 'RangeError'], [0.5, 'TypeError'], [NaN, 'TypeError'], [Infinity, 'TypeError'],
      [2 ** 64, 'TypeError'], [2n ** 64n, 'RangeError'], [16 * GiB, 'RangeError'], [16n * 2n ** 30n, 'RangeError'],
      ['8', 'TypeError'], [null, 'TypeError'],
    ];
    for (const [offset, name] of cases) {
      for (const access of [() => bar.readUint32(offset as number), () => bar.read(offset as number, 1), () => bar.write(offset as number, Uint8Array.of(1)), () => bar.writeBigUint64(offset as number, 1n)]) {
        expect(access).toThrow(expect.objectContaining({ name, message: expect.stringContaining('offset') }));
      }
    }
    // Inside, but the access runs past the end; misaligned above 2^32.
    expect(() => bar.read(16 * GiB - 4, 8)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('past the end') }));
    expect(() => bar.readUint32(2 ** 32 + 2)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => bar.read(0, MAX_MAPPING_LENGTH + 1)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('length') }));
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('a read longer than Linux moves in one call goes in 1 GiB pieces at the right offsets', () => {
    const k = kernel([{ address: EDU, group: GROUP, regions: REGIONS }]);
    const calls: [number, bigint][] = [];
    const backend = wrap(k.fake, {
      pread: (_fd, buffer, offset) => {
        calls.push([buffer.length, offset]);
        buffer[0] = calls.length;
        return buffer.length;
      },
    });
    using device = Device.open(EDU, { ...k.env, backend });
    const bar = device.region(0)!;
    const bytes = bar.read(2 ** 32 + 8, 2 * GiB + 5);
    expect(calls).toEqual([[GiB, bar.offset + 2n ** 32n + 8n], [GiB, bar.offset + 2n ** 32n + 8n + BigInt(GiB)], [5, bar.offset + 2n ** 32n + 8n + BigInt(2 * GiB)]]);
    expect([bytes[0], bytes[GiB], bytes[2 * GiB]]).toEqual([1, 2, 3]);
  });
});

describe('mapping a 16 GiB BAR', () => {
  test('map() covers it in windows of at most one ArrayBuffer, and aligned accesses at each boundary work and agree with pread', () => {
    const { device, fakeDevice } = open();
    const bar = device.region(0)!;
    const mapping = bar.map();
    const longest = Math.floor(MAX_MAPPING_LENGTH / PAGE) * PAGE;
    const expected: [number, number][] = [];
    for (let at = 0; at < 16 * GiB; at += longest) expected.push([at, Math.min(longest, 16 * GiB - at)]);
    expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual(expected);
    for (const width of WIDTHS) {
      for (const offset of boundaryOffsets(width)) {
        const value = valueAt(offset, width);
        if (width === 8) mapping.write64(offset, value);
        else (width === 1 ? mapping.write8 : width === 2 ? mapping.write16 : mapping.write32).call(mapping, offset, Number(value));
        expect([...bar.read(offset, width)]).toEqual(bytesOf(value, width));
        // And the other way: pwrite, then a load through the mapping.
        const other = BigInt.asUintN(width * 8, ~value);
        bar.write(offset, Uint8Array.from(bytesOf(other, width)));
        const read = width === 8 ? mapping.read64(offset) : BigInt((width === 1 ? mapping.read8 : width === 2 ? mapping.read16 : mapping.read32).call(mapping, offset));
        expect(read).toBe(other);
        expect([...fakeDevice.readRegion(0, offset, width)]).toEqual(bytesOf(other, width));
      }
    }
    mapping.unmap();
    expect(fakeDevice.regionModel(0)!.allocatedPages).toBeLessThan(32);
    device.close();
  });

  test('map({ offset, size }) maps a part across 2^32 as one window; the fake fills it from what was written', () => {
    const { fake, device, fakeDevice } = open();
    const bar = device.region(0)!;
    bar.writeUint32(2 ** 32 + 4, 0xfeedf00d);
    const mapping = bar.map({ offset: 2n ** 32n - 4096n, size: 2 * PAGE });
    expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual([[2 ** 32 - PAGE, 2 * PAGE]]);
    expect(fake.liveMmaps()).toBe(1);
    expect(mapping.read32(2 ** 32 + 4)).toBe(0xfeedf00d);
    mapping.write64(2 ** 32 - 8, 0x0102030405060708n);
    expect(bar.readBigUint64(2 ** 32 - 8)).toBe(0x0102030405060708n);
    expect(() => mapping.read32(2 ** 32 + PAGE)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('not in a mapped window') }));
    expect(() => mapping.read32(4)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    mapping.unmap();
    expect(fake.liveMmaps()).toBe(0);
    expect([...fakeDevice.readRegion(0, 2 ** 32 - 8, 8)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    device.close();
  });

  test('map({ offset }) maps to the end, from 3 * 2^32; map({ size }) from 0', () => {
    const { device } = open();
    const bar = device.region(0)!;
    const tail = bar.map({ offset: 3 * 2 ** 32 });
    expect(tail.windows.map((w) => [w.offset, w.size])).toEqual([[3 * 2 ** 32, 16 * GiB - 3 * 2 ** 32]]);
    const head = bar.map({ size: 8n * 1024n });
    expect(head.windows.map((w) => [w.offset, w.size])).toEqual([[0, 8192]]);
    tail.write32(16 * GiB - 4, 0x11111111);
    expect(bar.readUint32(16 * GiB - 4)).toBe(0x11111111);
    device.close();
  });

  test('bad options are refused naming them, before any mmap', () => {
    const { fake, device } = open();
    const bar = device.region(0)!;
    const sparse = device.region(4)!;
    const before = fake.calls.length;
    const refused: [() => unknown, Record<string, unknown>][] = [
      [() => bar.map({ offset: 2 ** 32 + 8 }), { name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('options.offset') }],
      [() => bar.map({ offset: -4096 }), { name: 'RangeError', message: expect.stringContaining('options.offset') }],
      [() => bar.map({ offset: NaN }), { name: 'TypeError', message: expect.stringContaining('options.offset') }],
      [() => bar.map({ offset: 4096.5 }), { name: 'TypeError', message: expect.stringContaining('options.offset') }],
      [() => bar.map({ offset: 2n ** 64n }), { name: 'RangeError', message: expect.stringContaining('options.offset') }],
      [() => bar.map({ offset: 16 * GiB }), { name: 'RangeError', message: expect.stringMatching(/options.offset.*past the end/) }],
      [() => bar.map({ offset: 0, size: 0 }), { name: 'RangeError', message: expect.stringContaining('options.size') }],
      [() => bar.map({ size: -1 }), { name: 'RangeError', message: expect.stringContaining('options.size') }],
      [() => bar.map({ size: 16 * GiB + 1 }), { name: 'RangeError', message: expect.stringMatching(/options.size.*past the end of region 0/) }],
      [() => bar.map({ offset: 15 * GiB, size: 2 * GiB }), { name: 'RangeError', message: expect.stringContaining('options.size') }],
      [() => bar.map({ size: 2 ** 53 }), { name: 'TypeError', message: expect.stringContaining('options.size') }],
      [() => bar.map({ size: '4096' as never }), { name: 'TypeError', message: expect.stringContaining('options.size') }],
      [() => bar.map({ ofset: 0 } as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.ofset is not a known option') }],
      [() => bar.map(4096 as never), { name: 'TypeError', message: expect.stringContaining('options') }],
      // The hole of BAR4 across 2^32, and a part running out of its first area.
      [() => sparse.map({ offset: 2 ** 32 }), { name: 'RangeError', message: expect.stringMatching(/options.offset.*not in an mmappable area/) }],
      [() => sparse.map({ offset: 0, size: 4 * GiB }), { name: 'RangeError', message: expect.stringMatching(/options.size.*mmappable area 0x0\+/) }],
    ];
    for (const [call, error] of refused) expect(call).toThrow(expect.objectContaining(error));
    expect(fake.calls.filter((c) => c.syscall === 'mmap')).toEqual([]);
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('a sparse BAR maps its areas, a part inside the second one, and skips the hole', () => {
    const { device } = open();
    const bar = device.region(4)!;
    const whole = bar.map();
    expect(whole.windows[0]!.offset).toBe(0);
    expect(whole.windows.at(-1)!.offset + whole.windows.at(-1)!.size).toBe(8 * GiB);
    expect(() => whole.read32(2 ** 32)).toThrow(expect.objectContaining({ message: expect.stringContaining('not in a mapped window') }));
    const part = bar.map({ offset: 2 ** 32 + 16 * PAGE, size: PAGE });
    part.write32(2 ** 32 + 16 * PAGE, 0xabcdef01);
    expect(whole.read32(2 ** 32 + 16 * PAGE)).toBe(0xabcdef01);
    device.close();
  });

  test('a 4 GiB BAR maps as one window (typed arrays on the mapping, as on the real kernel)', () => {
    const { device, fakeDevice } = open({ directMmio: true });
    const bar = device.region(2)!;
    const mapping = bar.map();
    if (MAX_MAPPING_LENGTH >= 4 * GiB) expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual([[0, 4 * GiB]]);
    for (const width of WIDTHS) {
      const offset = 4 * GiB - 8 * width;
      const value = valueAt(offset, width);
      if (width === 8) mapping.write64(offset, value);
      else (width === 1 ? mapping.write8 : width === 2 ? mapping.write16 : mapping.write32).call(mapping, offset, Number(value));
      // The views' stores reach the fake's mapping memory, which pread reads while it is mapped.
      expect([...bar.read(offset, width)]).toEqual(bytesOf(value, width));
    }
    expect(mapping.read64(0)).toBe(0n);
    expect([...fakeDevice.readRegion(2, 0, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    mapping.unmap();
    device.close();
  });
});

describe('DMA memory', () => {
  test('more than one ArrayBuffer holds is a RangeError naming size, before any allocation', () => {
    const { fake, env } = kernel();
    expect(() => DmaBuffer.alloc(MAX_MAPPING_LENGTH + 1, env)).toThrow(
      expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/^size .*buffer.constants.MAX_LENGTH/) }),
    );
    expect(fake.calls.filter((c) => c.syscall === 'allocDma')).toEqual([]);
  });
});
