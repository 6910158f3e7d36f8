import { Errno } from './errno';
import type { FakeAddressSpace } from './fake-memory';

/** The file a no-IOMMU driver reads physical addresses from. */
export const PAGEMAP_PATH = '/proc/self/pagemap';

const ENTRY_BYTES = 8;
const PRESENT = 1n << 63n;
// Fragmented RAM: frames are handed out in runs of this many, then one is skipped,
// so a buffer of several pages has both contiguous runs and breaks between them.
const RUN_FRAMES = 4n;
// The first frame handed out (physical 16 MiB): any non-zero value works.
const FIRST_FRAME = 0x1000n;

/**
 * The fake's physical memory behind its DMA buffers, for no-IOMMU DMA: which
 * pages are mlocked (RLIMIT_MEMLOCK counted), which frame each page sits in,
 * and /proc/self/pagemap. A locked page keeps its frame; an unlocked one
 * moves to a new frame each time pagemap is read, as reclaim or migration may
 * move it on Linux, so code that forgets to lock gets addresses that change.
 * Only allocDma memory is modelled; other addresses read as holes (0).
 */
export class FakePhysicalMemory {
  /**
   * Whether the process has CAP_SYS_ADMIN: without it pagemap still says
   * which pages are present but shows every frame number as 0 (Linux 4.2+).
   */
  capSysAdmin = true;
  /**
   * Whether the process has CAP_SYS_RAWIO, which Linux asks for to open a
   * no-IOMMU cdev (noiommu-vfioN) and for IOMMU_IOAS_NOIOMMU_GET_PA.
   */
  capSysRawio = true;
  /**
   * Whether the page `vpn` is pinned by something other than mlock (an IOAS
   * mapping of a no-IOMMU device): pinned pages keep their frame too.
   * FakeKernel wires the iommufd side in.
   */
  pinnedPage: (vpn: bigint) => boolean = () => false;
  private readonly frames = new Map<bigint, bigint>();
  private readonly locked = new Set<bigint>();
  private nextFrame = FIRST_FRAME;
  private handedOut = 0n;

  constructor(
    private readonly memory: FakeAddressSpace,
    private readonly pageSize: number,
    private readonly memlockLimit: bigint,
  ) {}

  /** Bytes locked by mlock, as VmLck counts them. */
  get lockedBytes(): bigint {
    this.dropUnmapped();
    return BigInt(this.locked.size) * BigInt(this.pageSize);
  }

  /** mlock(2) of the buffer's pages; ENOMEM past RLIMIT_MEMLOCK (locking a page twice counts once). */
  lock(buffer: ArrayBuffer): void {
    const pages = this.pagesOf(buffer);
    const added = pages.filter((vpn) => !this.locked.has(vpn)).length;
    if (this.lockedBytes + BigInt(added * this.pageSize) > this.memlockLimit) throw new Errno('ENOMEM');
    for (const vpn of pages) {
      this.frameOf(vpn);
      this.locked.add(vpn);
    }
  }

  /** munlock(2) of the buffer's pages. */
  unlock(buffer: ArrayBuffer): void {
    for (const vpn of this.pagesOf(buffer)) this.locked.delete(vpn);
  }

  /** Whether the page holding `vaddr` is locked (for tests). */
  isLocked(vaddr: bigint): boolean {
    this.dropUnmapped();
    return this.locked.has(vaddr / BigInt(this.pageSize));
  }

  /** The physical address of byte `vaddr` of a locked or pinned page (its frame stays put while it is). */
  physicalOf(vaddr: bigint): bigint {
    const page = BigInt(this.pageSize);
    return this.frameOf(vaddr / page) * page + (vaddr % page);
  }

  /**
   * The bytes a device reaches at `physical` in no-IOMMU mode, for a device
   * model: only locked DMA memory is trusted to be there, and an access may
   * not cross into another page (the next frame need not be the next page).
   * Throws, as a fault would corrupt memory on real hardware.
   */
  view(physical: bigint, length: number): Uint8Array {
    const page = BigInt(this.pageSize);
    const frame = physical / page;
    const within = Number(physical % page);
    const where = `DMA of ${length} bytes at physical 0x${physical.toString(16)}`;
    if (length <= 0 || within + length > this.pageSize) throw new Error(`${where}: crosses a page boundary`);
    this.dropUnmapped();
    for (const [vpn, owned] of this.frames) {
      if (owned !== frame || !this.holdsFrame(vpn)) continue;
      const area = this.memory.find(vpn * page, 1n)!;
      return new Uint8Array(area.buffer, Number(vpn * page - area.base) + within, length);
    }
    throw new Error(`${where}: not locked or pinned DMA memory (freed, unlocked or never locked: on hardware this corrupts memory)`);
  }

  /**
   * pread(2) of /proc/self/pagemap: one 64-bit entry per virtual page, at
   * offset vpn * 8; bit 63 present, bits 0-54 the frame number. Offset and
   * length must be multiples of 8 (EINVAL otherwise, as Linux).
   */
  readPagemap(buffer: Uint8Array, offset: bigint): number {
    if (offset % BigInt(ENTRY_BYTES) !== 0n || buffer.byteLength % ENTRY_BYTES !== 0) throw new Errno('EINVAL');
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const first = offset / BigInt(ENTRY_BYTES);
    for (let i = 0; i < buffer.byteLength / ENTRY_BYTES; i++) {
      view.setBigUint64(i * ENTRY_BYTES, this.entry(first + BigInt(i)), true);
    }
    return buffer.byteLength;
  }

  private entry(vpn: bigint): bigint {
    const page = BigInt(this.pageSize);
    const area = this.memory.find(vpn * page, 1n);
    if (area?.kind !== 'dma') return 0n;
    if (!this.holdsFrame(vpn)) this.frames.delete(vpn); // an unlocked page may have moved since
    return PRESENT | (this.capSysAdmin ? this.frameOf(vpn) : 0n);
  }

  /** A locked or pinned page stays in its frame; any other may have moved. */
  private holdsFrame(vpn: bigint): boolean {
    return this.locked.has(vpn) || this.pinnedPage(vpn);
  }

  private frameOf(vpn: bigint): bigint {
    let frame = this.frames.get(vpn);
    if (frame === undefined) {
      frame = this.nextFrame;
      this.handedOut++;
      this.nextFrame += this.handedOut % RUN_FRAMES === 0n ? 2n : 1n;
      this.frames.set(vpn, frame);
    }
    return frame;
  }

  /**
   * Forgets the pages of memory that is gone (freeDma, or the finalizer of a
   * buffer the program dropped): munmap drops the lock with the mapping.
   * Addresses are never reused, so a stale page cannot stand for a new one.
   */
  private dropUnmapped(): void {
    const page = BigInt(this.pageSize);
    for (const vpn of this.frames.keys()) {
      if (this.memory.find(vpn * page, 1n)?.kind === 'dma') continue;
      this.frames.delete(vpn);
      this.locked.delete(vpn);
    }
  }

  private pagesOf(buffer: ArrayBuffer): bigint[] {
    const area = this.memory.get(buffer);
    if (!area) return [];
    const page = BigInt(this.pageSize);
    const first = area.base / page;
    const count = BigInt(Math.ceil(area.length / this.pageSize));
    const pages: bigint[] = [];
    for (let i = 0n; i < count; i++) pages.push(first + i);
    return pages;
  }
}
