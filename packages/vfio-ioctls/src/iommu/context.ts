import type { DmaBuffer } from '../dma/dma-buffer';
import type { DmaMapOptions } from '../dma/dma-space';
import type { IovaRange } from '../dma/iova-allocator';
import type { DmaMapping } from '../dma/mapping';

/**
 * The DMA side of an IOMMU, the one interface the device layer sees: the
 * legacy VFIO Container, an iommufd IOAS and the no-IOMMU context implement
 * it, each over the shared bookkeeping of dma/dma-space.ts.
 */
export interface IommuContext {
  /** 'container', 'iommufd' or 'noiommu'. */
  readonly kind: IommuKind;
  /** Maps `buffer` for device DMA; see {@link DmaMapOptions}. */
  map(buffer: DmaBuffer, options?: DmaMapOptions): DmaMapping;
  /** Unmaps every mapping made through this context. */
  unmapAll(): void;
  /**
   * Unmaps every mapping inside [iova, iova + size) in one kernel call
   * (as a vIOMMU asks); a range that cuts a mapping in two is refused
   * (ERR_VFIO_DMA_PARTIAL), as the kernel refuses it. Returns the mappings unmapped.
   */
  unmapRange(iova: number | bigint, size: number | bigint): DmaMapping[];
  /** The live mappings made through this context. */
  mappings(): readonly DmaMapping[];
  /** The IOVA ranges the IOMMU accepts. */
  iovaRanges(): readonly IovaRange[];
  /** Bitmap of the IOMMU's page sizes (bit n set: 2^n bytes supported). */
  pageSizes(): bigint;
}

/** Which kernel interface an IommuContext drives. */
export type IommuKind = 'container' | 'iommufd' | 'noiommu';
