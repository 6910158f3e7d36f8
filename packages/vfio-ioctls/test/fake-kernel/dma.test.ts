import fc from 'fast-check';
import {
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap,
  VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_GROUP_SET_CONTAINER, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU,
} from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, fdArg, GROUP, mapDma, openDevice, thrown, unmapDma } from './helpers';

const PAGE = 4096n;

describe('type1 DMA mapping rules', () => {
  let kernel: FakeKernel;
  let container: number;
  let vaddr: bigint;
  const map = (iova: bigint, size: bigint, at = vaddr, flags?: number) => mapDma(kernel, container, { vaddr: at, iova, size, flags });

  beforeEach(() => {
    ({ kernel, container } = openDevice({ dmaAvail: 4 }));
    vaddr = kernel.addressOf(kernel.allocDma(16 * 4096));
  });
  afterEach(() => kernel.dispose());

  test('VFIO_UPDATE_VADDR: invalidation is all or nothing, and a new vaddr goes only to an invalid mapping of exactly that range', () => {
    const other = kernel.addressOf(kernel.allocDma(16 * 4096));
    map(0x10_0000n, PAGE);
    map(0x20_0000n, 2n * PAGE, vaddr + PAGE);
    expect(unmapDma(kernel, container, { iova: 0x10_0000n, size: PAGE, flags: VFIO_DMA_UNMAP_FLAG_VADDR })).toBe(PAGE);
    // Already invalid in the range: EINVAL, and the second mapping's vaddr stays valid (rolled back).
    expect(thrown(() => unmapDma(kernel, container, { iova: 0n, size: 0n, flags: VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0x20_0000n, 2n * PAGE, other, VFIO_DMA_MAP_FLAG_VADDR))).toMatchObject({ code: 'EINVAL' });
    // Not exactly the mapping's range: EINVAL; nothing there: ENOENT.
    expect(thrown(() => map(0x10_0000n, 2n * PAGE, other, VFIO_DMA_MAP_FLAG_VADDR))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0x30_0000n, PAGE, other, VFIO_DMA_MAP_FLAG_VADDR))).toMatchObject({ code: 'ENOENT' });
    expect(map(0x10_0000n, PAGE, other, VFIO_DMA_MAP_FLAG_VADDR)).toBe(0);
    expect(kernel.dmaMappings(container).map((m) => m.vaddr)).toEqual([other, vaddr + PAGE]);
    // Valid again: a second new vaddr is EINVAL.
    expect(thrown(() => map(0x10_0000n, PAGE, vaddr, VFIO_DMA_MAP_FLAG_VADDR))).toMatchObject({ code: 'EINVAL' });
  });

  test('a page-aligned map succeeds and is listed', () => {
    expect(map(0x100000n, 2n * PAGE)).toBe(0);
    expect(kernel.dmaMappings(container)).toEqual([{ iova: 0x100000n, size: 2n * PAGE, vaddr, read: true, write: true }]);
  });

  test('misaligned iova, size or vaddr, and size 0, are EINVAL', () => {
    for (const [iova, size, at] of [[0x800n, PAGE, vaddr], [0n, 0x800n, vaddr], [0n, PAGE, vaddr + 0x10n], [0n, 0n, vaddr]] as const) {
      expect(thrown(() => map(iova, size, at))).toMatchObject({ code: 'EINVAL', syscall: 'ioctl' });
    }
    expect(kernel.dmaMappings()).toEqual([]);
  });

  test('neither READ nor WRITE, unknown flags, and VADDR with READ are EINVAL; VADDR where nothing is mapped ENOENT; argsz below 32 is EINVAL', () => {
    expect(thrown(() => map(0n, PAGE, vaddr, 0))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0n, PAGE, vaddr, VFIO_DMA_MAP_FLAG_READ | 0x80))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0n, PAGE, vaddr, VFIO_DMA_MAP_FLAG_VADDR | VFIO_DMA_MAP_FLAG_READ))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0n, PAGE, vaddr, VFIO_DMA_MAP_FLAG_VADDR))).toMatchObject({ code: 'ENOENT' });
    const short = vfio_iommu_type1_dma_map.encode({ argsz: 24, flags: VFIO_DMA_MAP_FLAG_READ, vaddr, iova: 0n, size: PAGE });
    expect(thrown(() => kernel.ioctl(container, VFIO_IOMMU_MAP_DMA, short))).toMatchObject({ code: 'EINVAL' });
  });

  test('overlapping an existing mapping is EEXIST', () => {
    map(0x10000n, 4n * PAGE);
    expect(thrown(() => map(0x12000n, PAGE, vaddr + 8n * PAGE))).toMatchObject({ code: 'EEXIST' });
    expect(thrown(() => map(0xf000n, 2n * PAGE, vaddr + 8n * PAGE))).toMatchObject({ code: 'EEXIST' });
    expect(map(0x14000n, PAGE, vaddr + 8n * PAGE)).toBe(0);
  });

  test('more mappings than dmaAvail is ENOSPC', () => {
    for (let i = 0n; i < 4n; i++) map(i * PAGE, PAGE, vaddr + i * PAGE);
    expect(thrown(() => map(8n * PAGE, PAGE, vaddr + 8n * PAGE))).toMatchObject({ code: 'ENOSPC' });
  });

  test('outside the IOVA ranges (the MSI window, past the top) is EINVAL', () => {
    expect(thrown(() => map(0xfee00000n, PAGE))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0xfedff000n, 2n * PAGE))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => map(0x8000000000n, PAGE))).toMatchObject({ code: 'EINVAL' });
    expect(map(0xfef00000n, PAGE)).toBe(0);
  });

  test('a vaddr that is not allocated memory is EFAULT; so is one running past its buffer, or freed', () => {
    expect(thrown(() => map(0n, PAGE, 0x1000n))).toMatchObject({ code: 'EFAULT' });
    expect(thrown(() => map(0n, 17n * PAGE))).toMatchObject({ code: 'EFAULT' });
    const buf = kernel.allocDma(4096);
    const at = kernel.addressOf(buf);
    kernel.freeDma(buf);
    expect(thrown(() => map(0n, PAGE, at))).toMatchObject({ code: 'EFAULT' });
  });

  test('pinning past memlockLimit (RLIMIT_MEMLOCK) is ENOMEM', () => {
    const { kernel: k, container: c } = openDevice({ memlockLimit: 2n * PAGE });
    const at = k.addressOf(k.allocDma(3 * 4096));
    mapDma(k, c, { vaddr: at, iova: 0n, size: PAGE });
    const error = thrown(() => mapDma(k, c, { vaddr: at + PAGE, iova: PAGE, size: 2n * PAGE }));
    expect(error).toMatchObject({ code: 'ENOMEM', errno: -12 });
    expect(mapDma(k, c, { vaddr: at + PAGE, iova: PAGE, size: PAGE })).toBe(0);
    k.dispose();
  });

  test('mmapped device memory can be DMA-mapped (peer to peer)', () => {
    const { kernel: k, container: c, device } = openDevice();
    const bar = k.mmap(device, 0x1000, 3, 0n);
    expect(mapDma(k, c, { vaddr: k.addressOf(bar), iova: 0n, size: PAGE })).toBe(0);
    k.dispose();
  });

  test('UNMAP of nothing returns size 0 with no error', () => {
    expect(unmapDma(kernel, container, { iova: 0x100000n, size: PAGE })).toBe(0n);
  });

  test('UNMAP writes back the size unmapped, covering whole mappings', () => {
    map(0n, PAGE);
    map(PAGE, 2n * PAGE, vaddr + PAGE);
    expect(unmapDma(kernel, container, { iova: 0n, size: 8n * PAGE })).toBe(3n * PAGE);
    expect(kernel.dmaMappings()).toEqual([]);
  });

  test('UNMAP cutting a mapping in two is EINVAL under TYPE1v2; misaligned or size 0 is EINVAL', () => {
    map(0n, 4n * PAGE);
    expect(thrown(() => unmapDma(kernel, container, { iova: PAGE, size: PAGE }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => unmapDma(kernel, container, { iova: 0n, size: PAGE }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => unmapDma(kernel, container, { iova: 0x10n, size: PAGE }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => unmapDma(kernel, container, { iova: 0n, size: 0n }))).toMatchObject({ code: 'EINVAL' });
    expect(kernel.dmaMappings()).toHaveLength(1);
  });

  test('UNMAP_FLAG_ALL unmaps everything; with an iova or size it is EINVAL; dirty bitmaps are EINVAL', () => {
    map(0n, PAGE);
    map(0x100000n, PAGE, vaddr + PAGE);
    expect(thrown(() => unmapDma(kernel, container, { iova: 0n, size: PAGE, flags: VFIO_DMA_UNMAP_FLAG_ALL }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => unmapDma(kernel, container, { iova: 0n, size: PAGE, flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP }))).toMatchObject({ code: 'EINVAL' });
    expect(unmapDma(kernel, container, { iova: 0n, size: 0n, flags: VFIO_DMA_UNMAP_FLAG_ALL })).toBe(2n * PAGE);
    const short = vfio_iommu_type1_dma_unmap.encode({ argsz: 16 });
    expect(thrown(() => kernel.ioctl(container, VFIO_IOMMU_UNMAP_DMA, short))).toMatchObject({ code: 'EINVAL' });
  });

  test('TYPE1 (v1) unmaps a whole mapping from its first page, and nothing from its middle', () => {
    const k = new FakeKernel();
    k.addDevice({ address: EDU, group: GROUP });
    const c = k.open('/dev/vfio/vfio', 2);
    const g = k.open(`/dev/vfio/${GROUP}`, 2);
    k.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c));
    k.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU);
    const at = k.addressOf(k.allocDma(4 * 4096));
    mapDma(k, c, { vaddr: at, iova: 0n, size: 4n * PAGE });
    expect(unmapDma(k, c, { iova: PAGE, size: PAGE })).toBe(0n);
    expect(unmapDma(k, c, { iova: 0n, size: PAGE })).toBe(4n * PAGE);
    k.dispose();
  });

  test('property: the table never holds overlapping mappings and unmap-all returns their total size', () => {
    const op = fc.record({ page: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 4 }), unmap: fc.boolean() });
    fc.assert(fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const { kernel: k, container: c } = openDevice({ dmaAvail: 1000 });
      const at = k.addressOf(k.allocDma(32 * 4096));
      try {
        for (const o of ops) {
          const iova = BigInt(o.page) * PAGE;
          const size = BigInt(o.pages) * PAGE;
          try {
            if (o.unmap) unmapDma(k, c, { iova, size });
            else mapDma(k, c, { vaddr: at + iova, iova, size });
          } catch (e) {
            expect((e as { code: string }).code).toMatch(/^(EEXIST|EINVAL)$/);
          }
          const list = k.dmaMappings(c);
          for (let i = 1; i < list.length; i++) expect(list[i - 1].iova + list[i - 1].size <= list[i].iova).toBe(true);
        }
        const total = k.dmaMappings(c).reduce((s, m) => s + m.size, 0n);
        expect(unmapDma(k, c, { iova: 0n, size: 0n, flags: VFIO_DMA_UNMAP_FLAG_ALL })).toBe(total);
      } finally {
        k.dispose();
      }
    }), { numRuns: 50 });
  });
});

