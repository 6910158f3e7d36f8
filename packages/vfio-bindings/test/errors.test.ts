import * as B from '../src';

// Each case: the call, the error class name, and the field it must name.
const cases: [string, () => unknown, 'TypeError' | 'RangeError', string, string][] = [
  ['string for a __u32', () => B.vfio_region_info.encode({ argsz: '32' as never }), 'TypeError', 'vfio_region_info', 'argsz'],
  ['bigint for a __u32', () => B.vfio_region_info.encode({ index: 1n as never }), 'TypeError', 'vfio_region_info', 'index'],
  ['fraction for a __u32', () => B.vfio_region_info.encode({ index: 1.5 }), 'RangeError', 'vfio_region_info', 'index'],
  ['2^32 for a __u32', () => B.vfio_region_info.encode({ flags: 2 ** 32 }), 'RangeError', 'vfio_region_info', 'flags'],
  ['negative for a __u32', () => B.vfio_region_info.encode({ flags: -1 }), 'RangeError', 'vfio_region_info', 'flags'],
  ['negative for a __u64', () => B.vfio_region_info.encode({ size: -1n }), 'RangeError', 'vfio_region_info', 'size'],
  ['2^64 for a __u64', () => B.vfio_region_info.encode({ size: 2n ** 64n }), 'RangeError', 'vfio_region_info', 'size'],
  ['unsafe number for a __u64', () => B.vfio_region_info.encode({ size: 2 ** 53 }), 'RangeError', 'vfio_region_info', 'size'],
  ['-2^31-1 for a __s32', () => B.vfio_device_ioeventfd.encode({ fd: -(2 ** 31) - 1 }), 'RangeError', 'vfio_device_ioeventfd', 'fd'],
  ['256 for a __u8', () => B.vfio_pci_dependent_device.encode({ bus: 256 }), 'RangeError', 'vfio_pci_dependent_device', 'bus'],
  ['unknown field', () => B.vfio_region_info.encode({ sise: 1 } as never), 'TypeError', 'vfio_region_info', 'sise'],
  ['not an object', () => B.vfio_region_info.encode(null as never), 'TypeError', 'vfio_region_info', '(value)'],
  ['array too long', () => B.iommu_hw_info.encode({ __reserved: [0, 0, 0, 0] }), 'RangeError', 'iommu_hw_info', '__reserved'],
  ['array not an array', () => B.iommu_hw_info.encode({ __reserved: 5 as never }), 'TypeError', 'iommu_hw_info', '__reserved'],
  ['bad nested field', () => B.vfio_region_info_cap_type.encode({ header: { id: -1 } }), 'RangeError', 'vfio_region_info_cap_type', 'header.id'],
  ['bad flex element', () => B.vfio_pci_hot_reset.encode({ group_fds: [1, 2 ** 31] }), 'RangeError', 'vfio_pci_hot_reset', 'group_fds[1]'],
  ['bad element of a nested flex', () => B.vfio_region_info_cap_sparse_mmap.encode({ areas: [{}, { size: 'x' as never }] }), 'TypeError', 'vfio_region_info_cap_sparse_mmap', 'areas[1].size'],
  ['decode of a short buffer', () => B.vfio_region_info.decode(new Uint8Array(31)), 'RangeError', 'vfio_region_info', 'offset'],
  ['decode at an offset past the data', () => B.vfio_irq_info.decode(new Uint8Array(16), 4), 'RangeError', 'vfio_irq_info', 'count'],
  ['decode of a non-buffer', () => B.vfio_irq_info.decode([1, 2, 3] as never), 'TypeError', 'vfio_irq_info', '(bytes)'],
  ['decode at a negative offset', () => B.vfio_irq_info.decode(new Uint8Array(16), -1), 'RangeError', 'vfio_irq_info', '(bytes)'],
  ['encode into a short target', () => B.vfio_irq_info.encode({}, new Uint8Array(20), 8), 'RangeError', 'vfio_irq_info', '(target)'],
  ['offsetOf an unknown field', () => B.vfio_irq_info.offsetOf('nope'), 'RangeError', 'vfio_irq_info', 'nope'],
];

test.each(cases)('%s', (_what, fn, cls, struct, field) => {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeDefined();
  const e = caught as Error & { code: string; struct: string; field: string };
  expect(e.constructor.name).toBe(cls);
  expect(e).toBeInstanceOf(cls === 'TypeError' ? TypeError : RangeError);
  expect(e).toMatchObject({ code: 'ERR_VFIO_BINDINGS', struct, field });
  expect(e.message.startsWith(`${struct}.${field}: `)).toBe(true);
  expect(B.isBindingsError(e)).toBe(true);
});

test('isBindingsError is false for other errors and values', () => {
  expect(B.isBindingsError(new RangeError('x'))).toBe(false);
  expect(B.isBindingsError(Object.assign(new Error('x'), { code: 'EBADF' }))).toBe(false);
  expect(B.isBindingsError(null)).toBe(false);
  expect(B.isBindingsError('ERR_VFIO_BINDINGS')).toBe(false);
});

test('values at the edges of each width are accepted', () => {
  const v = { bus: 255, segment: 65535, group_id: 2 ** 32 - 1, devfn: 0 };
  expect(B.vfio_pci_dependent_device.decode(B.vfio_pci_dependent_device.encode(v))).toMatchObject(v);
  const io = { fd: -(2 ** 31), offset: 2n ** 64n - 1n, data: Number.MAX_SAFE_INTEGER };
  expect(B.vfio_device_ioeventfd.decode(B.vfio_device_ioeventfd.encode(io))).toMatchObject({ fd: -(2 ** 31), offset: 2n ** 64n - 1n, data: BigInt(Number.MAX_SAFE_INTEGER) });
});
