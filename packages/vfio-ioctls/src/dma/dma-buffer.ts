import { MAX_MAPPING_LENGTH, type Backend, type MemfdFile } from '../core/backend';
import { kernelCall, VfioContext, vfioOptionKeys, vfioOptionsOf, type VfioOptions } from '../core/context';
import { closedError, VfioError } from '../core/errors';
import { runAll } from '../core/handle';
import { checkBoolean, checkInteger, checkOptions, hex, optionKeys, rangeError, typeError } from '../core/validate';

/** Options of DmaBuffer.alloc: where the kernel is, and how the memory is backed. */
export interface DmaBufferOptions extends VfioOptions {
  /**
   * Back the memory with a memfd (shmem, mapped MAP_SHARED) instead of
   * anonymous memory, so that an iommufd IOAS can map it by fd with
   * Ioas.mapFile (IOMMU_IOAS_MAP_FILE). Default false.
   */
  memfd?: boolean;
  /**
   * Back the memory with huge pages of this size (a hugetlbfs memfd,
   * MFD_HUGETLB): 2 MiB (`2 * 1024 * 1024`) or, where the CPU and kernel
   * have them, 1 GiB. Implies `memfd`. `size` must then be a whole number
   * of huge pages, and the pages must be reserved beforehand
   * (/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages): the mmap
   * takes them all at once, or fails with ENOMEM and a hint.
   */
  hugePageSize?: number;
}

const allocOptionKeys = [...vfioOptionKeys, ...optionKeys<Pick<DmaBufferOptions, 'memfd' | 'hugePageSize'>>({ memfd: true, hugePageSize: true })];
const PROT_READ_WRITE = 3;
/** fcntl(F_GET_SEALS): the file cannot shrink, so a mapping of it never faults (SIGBUS) on a page cut off. */
const F_SEAL_SHRINK = 0x0002;

export interface BufferState {
  backend: Backend;
  memory: ArrayBuffer;
  /** How many DmaMappings cover this buffer; close() refuses while > 0. */
  pins: number;
  /** The size as a bigint, for MAP_DMA (made once, not per map). */
  sizeBig: bigint;
  /** The process address, asked once: it cannot change while the memory lives. */
  address?: bigint;
  /** The memfd behind the memory (options.memfd), closed with it. */
  memfd?: number;
  /** The page size of the memory: the huge page size of a hugetlbfs memfd, else the system's. */
  pageSize: number;
}

type Memory = Pick<BufferState, 'backend' | 'memory' | 'memfd'>;

const states = new WeakMap<DmaBuffer, BufferState>();

/** Unmaps the memory: freeDma, or munmap of the memfd's mapping (whose fd is then closed apart). */
function unmapMemory({ backend, memory, memfd }: Memory): void {
  if (memfd === undefined) kernelCall({ syscall: 'freeDma' }, () => backend.freeDma(memory));
  else kernelCall({ syscall: 'munmap' }, () => backend.munmap(memory));
}

/**
 * Frees the memory of a buffer the program dropped. The memory is held
 * here, not the DmaBuffer, so the buffer itself can be collected; a mapped
 * buffer is never collected because its mapping (held by its container)
 * references it.
 */
const leakedBuffers = new FinalizationRegistry<Memory>((memory) => {
  const { backend, memfd } = memory;
  try {
    runAll([() => unmapMemory(memory), () => memfd !== undefined && backend.close(memfd)]);
  } catch {
    // The program dropped the buffer; nothing to report to.
  }
});

/**
 * Page-aligned memory owned by the library, the only memory that can be
 * mapped for device DMA. It cannot be freed while a mapping covers it, so a
 * device never writes into memory the process has given back.
 */
export class DmaBuffer implements Disposable {
  /** Size in bytes: the requested size rounded up to the page size. */
  readonly size: number;
  /** The page size of the memory: `hugePageSize` when asked for, else the system page size. */
  readonly pageSize: number;
  #bytes: Uint8Array | undefined;

