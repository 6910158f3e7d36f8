/**
 * Type1's dirty page tracking (VFIO_IOMMU_DIRTY_PAGES), for a VMM that
 * migrates: START logs the pages devices dirty, GET_BITMAP reports them
 * for an IOVA range that covers whole mappings, STOP ends it. Type1 cannot
 * see a device's writes: for an IOMMU-backed device (not an mdev that pins
 * only what it touches) every mapped page counts as dirty at every report.
 *
 * Reports are asked one mapping at a time, from the mapping's first IOVA.
 * Asked for a range holding several mappings, type1 (update_user_bitmap in
 * drivers/vfio/vfio_iommu_type1.c, 6.1 to 7.3) shifts a mapping's bits into
 * place inside the mapping's own bitmap and ORs in the bits already written
 * below it; the next report clears only the mapping's own bit count, so
 * those borrowed bits come back shifted again: seen in the guest as two
 * pages past the end of a 2-page mapping reported dirty on the second
 * report. From its first IOVA a mapping's shift is 0 and nothing leaks.
 */
import { bindings as b, encodeArg } from '../../abi/structs';
import { withUserMemory } from '../../abi/iommufd-args';
import type { Backend } from '../../core/backend';
import { dirtyBitmapBytes, dirtyRanges, type DirtyRange } from '../../dma/dirty-bitmap';

const HEADER = b.vfio_iommu_type1_dirty_bitmap.size;

/** The arguments of START and STOP (no data). */
export function dirtyPagesFlagArg(flags: number): Uint8Array {
  return encodeArg(b.vfio_iommu_type1_dirty_bitmap, { flags });
}

/**
 * GET_BITMAP of [iova, iova + size) in pages of `pageSize`: the bitmap
 * lives in zeroed scratch memory (the kernel ORs into it), freed after.
 */
export function readDirtyBitmap(backend: Backend, iova: bigint, size: bigint, pageSize: bigint, ioctl: (arg: Uint8Array) => void): DirtyRange[] {
  const pages = size / pageSize;
  const bytes = dirtyBitmapBytes(pages);
  return withUserMemory(backend, Number(bytes), (bitmap, address) => {
    const arg = new Uint8Array(HEADER + b.vfio_iommu_type1_dirty_bitmap_get.size);
    b.vfio_iommu_type1_dirty_bitmap.encode({ argsz: arg.length, flags: b.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP }, arg, 0);
    b.vfio_iommu_type1_dirty_bitmap_get.encode({ iova, size, bitmap: { pgsize: pageSize, size: bytes, data: address } }, arg, HEADER);
    ioctl(arg);
    return dirtyRanges(bitmap, iova, pageSize, pages);
  });
}

