/**
 * VFIO_IOMMU_MAP_DMA / UNMAP_DMA arguments written into a buffer the
 * container reuses (see arg-buffer.ts). Offsets come from the bindings.
 * Every value is checked by Container.map before it gets here: the vaddr
 * is the addon's, the IOVA and size passed the allocator's checks.
 */
import { bindings as b } from './structs';
import { ArgBuffer, fieldAt } from './arg-buffer';

const map = b.vfio_iommu_type1_dma_map;
const MAP = {
  argsz: fieldAt(map, 'argsz', 4),
  flags: fieldAt(map, 'flags', 4),
  vaddr: fieldAt(map, 'vaddr', 8),
  iova: fieldAt(map, 'iova', 8),
  size: fieldAt(map, 'size', 8),
};
const unmap = b.vfio_iommu_type1_dma_unmap;
const UNMAP = {
  argsz: fieldAt(unmap, 'argsz', 4),
  flags: fieldAt(unmap, 'flags', 4),
  iova: fieldAt(unmap, 'iova', 8),
  size: fieldAt(unmap, 'size', 8),
};
const MAP_SIZE = map.size;
/** The unmap struct without its flexible bitmap data (no dirty tracking here). */
const UNMAP_SIZE = unmap.encodedSize({});

/** A reusable struct vfio_iommu_type1_dma_map. */
export function newMapDmaArg(): ArgBuffer {
  return new ArgBuffer(MAP_SIZE);
}

/** A reusable struct vfio_iommu_type1_dma_unmap, without bitmap. */
export function newUnmapDmaArg(): ArgBuffer {
  return new ArgBuffer(UNMAP_SIZE);
}

/** Fills a newMapDmaArg(). */
export function fillMapDma(arg: ArgBuffer, flags: number, vaddr: bigint, iova: bigint, size: bigint): void {
  const { view } = arg;
  view.setUint32(MAP.argsz, MAP_SIZE, true);
  view.setUint32(MAP.flags, flags, true);
  view.setBigUint64(MAP.vaddr, vaddr, true);
  view.setBigUint64(MAP.iova, iova, true);
  view.setBigUint64(MAP.size, size, true);
}

/** Fills a newUnmapDmaArg(). */
export function fillUnmapDma(arg: ArgBuffer, flags: number, iova: bigint, size: bigint): void {
  const { view } = arg;
  view.setUint32(UNMAP.argsz, UNMAP_SIZE, true);
  view.setUint32(UNMAP.flags, flags, true);
  view.setBigUint64(UNMAP.iova, iova, true);
  view.setBigUint64(UNMAP.size, size, true);
}
