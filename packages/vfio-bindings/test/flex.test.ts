import fc from 'fast-check';
import * as B from '../src';
import { allCodecs } from './helpers/codecs';

const withCount = allCodecs.filter((c) => c.flex?.countField);
const withoutCount = allCodecs.filter((c) => c.flex && !c.flex.countField);

test('the hand-written table covers the flexible arrays the issue names', () => {
  const table = Object.fromEntries(allCodecs.filter((c) => c.flex).map((c) => [`${c.name}.${c.flex!.field}`, c.flex!.countField ?? null]));
  expect(table).toEqual({
    'vfio_irq_set.data': null,
    'vfio_pci_hot_reset_info.devices': 'count',
    'vfio_pci_hot_reset.group_fds': 'count',
    'vfio_region_info_cap_sparse_mmap.areas': 'nr_areas',
    'vfio_device_feature.data': null,
    'vfio_device_feature_dma_buf.dma_ranges': 'nr_ranges',
    'vfio_iommu_type1_info_cap_iova_range.iova_ranges': 'nr_iovas',
    'vfio_iommu_type1_dma_unmap.data': null,
    'vfio_iommu_type1_dirty_bitmap.data': null,
  });
});

test('sparse mmap areas: encode appends elements, decode reads nr_areas of them', () => {
  const c = B.vfio_region_info_cap_sparse_mmap;
  const areas = [{ offset: 0n, size: 0x1000n }, { offset: 0x3000n, size: 0x1000n }];
  const bytes = c.encode({ header: { id: B.VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1 }, nr_areas: 2, areas });
  expect(bytes.length).toBe(c.size + 2 * B.vfio_region_sparse_mmap_area.size);
  expect(c.decode(bytes).areas).toEqual(areas);
  expect(B.vfio_region_sparse_mmap_area.decode(bytes, c.offsetOf('areas') + B.vfio_region_sparse_mmap_area.size)).toEqual(areas[1]);
});

test('hot reset: group fds and dependent devices', () => {
  const reset = B.vfio_pci_hot_reset.encode({ argsz: 20, count: 2, group_fds: [5, 9] });
  expect(B.vfio_pci_hot_reset.decode(reset).group_fds).toEqual([5, 9]);
  const info = B.vfio_pci_hot_reset_info.encode({ count: 1, devices: [{ group_id: 12, segment: 0, bus: 1, devfn: 8 }] });
  expect(B.vfio_pci_hot_reset_info.decode(info).devices).toEqual([{ group_id: 12, devid: 12, segment: 0, bus: 1, devfn: 8 }]);
});

test('DMA-buf feature: dma_ranges counted by nr_ranges (the header says __counted_by(nr_ranges))', () => {
  const c = B.vfio_device_feature_dma_buf;
  const dma_ranges = [{ offset: 0n, length: 0x1000n }, { offset: 0x10000n, length: 0x2000n }];
  const bytes = c.encode({ region_index: 0, open_flags: 2, flags: 0, nr_ranges: 2, dma_ranges });
  expect(bytes.length).toBe(16 + 2 * 16);
  expect(c.decode(bytes)).toEqual({ region_index: 0, open_flags: 2, flags: 0, nr_ranges: 2, dma_ranges });
  expect(() => c.decode(bytes.subarray(0, 40))).toThrow(expect.objectContaining({ struct: 'vfio_device_feature_dma_buf', field: 'dma_ranges' }));
});

test('a count that does not fit the buffer throws, naming the flexible array', () => {
  // encode refuses a count that disagrees with the array, so claim 3 in the bytes.
  const bytes = B.vfio_iommu_type1_info_cap_iova_range.encode({ iova_ranges: [{ start: 0n, end: 1n }] });
  B.scalarCodec('u32').encode(3, bytes, B.vfio_iommu_type1_info_cap_iova_range.offsetOf('nr_iovas'));
  expect(() => B.vfio_iommu_type1_info_cap_iova_range.decode(bytes)).toThrow(
    expect.objectContaining({ code: 'ERR_VFIO_BINDINGS', struct: 'vfio_iommu_type1_info_cap_iova_range', field: 'iova_ranges' }),
  );
  // 2^32-1 elements must not allocate or loop: it is rejected up front.
  const huge = B.vfio_pci_hot_reset_info.encode({ count: 2 ** 32 - 1 });
  expect(() => B.vfio_pci_hot_reset_info.decode(huge)).toThrow(RangeError);
});

