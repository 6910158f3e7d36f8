import { checkBigU64, hex, rangeError, typeError } from '../core/validate';

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

/** One IovaRange of the constructor's list, copied so that later changes to the caller's object do not reach the allocator. */
function checkRange(range: unknown, index: number): IovaRange {
  const name = `ranges[${index}]`;
  if (range === null || typeof range !== 'object') throw typeError(name, 'an object { start, end }', range);
  const start = checkBigU64(`${name}.start`, (range as IovaRange).start);
  const end = checkBigU64(`${name}.end`, (range as IovaRange).end);
  if (start > end) throw rangeError(name, `must have start <= end, got ${hex(start)}-${hex(end)}`, 'ERR_INVALID_ARG_VALUE');
  return Object.freeze({ start, end });
}

/**
 * [iova, iova + size) as the methods take it: bigints, size > 0, and no
 * wrap past the 64-bit IOVA space (where `iova + size - 1n` would lie).
 */
function checkSpan(iova: unknown, size: unknown, iovaName: string): void {
  const start = checkBigU64(iovaName, iova);
  const length = checkBigU64('size', size);
  if (length === 0n) throw rangeError('size', 'must be > 0');
  if (start + length - 1n > 0xffff_ffff_ffff_ffffn) {
    throw rangeError('size', `${hex(length)} at ${iovaName} ${hex(start)} runs past the end of the 64-bit IOVA space`);
  }
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
   * @param ranges - the valid IOVA ranges (inclusive ends), as the IOMMU reports them; disjoint.
   * @param alignment - the smallest IOMMU page size; every IOVA is a multiple of it.
   * @throws TypeError unless `ranges` is an array of { start, end } bigints and
   *   `alignment` a bigint; RangeError for a range with start > end, ranges
   *   that overlap, or an alignment that is not a power of two.
   */
  constructor(ranges: readonly IovaRange[], alignment: bigint) {
    if (!Array.isArray(ranges)) throw typeError('ranges', 'an array of { start, end }', ranges);
    const sorted = Array.from(ranges, (range: unknown, i) => checkRange(range, i)).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      const [before, after] = [sorted[i - 1]!, sorted[i]!];
      if (after.start <= before.end) {
        throw rangeError('ranges', `must not overlap: ${hex(before.start)}-${hex(before.end)} and ${hex(after.start)}-${hex(after.end)}`, 'ERR_INVALID_ARG_VALUE');
      }
    }
    checkBigU64('alignment', alignment);
    if (alignment === 0n || (alignment & (alignment - 1n)) !== 0n) {
      throw rangeError('alignment', `must be a power of two, got ${hex(alignment)}`, 'ERR_INVALID_ARG_VALUE');
    }
    this.ranges = Object.freeze(sorted);
    this.alignment = alignment;
  }

  /** The reserved spans, sorted by start. */
  spans(): readonly IovaSpan[] {
    return this.#spans;
  }

  /** The range that holds all of [iova, iova + size), if any. */
  rangeOf(iova: bigint, size: bigint): IovaRange | undefined {
    checkSpan(iova, size, 'iova');
    const last = iova + size - 1n;
    for (const r of this.ranges) if (iova >= r.start && last <= r.end) return r;
    return undefined;
  }

  /** The reserved span that overlaps [iova, iova + size), if any. */
  overlapping(iova: bigint, size: bigint): IovaSpan | undefined {
    checkSpan(iova, size, 'iova');
    // Spans are disjoint and sorted, so their ends are sorted too: the first
    // span ending after `iova` is the only one that can be the first overlap.
    const span = this.#spans[this.#firstEndingAfter(iova)];
    return span !== undefined && span.start < iova + size ? span : undefined;
  }

  /**
   * First fit: the lowest aligned IOVA where `size` bytes fit in one range,
   * free, and not above `maxIova`. IOVA 0 is never handed out, because many
   * devices and drivers read a zero address as "none".
   * @returns the IOVA, or undefined when no free place fits (or `size` is 0).
   */
  allocate(size: bigint, maxIova?: bigint): bigint | undefined {
    checkBigU64('size', size);
    if (maxIova !== undefined) checkBigU64('maxIova', maxIova);
    if (size === 0n) return undefined;
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

  /**
   * Marks [start, start + size) as used.
   * @throws RangeError ERR_VFIO_DMA_OVERLAP when part of it is already
   *   reserved (spans stay disjoint: the searches rely on it).
   */
  reserve(start: bigint, size: bigint): void {
    checkSpan(start, size, 'start');
    const clash = this.overlapping(start, size);
    if (clash) {
      throw rangeError('start', `${hex(start)}+${hex(size)} overlaps the reserved span ${hex(clash.start)}+${hex(clash.size)}`, 'ERR_VFIO_DMA_OVERLAP');
    }
    const spans = this.#spans;
    const at = this.#firstStartingAfter(start);
    if (at === spans.length) spans.push({ start, size });
    else spans.splice(at, 0, { start, size });
  }

  /** Frees the span that starts at `start`; does nothing when no span starts there. */
  release(start: bigint): void {
    checkBigU64('start', start);
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
