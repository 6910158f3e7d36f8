/**
 * The syscall surface the safe API stands on. Two implementations exist:
 * the native addon (`native.ts`, real kernel) and the fake kernel
 * (`testing/fake-kernel.ts`). Nothing here knows a VFIO struct layout: ioctl
 * arguments are plain integers or byte buffers packed by vfio-bindings.
 *
 * Every method throws a `VfioError` (code such as 'EBADF', negative errno as
 * Node does, syscall name) when the syscall fails.
 */
import { constants } from 'node:buffer';

/**
 * The longest memory mmap() and allocDma() return: one ArrayBuffer, which
 * Node-API makes through a Buffer, so Buffer's limit holds (2^32 bytes on
 * Node 20; 2^53 - 1 on 64-bit Node 22 and later). Every backend refuses a
 * longer length as out of range, before any syscall.
 */
export const MAX_MAPPING_LENGTH: number = constants.MAX_LENGTH;

/** Readiness watcher for one fd on the Node event loop (uv_poll). */
export interface Poller {
  /** Starts watching; `onReadable` runs on the loop each time the fd is readable. */
  start(): void;
  /** Stops watching; may be started again. */
  stop(): void;
  /** Stops and frees the watcher; idempotent. */
  close(): void;
  /** Keeps the event loop alive while started (the default). */
  ref(): void;
  /** Lets the process exit even while started. */
  unref(): void;
}

/** What {@link Backend.watchEventfds} calls back with: `positions[i]` fired `counts[i]` times. */
export type EventfdsWake = (error: Error | null, positions?: readonly number[], counts?: readonly number[]) => void;

/** What {@link Backend.memfdDup} answers. */
export interface MemfdFile {
  fd: number;
  size: number;
  pageSize: number;
  seals: number;
}

export interface Backend {
  /**
   * True when the ArrayBuffer that mmap() returns is the device memory
   * itself, so that a typed-array load or store of a width is one device
   * access of that width (the native addon). Absent or false when a
   * mapping must go through the mmio* accessors (the fake kernel, whose
   * registers are hooks).
   */
  readonly directMmio?: boolean;
  /** open(2); flags are O_* numbers (O_CLOEXEC is always added). Returns the fd. */
  open(path: string, flags: number): number;
  /** close(2). */
  close(fd: number): void;
  /** fcntl(F_DUPFD_CLOEXEC): a second fd for the same open file. */
  dup(fd: number): number;
  /**
   * ioctl(2). `arg` is an integer passed by value, or a byte buffer passed by
   * pointer that the kernel may read and write in place. Returns the
   * syscall's non-negative result.
   */
  ioctl(fd: number, request: number, arg?: number | Uint8Array): number;
  /** pread(2) into `buffer`; returns the byte count. */
  pread(fd: number, buffer: Uint8Array, offset: bigint): number;
  /** pwrite(2) from `buffer`; returns the byte count. */
  pwrite(fd: number, buffer: Uint8Array, offset: bigint): number;
  /**
   * read(2) into `buffer` at the file's own position; returns the byte
   * count (0 at end of file). For stream fds such as a migration data fd,
   * where pread answers ESPIPE.
   */
  read(fd: number, buffer: Uint8Array): number;
  /** write(2) from `buffer` at the file's own position; returns the byte count. */
  write(fd: number, buffer: Uint8Array): number;

  /** mmap(2) MAP_SHARED of `length` (at most MAX_MAPPING_LENGTH) bytes of `fd` at `offset`, as an external ArrayBuffer. */
  mmap(fd: number, length: number, prot: number, offset: bigint): ArrayBuffer;
  /** Detaches `buffer` (views then throw) and munmaps it. Throws if not a live mapping. */
  munmap(buffer: ArrayBuffer): void;
  /**
   * Volatile MMIO accessors on a live mapping (or DMA buffer); offset is
   * bounds- and alignment-checked, and writes to a mapping without
   * PROT_WRITE are refused rather than left to fault. A buffer that is not a
   * live mapping is a TypeError (ERR_INVALID_ARG_VALUE).
   */
  mmioRead8(buffer: ArrayBuffer, offset: number): number;
  mmioRead16(buffer: ArrayBuffer, offset: number): number;
  mmioRead32(buffer: ArrayBuffer, offset: number): number;
  mmioRead64(buffer: ArrayBuffer, offset: number): bigint;
  mmioWrite8(buffer: ArrayBuffer, offset: number, value: number): void;
  mmioWrite16(buffer: ArrayBuffer, offset: number, value: number): void;
  mmioWrite32(buffer: ArrayBuffer, offset: number, value: number): void;
  mmioWrite64(buffer: ArrayBuffer, offset: number, value: bigint): void;

