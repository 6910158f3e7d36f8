// Input validation that a user found missing: count fields that disagree with
// their flexible array, unknown vfio_irq_set flag bits, and wrong-type offsets
// and counts reported as RangeError instead of the TypeError the README
// promises.
import * as B from '../src';
import { allCodecs, type AnyCodec } from './helpers/codecs';

/** The error fn throws (fails the test when it does not throw). */
function thrown(fn: () => unknown): Error & { code: string; struct: string; field: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code: string; struct: string; field: string };
  }
  throw new Error('expected a throw');
}

function expectBindingsError(fn: () => unknown, cls: typeof TypeError | typeof RangeError, struct: string, field: string, message?: RegExp): void {
  const e = thrown(fn);
  expect(e.constructor).toBe(cls);
  expect(e).toMatchObject({ code: 'ERR_VFIO_BINDINGS', struct, field });
  expect(e.message.startsWith(`${struct}.${field}: `)).toBe(true);
  if (message) expect(e.message).toMatch(message);
}

describe('a count field and its flexible array must agree', () => {
  const counted = allCodecs.filter((c) => c.flex?.countField);
  // One zero-filled element of the flexible array, whatever its type.
  const element = (c: AnyCodec): unknown => c.flex!.element.decode(new Uint8Array(c.flex!.element.size));

  test('every counted flexible array is covered', () => {
    expect(counted.map((c) => c.name).sort()).toEqual([
      'vfio_device_feature_dma_buf',
      'vfio_iommu_type1_info_cap_iova_range',
      'vfio_pci_hot_reset',
      'vfio_pci_hot_reset_info',
      'vfio_region_info_cap_sparse_mmap',
    ]);
  });

  test.each(counted.map((c) => [c.name, c] as const))('%s: a count that differs from the array length is a RangeError naming both', (_n, c) => {
    const { field, countField } = c.flex!;
    const one = [element(c)];
    const three = [element(c), element(c), element(c)];
    const msg = new RegExp(`${countField} is 3 but ${field} has 1 element`);
    expectBindingsError(() => c.encode({ [countField!]: 3, [field]: one }), RangeError, c.name, countField!, msg);
    expectBindingsError(() => c.encodedSize({ [countField!]: 3, [field]: one }), RangeError, c.name, countField!, msg);
    expectBindingsError(() => c.encode({ [countField!]: 1, [field]: three }), RangeError, c.name, countField!, new RegExp(`${countField} is 1 but ${field} has 3 elements`));
    expectBindingsError(() => c.encode({ [countField!]: 2, [field]: [] }), RangeError, c.name, countField!);
    // Into a target: rejected before anything is written.
    const target = new Uint8Array(c.size + 3 * c.flex!.element.size).fill(0xee);
    expect(() => c.encode({ [countField!]: 3, [field]: one }, target)).toThrow(RangeError);
    expect(target.every((b) => b === 0xee)).toBe(true);
  });

  test.each(counted.map((c) => [c.name, c] as const))('%s: an omitted count is filled from the array, and decode reads the array back', (_n, c) => {
    const { field, countField } = c.flex!;
    const two = [element(c), element(c)];
    const bytes = c.encode({ [field]: two });
    const d = c.decode(bytes) as Record<string, unknown>;
    expect(d[countField!]).toBe(2);
    expect(d[field]).toEqual(two);
    // The same into a target at an offset.
    const target = new Uint8Array(8 + bytes.length);
    c.encode({ [field]: two }, target, 8);
    expect(target.subarray(8)).toEqual(bytes);
  });

  test('a matching count, a count alone, and a count of the wrong type behave as before', () => {
    const c = B.vfio_pci_hot_reset;
    expect(c.decode(c.encode({ count: 2, group_fds: [5, 9] }))).toMatchObject({ count: 2, group_fds: [5, 9] });
    // A count without the array is a header for elements written separately (encodeArray).
    expect(Array.from(c.encode({ count: 2 }))).toEqual(Array.from(c.encode({ count: 2, group_fds: [0, 0] }).subarray(0, c.size)));
    // A wrong type is the count field's own TypeError, not a disagreement.
    expectBindingsError(() => c.encode({ count: '1' as never, group_fds: [5] }), TypeError, 'vfio_pci_hot_reset', 'count');
    expectBindingsError(() => c.encode({ count: 1n as never, group_fds: [5] }), TypeError, 'vfio_pci_hot_reset', 'count');
    expectBindingsError(() => c.encode({ count: 3n as never, group_fds: [5] }), TypeError, 'vfio_pci_hot_reset', 'count');
    expectBindingsError(() => c.encode({ count: -1, group_fds: [5] }), RangeError, 'vfio_pci_hot_reset', 'count', /negative/);
  });

  test('a count field narrower than the array length is a RangeError, not a wrapped count', () => {
    const c = B.defineStruct<{ n: number; items?: number[] }>('test_u8_count', 'struct', 1, 1, [
      ['n', 0, 'u8', '__u8'],
      ['items', 1, 'u8', '__u8', -1],
    ], { countField: 'n' });
    expect(c.decode(c.encode({ items: [7, 8] }))).toEqual({ n: 2, items: [7, 8] });
    expectBindingsError(() => c.encode({ items: new Array(256).fill(0) }), RangeError, 'test_u8_count', 'n', /256/);
    // encode writes the count itself, so it must be a plain scalar member.
    const rows = [['n', 0, 'u8', '__u8', 2], ['items', 2, 'u8', '__u8', -1]] as const;
    expectBindingsError(() => B.defineStruct('test_bad_count', 'struct', 2, 1, rows, { countField: 'n' }), TypeError, 'test_bad_count', 'n');
  });
});

