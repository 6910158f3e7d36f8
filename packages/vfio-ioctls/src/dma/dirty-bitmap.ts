/**
 * Dirty-page bitmaps as the kernel writes them (VFIO_IOMMU_DIRTY_PAGES,
 * the device's DMA logging report, iommufd's GET_DIRTY_BITMAP): one bit per
 * page from a base IOVA, in 64-bit little-endian words, so bit n is bit
 * n % 8 of byte n / 8 on the little-endian machines Linux VFIO runs on.
 */

import { hex, rangeError } from '../core/validate';

/** A run of dirty pages. */
export interface DirtyRange {
  iova: bigint;
  /** Bytes: a whole number of pages. */
  size: bigint;
}

/** Bytes of a bitmap for `pages` bits: whole 64-bit words (the kernel's DIRTY_BITMAP_BYTES). */
export function dirtyBitmapBytes(pages: bigint): bigint {
  return ((pages + 63n) / 64n) * 8n;
}

/** The dirty runs of the first `pages` bits of `bitmap`, pages of `pageSize` bytes from `base`. */
export function dirtyRanges(bitmap: Uint8Array, base: bigint, pageSize: bigint, pages: bigint): DirtyRange[] {
  const ranges: DirtyRange[] = [];
  const count = Number(pages);
  const view = new DataView(bitmap.buffer, bitmap.byteOffset, bitmap.byteLength);
  let runStart = -1;
  const close = (end: number) => {
    ranges.push({ iova: base + BigInt(runStart) * pageSize, size: BigInt(end - runStart) * pageSize });
    runStart = -1;
  };
  let page = 0;
  while (page < count) {
    // Whole 32-bit words of one value need no bit walk: all clean or all
    // dirty is the common case (type1 reports every mapped page dirty).
    if (page % 32 === 0 && page + 32 <= count) {
      const word = view.getUint32(page / 8, true);
      if ((word === 0 && runStart < 0) || (word === 0xffff_ffff && runStart >= 0)) {
        page += 32;
        continue;
      }
    }
    const dirty = (bitmap[page >> 3] >> (page & 7)) & 1;
    if (dirty && runStart < 0) runStart = page;
    else if (!dirty && runStart >= 0) close(page);
    page++;
  }
  if (runStart >= 0) close(count);
  return ranges;
}

/** Runs in IOVA order with touching runs joined (reports of adjacent mappings meet). */
export function mergeRuns(runs: DirtyRange[]): DirtyRange[] {
  const out: DirtyRange[] = [];
  for (const run of runs) {
    const last = out[out.length - 1];
    if (last && last.iova + last.size === run.iova) last.size += run.size;
    else out.push({ ...run });
  }
  return out;
}

/**
 * Checks a dirty-report range before the kernel: a non-zero whole number
 * of pages (`unit` names the page in messages) inside the 64-bit IOVA
 * space. Returns its last IOVA.
 */
export function checkDirtyRange(start: bigint, length: bigint, page: bigint, unit: string): bigint {
  if (length === 0n || length % page !== 0n) throw rangeError('size', `must be a non-zero multiple of ${unit} (${hex(page)}), got ${hex(length)}`, 'ERR_VFIO_MISALIGNED');
  if (start % page !== 0n) throw rangeError('iova', `must be a multiple of ${unit} (${hex(page)}), got ${hex(start)}`, 'ERR_VFIO_MISALIGNED');
  const end = start + length - 1n;
  if (end > 0xffff_ffff_ffff_ffffn) throw rangeError('size', `runs past the end of the IOVA space (iova ${hex(start)} + ${hex(length)})`);
  return end;
}
