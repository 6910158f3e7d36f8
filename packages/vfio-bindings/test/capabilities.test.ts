import fc from 'fast-check';
import * as B from '../src';

const RI = B.vfio_region_info.size;

/** Lays out caps one after another (8-byte aligned) after an info struct and links them. */
function chain(info: B.StructCodec<any>, caps: { codec: B.StructCodec<any>; value: Record<string, unknown> }[], gap = 0) {
  const offsets: number[] = [];
  let at = info.size;
  for (const c of caps) {
    at = Math.ceil((at + gap) / 8) * 8;
    offsets.push(at);
    at += c.codec === B.vfio_info_cap_header ? c.codec.size : c.codec.encodedSize(c.value);
  }
  const bytes = new Uint8Array(at);
  info.encode({ argsz: at, cap_offset: offsets[0] ?? 0 }, bytes);
  caps.forEach((c, i) => {
    const header = { ...(c.value.header as object), next: offsets[i + 1] ?? 0 };
    c.codec.encode(c.codec === B.vfio_info_cap_header ? header : { ...c.value, header }, bytes, offsets[i]);
  });
  return { bytes, offsets };
}

const sparse = {
  codec: B.vfio_region_info_cap_sparse_mmap,
  value: { header: { id: B.VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1 }, nr_areas: 2, areas: [{ offset: 0n, size: 0x1000n }, { offset: 0x2000n, size: 0x2000n }] },
};
const type = { codec: B.vfio_region_info_cap_type, value: { header: { id: B.VFIO_REGION_INFO_CAP_TYPE, version: 1 }, type: 3, subtype: 1 } };
const msix = { codec: B.vfio_info_cap_header, value: { header: { id: B.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, version: 1 } } };

test('region chain: sparse mmap with its areas, region type, MSI-X mappable', () => {
  const { bytes, offsets } = chain(B.vfio_region_info, [sparse, type, msix]);
  const caps = B.walkCapabilities(bytes, 'region', offsets[0], bytes.length);
  expect(caps.map((c) => [c.id, c.name, c.offset])).toEqual([
    [1, 'VFIO_REGION_INFO_CAP_SPARSE_MMAP', offsets[0]],
    [2, 'VFIO_REGION_INFO_CAP_TYPE', offsets[1]],
    [3, 'VFIO_REGION_INFO_CAP_MSIX_MAPPABLE', offsets[2]],
  ]);
  expect((caps[0].value as B.vfio_region_info_cap_sparse_mmap).areas).toEqual(sparse.value.areas);
  expect(caps[1].value).toMatchObject({ type: 3, subtype: 1 });
  expect(caps[0].bytes.length).toBe(B.vfio_region_info_cap_sparse_mmap.size + 2 * B.vfio_region_sparse_mmap_area.size);
});

test('iommu_type1 chain: the same ids mean other structs (iova ranges, migration, dma_avail)', () => {
  const iova = {
    codec: B.vfio_iommu_type1_info_cap_iova_range,
    value: { header: { id: B.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1 }, nr_iovas: 2, iova_ranges: [{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: 2n ** 48n - 1n }] },
  };
  const mig = { codec: B.vfio_iommu_type1_info_cap_migration, value: { header: { id: B.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1 }, pgsize_bitmap: 4096n } };
  const avail = { codec: B.vfio_iommu_type1_info_dma_avail, value: { header: { id: B.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1 }, avail: 65535 } };
  const { bytes, offsets } = chain(B.vfio_iommu_type1_info, [iova, mig, avail]);
  const caps = B.walkCapabilities(bytes, 'iommu_type1', offsets[0]);
  expect(caps.map((c) => c.name)).toEqual(['VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE', 'VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION', 'VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL']);
  expect((caps[0].value as B.vfio_iommu_type1_info_cap_iova_range).iova_ranges).toEqual(iova.value.iova_ranges);
  expect(caps[2].value).toMatchObject({ avail: 65535 });
});

test('device chain: known struct decoded, s390 zPCI ids named only, unknown ids as bytes up to the next cap', () => {
  const atomic = { codec: B.vfio_device_info_cap_pci_atomic_comp, value: { header: { id: B.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, version: 1 }, flags: B.VFIO_PCI_ATOMIC_COMP32 } };
  const zpci = { codec: B.vfio_info_cap_header, value: { header: { id: B.VFIO_DEVICE_INFO_CAP_ZPCI_BASE, version: 1 } } };
  const unknown = { codec: B.vfio_info_cap_header, value: { header: { id: 0x7777, version: 9 } } };
  const { bytes, offsets } = chain(B.vfio_device_info, [zpci, unknown, atomic], 8);
  const caps = B.walkCapabilities(bytes, 'device', offsets[0], bytes.length);
  expect(caps.map((c) => [c.id, c.name, c.value === undefined])).toEqual([
    [1, 'VFIO_DEVICE_INFO_CAP_ZPCI_BASE', true],
    [0x7777, undefined, true],
    [5, 'VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP', false],
  ]);
  expect(caps[1].bytes.length).toBe(offsets[2] - offsets[1]);
  expect(caps[1].version).toBe(9);
});

