import fc from 'fast-check';
import { IovaAllocator } from '../src';

const PAGE = 0x1000n;
const RANGES = [
  { start: 0n, end: 0xfedf_ffffn },
  { start: 0xfef0_0000n, end: 0x7f_ffff_ffffn },
];

describe('IovaAllocator', () => {
  test('hands out the first aligned free IOVA, never 0', () => {
    const allocator = new IovaAllocator(RANGES, PAGE);
    expect(allocator.allocate(0x2000n)).toBe(0x1000n);
    allocator.reserve(0x1000n, 0x2000n);
    expect(allocator.allocate(0x1000n)).toBe(0x3000n);
  });

  test('skips the hole between IOVA ranges', () => {
    const allocator = new IovaAllocator(RANGES, PAGE);
    allocator.reserve(0x1000n, 0xfedf_f000n - 0x1000n);
    // 0x2000 bytes no longer fit below the hole, so the next range is used.
    expect(allocator.allocate(0x2000n)).toBe(0xfef0_0000n);
  });

  test('honours maxIova (a device DMA mask)', () => {
    const allocator = new IovaAllocator(RANGES, PAGE);
    expect(allocator.allocate(0x1000n, 0xfffn)).toBeUndefined();
    expect(allocator.allocate(0x1000n, 0x1fffn)).toBe(0x1000n);
    allocator.reserve(0x1000n, 0x1000n);
    expect(allocator.allocate(0x1000n, 0x1fffn)).toBeUndefined();
  });

  test('returns undefined when nothing fits, and for size 0', () => {
    const allocator = new IovaAllocator([{ start: 0x1000n, end: 0x1fffn }], PAGE);
    expect(allocator.allocate(0x2000n)).toBeUndefined();
    expect(allocator.allocate(0n)).toBeUndefined();
  });

  test('starts at an unaligned range start rounded up', () => {
    const allocator = new IovaAllocator([{ start: 0x1234n, end: 0xffffn }], PAGE);
    expect(allocator.allocate(0x1000n)).toBe(0x2000n);
  });

  test('release frees a span for reuse; clear frees all', () => {
    const allocator = new IovaAllocator(RANGES, PAGE);
    allocator.reserve(0x1000n, 0x1000n);
    allocator.reserve(0x2000n, 0x1000n);
    allocator.release(0x1000n);
    expect(allocator.spans()).toEqual([{ start: 0x2000n, size: 0x1000n }]);
    expect(allocator.allocate(0x1000n)).toBe(0x1000n);
    allocator.clear();
    expect(allocator.spans()).toEqual([]);
  });

  test('rangeOf and overlapping', () => {
    const allocator = new IovaAllocator(RANGES, PAGE);
    expect(allocator.rangeOf(0xfedf_f000n, 0x1000n)).toEqual(RANGES[0]);
    expect(allocator.rangeOf(0xfedf_f000n, 0x2000n)).toBeUndefined();
    allocator.reserve(0x4000n, 0x2000n);
    expect(allocator.overlapping(0x5000n, 0x1000n)).toEqual({ start: 0x4000n, size: 0x2000n });
    expect(allocator.overlapping(0x6000n, 0x1000n)).toBeUndefined();
    expect(allocator.overlapping(0x3000n, 0x1000n)).toBeUndefined();
  });

  test('rejects an alignment that is not a power of two', () => {
    expect(() => new IovaAllocator(RANGES, 0x1800n)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => new IovaAllocator(RANGES, 0n)).toThrow(expect.objectContaining({ name: 'RangeError' }));
  });

  describe('argument checks', () => {
    const typeErr = (message: RegExp) => expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(message) });
    const rangeErr = (code: string, message: RegExp) => expect.objectContaining({ name: 'RangeError', code, message: expect.stringMatching(message) });

    test('ranges: an array of { start, end } bigints, start <= end, disjoint', () => {
      expect(() => new IovaAllocator(undefined as never, PAGE)).toThrow(typeErr(/^ranges must be an array/));
      expect(() => new IovaAllocator({ 0: RANGES[0], length: 1 } as never, PAGE)).toThrow(typeErr(/^ranges must be an array/));
      expect(() => new IovaAllocator([null] as never, PAGE)).toThrow(typeErr(/^ranges\[0\] must be an object/));
      // eslint-disable-next-line no-sparse-arrays
      expect(() => new IovaAllocator([RANGES[0]!, , RANGES[1]!] as never, PAGE)).toThrow(typeErr(/^ranges\[1\] must be an object/));
      expect(() => new IovaAllocator([{ start: 0, end: 0xfffn }] as never, PAGE)).toThrow(typeErr(/^ranges\[0\]\.start must be a bigint/));
      expect(() => new IovaAllocator([RANGES[0]!, { start: 0x1_0000_0000n }] as never, PAGE)).toThrow(typeErr(/^ranges\[1\]\.end must be a bigint/));
      expect(() => new IovaAllocator([{ start: -1n, end: 0xfffn }], PAGE)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^ranges\[0\]\.start must be in/));
      expect(() => new IovaAllocator([{ start: 0n, end: 1n << 64n }], PAGE)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^ranges\[0\]\.end/));
      expect(() => new IovaAllocator([{ start: 0x2000n, end: 0x1fffn }], PAGE)).toThrow(rangeErr('ERR_INVALID_ARG_VALUE', /^ranges\[0\] must have start <= end/));
      expect(() => new IovaAllocator([{ start: 0x8000n, end: 0xffffn }, { start: 0n, end: 0x8000n }], PAGE)).toThrow(rangeErr('ERR_INVALID_ARG_VALUE', /^ranges must not overlap: 0x0-0x8000 and 0x8000-0xffff/));
      // A one-byte range and the whole 64-bit space are ranges too.
      expect(new IovaAllocator([{ start: 5n, end: 5n }], PAGE).ranges).toEqual([{ start: 5n, end: 5n }]);
      expect(new IovaAllocator([{ start: 0n, end: (1n << 64n) - 1n }], PAGE).allocate(PAGE)).toBe(PAGE);
    });

    test('the ranges are a frozen copy: changing the caller\'s objects changes nothing', () => {
      const mine = [{ start: 0x1000n, end: 0x1fffn }];
      const allocator = new IovaAllocator(mine, PAGE);
      mine[0]!.end = 0xffff_ffffn;
      mine.push({ start: 0x10_0000n, end: 0x1f_ffffn });
      expect(allocator.ranges).toEqual([{ start: 0x1000n, end: 0x1fffn }]);
      expect(allocator.allocate(0x2000n)).toBeUndefined();
      expect(Object.isFrozen(allocator.ranges) && Object.isFrozen(allocator.ranges[0])).toBe(true);
    });

    test('alignment: a power-of-two bigint', () => {
      expect(() => new IovaAllocator(RANGES, 4096 as never)).toThrow(typeErr(/^alignment must be a bigint/));
      expect(() => new IovaAllocator(RANGES, -PAGE)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^alignment/));
      expect(() => new IovaAllocator(RANGES, 0x1800n)).toThrow(rangeErr('ERR_INVALID_ARG_VALUE', /^alignment must be a power of two, got 0x1800/));
      expect(new IovaAllocator(RANGES, 1n).alignment).toBe(1n);
    });

    test('methods take bigints, sizes above 0, and spans that stay inside 64 bits', () => {
      const allocator = new IovaAllocator(RANGES, PAGE);
      expect(() => allocator.allocate(4096 as never)).toThrow(typeErr(/^size must be a bigint/));
      expect(() => allocator.allocate(-PAGE)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^size/));
      expect(() => allocator.allocate(PAGE, 0xffff as never)).toThrow(typeErr(/^maxIova must be a bigint/));
      expect(() => allocator.rangeOf(0x1000 as never, PAGE)).toThrow(typeErr(/^iova must be a bigint/));
      expect(() => allocator.rangeOf(0x1000n, 0n)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^size must be > 0/));
      expect(() => allocator.overlapping(0x1000n, undefined as never)).toThrow(typeErr(/^size must be a bigint/));
      expect(() => allocator.overlapping((1n << 64n) - PAGE, 2n * PAGE)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /runs past the end of the 64-bit IOVA space/));
      expect(() => allocator.reserve(0x1000n, -1n)).toThrow(rangeErr('ERR_OUT_OF_RANGE', /^size/));
      expect(() => allocator.reserve('4096' as never, PAGE)).toThrow(typeErr(/^start must be a bigint/));
      expect(() => allocator.release(4096 as never)).toThrow(typeErr(/^start must be a bigint/));
      // The last page of the 64-bit space is a span, not a wrap.
      expect(allocator.overlapping((1n << 64n) - PAGE, PAGE)).toBeUndefined();
      expect(allocator.spans()).toEqual([]);
    });

    test('reserve refuses a span that overlaps a reserved one, so spans stay disjoint', () => {
      const allocator = new IovaAllocator(RANGES, PAGE);
      allocator.reserve(0x4000n, 0x2000n);
      expect(() => allocator.reserve(0x5000n, 0x2000n)).toThrow(rangeErr('ERR_VFIO_DMA_OVERLAP', /^start 0x5000\+0x2000 overlaps the reserved span 0x4000\+0x2000/));
      expect(() => allocator.reserve(0x3000n, 0x4000n)).toThrow(rangeErr('ERR_VFIO_DMA_OVERLAP', /overlaps/));
      allocator.reserve(0x6000n, 0x1000n); // adjacent is fine
      expect(allocator.spans()).toEqual([{ start: 0x4000n, size: 0x2000n }, { start: 0x6000n, size: 0x1000n }]);
    });
  });

  test('property: allocations are aligned, inside a range, nonzero and disjoint', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ pages: fc.integer({ min: 1, max: 64 }), release: fc.boolean() }), { maxLength: 60 }),
        fc.integer({ min: 12, max: 16 }),
        (requests, shift) => {
          const align = 1n << BigInt(shift);
          const allocator = new IovaAllocator([{ start: 0x3000n, end: 0x7f_ffffn }, { start: 0x100_0000n, end: 0x1ff_ffffn }], align);
          const live: { start: bigint; size: bigint }[] = [];
          for (const { pages, release } of requests) {
            const size = BigInt(pages) * align;
            const iova = allocator.allocate(size);
            if (iova === undefined) continue;
            expect(iova % align).toBe(0n);
            expect(iova).not.toBe(0n);
            expect(allocator.rangeOf(iova, size)).toBeDefined();
            for (const other of live) expect(iova < other.start + other.size && other.start < iova + size).toBe(false);
            allocator.reserve(iova, size);
            live.push({ start: iova, size });
            if (release) {
              const victim = live.splice(0, 1)[0]!;
              allocator.release(victim.start);
            }
          }
          expect(allocator.spans().map((s) => s.start)).toEqual([...live].map((s) => s.start).sort((a, b) => (a < b ? -1 : 1)));
        },
      ),
    );
  });
});
