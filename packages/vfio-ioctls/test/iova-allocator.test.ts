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