test('no capabilities when the first offset is 0', () => {
  expect(B.walkCapabilities(new Uint8Array(RI), 'region', 0)).toEqual([]);
});

describe('malformed chains are rejected with the package error', () => {
  const base = () => chain(B.vfio_region_info, [sparse, type]);
  const next = (bytes: Uint8Array, at: number, to: number) => B.scalarCodec('u32').encode(to, bytes, at + B.vfio_info_cap_header.offsetOf('next'));
  const cases: [string, () => unknown, RegExp][] = [
    ['first offset inside the fixed struct', () => B.walkCapabilities(base().bytes, 'region', 8), /points inside vfio_region_info/],
    ['misaligned offset', () => B.walkCapabilities(base().bytes, 'region', RI + 2), /not aligned/],
    ['offset beyond the buffer', () => B.walkCapabilities(base().bytes, 'region', 4096), /no room/],
    ['offset beyond argsz', () => { const b = base(); return B.walkCapabilities(b.bytes, 'region', b.offsets[1], b.offsets[1] + 4); }, /no room/],
    ['self-referencing next', () => { const b = base(); next(b.bytes, b.offsets[1], b.offsets[1]); return B.walkCapabilities(b.bytes, 'region', b.offsets[0]); }, /loops back/],
    ['next back to the first', () => { const b = base(); next(b.bytes, b.offsets[1], b.offsets[0]); return B.walkCapabilities(b.bytes, 'region', b.offsets[0]); }, /loops back/],
    ['next into the middle of an earlier cap', () => { const b = base(); next(b.bytes, b.offsets[1], b.offsets[0] + 16); return B.walkCapabilities(b.bytes, 'region', b.offsets[0]); }, /overlaps/],
    ['cap truncated by the buffer', () => { const b = base(); return B.walkCapabilities(b.bytes.subarray(0, b.bytes.length - 4), 'region', b.offsets[0]); }, /too short/],
    ['flexible array past argsz', () => { const b = base(); return B.walkCapabilities(b.bytes, 'region', b.offsets[0], b.offsets[0] + 24); }, /areas: count 2/],
  ];
  test.each(cases)('%s', (_what, fn, message) => {
    expect(fn).toThrow(message);
    try {
      fn();
    } catch (e) {
      expect(B.isBindingsError(e)).toBe(true);
    }
  });

  test('an unknown kind or a bad offset argument', () => {
    expect(() => B.walkCapabilities(new Uint8Array(64), 'bogus' as never, 32)).toThrow(TypeError);
    expect(() => B.walkCapabilities(new Uint8Array(64), 'region', -8)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS' }));
    expect(() => B.walkCapabilities(new Uint8Array(64), 'region', 32, 1.5)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BINDINGS' }));
  });
});

test('random well-formed chains in random order walk back exactly (property)', () => {
  const capArb = fc.constantFrom(sparse, type, msix);
  fc.assert(
    fc.property(fc.array(capArb, { maxLength: 6 }), fc.nat({ max: 24 }), (caps, gap) => {
      const { bytes, offsets } = chain(B.vfio_region_info, caps, gap);
      const walked = B.walkCapabilities(bytes, 'region', offsets[0] ?? 0, bytes.length);
      expect(walked.map((c) => c.offset)).toEqual(offsets);
      expect(walked.map((c) => c.id)).toEqual(caps.map((c) => (c.value.header as { id: number }).id));
    }),
  );
});

test('random bytes, offsets and argsz: a result within bounds or the package error, always terminating (fuzz)', () => {
  const kinds = ['region', 'device', 'iommu_type1'] as const;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 256 }),
      fc.constantFrom(...kinds),
      fc.nat({ max: 300 }),
      fc.option(fc.nat({ max: 300 })),
      fc.array(fc.tuple(fc.nat({ max: 255 }), fc.nat({ max: 300 }), fc.nat({ max: 3 })), { maxLength: 8 }),
      (raw, kind, first, argsz, links) => {
        const bytes = Uint8Array.from(raw);
        // Plant plausible headers (known ids, next pointers, self references) so the walker gets past the first checks.
        for (const [at, to, id] of links) {
          const p = at & ~3;
          if (p + 8 <= bytes.length) B.vfio_info_cap_header.encode({ id: id + 1, version: 1, next: to === 0 ? p : to }, bytes, p);
        }
        try {
          const caps = B.walkCapabilities(bytes, kind, first, argsz ?? undefined);
          const limit = Math.min(bytes.length, argsz ?? Infinity);
          const spans = caps.map((c) => [c.offset, c.offset + c.bytes.length] as const).sort((a, b) => a[0] - b[0]);
          for (const [s, e] of spans) expect(e).toBeLessThanOrEqual(limit);
          for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][0] + 8);
        } catch (e) {
          expect(B.isBindingsError(e)).toBe(true);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
