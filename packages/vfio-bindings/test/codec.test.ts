import fc from 'fast-check';
import * as B from '../src';
import * as vfio from '../src/generated/vfio';
import * as iommufd from '../src/generated/iommufd';
import { allCodecs, coverage, normalize, valueArb, type AnyCodec } from './helpers/codecs';

const RUNS = { numRuns: 60 };
const byName = (c: AnyCodec) => [c.name, c] as const;

test('every generated struct and union is exported from the package root', () => {
  // The oracle test checks the generated codecs against the compiler; here,
  // that the root re-exports all of them, so the property tests below cover
  // every struct.
  const generated = [...Object.values(vfio), ...Object.values(iommufd)].filter((v) => typeof v === 'object' && v !== null && 'fields' in v);
  expect(generated.length).toBeGreaterThan(60);
  expect(new Set(allCodecs)).toEqual(new Set(generated));
  for (const n of ['vfio_region_info', 'vfio_irq_set', 'iommu_ioas_map', 'vfio_pci_dependent_device', 'iommu_hw_info']) {
    expect(allCodecs.map((c) => c.name)).toContain(n);
  }
});

describe.each(allCodecs.map(byName))('%s', (_name, codec) => {
  const noCountFlex = codec.flex && !codec.flex.countField;
  const decodeAll = (bytes: Uint8Array, v?: Record<string, unknown>) =>
    codec.decode(bytes, 0, noCountFlex && v ? { flexCount: ((v[codec.flex!.field] as unknown[]) ?? []).length } : undefined);

  test('decode(encode(v)) gives v back (property)', () => {
    fc.assert(
      fc.property(valueArb(codec), (v) => {
        const bytes = codec.encode(v);
        expect(bytes.length).toBe(codec.encodedSize(v));
        const d = decodeAll(bytes, v) as Record<string, unknown>;
        expect(d).toMatchObject(normalize(v) as object);
      }),
      RUNS,
    );
  });

  test('encode(decode(bytes)) gives the bytes back with padding zeroed (property)', () => {
    const mask = coverage(codec);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: codec.size, maxLength: codec.size }), (raw) => {
        const bytes = Uint8Array.from(raw);
        if (codec.flex?.countField) B.scalarCodec('u32').encode(0, bytes, codec.offsetOf(codec.flex.countField));
        const again = codec.encode(codec.decode(bytes) as never);
        expect(Array.from(again)).toEqual(Array.from(bytes, (b, i) => (mask[i] ? b : 0)));
      }),
      RUNS,
    );
  });

  test('an empty value encodes to sizeof zero bytes; offsetOf agrees with fields', () => {
    expect(codec.encode({})).toEqual(new Uint8Array(codec.size));
    for (const f of codec.fields) expect(codec.offsetOf(f.name)).toBe(f.offset);
    expect(codec.align & (codec.align - 1)).toBe(0);
    expect(codec.size % codec.align).toBe(0);
  });

  test('random bytes, lengths and offsets decode or throw the package error, never anything else (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: codec.size * 2 + 24 }),
        fc.nat({ max: codec.size + 8 }),
        fc.option(fc.integer({ min: -2, max: 40 })),
        (bytes, offset, flexCount) => {
          try {
            const d = codec.decode(bytes, offset, flexCount === null ? undefined : { flexCount });
            expect(offset + codec.size).toBeLessThanOrEqual(bytes.length);
            expect(typeof d).toBe('object');
          } catch (e) {
            expect(B.isBindingsError(e)).toBe(true);
          }
        },
      ),
      RUNS,
    );
  });
});