test('without a count field, decode takes { flexCount } and otherwise leaves the array out', () => {
  const c = B.vfio_device_feature;
  const bytes = c.encode({ argsz: 12, flags: B.VFIO_DEVICE_FEATURE_GET, data: [1, 2, 3, 4] });
  expect(c.decode(bytes)).toEqual({ argsz: 12, flags: B.VFIO_DEVICE_FEATURE_GET });
  expect(c.decode(bytes, 0, { flexCount: 4 }).data).toEqual([1, 2, 3, 4]);
  expect(() => c.decode(bytes, 0, { flexCount: 5 })).toThrow(/^vfio_device_feature\.data: /);
  expect(() => c.decode(bytes, 0, { flexCount: -1 })).toThrow(/^vfio_device_feature\.data: /);
});

test.each(withCount.map((c) => [c.name, c] as const))('%s: random counts and truncations yield a result or the package error (fuzz)', (_n, c) => {
  const flex = c.flex!;
  fc.assert(
    fc.property(fc.nat({ max: 2 ** 32 - 1 }), fc.nat({ max: 6 }), fc.nat({ max: 64 }), fc.uint8Array({ maxLength: 128 }), (count, given, cut, noise) => {
      const bytes = new Uint8Array(c.size + given * flex.element.size + noise.length);
      bytes.set(noise, c.size + given * flex.element.size);
      B.scalarCodec('u32').encode(count, bytes, c.offsetOf(flex.countField!));
      const view = bytes.subarray(0, Math.max(0, bytes.length - cut));
      try {
        const d = c.decode(view) as Record<string, unknown[]>;
        expect(d[flex.field].length).toBe(count);
        expect(c.size + count * flex.element.size).toBeLessThanOrEqual(view.length);
      } catch (e) {
        expect(B.isBindingsError(e)).toBe(true);
      }
    }),
    { numRuns: 200 },
  );
});

test.each(withoutCount.map((c) => [c.name, c] as const))('%s: flexCount against random buffers (fuzz)', (_n, c) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: -3, max: 80 }), (bytes, flexCount) => {
      try {
        const d = c.decode(bytes, 0, { flexCount }) as Record<string, unknown[]>;
        expect(d[c.flex!.field].length).toBe(flexCount);
      } catch (e) {
        expect(B.isBindingsError(e)).toBe(true);
      }
    }),
    { numRuns: 200 },
  );
});

describe('out-of-line arrays (iommufd allowed_iovas, DMA logging ranges)', () => {
  test('pointerArrays metadata names the count field and element codec', () => {
    expect(B.iommu_ioas_iova_ranges.pointerArrays).toEqual([{ field: 'allowed_iovas', countField: 'num_iovas', element: B.iommu_iova_range }]);
    expect(B.vfio_device_feature_dma_logging_control.pointerArrays![0].element).toBe(B.vfio_device_feature_dma_logging_range);
  });

  test('encodeArray/decodeArray pack elements back to back and bounds-check', () => {
    const ranges = [{ start: 0n, last: 0xfffffn }, { start: 0x100000n, last: 0xfee00000n - 1n }];
    const bytes = B.encodeArray(B.iommu_iova_range, ranges);
    expect(bytes.length).toBe(2 * B.iommu_iova_range.size);
    expect(B.decodeArray(B.iommu_iova_range, bytes, 2)).toEqual(ranges);
    expect(() => B.decodeArray(B.iommu_iova_range, bytes, 3)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS', struct: 'iommu_iova_range' }));
    expect(() => B.encodeArray(B.iommu_iova_range, ranges, new Uint8Array(16))).toThrow(RangeError);
  });
});
