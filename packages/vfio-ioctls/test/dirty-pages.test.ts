/**
 * Dirty page tracking of the legacy container (VFIO_IOMMU_DIRTY_PAGES) and
 * the bitmap decoding shared with the other dirty-page reports, against the
 * fake kernel (the real one: test/guest/dirty-pages.test.ts).
 */
import * as b from 'vfio-bindings';
import { Container, DmaBuffer, Group, VfioError } from '../src';
import { dirtyBitmapBytes, dirtyRanges } from '../src/dma/dirty-bitmap';
import { GROUP, expectNothingLeft, kernel, thrown } from './helpers';

const PAGE = 4096n;

function attached(options?: { type1Only?: boolean }) {
  const k = kernel(undefined, options);
  const container = Container.open(k.env);
  const group = Group.open(GROUP, k.env);
  group.attach(container);
  return { ...k, container, group };
}


const dirtyCalls = (fake: ReturnType<typeof kernel>['fake']) =>
  fake.calls.filter((c) => c.syscall === 'ioctl' && c.request! >>> 0 === b.VFIO_IOMMU_DIRTY_PAGES >>> 0).length;

describe('dirty bitmaps', () => {
  test('bits become runs of pages from the base, across byte and word edges', () => {
    const bitmap = new Uint8Array(16);
    // pages 0-2, 7-9 (crossing a byte), 63-65 (crossing a 64-bit word), 127
    for (const page of [0, 1, 2, 7, 8, 9, 63, 64, 65, 127]) bitmap[page >> 3] |= 1 << (page & 7);
    expect(dirtyRanges(bitmap, 0x10_0000n, PAGE, 128n)).toEqual([
      { iova: 0x10_0000n, size: 3n * PAGE },
      { iova: 0x10_0000n + 7n * PAGE, size: 3n * PAGE },
      { iova: 0x10_0000n + 63n * PAGE, size: 3n * PAGE },
      { iova: 0x10_0000n + 127n * PAGE, size: PAGE },
    ]);
  });

  test('only the first `pages` bits count; all-dirty and all-clean bitmaps', () => {
    expect(dirtyRanges(new Uint8Array(8).fill(0xff), 0n, PAGE, 10n)).toEqual([{ iova: 0n, size: 10n * PAGE }]);
    expect(dirtyRanges(new Uint8Array(8).fill(0xff), 0n, PAGE, 64n)).toEqual([{ iova: 0n, size: 64n * PAGE }]);
    expect(dirtyRanges(new Uint8Array(8), 0n, PAGE, 64n)).toEqual([]);
    expect(dirtyBitmapBytes(1n)).toBe(8n);
    expect(dirtyBitmapBytes(64n)).toBe(8n);
    expect(dirtyBitmapBytes(65n)).toBe(16n);
  });
});

describe('dirty bitmaps against a bit-by-bit decoder', () => {
  /** The plain reading of the bitmap: one bit at a time. */
  function naive(bitmap: Uint8Array, base: bigint, pages: number) {
    const out: { iova: bigint; size: bigint }[] = [];
    for (let p = 0; p < pages; p++) {
      if (!((bitmap[p >> 3] >> (p & 7)) & 1)) continue;
      const last = out[out.length - 1];
      if (last && last.iova + last.size === base + BigInt(p) * PAGE) last.size += PAGE;
      else out.push({ iova: base + BigInt(p) * PAGE, size: PAGE });
    }
    return out;
  }

  test('random bitmaps, with clean and dirty stretches of whole words, and odd lengths', () => {
    let seed = 0x2026;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let round = 0; round < 200; round++) {
      const pages = 1 + Math.floor(random() * 700);
      const bitmap = new Uint8Array(Number(dirtyBitmapBytes(BigInt(pages))));
      let dirty = random() < 0.5;
      for (let p = 0; p < pages; p++) {
        if (random() < 0.03) dirty = !dirty;
        if (dirty) bitmap[p >> 3] |= 1 << (p & 7);
      }
      expect(dirtyRanges(bitmap, 0x8000_0000n, PAGE, BigInt(pages))).toEqual(naive(bitmap, 0x8000_0000n, pages));
    }
  });

  test('1 GiB of 4 KiB pages all dirty is one run', () => {
    const pages = (1n << 30n) / PAGE;
    expect(dirtyRanges(new Uint8Array(Number(dirtyBitmapBytes(pages))).fill(0xff), 0n, PAGE, pages)).toEqual([{ iova: 0n, size: 1n << 30n }]);
  });
});

