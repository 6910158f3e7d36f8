/**
 * IOMMU_IOAS_MAP / IOMMU_IOAS_UNMAP arguments written into buffers an IOAS
 * reuses, as abi/dma-args.ts does for the container's MAP_DMA / UNMAP_DMA:
 * map and unmap are the hot path of a VMM or a driver. Offsets come from the
 * bindings; every value was checked by the shared DMA bookkeeping first.
 */
import { ArgBuffer, fieldAt } from './arg-buffer';
import { bindings as b } from './structs';

const map = b.iommu_ioas_map;
const MAP = {
  size: fieldAt(map, 'size', 4),
  flags: fieldAt(map, 'flags', 4),
  ioasId: fieldAt(map, 'ioas_id', 4),
  userVa: fieldAt(map, 'user_va', 8),
  length: fieldAt(map, 'length', 8),
  iova: fieldAt(map, 'iova', 8),
};
const unmap = b.iommu_ioas_unmap;
const UNMAP = {
  size: fieldAt(unmap, 'size', 4),
  ioasId: fieldAt(unmap, 'ioas_id', 4),
  iova: fieldAt(unmap, 'iova', 8),
  length: fieldAt(unmap, 'length', 8),
};
const MAP_SIZE = map.size;
const UNMAP_SIZE = unmap.size;

/** A reusable struct iommu_ioas_map (its __reserved field stays 0: it is never written). */
export function newIoasMapArg(): ArgBuffer {
  return new ArgBuffer(MAP_SIZE);
}

/** A reusable struct iommu_ioas_unmap. */
export function newIoasUnmapArg(): ArgBuffer {
  return new ArgBuffer(UNMAP_SIZE);
}

/** Fills a newIoasMapArg() (the kernel writes the IOVA back: every field is written again each time). */
export function fillIoasMap(arg: ArgBuffer, flags: number, ioasId: number, userVa: bigint, length: bigint, iova: bigint): void {
  const { view } = arg;
  view.setUint32(MAP.size, MAP_SIZE, true);
  view.setUint32(MAP.flags, flags, true);
  view.setUint32(MAP.ioasId, ioasId, true);
  view.setBigUint64(MAP.userVa, userVa, true);
  view.setBigUint64(MAP.length, length, true);
  view.setBigUint64(MAP.iova, iova, true);
}

/** Fills a newIoasUnmapArg() (the kernel writes the unmapped length back). */
export function fillIoasUnmap(arg: ArgBuffer, ioasId: number, iova: bigint, length: bigint): void {
  const { view } = arg;
  view.setUint32(UNMAP.size, UNMAP_SIZE, true);
  view.setUint32(UNMAP.ioasId, ioasId, true);
  view.setBigUint64(UNMAP.iova, iova, true);
  view.setBigUint64(UNMAP.length, length, true);
}
