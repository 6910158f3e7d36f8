import {
  vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration, vfio_iommu_type1_info_dma_avail,
  VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_UNMAP_DMA, VFIO_NOIOMMU_IOMMU, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd, pointerArg, valueArg, writeBack } from './abi';
import { buildChain, placeChain } from './capabilities';
import { Errno } from './errno';
import { DmaTable } from './fake-dma';
import { FakeDirtyPages } from './fake-dirty-pages';
import type { FakeGroup } from './fake-group';
import type { FakeAddressSpace } from './fake-memory';
import type { ResolvedOptions } from './options';

// What type1 reports as the largest dirty bitmap (DIRTY_BITMAP_SIZE_MAX: INT_MAX pages, one bit each).
const DIRTY_BITMAP_SIZE_MAX = 1n << 28n;

/**
 * /dev/vfio/vfio: a container of groups that share one IOMMU context. The
 * IOMMU exists from SET_IOMMU until the last group leaves; groups hold the
 * container, so closing its fd does not detach them (as in Linux, where
 * each attached group holds a reference).
 */
export class FakeContainer {
  readonly groups = new Set<FakeGroup>();
  /** Whether the container's own fd is still open. */
  fdOpen = true;
  /** The IOMMU driver set by SET_IOMMU; vfio-noiommu has no DMA table (it maps nothing). */
  private iommu: { type: number; dma: DmaTable | null; dirty: FakeDirtyPages } | null = null;

  /** `pinned` is what the whole process has pinned so far, for the RLIMIT_MEMLOCK check. */
  constructor(private readonly options: ResolvedOptions, private readonly memory: FakeAddressSpace, private readonly pinned: () => bigint) {}

  /** Still referenced by its fd or by an attached group. */
  get alive(): boolean {
    return this.fdOpen || this.groups.size > 0;
  }

  /** The IOMMU type set by SET_IOMMU, or 0. */
  get iommuType(): number {
    return this.iommu?.type ?? 0;
  }

  get dma(): DmaTable | null {
    return this.iommu?.dma ?? null;
  }

  attach(group: FakeGroup): void {
    // vfio_iommu_type1_attach_group: attaching could pin pages, so not while a vaddr is invalid.
    if (this.iommu?.dma && this.iommu.dma.invalidVaddrs > 0) throw new Errno('EBUSY');
    this.groups.add(group);
  }

  /** The last group leaving tears the IOMMU down with every mapping. */
  detach(group: FakeGroup): void {
    this.groups.delete(group);
    if (this.groups.size === 0) this.iommu = null;
  }