describe('encodeIrqSet flags', () => {
  const T = B.VFIO_IRQ_SET_ACTION_TRIGGER;
  const known = B.VFIO_IRQ_SET_DATA_TYPE_MASK | B.VFIO_IRQ_SET_ACTION_TYPE_MASK;

  test.each([
    [0x40, '0x40'],
    [0x80000000, '0x80000000'],
    [0x100 | 0x40, '0x140'],
  ])('unknown bit(s) %s are a RangeError naming flags and the bits in hex', (bits, hex) => {
    const flags = (T | bits) >>> 0;
    expectBindingsError(() => B.encodeIrqSet({ flags, index: 0, start: 0, count: 0 }), RangeError, 'vfio_irq_set', 'flags', new RegExp(`unknown bits ${hex}\\b`));
    expectBindingsError(() => B.encodeIrqSet({ flags: (flags | B.VFIO_IRQ_SET_DATA_EVENTFD) >>> 0, index: 0, start: 0, count: 1, eventfds: [3] }), RangeError, 'vfio_irq_set', 'flags', new RegExp(hex));
  });

  test('every single unknown bit is rejected; every known DATA/ACTION pair is accepted', () => {
    for (let bit = 0; bit < 32; bit++) {
      const b = (1 << bit) >>> 0;
      if (b & known) continue;
      expect(() => B.encodeIrqSet({ flags: (T | b) >>> 0, index: 0, start: 0, count: 0 })).toThrow(RangeError);
    }
    for (const action of [B.VFIO_IRQ_SET_ACTION_MASK, B.VFIO_IRQ_SET_ACTION_UNMASK, T]) {
      expect(B.decodeIrqSet(B.encodeIrqSet({ flags: action | B.VFIO_IRQ_SET_DATA_NONE, index: 0, start: 0, count: 1 })).flags).toBe(action | B.VFIO_IRQ_SET_DATA_NONE);
      expect(B.decodeIrqSet(B.encodeIrqSet({ flags: action, index: 0, start: 0, count: 1, bools: [true] })).flags).toBe(action | B.VFIO_IRQ_SET_DATA_BOOL);
      expect(B.decodeIrqSet(B.encodeIrqSet({ flags: action, index: 0, start: 0, count: 1, eventfds: [4] })).flags).toBe(action | B.VFIO_IRQ_SET_DATA_EVENTFD);
    }
  });

  test('more than one DATA_* bit is rejected (the kernel takes exactly one data type)', () => {
    const two = B.VFIO_IRQ_SET_DATA_NONE | B.VFIO_IRQ_SET_DATA_BOOL;
    expectBindingsError(() => B.encodeIrqSet({ flags: T | two, index: 0, start: 0, count: 1, bools: [true] }), RangeError, 'vfio_irq_set', 'flags', /exactly one VFIO_IRQ_SET_DATA_\* bit/);
    expectBindingsError(() => B.encodeIrqSet({ flags: T | two, index: 0, start: 0, count: 0 }), RangeError, 'vfio_irq_set', 'flags', /exactly one VFIO_IRQ_SET_DATA_\* bit/);
  });
});