  private constructor(state: BufferState) {
    this.size = state.memory.byteLength;
    this.pageSize = state.pageSize;
    this.#bytes = new Uint8Array(state.memory);
    states.set(this, state);
    leakedBuffers.register(this, { backend: state.backend, memory: state.memory, memfd: state.memfd }, this);
  }

  /**
   * Allocates zeroed, page-aligned memory for DMA: anonymous memory, or
   * with `memfd: true` a memfd of the rounded size mapped MAP_SHARED (the
   * buffer holds the fd and closes it with the memory).
   * @param size - bytes wanted (> 0); rounded up to a whole number of pages,
   *   which must fit one ArrayBuffer (MAX_MAPPING_LENGTH: 4 GiB on Node 20).
   * @throws RangeError when `size` is not a positive safe integer or too
   *   large for one ArrayBuffer; TypeError for a bad or unknown option;
   *   VfioError when allocation fails.
   */
  static alloc(size: number, options?: DmaBufferOptions): DmaBuffer {
    checkInteger('size', size, 1);
    const opts = checkOptions('options', options, allocOptionKeys);
    const hugePageSize = opts.hugePageSize === undefined ? 0 : checkHugePageSize(opts.hugePageSize);
    const memfd = opts.memfd === undefined ? hugePageSize !== 0 : checkBoolean('options.memfd', opts.memfd);
    if (hugePageSize !== 0 && !memfd) throw rangeError('options.memfd', 'cannot be false with options.hugePageSize: huge pages come from a hugetlbfs memfd');
    const { backend } = VfioContext.from(vfioOptionsOf(opts));
    const page = hugePageSize || backend.pageSize();
    if (hugePageSize !== 0 && size % hugePageSize !== 0) {
      throw rangeError('size', `${hex(size)} is not a whole number of huge pages of options.hugePageSize ${hex(hugePageSize)}`, 'ERR_VFIO_MISALIGNED');
    }
    const rounded = Math.ceil(size / page) * page;
    if (rounded > MAX_MAPPING_LENGTH) {
      throw rangeError('size', `${hex(size)} (${hex(rounded)} in whole pages) is more than one ArrayBuffer holds on this Node.js (${hex(MAX_MAPPING_LENGTH)}, buffer.constants.MAX_LENGTH): allocate several buffers`);
    }
    if (!memfd) {
      const memory = kernelCall({ syscall: 'allocDma' }, () => backend.allocDma(rounded));
      return new DmaBuffer({ backend, memory, pins: 0, sizeBig: BigInt(memory.byteLength), pageSize: page });
    }
    const fd = withHugePageHint(hugePageSize, () => kernelCall({ syscall: 'memfd_create' }, () =>
      hugePageSize === 0 ? backend.memfd('vfio-dma', rounded) : backend.memfd('vfio-guest-memory', rounded, hugePageSize)));
    const memory = mapOrClose(backend, fd, rounded, hugePageSize);
    return new DmaBuffer({ backend, memory, pins: 0, sizeBig: BigInt(memory.byteLength), memfd: fd, pageSize: page });
  }

