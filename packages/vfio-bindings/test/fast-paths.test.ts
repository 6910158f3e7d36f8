// The fast paths of the codecs (compiled per-struct code, the Int32Array
// eventfd loop, the DataView cache, pooled capability copies) must reject
// and report exactly what the interpreted code did.
import * as B from '../src';

const TRIGGER = B.VFIO_IRQ_SET_ACTION_TRIGGER;
const irq = (eventfds: unknown[]) => () => B.encodeIrqSet({ flags: TRIGGER, index: 0, start: 0, count: eventfds.length, eventfds: eventfds as number[] });

describe('encodeIrqSet eventfds (Int32Array loop, labels built on failure)', () => {
  test.each([
    [[3, 4, 5, 6, 7, 2 ** 31], 'data[5]', RangeError, 'vfio_irq_set.data[5]: 2147483648 is out of range for s32'],
    [[3, 4, 5, 6, 7, -2], 'data[5]', RangeError, 'vfio_irq_set.data[5]: -2 is not an eventfd (use -1 to de-assign)'],
    [[3, 4, 5, 6, 7, 1.5], 'data[5]', RangeError, 'vfio_irq_set.data[5]: 1.5 is not an integer'],
    [[3, 4, 5, 6, 7, -(2 ** 31) - 1], 'data[5]', RangeError, 'vfio_irq_set.data[5]: -2147483649 is out of range for s32'],
    [[3, 4, 5, 6, 7, '8'], 'data[5]', TypeError, 'vfio_irq_set.data[5]: expected a number for s32, got string "8"'],
    [[3, 4, 5, 6, 7, 8n], 'data[5]', TypeError, 'vfio_irq_set.data[5]: expected a number for s32, got bigint 8'],
    [[NaN], 'data[0]', RangeError, 'vfio_irq_set.data[0]: NaN is not an integer'],
  ])('%j: %s', (fds, field, Ctor, message) => {
    let err: unknown;
    try {
      irq(fds)();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Ctor);
    expect(err).toMatchObject({ code: 'ERR_VFIO_BINDINGS', struct: 'vfio_irq_set', field, message });
  });

  test('checked two at a time: the first bad fd of a pair, or the odd last one, is the one named', () => {
    expect(irq([3, 4, 5, 6, -5, 'x'])).toThrow(expect.objectContaining({ field: 'data[4]', message: 'vfio_irq_set.data[4]: -5 is not an eventfd (use -1 to de-assign)' }));
    expect(irq([3, 4, 5, 6, 7, 8, 2 ** 40])).toThrow(expect.objectContaining({ field: 'data[6]', message: 'vfio_irq_set.data[6]: 1099511627776 is out of range for s32' }));
    const fds = Array.from({ length: 7 }, (_, i) => i * 1000 - 1);
    expect(B.decodeIrqSet(irq(fds)()).eventfds).toEqual(fds);
  });

  test('the extremes -1 and 2^31-1 (and -0) are written exactly', () => {
    const bytes = irq([-1, 2 ** 31 - 1, -0, 0])();
    expect(B.decodeIrqSet(bytes).eventfds).toEqual([-1, 2 ** 31 - 1, 0, 0]);
  });

  test('a hole in a sparse array is rejected, not written as fd 0', () => {
    const fds = [3, , 5]; // eslint-disable-line no-sparse-arrays
    expect(irq(fds)).toThrow(expect.objectContaining({ field: 'data[1]', message: 'vfio_irq_set.data[1]: expected a number for s32, got undefined' }));
  });

  test('an object element is rejected without calling its valueOf', () => {
    const valueOf = jest.fn(() => 7);
    expect(irq([{ valueOf }])).toThrow(expect.objectContaining({ field: 'data[0]' }));
    expect(valueOf).not.toHaveBeenCalled();
  });

  test('header fields keep the codec checks: index and start as u32', () => {
    expect(() => B.encodeIrqSet({ flags: TRIGGER, index: 2 ** 32, start: 0, count: 0 })).toThrow('vfio_irq_set.index: 4294967296 is out of range for u32');
    expect(() => B.encodeIrqSet({ flags: TRIGGER, index: 0, start: 0.5, count: 0 })).toThrow('vfio_irq_set.start: 0.5 is not an integer');
    const bytes = B.encodeIrqSet({ flags: TRIGGER, index: 2 ** 32 - 1, start: 2 ** 31, count: 0 });
    expect(B.vfio_irq_set.decode(bytes)).toMatchObject({ index: 2 ** 32 - 1, start: 2 ** 31 });
  });
});

