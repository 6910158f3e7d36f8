import { VfioError } from '../core/errors';
import type { DmaBuffer } from '../dma/dma-buffer';
import type { DmaMapOptions } from '../dma/dma-space';
import type { DmaMapping } from '../dma/mapping';
import type { IovaRange } from '../dma/iova-allocator';
import type { IommuContext } from './context';

/**
 * The IOMMU context of a device opened in no-IOMMU mode
 * (vfio.enable_unsafe_noiommu_mode=1; a noiommu-N group or noiommu-vfioN
 * cdev): there is no IOMMU, so nothing can be mapped and the device sees
 * physical memory as it is. It answers the IommuContext questions truthfully
 * (no mappings, no IOVA ranges, no IOMMU page sizes) and refuses map() with
 * the way to do DMA instead: give the device the physical addresses of a
 * DmaBuffer, from physicalSegments() or physicalAddress().
 */
export class NoIommu implements IommuContext {
  readonly kind = 'noiommu';
  /** The node the device came through ('/dev/vfio/noiommu-0'), for errors; may be absent. */
  readonly path: string | undefined;

  constructor(path?: string) {
    this.path = path;
  }

  /** @throws VfioError ERR_VFIO_IOMMU_UNAVAILABLE, always: no-IOMMU mode has nothing to map DMA into. */
  map(_buffer?: DmaBuffer, _options?: DmaMapOptions): DmaMapping {
    throw new VfioError('ERR_VFIO_IOMMU_UNAVAILABLE', `no IOMMU in no-IOMMU mode${this.path ? ` (${this.path})` : ''}: DMA cannot be mapped`, {
      path: this.path,
      hint: 'give the device physical addresses instead: physicalSegments(buffer) or physicalAddress(buffer, offset) of a DmaBuffer (needs root)',
    });
  }

  /** Nothing is ever mapped, so there is nothing to unmap. */
  unmapAll(): void {}

  /** Nothing is ever mapped: always []. */
  unmapRange(_iova?: number | bigint, _size?: number | bigint): DmaMapping[] {
    return [];
  }

  /** Always empty. */
  mappings(): readonly DmaMapping[] {
    return [];
  }

  /** Empty: without an IOMMU there is no IOVA space, only physical addresses. */
  iovaRanges(): readonly IovaRange[] {
    return [];
  }

  /** 0n: no IOMMU, so no IOMMU page sizes. */
  pageSizes(): bigint {
    return 0n;
  }
}