  /**
   * Maps the memfd open at `fd` (from {@link DmaBuffer.dupMemfd}, in this
   * thread, a worker thread, or another process that received it) as a
   * second DmaBuffer over the same pages: what one writes, the other reads,
   * and either can be mapped for DMA. The buffer maps the whole file and
   * holds its own fd (a dup): the caller still owns `fd` and closes it.
   * The file must be a memfd sealed against shrinking (F_SEAL_SHRINK, as
   * every memfd of DmaBuffer.alloc is), so no other holder can cut pages
   * from under the mapping.
   * @throws TypeError naming `fd` for a file that is not a memfd (EINVAL
   *   from F_GET_SEALS) or one without F_SEAL_SHRINK; RangeError for an
   *   empty file or one larger than one ArrayBuffer; VfioError from
   *   fcntl, fstat or mmap.
   */
  static fromMemfd(fd: number, options?: VfioOptions): DmaBuffer {
    checkInteger('fd', fd, 0, 0x7fff_ffff);
    const opts = checkOptions('options', options, vfioOptionKeys);
    const { backend } = VfioContext.from(vfioOptionsOf(opts));
    let file: MemfdFile;
    try {
      file = kernelCall({ syscall: 'fcntl' }, () => backend.memfdDup(fd));
    } catch (error) {
      if ((error as { code?: string }).code === 'EINVAL') throw typeError('fd', 'the fd of a memfd (F_GET_SEALS refused it: EINVAL)', fd);
      throw error;
    }
    let problem: Error | undefined;
    if ((file.seals & F_SEAL_SHRINK) === 0) problem = typeError('fd', 'a memfd sealed against shrinking (F_SEAL_SHRINK), as DmaBuffer.alloc({ memfd: true }) makes them', fd);
    else if (file.size <= 0) problem = rangeError('fd', 'is an empty memfd');
    else if (file.size > MAX_MAPPING_LENGTH) problem = rangeError('fd', `is a memfd of ${hex(file.size)} bytes, more than one ArrayBuffer holds (${hex(MAX_MAPPING_LENGTH)})`);
    if (problem) {
      closeQuietly(backend, file.fd);
      throw problem;
    }
    const huge = file.pageSize > backend.pageSize() ? file.pageSize : 0;
    const memory = mapOrClose(backend, file.fd, file.size, huge);
    return new DmaBuffer({ backend, memory, pins: 0, sizeBig: BigInt(memory.byteLength), memfd: file.fd, pageSize: huge || backend.pageSize() });
  }

  /**
   * A new fd for the memfd behind the memory (F_DUPFD_CLOEXEC), to share
   * it: post it to a worker thread or pass it to another process, which
   * maps the same pages with {@link DmaBuffer.fromMemfd}. The caller owns
   * the fd and closes it (fs.closeSync); it keeps the pages alive, not the
   * buffer.
   * @throws TypeError when the buffer has no memfd (allocated without
   *   `memfd`); VfioError ERR_VFIO_CLOSED after close().
   */
  dupMemfd(): number {
    const state = bufferState(this);
    const memfd = state.memfd;
    if (memfd === undefined) throw typeError('this', 'a DmaBuffer allocated with { memfd: true } or from fromMemfd', this);
    return kernelCall({ syscall: 'fcntl' }, () => state.backend.memfdDup(memfd)).fd;
  }