describe('compiled struct writers: inline range tests agree with checkScalar', () => {
  const t = B.defineStruct<Record<string, unknown>>('t', 'struct', 32, 8, [
    ['u8', 0, 'u8', '__u8'],
    ['s8', 1, 's8', '__s8'],
    ['u16', 2, 'u16', '__u16'],
    ['s16', 4, 's16', '__s16'],
    ['u32', 8, 'u32', '__u32'],
    ['s32', 12, 's32', '__s32'],
    ['u64', 16, 'u64', '__u64'],
    ['s64', 24, 's64', '__s64'],
  ]);
  const limits: [string, number | bigint, number | bigint][] = [
    ['u8', 0, 255], ['s8', -128, 127], ['u16', 0, 65535], ['s16', -32768, 32767],
    ['u32', 0, 2 ** 32 - 1], ['s32', -(2 ** 31), 2 ** 31 - 1], ['u64', 0n, 2n ** 64n - 1n], ['s64', -(2n ** 63n), 2n ** 63n - 1n],
  ];

  test.each(limits)('%s: the limits round-trip, one past them is refused with the field named', (f, min, max) => {
    for (const v of [min, max]) expect(t.decode(t.encode({ [f]: v }))[f]).toBe(typeof min === 'bigint' ? BigInt(v) : v);
    const below = typeof min === 'bigint' ? min - 1n : min - 1;
    const above = typeof max === 'bigint' ? max + 1n : max + 1;
    const neg = f.startsWith('u') ? `${below} is negative but ${f} is unsigned` : `${below} is out of range for ${f}`;
    expect(() => t.encode({ [f]: below })).toThrow(`t.${f}: ${neg}`);
    expect(() => t.encode({ [f]: above })).toThrow(`t.${f}: ${above} is out of range for ${f}`);
  });

  test('64-bit members still take safe-integer numbers; other types get the old messages', () => {
    expect(t.decode(t.encode({ u64: 2 ** 53 - 1, s64: -5 }))).toMatchObject({ u64: 2n ** 53n - 1n, s64: -5n });
    expect(() => t.encode({ u64: 2 ** 53 })).toThrow('t.u64: 9007199254740992 is not a safe integer; pass a bigint for u64');
    expect(() => t.encode({ u32: 1n })).toThrow('t.u32: expected a number for u32, got bigint 1');
    expect(() => t.encode({ u8: true })).toThrow(TypeError);
  });

  test('an object member value is refused without calling its valueOf', () => {
    const valueOf = jest.fn(() => 1);
    expect(() => t.encode({ u16: { valueOf } })).toThrow('t.u16: expected a number for u16, got object');
    expect(valueOf).not.toHaveBeenCalled();
  });

  test('errors in a flexible array of structs name the element, built only then', () => {
    const areas = [{ offset: 0n, size: 1n }, { offset: 0n, size: 1n }, { offset: 0n, size: -1n }];
    expect(() => B.vfio_region_info_cap_sparse_mmap.encode({ nr_areas: 3, areas })).toThrow(
      expect.objectContaining({ struct: 'vfio_region_info_cap_sparse_mmap', field: 'areas[2].size', message: 'vfio_region_info_cap_sparse_mmap.areas[2].size: -1 is negative but u64 is unsigned' }),
    );
  });

  test('field names must be C identifiers: they become keys of compiled code', () => {
    for (const name of ['a-b', '__proto__', '1x', 'a b', '']) {
      expect(() => B.defineStruct('bad', 'struct', 4, 4, [[name, 0, 'u32', '__u32']])).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS', struct: 'bad' }));
    }
    expect(() => B.defineStruct('bad', 'struct', 4, 4, [['n', 0, 'u32', '__u32'], ['xs', 4, 'u32', '__u32', -1]], { countField: 'count' })).toThrow(/count field is not a member/);
  });
});

