import { Errno } from './errno';
import type { FakeMemfd } from './fake-memfd';

/** The largest value of an unsigned long (64-bit Linux). */
export const ULONG_MAX = (1n << 64n) - 1n;

/** What an IOAS mapping is made of: a range of process memory or of a file, pinned while a domain needs it. */
export interface IoPages {
  readonly source: { kind: 'user'; base: bigint } | { kind: 'file'; memfd: FakeMemfd | null; base: bigint };
  /** Pages from `base` (a page boundary). */
  readonly npages: bigint;
  /** Mapped with IOMMU_IOAS_MAP_WRITEABLE: the pages must be writable by the device. */
  readonly writable: boolean;
}

/** One mapping in an IOAS: [iova, last] shows `pages` from byte `startByte` on. */
export interface IoArea {
  readonly iova: bigint;
  readonly last: bigint;
  readonly pages: IoPages;
  readonly startByte: bigint;
  readonly read: boolean;
  readonly write: boolean;
}

/** An IOMMU domain as an IOAS sees it: its smallest page and its aperture. */
export interface IoDomain {
  readonly pgsizeMin: bigint;
  readonly apertureStart: bigint;
  readonly apertureEnd: bigint;
}

/** A slice of pages to map at consecutive IOVAs (IOMMU_IOAS_COPY maps several). */
export interface PagesSlice {
  pages: IoPages;
  startByte: bigint;
  length: bigint;
}

/** The host's answer to pinning `areas` for a domain: an errno name, or undefined when pinned. */
export type PinCheck = (areas: readonly IoArea[]) => string | undefined;

interface Span {
  start: bigint;
  last: bigint;
}

interface Reserved extends Span {
  owner: object;
}

/**
 * An IOAS's io_pagetable (drivers/iommu/iommufd/io_pagetable.c): its areas,
 * the IOVAs reserved by attached domains (aperture) and devices (MSI
 * window), the ranges ALLOW_IOVAS restricts allocation to, and the IOVA
 * alignment its domains require. Checks run in the kernel's order so a
 * request breaking two rules fails with Linux's errno.
 */
export class IoPagetable {
  private readonly areas: IoArea[] = [];
  private readonly reserved: Reserved[] = [];
  private allowed: Span[] = [];
  private readonly domains = new Set<IoDomain>();
  private iovaAlignment = 1n;
  private largePagesDisabled = false;

  /** `pin` pins pages for domains; `pageSize` is the CPU page; `hugePage` caps the alignment of allocated IOVAs. */
  constructor(private readonly pin: PinCheck, private readonly pageSize: bigint, private readonly hugePage: bigint) {}

  get alignment(): bigint {
    return this.iovaAlignment;
  }

  /** Whether any domain is attached (areas are then pinned). */
  get hasDomains(): boolean {
    return this.domains.size > 0;
  }

  get largePages(): boolean {
    return !this.largePagesDisabled;
  }

  list(): readonly IoArea[] {
    return this.areas;
  }

  /** IOMMU_IOAS_IOVA_RANGES: the holes in the reserved ranges. */
  iovaRanges(): Span[] {
    const holes: Span[] = [];
    let next = 0n;
    for (const r of merge(this.reserved)) {
      if (r.start > next) holes.push({ start: next, last: r.start - 1n });
      if (r.last === ULONG_MAX) return holes;
      next = r.last + 1n;
    }
    holes.push({ start: next, last: ULONG_MAX });
    return holes;
  }

  /** iopt_set_allow_iova: the new list replaces the old unless a reserved range meets it. */
  setAllowed(ranges: Span[]): void {
    if (ranges.some((a) => this.reserved.some((r) => overlaps(a, r)))) throw new Errno('EADDRINUSE');
    this.allowed = ranges.map((r) => ({ ...r })).sort((a, b) => cmp(a.start, b.start));
  }

  /**
   * iopt_map_pages: places `slices` at consecutive IOVAs from `iova`, or
   * from an IOVA it picks when `iova` is undefined; returns the IOVA.
   */
  map(slices: PagesSlice[], length: bigint, iova: bigint | undefined, read: boolean, write: boolean): bigint {
    if ((length & (this.iovaAlignment - 1n)) !== 0n || length === 0n) throw new Errno('EINVAL');
    const first = slices[0];
    const at = iova === undefined ? this.allocIova(first.pages.source.base + first.startByte, length) : this.checkIova(iova, length);
    const added: IoArea[] = [];
    let cursor = at;
    for (const s of slices) {
      if (write && !s.pages.writable) throw new Errno('EPERM');
      if (((s.startByte % this.pageSize) & (this.iovaAlignment - 1n)) !== 0n) throw new Errno('EINVAL');
      added.push({ iova: cursor, last: cursor + s.length - 1n, pages: s.pages, startByte: s.startByte, read, write });
      cursor += s.length;
    }
    if (this.hasDomains) {
      const refused = this.pin(added);
      if (refused) throw new Errno(refused);
    }
    this.areas.push(...added);
    this.areas.sort((a, b) => cmp(a.iova, b.iova));
    return at;
  }