describe('layout details', () => {
  test('__u64 fields decode as bigint and take safe-integer numbers', () => {
    const b = B.vfio_region_info.encode({ argsz: 32, size: 2 ** 40, offset: 0xffff_ffff_ffff_ffffn });
    expect(B.vfio_region_info.decode(b)).toEqual({ argsz: 32, flags: 0, index: 0, cap_offset: 0, size: 2n ** 40n, offset: 2n ** 64n - 1n });
  });

  test('fixed arrays are arrays; a shorter array is zero-filled', () => {
    const b = B.iommu_hw_info.encode({ __reserved: [1, 2] });
    expect(B.iommu_hw_info.decode(b).__reserved).toEqual([1, 2, 0]);
  });

  test('nested structs are objects and dotted offsetOf walks into them', () => {
    const v = B.vfio_iommu_spapr_tce_info.decode(B.vfio_iommu_spapr_tce_info.encode({ ddw: { levels: 3, pgsizes: 4096n } }));
    expect(v.ddw).toEqual({ pgsizes: 4096n, max_dynamic_windows_supported: 0, levels: 3 });
    expect(B.vfio_iommu_spapr_tce_info.offsetOf('ddw.levels')).toBe(B.vfio_iommu_spapr_tce_info.offsetOf('ddw') + B.vfio_iommu_spapr_tce_ddw_info.offsetOf('levels'));
  });

  test('anonymous unions are flattened: every member decoded, one (or agreeing ones) encoded', () => {
    const c = B.vfio_pci_dependent_device;
    expect(c.offsetOf('group_id')).toBe(c.offsetOf('devid'));
    const d = c.decode(c.encode({ devid: 7, segment: 1, bus: 2, devfn: 3 }));
    expect(d).toEqual({ group_id: 7, devid: 7, segment: 1, bus: 2, devfn: 3 });
    expect(c.encode(d)).toEqual(c.encode({ devid: 7, segment: 1, bus: 2, devfn: 3 }));
    expect(() => c.encode({ group_id: 1, devid: 2 })).toThrow(/^vfio_pci_dependent_device\.devid: shares its bytes with group_id/);
  });

  test('encode into a target at an offset zeroes the struct range, keeps the rest, returns the target', () => {
    const target = new Uint8Array(64).fill(0xaa);
    const out = B.vfio_irq_info.encode({ argsz: 16, count: 5 }, target, 8);
    expect(out).toBe(target);
    expect(Array.from(target.subarray(0, 8))).toEqual(new Array(8).fill(0xaa));
    expect(B.vfio_irq_info.decode(target, 8)).toEqual({ argsz: 16, flags: 0, index: 0, count: 5 });
    expect(Array.from(target.subarray(24))).toEqual(new Array(40).fill(0xaa));
  });

  test('decode works on a Buffer that is a slice of a larger ArrayBuffer', () => {
    const big = Buffer.alloc(100);
    const enc = B.iommu_ioas_map.encode({ size: 40, ioas_id: 3, length: 4096n, iova: 1n << 40n });
    enc.forEach((x, i) => (big[50 + i] = x));
    expect(B.iommu_ioas_map.decode(big.subarray(50, 90))).toMatchObject({ size: 40, ioas_id: 3, iova: 1n << 40n });
  });
});

describe('named unions (none in these headers yet, but the generator emits them the same way)', () => {
  const u = B.defineStruct<{ a: number; b: bigint; bytes: number[] }>('test_union', 'union', 8, 8, [
    ['a', 0, 'u32', '__u32', 0, '0:0'],
    ['b', 0, 'u64', '__u64', 0, '0:1'],
    ['bytes', 0, 'u8', '__u8', 8, '0:2'],
  ]);

  test('decode gives every member; encode takes one member (or several that agree)', () => {
    const bytes = u.encode({ b: 0x0102030405060708n });
    const d = u.decode(bytes);
    expect(d).toEqual({ a: 0x05060708, b: 0x0102030405060708n, bytes: [8, 7, 6, 5, 4, 3, 2, 1] });
    expect(u.encode(d)).toEqual(bytes);
    expect(() => u.encode({ a: 1, b: 2n })).toThrow(expect.objectContaining({ struct: 'test_union', field: 'b' }));
  });
});