describe('the cached DataView', () => {
  test('views of one buffer at different offsets, and changed contents, decode correctly', () => {
    const buf = new Uint8Array(64);
    const a = buf.subarray(0, 32);
    const b = buf.subarray(32);
    B.vfio_irq_info.encode({ argsz: 1, count: 10 }, a);
    B.vfio_irq_info.encode({ argsz: 2, count: 20 }, b);
    for (let i = 0; i < 3; i++) {
      expect(B.vfio_irq_info.decode(a)).toMatchObject({ argsz: 1, count: 10 });
      expect(B.vfio_irq_info.decode(b)).toMatchObject({ argsz: 2, count: 20 });
    }
    buf[32] = 9;
    expect(B.vfio_irq_info.decode(b).argsz).toBe(9);
  });

  test('a buffer detached after a decode gives the package error, not a DataView error', () => {
    const bytes = B.vfio_region_info.encode({ argsz: 32 });
    B.vfio_region_info.decode(bytes);
    structuredClone(bytes.buffer, { transfer: [bytes.buffer as ArrayBuffer] });
    expect(() => B.vfio_region_info.decode(bytes)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS', message: expect.stringContaining('buffer too short') }));
    expect(() => B.walkCapabilities(bytes, 'region', 32)).toThrow(/leaves no room/);
  });
});

describe('pooled capability copies', () => {
  const sparseAt = B.vfio_region_info.size;
  const build = () => {
    const areas = [1n, 2n, 3n, 4n].map((i) => ({ offset: i << 12n, size: 0x1000n + i }));
    const total = sparseAt + B.vfio_region_info_cap_sparse_mmap.size + areas.length * B.vfio_region_sparse_mmap_area.size + 3; // odd tail
    const bytes = new Uint8Array(total);
    B.vfio_region_info.encode({ argsz: total, cap_offset: sparseAt }, bytes);
    B.vfio_region_info_cap_sparse_mmap.encode({ header: { id: B.VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1 }, nr_areas: areas.length, areas }, bytes, sparseAt);
    return bytes;
  };

  test('bytes are a copy of the capability: equal to the source range, unaffected by later writes', () => {
    const bytes = build();
    const [cap] = B.walkCapabilities(bytes, 'region', sparseAt);
    const expected = Array.from(bytes.subarray(sparseAt, sparseAt + cap.bytes.length));
    expect(cap.bytes.length).toBe(B.vfio_region_info_cap_sparse_mmap.size + 4 * B.vfio_region_sparse_mmap_area.size);
    bytes.fill(0xee);
    expect(Array.from(cap.bytes)).toEqual(expected);
  });

  test('an unknown capability with an odd length, and many walks across slabs, copy every byte', () => {
    const bytes = new Uint8Array(sparseAt + 8 + 13);
    B.vfio_region_info.encode({ argsz: bytes.length }, bytes);
    B.vfio_info_cap_header.encode({ id: 0x4242, version: 1 }, bytes, sparseAt);
    for (let i = sparseAt + 8; i < bytes.length; i++) bytes[i] = i;
    const copies = Array.from({ length: 2000 }, () => B.walkCapabilities(bytes, 'region', sparseAt)[0].bytes);
    const want = Array.from(bytes.subarray(sparseAt));
    for (const c of copies) expect(Array.from(c)).toEqual(want);
    expect(new Set(copies.map((c) => c.buffer)).size).toBeGreaterThan(1); // the pool rolled over
  });
});
