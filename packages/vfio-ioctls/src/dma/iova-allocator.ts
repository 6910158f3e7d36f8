/** An inclusive range of IO virtual addresses the IOMMU can translate. */
export interface IovaRange {
  /** First valid IOVA. */
  start: bigint;
  /** Last valid IOVA (inclusive, as the kernel reports it). */
  end: bigint;
}

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
    for (const r of this.ranges) if (iova >= r.start && last <= r.end) return r;
    return undefined;
  }

  /** The reserved span that overlaps [iova, iova + size), if any. */
  overlapping(iova: bigint, size: bigint): IovaSpan | undefined {
    // Spans are disjoint and sorted, so their ends are sorted too: the first
    // span ending after `iova` is the only one that can be the first overlap.
    const span = this.#spans[this.#firstEndingAfter(iova)];
    return span !== undefined && span.start < iova + size ? span : undefined;
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
    const spans = this.#spans;
    const at = this.#firstStartingAfter(start);
    if (at === spans.length) spans.push({ start, size });
    else spans.splice(at, 0, { start, size });
  }

  /** Frees the span that starts at `start`. */
  release(start: bigint): void {
    const spans = this.#spans;
    const at = this.#firstStartingAfter(start) - 1;
    if (at < 0 || spans[at]!.start !== start) return;
    if (at === spans.length - 1) spans.pop();
    else spans.splice(at, 1);
  }

  /** Index of the first span with start > `value` (binary search; spans.length when none). */
  #firstStartingAfter(value: bigint): number {
    const spans = this.#spans;
    let lo = 0;
    let hi = spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (spans[mid]!.start > value) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index of the first span whose end (start + size) is above `value`. */
  #firstEndingAfter(value: bigint): number {
    const spans = this.#spans;
    let lo = 0;
    let hi = spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const span = spans[mid]!;
      if (span.start + span.size > value) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Frees every span. */
  clear(): void {
    this.#spans.length = 0;
  }
}