  /** eventfd(2) with EFD_CLOEXEC | EFD_NONBLOCK added. */
  eventfd(initval: number, flags: number): number;
  /** Reads the eventfd counter (8 bytes); throws EAGAIN when it is zero. */
  eventfdRead(fd: number): bigint;
  /** Adds `value` to the eventfd counter. */
  eventfdWrite(fd: number, value: bigint): void;
  /**
   * Watches `fd` for readability on the calling environment's event loop.
   * The callback gets an error when polling fails. Created stopped. The
   * poller does not drain the fd: the callback must read it (eventfdRead),
   * or it is called again on the next loop turn.
   */
  poll(fd: number, onReadable: (error: Error | null) => void): Poller;
  /**
   * Watches many eventfds with one poller (an epoll fd inside one uv_poll;
   * a single eventfd is watched directly, one syscall less per wake-up).
   * On each wake-up it reads every ready eventfd, which resets its counter,
   * and calls `onWake` once with the positions in `fds` that fired and the
   * counts it read. `error` is set when epoll or a read failed (the
   * positions and counts then hold what was read before). Created stopped;
   * close() frees the epoll fd, never the eventfds.
   */
  watchEventfds(fds: readonly number[], onWake: EventfdsWake): Poller;

  /**
   * memfd_create(2) with MFD_CLOEXEC and MFD_ALLOW_SEALING, then
   * ftruncate(2) to `size` bytes (0 allowed) and the F_SEAL_SHRINK seal;
   * the fd is closed again when a step fails. Returns the fd: shmem that
   * mmap() maps MAP_SHARED and IOMMU_IOAS_MAP_FILE maps by fd. `name` (no
   * NUL bytes, at most 249 bytes) only labels it in /proc. `hugePageSize`
   * (a power of two) asks for hugetlbfs pages of that size (MFD_HUGETLB):
   * ENODEV when the kernel has no such page size, EINVAL when `size` is not a
   * multiple of it; the pages are reserved at mmap (ENOMEM: none free).
   */
  memfd(name: string, size: number, hugePageSize?: number): number;
  /**
   * A new close-on-exec fd for the file of memfd `fd` (F_DUPFD_CLOEXEC),
   * with the file's size, page size (st_blksize) and seals (F_GET_SEALS:
   * EINVAL for a file that is not a memfd).
   */
  memfdDup(fd: number): MemfdFile;

  /** Page-aligned, zeroed anonymous memory for DMA, as an external ArrayBuffer of `size` rounded up to whole pages (at most MAX_MAPPING_LENGTH). */
  allocDma(size: number): ArrayBuffer;
  /** Detaches and frees memory from allocDma. */
  freeDma(buffer: ArrayBuffer): void;
  /** The process virtual address of an allocDma or mmap buffer (for MAP_DMA's vaddr). Never exposed publicly. */
  addressOf(buffer: ArrayBuffer): bigint;
  /** The system page size. */
  pageSize(): number;
  /**
   * mlock(2) of a whole live allocDma buffer: its pages stay resident, as
   * no-IOMMU DMA (physical addresses) needs. Throws ENOMEM or EPERM past
   * RLIMIT_MEMLOCK; a buffer that is not live DMA memory is a TypeError
   * (ERR_INVALID_ARG_VALUE). freeDma drops the lock with the memory.
   */
  mlock(buffer: ArrayBuffer): void;
  /** munlock(2) of a whole live allocDma buffer. */
  munlock(buffer: ArrayBuffer): void;
}