  ioctl(request: number, arg: number | Uint8Array | undefined): number {
    switch (request) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION: return this.checkExtension(valueArg(arg));
      case VFIO_SET_IOMMU: return this.setIommu(valueArg(arg));
    }
    // Without an IOMMU driver the container answers EINVAL to everything else.
    if (!this.iommu) throw new Errno('EINVAL');
    // vfio-noiommu's ioctl answers only CHECK_EXTENSION: MAP_DMA and the rest are ENOTTY.
    if (!this.iommu.dma) throw new Errno('ENOTTY');
    switch (request) {
      case VFIO_IOMMU_GET_INFO: return this.getInfo(pointerArg(arg), this.iommu.dma);
      case VFIO_IOMMU_MAP_DMA: return this.mapDma(pointerArg(arg), this.iommu.dma);
      case VFIO_IOMMU_UNMAP_DMA: return this.unmapDma(pointerArg(arg), this.iommu.dma);
      case VFIO_IOMMU_DIRTY_PAGES:
        return this.iommu.dirty.ioctl(pointerArg(arg), this.iommu.dma, this.iommu.type === VFIO_TYPE1v2_IOMMU, lowestBit(this.options.iommuPageSizes));
      default: throw new Errno('ENOTTY');
    }
  }

  private checkExtension(extension: number): number {
    // In no-IOMMU mode a container with groups (or the noiommu driver set) only offers vfio-noiommu;
    // before that every registered driver answers, type1 included.
    const noiommuOnly = this.options.noiommu && (this.groups.size > 0 || this.iommu !== null);
    if (extension === VFIO_NOIOMMU_IOMMU) return this.options.noiommu ? 1 : 0;
    if (noiommuOnly) return 0;
    switch (extension) {
      case VFIO_TYPE1_IOMMU:
      case VFIO_UNMAP_ALL:
        return 1;
      case VFIO_TYPE1v2_IOMMU:
        return this.options.type1Only ? 0 : 1;
      case VFIO_DMA_CC_IOMMU:
        return this.iommu ? 1 : 0;
      case VFIO_UPDATE_VADDR:
        // Asked of the IOMMU set (type1's answer; 0 before SET_IOMMU).
        return this.iommu && this.options.updateVaddr ? 1 : 0;
      default:
        return 0;
    }
  }

  private setIommu(type: number): number {
    if (this.groups.size === 0 || this.iommu) throw new Errno('EINVAL');
    if (this.options.noiommu) {
      // Only vfio-noiommu serves noiommu groups: no translation, no isolation, no interrupt remapping needed.
      if (type !== VFIO_NOIOMMU_IOMMU) throw new Errno('ENODEV');
      this.iommu = { type, dma: null, dirty: new FakeDirtyPages(this.memory, DIRTY_BITMAP_SIZE_MAX) };
      return 0;
    }
    if (this.checkExtension(type) !== 1 || (type !== VFIO_TYPE1_IOMMU && type !== VFIO_TYPE1v2_IOMMU)) throw new Errno('ENODEV');
    // type1 refuses to attach groups whose MSIs are not isolated.
    if (!this.options.interruptRemapping) throw new Errno('EPERM');
    const dma = new DmaTable({
      pageSize: lowestBit(this.options.iommuPageSizes),
      ranges: this.options.iovaRanges,
      limit: this.options.dmaAvail,
      v2: type === VFIO_TYPE1v2_IOMMU,
    });
    this.iommu = { type, dma, dirty: new FakeDirtyPages(this.memory, DIRTY_BITMAP_SIZE_MAX) };
    return 0;
  }

  private getInfo(bytes: Uint8Array, dma: DmaTable): number {
    const info = decodeFixed(vfio_iommu_type1_info, bytes);
    checkArgsz(bytes, info.argsz, offsetOfEnd(vfio_iommu_type1_info, 'iova_pgsizes'));
    // cap_offset is written back only to callers whose argsz covers it.
    const withCaps = info.argsz >= offsetOfEnd(vfio_iommu_type1_info, 'cap_offset');
    const minsz = offsetOfEnd(vfio_iommu_type1_info, withCaps ? 'cap_offset' : 'iova_pgsizes');
    const ranges = this.options.iovaRanges;
    const chain = buildChain(vfio_iommu_type1_info.size, [
      {
        codec: vfio_iommu_type1_info_cap_iova_range,
        value: { header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1 }, nr_iovas: ranges.length, iova_ranges: ranges },
      },
      {
        codec: vfio_iommu_type1_info_cap_migration,
        value: {
          header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, version: 1 },
          flags: 0, pgsize_bitmap: lowestBit(this.options.iommuPageSizes), max_dirty_bitmap_size: DIRTY_BITMAP_SIZE_MAX,
        },
      },
      { codec: vfio_iommu_type1_info_dma_avail, value: { header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1 }, avail: dma.available } },
    ]);
    const placed = placeChain(bytes, info.argsz, vfio_iommu_type1_info.size, chain);
    writeBack(vfio_iommu_type1_info, {
      argsz: placed.argsz,
      flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: this.options.iommuPageSizes,
      cap_offset: placed.capOffset,
    }, bytes, minsz);
    return 0;
  }

  private mapDma(bytes: Uint8Array, dma: DmaTable): number {
    const map = decodeFixed(vfio_iommu_type1_dma_map, bytes);
    checkArgsz(bytes, map.argsz, offsetOfEnd(vfio_iommu_type1_dma_map, 'size'));
    const known = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | (this.options.updateVaddr ? VFIO_DMA_MAP_FLAG_VADDR : 0);
    if (map.flags & ~known) throw new Errno('EINVAL');
    if (map.flags & VFIO_DMA_MAP_FLAG_VADDR) {
      // A new vaddr takes no READ/WRITE: the mapping keeps its own.
      if (map.flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) throw new Errno('EINVAL');
      dma.updateVaddr(map.iova, map.size, map.vaddr);
      return 0;
    }
    dma.map(
      { iova: map.iova, size: map.size, vaddr: map.vaddr, read: !!(map.flags & VFIO_DMA_MAP_FLAG_READ), write: !!(map.flags & VFIO_DMA_MAP_FLAG_WRITE) },
      (vaddr, size) => {
        if (!this.memory.find(vaddr, size)) return 'EFAULT';
        if (this.pinned() + size > this.options.memlockLimit) return 'ENOMEM';
        return undefined;
      },
    );
    return 0;
  }

  private unmapDma(bytes: Uint8Array, dma: DmaTable): number {
    const minsz = offsetOfEnd(vfio_iommu_type1_dma_unmap, 'size');
    const unmap = decodeFixed(vfio_iommu_type1_dma_unmap, bytes);
    checkArgsz(bytes, unmap.argsz, minsz);
    const known = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_ALL | (this.options.updateVaddr ? VFIO_DMA_UNMAP_FLAG_VADDR : 0);
    if (unmap.flags & ~known) throw new Errno('EINVAL');
    // Unmapping with the dirty bitmap is not modelled.
    if (unmap.flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) throw new Errno('EINVAL');
    const all = (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
    const size = dma.unmap(unmap.iova, unmap.size, all, (unmap.flags & VFIO_DMA_UNMAP_FLAG_VADDR) !== 0);
    writeBack(vfio_iommu_type1_dma_unmap, { argsz: unmap.argsz, flags: unmap.flags, iova: unmap.iova, size }, bytes, minsz);
    return 0;
  }
}

function lowestBit(bits: bigint): bigint {
  return bits & -bits;
}
