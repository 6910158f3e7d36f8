import { Errno } from './errno';
import type { FakeDmaMapping } from './types';

const U64_MAX = (1n << 64n) - 1n;

export interface DmaTableOptions {
  /** The smallest IOMMU page: iova, size and vaddr must be multiples of it. */
  pageSize: bigint;
  /** Usable IOVA ranges, inclusive ends. */
  ranges: readonly { start: bigint; end: bigint }[];
  /** Most mappings at once. */
  limit: number;
  /** TYPE1v2 semantics for unmap (no splitting of a mapping); TYPE1 otherwise. */
  v2: boolean;
}

/**
 * The type1 IOMMU's table of DMA mappings, with the kernel's checks in the
 * kernel's order (vfio_dma_do_map / vfio_dma_do_unmap), so that a request
 * breaking two rules fails with the same errno as on Linux.
 */
export class DmaTable {
  private readonly mappings: FakeDmaMapping[] = [];
  /** Mappings whose vaddr VFIO_DMA_UNMAP_FLAG_VADDR invalidated, until MAP_DMA with FLAG_VADDR gives a new one. */
  private readonly vaddrInvalid = new Set<FakeDmaMapping>();

  constructor(private readonly options: DmaTableOptions) {}

  /** Mappings still allowed (the DMA_AVAIL capability). */
  get available(): number {
    return this.options.limit - this.mappings.length;
  }

  list(): FakeDmaMapping[] {
    return this.mappings.map((m) => ({ ...m }));
  }

  /**
   * VFIO_IOMMU_MAP_DMA. `pin` stands for pinning the pages: it answers
   * EFAULT when [vaddr, vaddr + size) is not the process's memory, ENOMEM
   * past RLIMIT_MEMLOCK, or nothing when the pages are pinned.
   */
  map(request: FakeDmaMapping, pin: (vaddr: bigint, size: bigint) => 'EFAULT' | 'ENOMEM' | undefined): void {
    const { iova, size, vaddr } = request;
    const mask = this.options.pageSize - 1n;
    if (!request.read && !request.write) throw new Errno('EINVAL');
    if (size === 0n || ((size | iova | vaddr) & mask) !== 0n) throw new Errno('EINVAL');
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) throw new Errno('EINVAL');
    if (this.overlapping(iova, size).length > 0) throw new Errno('EEXIST');
    if (this.available <= 0) throw new Errno('ENOSPC');
    if (!this.options.ranges.some((r) => iova >= r.start && iova + size - 1n <= r.end)) throw new Errno('EINVAL');
    const refused = pin(vaddr, size);
    if (refused) throw new Errno(refused);
    this.mappings.push({ ...request });
    this.mappings.sort((a, b) => (a.iova < b.iova ? -1 : 1));
  }

  /** Mappings whose vaddr is invalid now (the kernel's vaddr_invalid_count). */
  get invalidVaddrs(): number {
    return this.vaddrInvalid.size;
  }

  /**
   * VFIO_IOMMU_MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR (vfio_dma_do_map's
   * set_vaddr): the new process address of exactly one mapping whose vaddr
   * was invalidated. ENOENT when nothing is mapped there, EINVAL when the
   * range is not exactly that mapping or its vaddr is still valid.
   */
  updateVaddr(iova: bigint, size: bigint, vaddr: bigint): void {
    const mask = this.options.pageSize - 1n;
    if (size === 0n) throw new Errno('EINVAL');
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) throw new Errno('EOVERFLOW');
    if (((size | iova | vaddr) & mask) !== 0n) throw new Errno('EINVAL');
    const [dma] = this.overlapping(iova, size);
    if (!dma) throw new Errno('ENOENT');
    if (!this.vaddrInvalid.has(dma) || dma.iova !== iova || dma.size !== size) throw new Errno('EINVAL');
    dma.vaddr = vaddr;
    this.vaddrInvalid.delete(dma);
  }

  /** VFIO_IOMMU_UNMAP_DMA; returns the bytes unmapped (0 when nothing was mapped there). */
  unmap(iova: bigint, size: bigint, all: boolean, invalidateVaddr = false): bigint {
    const mask = this.options.pageSize - 1n;
    if ((iova & mask) !== 0n) throw new Errno('EINVAL');
    const act = (victims: FakeDmaMapping[]) => (invalidateVaddr ? this.invalidate(victims) : this.remove(victims));
    if (all) {
      if (iova !== 0n || size !== 0n) throw new Errno('EINVAL');
      return act(this.mappings.slice());
    }
    if (size === 0n || (size & mask) !== 0n || iova + size - 1n > U64_MAX) throw new Errno('EINVAL');
    const end = iova + size;
    const hit = this.overlapping(iova, size);
    if (this.options.v2) {
      // TYPE1v2 never splits a mapping: a range cutting one in two is refused.
      if (hit.some((m) => m.iova < iova || m.iova + m.size > end)) throw new Errno('EINVAL');
      return act(hit);
    }
    // TYPE1 removes whole mappings that start inside the range, and stops at
    // one that starts before it.
    const inside: FakeDmaMapping[] = [];
    for (const m of hit) {
      if (m.iova < iova) break;
      inside.push(m);
    }
    return act(inside);
  }

  /** The mapping covering [iova, iova + length), as a device access would use it. */
  lookup(iova: bigint, length: bigint): FakeDmaMapping | undefined {
    return this.mappings.find((m) => iova >= m.iova && iova + length <= m.iova + m.size);
  }

  clear(): void {
    this.mappings.length = 0;
    this.vaddrInvalid.clear();
  }

  /** VFIO_DMA_UNMAP_FLAG_VADDR: all or nothing; a vaddr already invalid makes the whole call EINVAL. */
  private invalidate(victims: FakeDmaMapping[]): bigint {
    if (victims.some((m) => this.vaddrInvalid.has(m))) throw new Errno('EINVAL');
    let total = 0n;
    for (const v of victims) {
      this.vaddrInvalid.add(v);
      total += v.size;
    }
    return total;
  }

  private overlapping(iova: bigint, size: bigint): FakeDmaMapping[] {
    return this.mappings.filter((m) => m.iova < iova + size && iova < m.iova + m.size);
  }

  private remove(victims: FakeDmaMapping[]): bigint {
    let total = 0n;
    for (const v of victims) {
      this.mappings.splice(this.mappings.indexOf(v), 1);
      this.vaddrInvalid.delete(v);
      total += v.size;
    }
    return total;
  }
}
