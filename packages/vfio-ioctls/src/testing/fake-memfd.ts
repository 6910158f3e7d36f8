import { Errno } from './errno';
import type { FakeAddressSpace } from './fake-memory';
import { detach } from './fake-region';

// memfd_create refuses longer names (MFD_NAME_MAX_LEN).
export const MEMFD_NAME_MAX = 249;

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
  /** The pages, whole: the file size rounded up to the page size. */
  private store: ArrayBuffer;
  private wholeMapped = false;
  private readonly windows: Window[] = [];

  constructor(size: number, private readonly pageSize: number) {
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
    if (offset + Math.ceil(length / this.pageSize) * this.pageSize > this.store.byteLength) throw new Errno('EINVAL');
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
      return;
    }
    const i = this.windows.findIndex((w) => w.ref.deref() === buffer);
    if (i < 0) throw new Errno('EINVAL');
    const [w] = this.windows.splice(i, 1);
    new Uint8Array(this.store, w.offset, buffer.byteLength).set(new Uint8Array(buffer));
    detach(buffer);
  }

  /** Forgets windows whose buffers were collected (the finalizer's munmap). */
  sweep(): void {
    for (let i = this.windows.length - 1; i >= 0; i--) if (!this.windows[i].ref.deref()) this.windows.splice(i, 1);
  }
}

/**
 * The live mmaps of memfds in the process address space: registered there
 * as ordinary shared memory (pinnable, unlike a device mapping), held
 * weakly, and released after collection as the addon's finalizer does.
 */
export class MemfdMappings {
  private readonly live = new WeakMap<ArrayBuffer, FakeMemfd>();
  private readonly collector = new FinalizationRegistry<{ base: bigint; memfd: WeakRef<FakeMemfd> }>((held) => {
    this.memory.forget(held.base);
    held.memfd.deref()?.sweep();
  });

  constructor(private readonly memory: FakeAddressSpace) {}

  map(memfd: FakeMemfd, offset: number, length: number, prot: number): ArrayBuffer {
    const buffer = memfd.mmap(offset, length);
    const area = this.memory.add(buffer, 'shmem', prot);
    this.live.set(buffer, memfd);
    // The memfd weakly: a whole-file mapping is the memfd's own store, so a strong hold would keep both forever.
    this.collector.register(buffer, { base: area.base, memfd: new WeakRef(memfd) }, buffer);
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
