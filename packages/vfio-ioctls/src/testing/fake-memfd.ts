import { Errno } from './errno';
import type { FakeAddressSpace } from './fake-memory';
import { detach } from './fake-region';

// memfd_create refuses longer names (MFD_NAME_MAX_LEN).
export const MEMFD_NAME_MAX = 249;
// fcntl(F_GET_SEALS) bits.
export const F_SEAL_SHRINK = 0x0002;

/**
 * The hugetlb pools (/sys/kernel/mm/hugepages/hugepages-NkB): a page size
 * the kernel has, and how many of its pages are reserved and not yet taken.
 * A hugetlbfs memfd takes its pages at mmap, as the kernel's reservation
 * does, and gives them back when no fd or mapping holds the file.
 */
export class FakeHugePages {
  private readonly free = new Map<number, number>();

  constructor(pools: readonly { size: number; count: number }[]) {
    for (const pool of pools) this.free.set(pool.size, pool.count);
  }

  has(size: number): boolean {
    return this.free.has(size);
  }

  /** Pages of `size` still free. */
  available(size: number): number {
    return this.free.get(size) ?? 0;
  }

  take(size: number, pages: number): boolean {
    const free = this.available(size);
    if (free < pages) return false;
    this.free.set(size, free - pages);
    return true;
  }

  give(size: number, pages: number): void {
    this.free.set(size, this.available(size) + pages);
  }
}

/** A live mapping of part of a memfd (or a second one of all of it): a copy of those bytes. */
interface Window {
  offset: number;
  ref: WeakRef<ArrayBuffer>;
}

/**
 * A memfd (memfd_create + ftruncate): shmem pages that mmap maps MAP_SHARED
 * and IOMMU_IOAS_MAP_FILE maps by fd and offset, which is how a VMM maps
 * memory it also hands to the kernel by fd. `bytes` are the file's
 * contents; a device DMAs straight into them.
 *
 * An ArrayBuffer cannot alias another one, so, as for a device region, the
 * bytes have one owner: a mapping of the whole file IS the file's memory
 * (zero copy, and held as long as the file lives, as shmem pages are; munmap
 * moves the bytes to a fresh store and detaches earlier `bytes` views),
 * while a mapping of part of the file, or a second mapping of all of it,
 * holds a copy made at mmap and written back at munmap: it does not see DMA
 * or other mappings meanwhile (a fake-only limit).
 */
export class FakeMemfd {
  /** The file size (ftruncate's). */
  readonly size: number;
  /** Seals (F_ADD_SEALS); the library's memfds are sealed against shrinking. */
  seals = F_SEAL_SHRINK;
  /** Open fds of the file (memfd_create's and dups); with the mappings they keep huge pages reserved. */
  fds = 1;
  /** Huge pages taken from the pool by the first mmap, 0 for ordinary shmem. */
  private reservedPages = 0;
  /** The pages, whole: the file size rounded up to the page size. */
  private store: ArrayBuffer;
  private wholeMapped = false;
  private readonly windows: Window[] = [];

  /** `hugePages` is the pool a hugetlbfs memfd (pageSize = its huge page size) reserves from. */
  constructor(size: number, readonly pageSize: number, private readonly hugePages?: FakeHugePages) {
    this.size = size;
    try {
      this.store = new ArrayBuffer(Math.ceil(size / pageSize) * pageSize);
    } catch {
      // More than one ArrayBuffer can hold; the kernel would take it (shmem is sparse).
      throw new Errno('ENOMEM');
    }
  }

  /** The file's contents. Take a fresh view after munmap of a whole-file mapping. */
  get bytes(): Uint8Array {
    return new Uint8Array(this.store, 0, this.size);
  }

