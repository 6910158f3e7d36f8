import type { IovaRange } from './iommu-context';

/** A reserved span of IOVA space: [start, start + size). */
export interface IovaSpan {
  /** First IOVA of the span. */
  start: bigint;
  /** Length in bytes. */
  size: bigint;
}

function alignUp(value: bigint, alignment: bigint): bigint {
  return ((value + alignment - 1n) / alignment) * alignment;
}

/**
 * Hands out IOVAs inside the IOMMU's valid ranges, aligned to its page
 * size, without overlapping what is already mapped. The kernel would refuse
 * a bad IOVA too, but only after the call; the allocator lets the library
 * both pick good IOVAs and reject bad caller-chosen ones up front.
 */
export class IovaAllocator {
  /** The valid ranges, sorted by start. */
  readonly ranges: readonly IovaRange[];
  /** Every IOVA handed out is a multiple of this. */
  readonly alignment: bigint;
  /** Reserved spans, sorted by start. */
  readonly #spans: IovaSpan[] = [];

  /**
   * @param ranges - the valid IOVA ranges (inclusive ends), as the IOMMU reports them.
   * @param alignment - the smallest IOMMU page size; every IOVA is a multiple of it.
   */
  constructor(ranges: readonly IovaRange[], alignment: bigint) {
    if (alignment <= 0n || (alignment & (alignment - 1n)) !== 0n) {
      throw new RangeError(`alignment must be a power of two, got ${alignment}`);
    }
    this.ranges = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.alignment = alignment;
  }

  /** The reserved spans, sorted by start. */
  spans(): readonly IovaSpan[] {
    return this.#spans;
  }

  /** The range that holds all of [iova, iova + size), if any. */
  rangeOf(iova: bigint, size: bigint): IovaRange | undefined {
    const last = iova + size - 1n;
    return this.ranges.find((r) => iova >= r.start && last <= r.end);
  }

  /** The reserved span that overlaps [iova, iova + size), if any. */
  overlapping(iova: bigint, size: bigint): IovaSpan | undefined {
    const end = iova + size;
    return this.#spans.find((s) => s.start < end && iova < s.start + s.size);
  }

  /**
   * First fit: the lowest aligned IOVA where `size` bytes fit in one range,
   * free, and not above `maxIova`. IOVA 0 is never handed out, because many
   * devices and drivers read a zero address as "none".
   */
  allocate(size: bigint, maxIova?: bigint): bigint | undefined {
    if (size <= 0n) return undefined;
    for (const range of this.ranges) {
      const limit = maxIova !== undefined && maxIova < range.end ? maxIova : range.end;
      let candidate = alignUp(range.start > 0n ? range.start : this.alignment, this.alignment);
      while (candidate + size - 1n <= limit) {
        const clash = this.overlapping(candidate, size);
        if (!clash) return candidate;
        candidate = alignUp(clash.start + clash.size, this.alignment);
      }
    }
    return undefined;
  }

  /** Marks [start, start + size) as used. The caller has checked it is free. */
  reserve(start: bigint, size: bigint): void {
    const at = this.#spans.findIndex((s) => s.start > start);
    this.#spans.splice(at === -1 ? this.#spans.length : at, 0, { start, size });
  }

  /** Frees the span that starts at `start`. */
  release(start: bigint): void {
    const at = this.#spans.findIndex((s) => s.start === start);
    if (at !== -1) this.#spans.splice(at, 1);
  }

  /** Frees every span. */
  clear(): void {
    this.#spans.length = 0;
  }
}
