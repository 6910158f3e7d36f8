import type { DmaBuffer } from './dma-buffer';
import type { DmaMapping } from './dma-mapping';

/** An inclusive range of IO virtual addresses the IOMMU can translate. */
export interface IovaRange {
  /** First valid IOVA. */
  start: bigint;
  /** Last valid IOVA (inclusive, as the kernel reports it). */
  end: bigint;
}

/** Options of {@link IommuContext.map}. */
export interface DmaMapOptions {
  /**
   * The IOVA the device will use. Must be aligned to the IOMMU's smallest
   * page size, inside one IOVA range and free. Left out, the library picks
   * one (first fit in the IOMMU's IOVA ranges, never 0).
   */
  iova?: number | bigint;
  /** The device may read the buffer (default true). */
  read?: boolean;
  /** The device may write the buffer (default true). */
  write?: boolean;
  /**
   * The highest IOVA the device can address (its DMA mask), used when the
   * library picks the IOVA: 2n ** 28n - 1n for a device with a 28-bit mask.
   */
  maxIova?: number | bigint;
}

/**
 * The DMA side of an IOMMU, kept this small so that the legacy VFIO
 * container implements it today and an iommufd IOAS can implement it later
 * without the device layer noticing.
 */
export interface IommuContext {
  /** Maps `buffer` for device DMA; see {@link DmaMapOptions}. */
  map(buffer: DmaBuffer, options?: DmaMapOptions): DmaMapping;
  /** Unmaps every mapping made through this context. */
  unmapAll(): void;
  /** The live mappings made through this context. */
  mappings(): readonly DmaMapping[];
  /** The IOVA ranges the IOMMU accepts. */
  iovaRanges(): readonly IovaRange[];
  /** Bitmap of the IOMMU's page sizes (bit n set: 2^n bytes supported). */
  pageSizes(): bigint;
}

/**
 * What a DmaMapping needs from the context that made it; internal, so the
 * public mapping cannot be used to unmap through another context.
 */
export interface MappingOwner {
  unmapMapping(mapping: DmaMapping): void;
}