  /**
   * mmap(2) of [offset, offset + length): offset page-aligned (EINVAL). What
   * would raise SIGBUS on access (pages past the end of the file) the fake
   * refuses here with EINVAL.
   */
  mmap(offset: number, length: number): ArrayBuffer {
    if (offset % this.pageSize !== 0) throw new Errno('EINVAL');
    // hugetlbfs maps whole huge pages only (hugetlb_get_unmapped_area).
    if (this.hugePages && length % this.pageSize !== 0) throw new Errno('EINVAL');
    if (offset + Math.ceil(length / this.pageSize) * this.pageSize > this.store.byteLength) throw new Errno('EINVAL');
    if (this.hugePages && this.reservedPages === 0) {
      // hugetlb_reserve_pages: the file's pages come out of the pool now, or ENOMEM.
      const pages = this.store.byteLength / this.pageSize;
      if (!this.hugePages.take(this.pageSize, pages)) throw new Errno('ENOMEM');
      this.reservedPages = pages;
    }
    if (offset === 0 && length === this.store.byteLength && !this.wholeMapped) {
      this.wholeMapped = true;
      return this.store;
    }
    const buffer = new ArrayBuffer(length);
    new Uint8Array(buffer).set(new Uint8Array(this.store, offset, length));
    this.windows.push({ offset, ref: new WeakRef(buffer) });
    return buffer;
  }

  /** munmap(2): a window's bytes return to the file; the buffer is detached. */
  unmap(buffer: ArrayBuffer): void {
    if (this.wholeMapped && buffer === this.store) {
      this.store = detach(buffer);
      this.wholeMapped = false;
      this.releaseIfUnused();
      return;
    }
    const i = this.windows.findIndex((w) => w.ref.deref() === buffer);
    if (i < 0) throw new Errno('EINVAL');
    const [w] = this.windows.splice(i, 1);
    new Uint8Array(this.store, w.offset, buffer.byteLength).set(new Uint8Array(buffer));
    detach(buffer);
    this.releaseIfUnused();
  }

  /** Forgets windows whose buffers were collected (the finalizer's munmap). */
  sweep(): void {
    for (let i = this.windows.length - 1; i >= 0; i--) if (!this.windows[i].ref.deref()) this.windows.splice(i, 1);
    this.releaseIfUnused();
  }

  /** close(2) of one of its fds. */
  fdClosed(): void {
    this.fds--;
    this.releaseIfUnused();
  }

  /** The last fd and mapping gone: the file is freed, its huge pages go back to the pool. */
  private releaseIfUnused(): void {
    if (this.fds > 0 || this.wholeMapped || this.windows.length > 0 || this.reservedPages === 0) return;
    this.hugePages!.give(this.pageSize, this.reservedPages);
    this.reservedPages = 0;
  }
}

/**
 * Releases a collected memfd mapping. Module-level, not per fake kernel: see
 * droppedRegionMappings in fake-machine.ts for why a registry must outlive
 * the kernels it serves.
 */
const droppedMemfdMappings = new FinalizationRegistry<{ memory: FakeAddressSpace; base: bigint; memfd: WeakRef<FakeMemfd> }>(
  ({ memory, base, memfd }) => {
    memory.forget(base);
    memfd.deref()?.sweep();
  },
);

/**
 * The live mmaps of memfds in the process address space: registered there
 * as ordinary shared memory (pinnable, unlike a device mapping), held
 * weakly, and released after collection as the addon's finalizer does.
 */
export class MemfdMappings {
  private readonly live = new WeakMap<ArrayBuffer, FakeMemfd>();
  private readonly collector = droppedMemfdMappings;

  constructor(private readonly memory: FakeAddressSpace) {}

  map(memfd: FakeMemfd, offset: number, length: number, prot: number): ArrayBuffer {
    const buffer = memfd.mmap(offset, length);
    const area = this.memory.add(buffer, 'shmem', prot);
    this.live.set(buffer, memfd);
    // The memfd weakly: a whole-file mapping is the memfd's own store, so a strong hold would keep both forever.
    this.collector.register(buffer, { memory: this.memory, base: area.base, memfd: new WeakRef(memfd) }, buffer);
    return buffer;
  }

  has(buffer: ArrayBuffer): boolean {
    return this.live.has(buffer);
  }

  unmap(buffer: ArrayBuffer): void {
    const memfd = this.live.get(buffer)!;
    this.collector.unregister(buffer);
    this.live.delete(buffer);
    this.memory.remove(buffer);
    memfd.unmap(buffer);
  }
}