  /**
   * iopt_unmap_iova_range: removes, lowest first, every area in
   * [start, last]; an area sticking out of the range stops it with ENOENT
   * (the areas before it stay unmapped). Returns the bytes unmapped.
   */
  unmap(start: bigint, last: bigint): bigint {
    let unmapped = 0n;
    for (const area of this.areas.filter((a) => a.iova <= last && start <= a.last)) {
      if (area.iova < start || area.last > last) throw new Errno('ENOENT');
      this.areas.splice(this.areas.indexOf(area), 1);
      unmapped += area.last - area.iova + 1n;
    }
    return unmapped;
  }

  /** iopt_get_pages: the slices behind [iova, iova + length), which must be mapped without a gap. */
  slices(iova: bigint, length: bigint): PagesSlice[] {
    if (length === 0n) throw new Errno('EINVAL');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new Errno('EOVERFLOW');
    const out: PagesSlice[] = [];
    let cursor = iova;
    for (const area of this.areas) {
      if (area.last < cursor || area.iova > cursor) continue;
      const end = area.last < last ? area.last : last;
      out.push({ pages: area.pages, startByte: area.startByte + (cursor - area.iova), length: end - cursor + 1n });
      if (end === last) return out;
      cursor = end + 1n;
    }
    throw new Errno('ENOENT');
  }

  /**
   * iopt_for_each_contig_area: the parts of [start, last] inside areas
   * that follow one another from `start` without a gap; stops at the first
   * IOVA no area maps (nothing when `start` is unmapped).
   */
  contiguousFrom(start: bigint, last: bigint): Span[] {
    const spans: Span[] = [];
    let cursor = start;
    for (const area of this.areas) {
      if (area.last < cursor) continue;
      if (area.iova > cursor) break;
      const end = area.last < last ? area.last : last;
      spans.push({ start: cursor, last: end });
      if (end === last) break;
      cursor = end + 1n;
    }
    return spans;
  }

  /** The area a device access of [iova, iova + length) goes through, if one covers it. */
  lookup(iova: bigint, length: bigint): IoArea | undefined {
    return this.areas.find((a) => iova >= a.iova && iova + length - 1n <= a.last);
  }

  /** iopt_table_enforce_dev_resv_regions: reserves a device's regions (owner: the device). */
  reserveFor(owner: object, ranges: readonly Span[]): void {
    for (const r of ranges) {
      if (this.areas.some((a) => overlaps(a, r)) || this.allowed.some((a) => overlaps(a, r))) {
        this.release(owner);
        throw new Errno('EADDRINUSE');
      }
      this.reserved.push({ ...r, owner });
    }
  }

  /** iopt_remove_reserved_iova. */
  release(owner: object): void {
    for (let i = this.reserved.length - 1; i >= 0; i--) if (this.reserved[i].owner === owner) this.reserved.splice(i, 1);
  }

  /** iopt_table_add_domain: alignment, aperture, then every area pinned for it. */
  addDomain(domain: IoDomain): void {
    const alignment = max(domain.pgsizeMin, this.iovaAlignment);
    if (alignment > this.pageSize) throw new Errno('EINVAL');
    if (alignment !== this.iovaAlignment) this.checkAlignment(alignment);
    const outside: Span[] = [];
    if (domain.apertureStart !== 0n) outside.push({ start: 0n, last: domain.apertureStart - 1n });
    if (domain.apertureEnd !== ULONG_MAX) outside.push({ start: domain.apertureEnd + 1n, last: ULONG_MAX });
    this.reserveFor(domain, outside);
    if (!this.hasDomains && this.areas.length > 0) {
      const refused = this.pin(this.areas);
      if (refused) {
        this.release(domain);
        throw new Errno(refused);
      }
    }
    this.iovaAlignment = alignment;
    this.domains.add(domain);
  }

  /** iopt_table_remove_domain. */
  removeDomain(domain: IoDomain): void {
    this.domains.delete(domain);
    this.release(domain);
    this.iovaAlignment = this.requiredAlignment();
  }