describe('wrong-type offsets and counts are TypeError; right type but out of range is RangeError', () => {
  const bytes = new Uint8Array(64);
  const wrong: [string, unknown][] = [['string', '4'], ['object', { valueOf: () => 4 }], ['bigint', 4n], ['null', null], ['boolean', true]];

  // [what, call with the bad value, struct, field]
  const calls: [string, (x: unknown) => unknown, string, string][] = [
    ['decode offset', (x) => B.vfio_irq_info.decode(bytes, x as number), 'vfio_irq_info', '(bytes)'],
    ['encode target offset', (x) => B.vfio_irq_info.encode({}, bytes, x as number), 'vfio_irq_info', '(target)'],
    ['decode flexCount', (x) => B.vfio_device_feature.decode(bytes, 0, { flexCount: x as number }), 'vfio_device_feature', 'data'],
    ['scalarCodec decode offset', (x) => B.scalarCodec('u32').decode(bytes, x as number), 'u32', 'value'],
    ['scalarCodec encode offset', (x) => B.scalarCodec('u32').encode(1, bytes, x as number), 'u32', 'value'],
    ['encodeArray offset', (x) => B.encodeArray(B.iommu_iova_range, [], bytes, x as number), 'iommu_iova_range', '(target)'],
    ['decodeArray count', (x) => B.decodeArray(B.iommu_iova_range, bytes, x as number), 'iommu_iova_range', '(count)'],
    ['decodeArray offset', (x) => B.decodeArray(B.iommu_iova_range, bytes, 0, x as number), 'iommu_iova_range', '(bytes)'],
    ['walkCapabilities firstOffset', (x) => B.walkCapabilities(bytes, 'region', x as number), 'vfio_region_info', 'cap_offset'],
    ['walkCapabilities argsz', (x) => B.walkCapabilities(bytes, 'region', 0, x as number), 'vfio_region_info', 'argsz'],
    ['decodeIrqSet offset', (x) => B.decodeIrqSet(bytes, x as number), 'vfio_irq_set', '(bytes)'],
    ['encodeIrqSet count', (x) => B.encodeIrqSet({ flags: B.VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, start: 0, count: x as number }), 'vfio_irq_set', 'count'],
    ['encodeIrqSet start', (x) => B.encodeIrqSet({ flags: B.VFIO_IRQ_SET_ACTION_TRIGGER, index: 0, start: x as number, count: 0 }), 'vfio_irq_set', 'start'],
    ['encode of a __u32 field', (x) => B.vfio_region_info.encode({ cap_offset: x as number }), 'vfio_region_info', 'cap_offset'],
    ['encode of a count field', (x) => B.vfio_pci_hot_reset.encode({ count: x as number }), 'vfio_pci_hot_reset', 'count'],
  ];

  describe.each(calls)('%s', (_what, call, struct, field) => {
    test.each(wrong)('%s is a TypeError', (_kind, value) => {
      expectBindingsError(() => call(value), TypeError, struct, field);
    });
    test.each([['negative', -1], ['fraction', 1.5], ['NaN', NaN], ['Infinity', Infinity]])('%s is a RangeError', (_kind, value) => {
      expectBindingsError(() => call(value), RangeError, struct, field);
    });
  });

  test('the message names the argument', () => {
    expect(thrown(() => B.vfio_irq_info.decode(bytes, '4' as never)).message).toBe('vfio_irq_info.(bytes): offset must be a number, got string "4"');
    expect(thrown(() => B.walkCapabilities(bytes, 'region', 0, {} as never)).message).toBe('vfio_region_info.argsz: argsz must be a number, got object');
    expect(thrown(() => B.walkCapabilities(bytes, 'region', -8)).message).toBe('vfio_region_info.cap_offset: firstOffset must be a non-negative integer, got number -8');
    expect(thrown(() => B.vfio_device_feature.decode(bytes, 0, { flexCount: '2' as never })).message).toMatch(/^vfio_device_feature\.data: flexCount must be a number/);
    expect(thrown(() => B.decodeArray(B.iommu_iova_range, bytes, 1.5)).message).toMatch(/^iommu_iova_range\.\(count\): count must be a non-negative integer/);
  });

  test('defineStruct: a field offset of the wrong type is a TypeError', () => {
    expectBindingsError(() => B.defineStruct('t', 'struct', 4, 4, [['a', '0' as never, 'u32', '__u32']]), TypeError, 't', 'a');
    expectBindingsError(() => B.defineStruct('t', 'struct', 4, 4, [['a', -4, 'u32', '__u32']]), RangeError, 't', 'a');
  });
});