describe('Container dirty page tracking', () => {
  test('start, report, stop: type1 reports every page of each mapping in the range dirty', () => {
    const { fake, env, container, group } = attached();
    const a = DmaBuffer.alloc(3 * 4096, env);
    const c = DmaBuffer.alloc(2 * 4096, env);
    const first = container.map(a, { iova: 0x10_0000n });
    const second = container.map(c, { iova: 0x10_0000n + 8n * PAGE });
    expect(container.dirtyTracking).toBe(false);
    container.startDirtyTracking();
    expect(container.dirtyTracking).toBe(true);
    const report = container.dirtyPages(0x10_0000n, 16n * PAGE);
    expect(report).toEqual([
      { iova: 0x10_0000n, size: 3n * PAGE },
      { iova: 0x10_0000n + 8n * PAGE, size: 2n * PAGE },
    ]);
    // Reported again at the next call: type1 cannot see device writes, so mapped pages stay dirty.
    expect(container.dirtyPages(0x10_0000n, 16n * PAGE)).toEqual(report);
    // A range holding only the second mapping.
    expect(container.dirtyPages(0x10_0000n + 8n * PAGE, 2n * PAGE)).toEqual([report[1]]);
    container.stopDirtyTracking();
    expect(container.dirtyTracking).toBe(false);
    first.unmap();
    second.unmap();
    group.close();
    container.close();
    a.close();
    c.close();
    expectNothingLeft(fake);
  });

  test('asks once per mapping, from its first IOVA (the kernel leaks bits between mappings otherwise); touching runs join', () => {
    const { fake, env } = kernel();
    const asked: { iova: bigint; size: bigint }[] = [];
    const backend = Object.create(fake, {
      ioctl: {
        value: (fd: number, request: number, arg?: number | Uint8Array) => {
          if (request === b.VFIO_IOMMU_DIRTY_PAGES && arg instanceof Uint8Array && arg.length > 8) {
            const range = b.vfio_iommu_type1_dirty_bitmap_get.decode(arg, 8);
            asked.push({ iova: range.iova, size: range.size });
          }
          return fake.ioctl(fd, request, arg);
        },
      },
    });
    const container = Container.open({ ...env, backend });
    const group = Group.open(GROUP, { ...env, backend });
    group.attach(container);
    const buffers = [3, 2, 1].map((pages) => DmaBuffer.alloc(pages * 4096, { ...env, backend }));
    const mappings = [
      container.map(buffers[0], { iova: 0x40_0000n }),
      container.map(buffers[1], { iova: 0x40_0000n + 3n * PAGE }), // touches the first
      container.map(buffers[2], { iova: 0x40_0000n + 70n * PAGE }), // past a 64-page word
    ];
    container.startDirtyTracking();
    expect(container.dirtyPages(0x40_0000n, 128n * PAGE)).toEqual([
      { iova: 0x40_0000n, size: 5n * PAGE },
      { iova: 0x40_0000n + 70n * PAGE, size: PAGE },
    ]);
    expect(asked).toEqual(mappings.map((m) => ({ iova: m.iova, size: m.size })));
    for (const m of mappings) m.unmap();
    group.close();
    container.close();
    for (const buffer of buffers) buffer.close();
    expectNothingLeft(fake);
  });

  test('a report before start is refused before the kernel, and the kernel agrees once the flag is cleared', () => {
    const { fake, container } = attached();
    const before = dirtyCalls(fake);
    const error = thrown(() => container.dirtyPages(0n, PAGE));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ERR_VFIO_DIRTY_TRACKING_OFF', operation: 'VFIO_IOMMU_DIRTY_PAGES', hint: expect.stringContaining('startDirtyTracking') });
    expect(dirtyCalls(fake)).toBe(before);
    container.close();
  });

  test('ranges are checked first: alignment, zero, the end of the IOVA space, a cut mapping; nothing reaches the kernel', () => {
    const { fake, env, container, group } = attached();
    const buffer = DmaBuffer.alloc(4 * 4096, env);
    const mapping = container.map(buffer, { iova: 0x20_0000n });
    container.startDirtyTracking();
    const before = dirtyCalls(fake);
    expect(thrown(() => container.dirtyPages(0x20_0001n, PAGE))).toMatchObject({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringMatching(/^iova/) });
    expect(thrown(() => container.dirtyPages(0x20_0000n, 100n))).toMatchObject({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringMatching(/^size/) });
    expect(thrown(() => container.dirtyPages(0x20_0000n, 0n))).toMatchObject({ code: 'ERR_VFIO_MISALIGNED' });
    expect(thrown(() => container.dirtyPages(0xffff_ffff_ffff_f000n, 2n * PAGE))).toMatchObject({ name: 'RangeError', message: expect.stringMatching(/^size runs past/) });
    expect(thrown(() => container.dirtyPages(0x20_1000n, PAGE))).toMatchObject({ code: 'ERR_VFIO_DMA_PARTIAL', message: expect.stringContaining('0x200000') });
    expect(thrown(() => container.dirtyPages(0x1f_0000n, 0x1_2000n))).toMatchObject({ code: 'ERR_VFIO_DMA_PARTIAL' });
    for (const bad of [-1, 1.5, '0', undefined]) {
      expect(thrown(() => container.dirtyPages(bad as never, PAGE))).toMatchObject({ message: expect.stringMatching(/^iova/) });
    }
    expect(dirtyCalls(fake)).toBe(before);
    mapping.unmap();
    group.close();
    container.close();
    buffer.close();
    expectNothingLeft(fake);
  });

  test("TYPE1 (not v2) answers EACCES; the kernel's answer is the error and tracking stays off", () => {
    const { container } = attached({ type1Only: true });
    expect(thrown(() => container.startDirtyTracking())).toMatchObject({ code: 'EACCES', operation: 'VFIO_IOMMU_DIRTY_PAGES' });
    expect(container.dirtyTracking).toBe(false);
    container.close();
  });

  test('before a group is attached and after close the calls are refused clearly', () => {
    const { env } = kernel();
    const container = Container.open(env);
    expect(thrown(() => container.startDirtyTracking())).toMatchObject({ code: 'ERR_VFIO_NOT_ATTACHED' });
    container.close();
    expect(thrown(() => container.dirtyPages(0n, PAGE))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
  });

  test('a failed GET_BITMAP frees the scratch bitmap and leaves tracking on', () => {
    const { fake, env, container, group } = attached();
    const buffer = DmaBuffer.alloc(4096, env);
    const mapping = container.map(buffer, { iova: 0x30_0000n });
    container.startDirtyTracking();
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_DIRTY_PAGES, errno: 'EFAULT' });
    const buffers = fake.liveDmaBuffers();
    expect(thrown(() => container.dirtyPages(0x30_0000n, PAGE))).toMatchObject({ code: 'EFAULT', operation: 'VFIO_IOMMU_DIRTY_PAGES' });
    expect(fake.liveDmaBuffers()).toBe(buffers);
    expect(container.dirtyTracking).toBe(true);
    expect(container.dirtyPages(0x30_0000n, PAGE)).toEqual([{ iova: 0x30_0000n, size: PAGE }]);
    mapping.unmap();
    group.close();
    container.close();
    buffer.close();
    expectNothingLeft(fake);
  });
});
