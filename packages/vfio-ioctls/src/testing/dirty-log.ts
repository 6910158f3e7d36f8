/**
 * The dirty bits of a HWPT allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
 * kept as an IOMMU with dirty tracking keeps them in its page-table
 * entries: a device's DMA write sets the bit of every page it touches while
 * tracking is on; enabling tracking clears them all (iopt_set_dirty_tracking
 * wants a clean snapshot); disabling keeps them; a read clears what it read
 * unless NO_CLEAR; an unmapped page loses its entry and its bit.
 */
export class DirtyLog {
  private tracking = false;
  /** Dirty pages, by IOVA / page. */
  private readonly dirty = new Set<bigint>();

  /** `page`: the domain's smallest page, the granularity of its bits. */
  constructor(readonly page: bigint) {}

  /** IOMMU_HWPT_SET_DIRTY_TRACKING. */
  setTracking(enabled: boolean): void {
    if (enabled) this.dirty.clear();
    this.tracking = enabled;
  }

  /** A device wrote [iova, iova + length) through the domain. */
  written(iova: bigint, length: bigint): void {
    if (!this.tracking || length === 0n) return;
    for (let n = iova / this.page; n <= (iova + length - 1n) / this.page; n++) this.dirty.add(n);
  }

  /** read_and_clear_dirty of [start, last]: the first IOVA of each dirty page there, lowest first; cleared when `clear`. */
  read(start: bigint, last: bigint, clear: boolean): bigint[] {
    const found: bigint[] = [];
    for (const n of this.dirty) {
      const iova = n * this.page;
      if (iova > last || iova + this.page - 1n < start) continue;
      found.push(iova);
      if (clear) this.dirty.delete(n);
    }
    return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Drops the bits of pages `mapped` says are no longer mapped. */
  forgetUnmapped(mapped: (iova: bigint) => boolean): void {
    for (const n of this.dirty) if (!mapped(n * this.page)) this.dirty.delete(n);
  }
}
