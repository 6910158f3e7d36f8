import {
  vfio_iommu_type1_dirty_bitmap, vfio_iommu_type1_dirty_bitmap_get,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, VFIO_IOMMU_DIRTY_PAGES_FLAG_START, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
} from 'vfio-bindings';
import { decodeFixed } from './abi';
import { Errno } from './errno';
import type { DmaTable } from './fake-dma';
import type { FakeAddressSpace } from './fake-memory';
import { userBytes } from './user-memory';

const U64_MAX = (1n << 64n) - 1n;

/**
 * type1's VFIO_IOMMU_DIRTY_PAGES (vfio_iommu_type1_dirty_pages), checks in
 * the kernel's order. The fake's devices sit behind the IOMMU (no group
 * pins pages the way an mdev does), so, as in Linux, every page of every
 * mapping in the range is reported dirty at each GET_BITMAP.
 */
export class FakeDirtyPages {
  tracking = false;

  constructor(private readonly memory: FakeAddressSpace, private readonly maxBitmapBytes: bigint) {}

  ioctl(bytes: Uint8Array, dma: DmaTable, v2: boolean, pageSize: bigint): number {
    if (!v2) throw new Errno('EACCES');
    const head = decodeFixed(vfio_iommu_type1_dirty_bitmap, bytes);
    const minsz = vfio_iommu_type1_dirty_bitmap.size;
    const known = VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
    if (head.argsz < minsz || head.flags & ~known) throw new Errno('EINVAL');
    // Exactly one flag (__ffs == __fls; no flag at all falls through to EINVAL below).
    if (head.flags & (head.flags - 1)) throw new Errno('EINVAL');
    if (head.flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
      this.tracking = true;
      return 0;
    }
    if (head.flags === VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
      this.tracking = false;
      return 0;
    }
    if (head.flags !== VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) throw new Errno('EINVAL');
    if (head.argsz - minsz < vfio_iommu_type1_dirty_bitmap_get.size) throw new Errno('EINVAL');
    if (bytes.length < minsz + vfio_iommu_type1_dirty_bitmap_get.size) throw new Errno('EFAULT');
    const range = vfio_iommu_type1_dirty_bitmap_get.decode(bytes, minsz);
    if (range.size === 0n) throw new Errno('EINVAL');
    const end = range.iova + range.size - 1n;
    if (end > U64_MAX) throw new Errno('EOVERFLOW');
    const pgsize = range.bitmap.pgsize;
    const pages = pgsize === 0n ? 0n : range.size / (pgsize & -pgsize);
    const need = ((pages + 63n) / 64n) * 8n;
    if (pages === 0n || range.bitmap.size === 0n || range.bitmap.size > this.maxBitmapBytes || range.bitmap.size < need) throw new Errno('EINVAL');
    if (pgsize !== pageSize || range.iova % pageSize !== 0n || range.size % pageSize !== 0n) throw new Errno('EINVAL');
    if (!this.tracking) throw new Errno('EINVAL');
    const mappings = dma.list();
    // The range must not bisect a mapping at either end.
    if (mappings.some((m) => (m.iova < range.iova && m.iova + m.size > range.iova) || (m.iova <= end && m.iova + m.size - 1n > end))) throw new Errno('EINVAL');
    const bitmap = userBytes(this.memory, range.bitmap.data, Number(need), true);
    for (const m of mappings) {
      if (m.iova < range.iova || m.iova > end) continue;
      const first = (m.iova - range.iova) / pageSize;
      for (let page = 0n; page < m.size / pageSize; page++) {
        const bit = first + page;
        bitmap[Number(bit / 8n)] |= 1 << Number(bit % 8n);
      }
    }
    return 0;
  }
}