describe('device DMA through the fake IOMMU', () => {
  test('dmaWrite lands in the buffer behind the IOVA; dmaRead reads it back', () => {
    const { kernel, container } = openDevice();
    const buf = kernel.allocDma(8192);
    mapDma(kernel, container, { vaddr: kernel.addressOf(buf), iova: 0x40000n, size: 8192n });
    const dev = kernel.device(EDU)!;
    dev.dmaWrite(0x41000n, Uint8Array.of(1, 2, 3));
    expect([...new Uint8Array(buf, 0x1000, 3)]).toEqual([1, 2, 3]);
    new Uint8Array(buf)[5] = 9;
    expect(dev.dmaRead(0x40004n, 2)).toEqual(Uint8Array.of(0, 9));
    kernel.dispose();
  });

  test('an unmapped IOVA, a read-only mapping written, or freed memory fault', () => {
    const { kernel, container } = openDevice();
    const dev = kernel.device(EDU)!;
    const buf = kernel.allocDma(4096);
    mapDma(kernel, container, { vaddr: kernel.addressOf(buf), iova: 0n, size: PAGE, flags: VFIO_DMA_MAP_FLAG_READ });
    expect(() => dev.dmaRead(0x10000n, 4)).toThrow(/IOMMU fault.*not mapped/);
    expect(() => dev.dmaWrite(0n, Uint8Array.of(1))).toThrow(/IOMMU fault.*does not allow/);
    expect(dev.dmaRead(0n, 4)).toEqual(new Uint8Array(4));
    kernel.freeDma(buf);
    expect(() => dev.dmaRead(0n, 4)).toThrow(/freed/);
    kernel.dispose();
  });
});