  /** IOMMU_OPTION_HUGE_PAGES. */
  setLargePages(enabled: boolean): void {
    if (enabled) {
      this.largePagesDisabled = false;
      this.iovaAlignment = this.requiredAlignment();
      return;
    }
    if (this.largePagesDisabled) return;
    if (this.hasDomains && this.areas.length > 0) throw new Errno('EINVAL');
    const alignment = this.requiredAlignment(true);
    if (alignment > this.iovaAlignment) this.checkAlignment(alignment);
    this.largePagesDisabled = true;
    this.iovaAlignment = alignment;
  }

  private requiredAlignment(disableLarge = this.largePagesDisabled): bigint {
    let alignment = disableLarge ? this.pageSize : 1n;
    for (const d of this.domains) alignment = max(alignment, d.pgsizeMin);
    return alignment;
  }

  private checkAlignment(alignment: bigint): void {
    const mask = alignment - 1n;
    const misaligned = this.areas.some((a) => (a.iova & mask) || ((a.last - a.iova + 1n) & mask) || ((a.startByte % this.pageSize) & mask));
    if (misaligned) throw new Errno('EADDRINUSE');
  }

  /** iopt_check_iova: a caller-chosen IOVA. */
  private checkIova(iova: bigint, length: bigint): bigint {
    if ((iova & (this.iovaAlignment - 1n)) !== 0n) throw new Errno('EINVAL');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) throw new Errno('EOVERFLOW');
    const span = { start: iova, last };
    if (this.reserved.some((r) => overlaps(r, span))) throw new Errno('EINVAL');
    if (this.areas.some((a) => overlaps(a, span))) throw new Errno('EEXIST');
    return iova;
  }

  /**
   * iopt_alloc_iova: the lowest fitting IOVA (never 0) inside the allowed
   * ranges and outside reserved ranges and areas, aligned as `addr` is (up
   * to the length rounded to a power of two, at most a huge page), keeping
   * addr's offset in its page.
   */
  private allocIova(addr: bigint, length: bigint): bigint {
    if (length === 0n || length >= ULONG_MAX / 2n) throw new Errno('EOVERFLOW');
    const pageOffset = addr % this.pageSize;
    let alignment = roundUpPow2(length);
    if (addr !== 0n) alignment = min(alignment, addr & -addr);
    if (alignment >= this.hugePage) alignment = this.hugePage;
    if (alignment < this.iovaAlignment) throw new Errno('EINVAL');
    const window = { start: this.pageSize, last: ULONG_MAX - this.pageSize };
    const allowed = this.allowed.length === 0 ? [window] : this.allowed.flatMap((a) => clip(a, window));
    const fit = (start: bigint, last: bigint): bigint | undefined => {
      if (start + alignment - 1n > ULONG_MAX) return undefined;
      const aligned = ((start + alignment - 1n) & ~(alignment - 1n)) | pageOffset;
      if (aligned >= last || last - aligned < length - 1n) return undefined;
      return aligned;
    };
    const used = merge([...this.reserved, ...this.areas.map((a) => ({ start: a.iova, last: a.last }))]);
    for (const span of allowed) {
      if (fit(span.start, span.last) === undefined) continue;
      for (const hole of holesIn(span, used)) {
        const at = fit(hole.start, hole.last);
        if (at !== undefined) return at;
      }
    }
    throw new Errno('ENOSPC');
  }
}

function overlaps(a: Span | IoArea, b: Span | IoArea): boolean {
  const [as, al] = 'iova' in a ? [a.iova, a.last] : [a.start, a.last];
  const [bs, bl] = 'iova' in b ? [b.iova, b.last] : [b.start, b.last];
  return as <= bl && bs <= al;
}

/** Sorted, merged copies of `spans`. */
function merge(spans: readonly Span[]): Span[] {
  const sorted = spans.map((s) => ({ start: s.start, last: s.last })).sort((a, b) => cmp(a.start, b.start));
  const out: Span[] = [];
  for (const s of sorted) {
    const top = out[out.length - 1];
    if (top && s.start <= top.last + 1n) top.last = max(top.last, s.last);
    else out.push(s);
  }
  return out;
}

/** The parts of `span` no used span covers. */
function holesIn(span: Span, used: readonly Span[]): Span[] {
  const holes: Span[] = [];
  let next = span.start;
  for (const u of used) {
    if (u.last < next || u.start > span.last) continue;
    if (u.start > next) holes.push({ start: next, last: u.start - 1n });
    if (u.last >= span.last) return holes;
    next = u.last + 1n;
  }
  holes.push({ start: next, last: span.last });
  return holes;
}

function clip(a: Span, to: Span): Span[] {
  const start = max(a.start, to.start);
  const last = min(a.last, to.last);
  return start <= last ? [{ start, last }] : [];
}

function roundUpPow2(n: bigint): bigint {
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