  /** The memory as bytes; throws ERR_VFIO_CLOSED after close(). */
  get bytes(): Uint8Array {
    if (!this.#bytes) throw closedError('DMA buffer');
    return this.#bytes;
  }

  /** The memory as a DataView (for little-endian descriptors); throws after close(). */
  get view(): DataView {
    const bytes = this.bytes;
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** True once close() has run. */
  get closed(): boolean {
    return this.#bytes === undefined;
  }

  /** True while at least one DmaMapping covers the buffer. */
  get mapped(): boolean {
    return (states.get(this)?.pins ?? 0) > 0;
  }

  /**
   * Frees the memory; its views are detached and throw afterwards. Idempotent.
   * When the free itself fails the buffer stays open, and close() may be
   * called again.
   * @throws VfioError ERR_VFIO_BUFFER_MAPPED while a mapping covers the buffer (unmap it first).
   */
  close(): void {
    const state = states.get(this);
    if (!state) return;
    if (state.pins > 0) {
      throw new VfioError('ERR_VFIO_BUFFER_MAPPED', `DMA buffer of ${this.size} bytes is still mapped for DMA`, {
        hint: 'unmap its DmaMapping (or close the container) before closing the buffer',
      });
    }
    unmapMemory(state);
    states.delete(this);
    this.#bytes = undefined;
    leakedBuffers.unregister(this);
    // Linux frees the fd even when close(2) reports an error: the buffer is closed either way.
    const { backend, memfd } = state;
    if (memfd !== undefined) kernelCall({ syscall: 'close' }, () => backend.close(memfd));
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

const MAX_HUGE_PAGE = 16 * 1024 * 1024 * 1024;

function checkHugePageSize(value: unknown): number {
  const size = checkInteger('options.hugePageSize', value, 1, MAX_HUGE_PAGE);
  if ((size & (size - 1)) !== 0 || size < 64 * 1024) {
    throw rangeError('options.hugePageSize', `${hex(size)} is not a huge page size (a power of two: 2 MiB is 0x200000, 1 GiB 0x40000000)`);
  }
  return size;
}

/** The hugetlbfs pool of `size` bytes in sysfs, as the kernel names it. */
function hugePagePool(size: number): string {
  return `/sys/kernel/mm/hugepages/hugepages-${size / 1024}kB`;
}

/**
 * Adds the hint a huge page failure needs: ENODEV from memfd_create (no
 * pool of that page size; EINVAL where the size cannot be encoded), ENOMEM
 * from mmap (not enough pages reserved).
 */
function withHugePageHint<T>(hugePageSize: number, call: () => T): T {
  try {
    return call();
  } catch (error) {
    if (hugePageSize === 0 || !(error instanceof VfioError)) throw error;
    const pool = hugePagePool(hugePageSize);
    let hint: string | undefined;
    if ((error.code === 'ENODEV' || error.code === 'EINVAL') && error.syscall === 'memfd_create') {
      hint = `the kernel has no huge pages of options.hugePageSize ${hex(hugePageSize)} (no ${pool}): pick a size listed in /sys/kernel/mm/hugepages`;
    } else if (error.code === 'ENOMEM' && error.syscall === 'mmap') {
      hint = `not enough huge pages of options.hugePageSize ${hex(hugePageSize)} are free: reserve them first (echo N > ${pool}/nr_hugepages, or hugepages= on the kernel command line)`;
    }
    if (!hint) throw error;
    throw VfioError.fromErrno(error.errno, { syscall: error.syscall, operation: error.operation, path: error.path, hint });
  }
}

/** mmap MAP_SHARED of the whole memfd, closing the fd when the mmap fails. */
function mapOrClose(backend: Backend, fd: number, size: number, hugePageSize: number): ArrayBuffer {
  try {
    return withHugePageHint(hugePageSize, () => kernelCall({ syscall: 'mmap' }, () => backend.mmap(fd, size, PROT_READ_WRITE, 0n)));
  } catch (error) {
    closeQuietly(backend, fd);
    throw error;
  }
}

function closeQuietly(backend: Backend, fd: number): void {
  try {
    backend.close(fd);
  } catch {
    // The failure that led here is the one to report.
  }
}

/** Internal: the live state of a buffer, or ERR_VFIO_CLOSED. */
export function bufferState(buffer: DmaBuffer): BufferState {
  const state = states.get(buffer);
  if (!state) throw closedError('DMA buffer');
  return state;
}

/** Internal: the memfd behind a live buffer (IOMMU_IOAS_MAP_FILE), or undefined for anonymous memory. */
export function bufferMemfd(state: BufferState): number | undefined {
  return state.memfd;
}

/** Internal: the live buffer's process address, for MAP_DMA's vaddr only. */
export function bufferAddress(state: BufferState): bigint {
  if (state.address === undefined) {
    state.address = kernelCall({ syscall: 'addressOf' }, () => state.backend.addressOf(state.memory));
  }
  return state.address;
}

/** Internal: a mapping of the buffer is gone. */
export function unpinBuffer(buffer: DmaBuffer): void {
  const state = states.get(buffer);
  if (state && state.pins > 0) state.pins--;
}
