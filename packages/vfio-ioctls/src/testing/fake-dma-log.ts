/**
 * Device DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*), as vfio_main.c
 * checks it and a logging driver keeps it: the IOVA ranges being logged,
 * the page size, and the pages the device wrote (its DMA writes, and
 * `dirty()` for a test). REPORT sets bits in the caller's bitmap and clears
 * what it reported.
 */
import { Errno } from './errno';

/** One range given to DMA_LOGGING_START. */
export interface LogRange {
  iova: bigint;
  length: bigint;
}

const U64_MAX = (1n << 64n) - 1n;
const RANGE_BYTES = 16;

export class FakeDmaLog {
  private ranges: LogRange[] | null = null;
  private pageSize = 0n;
  /** Dirty pages by number (iova / pageSize). */
  private readonly dirtyPages = new Set<bigint>();

  constructor(private readonly systemPageSize: number) {}

  /** Whether logging is started. */
  get started(): boolean {
    return this.ranges !== null;
  }

  /** The page size logging settled on (0 when not started). */
  get loggingPageSize(): bigint {
    return this.pageSize;
  }

  /**
   * vfio_ioctl_device_feature_logging_start's checks, then the driver's
   * log_start; returns the page size chosen (the hint, or 4 KiB when the
   * hint is smaller). A second start is EBUSY (this fake's driver answer).
   */
  start(pageSize: bigint, ranges: LogRange[]): bigint {
    if (ranges.length === 0) throw new Errno('EINVAL');
    if (ranges.length > this.systemPageSize / RANGE_BYTES) throw new Errno('E2BIG');
    const sorted: LogRange[] = [];
    for (const range of ranges) {
      if (pageSize === 0n || range.iova % pageSize !== 0n || range.length % pageSize !== 0n) throw new Errno('EINVAL');
      if (range.iova + range.length > U64_MAX) throw new Errno('EOVERFLOW');
      const last = range.iova + range.length - 1n;
      if (sorted.some((r) => range.iova <= r.iova + r.length - 1n && r.iova <= last)) throw new Errno('EINVAL');
      sorted.push(range);
    }
    if (this.ranges) throw new Errno('EBUSY');
    this.ranges = sorted;
    this.pageSize = pageSize < 4096n ? 4096n : pageSize;
    this.dirtyPages.clear();
    return this.pageSize;
  }

  /** DMA_LOGGING_STOP (stopping twice is harmless, as drivers do it). */
  stop(): void {
    this.ranges = null;
    this.dirtyPages.clear();
  }

  /** The device wrote [iova, iova + length): logged where a range covers it. */
  dirty(iova: bigint, length: bigint): void {
    if (!this.ranges || length <= 0n) return;
    for (let page = iova / this.pageSize; page * this.pageSize < iova + length; page++) {
      const at = page * this.pageSize;
      if (this.ranges.some((r) => at + this.pageSize > r.iova && at < r.iova + r.length)) this.dirtyPages.add(page);
    }
  }

  /**
   * DMA_LOGGING_REPORT into `bitmap` (one bit per `pageSize` from `iova`,
   * only ever set): the core's checks, then read-and-clear.
   */
  report(iova: bigint, length: bigint, pageSize: bigint, bitmap: (bytes: number) => Uint8Array): void {
    if (pageSize < 4096n || (pageSize & (pageSize - 1n)) !== 0n) throw new Errno('EINVAL');
    if (iova + length > U64_MAX) throw new Errno('EOVERFLOW');
    if (!this.ranges) throw new Errno('EINVAL');
    const bits = (length + pageSize - 1n) / pageSize;
    const bytes = bitmap(Number(((bits + 63n) / 64n) * 8n));
    for (const page of [...this.dirtyPages]) {
      const start = page * this.pageSize;
      const end = start + this.pageSize;
      if (end <= iova || start >= iova + length) continue;
      // The report's pages may be larger or smaller than the logging pages: set every one the page touches.
      for (let at = start < iova ? iova : start; at < end && at < iova + length; at += pageSize - (at % pageSize)) {
        const bit = Number((at - iova) / pageSize);
        bytes[bit >> 3] |= 1 << (bit & 7);
      }
      this.dirtyPages.delete(page);
    }
  }
}
