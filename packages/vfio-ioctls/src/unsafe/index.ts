/**
 * `vfio-ioctls/unsafe`: the raw syscalls under the safe API, for VMM authors
 * who drive other fds (KVM's) next to VFIO. OUTSIDE THE SAFETY PROMISE: an
 * ioctl here can do anything the kernel lets the fd do, `close` can close an
 * fd the library still uses, and an address from `addressOf` outlives
 * nothing: the kernel (a KVM memory slot) may keep using memory after the
 * buffer is closed. What still holds: arguments are checked before any
 * syscall as far as they can be (TypeError/RangeError naming them), and
 * failures are VfioErrors. The main entry point does not export this.
 * @packageDocumentation
 */
import { MAX_MAPPING_LENGTH, type Backend } from '../core/backend';
import { kernelCall, VfioContext } from '../core/context';
import { checkBytes, checkInstance, checkInteger, checkOptions, checkU64, hex, optionKeys, rangeError, typeError } from '../core/validate';
import { bufferAddress, bufferState, DmaBuffer } from '../dma/dma-buffer';
import { VfioError } from '../core/errors';

export { EFD_SEMAPHORE, PROT_NONE, PROT_READ, PROT_WRITE } from '../core/native';

/** Where the syscalls go: the native addon by default, or a Backend such as the fake kernel. */
export interface UnsafeOptions {
  backend?: Backend;
}

const unsafeOptionKeys = optionKeys<UnsafeOptions>({ backend: true });
const FD_MAX = 0x7fff_ffff;
const OFF_T_MAX = (1n << 63n) - 1n;
/**
 * The generic hints speak of /dev/vfio nodes and IOMMU groups; a raw call
 * may be on any fd, so its errors carry none (an empty hint is no hint).
 */
const NO_HINT = '';

/**
 * The architectures whose request numbers follow asm-generic/ioctl.h: 2
 * direction bits at 30, 14 size bits at 16 (alpha, mips, parisc, powerpc
 * and sparc lay them out otherwise, and get no size check).
 */
const GENERIC_IOC_ARCHES = new Set(['x64', 'ia32', 'arm', 'arm64', 'riscv64', 's390x', 'loong64']);

/**
 * The struct size a request number encodes (_IOC_SIZE), when it has a
 * direction (_IOR, _IOW, _IOWR) on an architecture with the generic layout;
 * 0 otherwise. The kernel copies that many bytes at the pointer.
 */
function encodedSize(request: number): number {
  if (!GENERIC_IOC_ARCHES.has(process.arch) || request >>> 30 === 0) return 0;
  return (request >>> 16) & 0x3fff;
}

/** Mappings made by mmap() here and not yet unmapped: munmap() takes no other. */
const ownMappings = new WeakSet<ArrayBuffer>();

function notOwnMapping(): TypeError {
  const error = new TypeError('buffer must be a live mapping that vfio-ioctls/unsafe mmap() returned') as TypeError & { code: string };
  error.code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

/** The native backend, once looked up: a VMM's KVM_RUN loop calls ioctl() per exit. */
let defaultBackend: Backend | undefined;

function backendOf(options: UnsafeOptions | undefined): Backend {
  if (options === undefined) return (defaultBackend ??= VfioContext.from({}).backend);
  const opts = checkOptions('options', options, unsafeOptionKeys);
  return VfioContext.from(opts.backend === undefined ? {} : { backend: opts.backend }).backend;
}

function checkFd(fd: unknown): number {
  return checkInteger('fd', fd, 0, FD_MAX);
}

/**
 * ioctl(2) on any fd. `arg` is an integer passed by value (negative values
 * keep their two's-complement bits), or bytes passed by pointer that the
 * kernel may read and write in place; absent means 0.
 * @param request - the request number as an unsigned 32-bit integer (`_IOC`; use `>>> 0`).
 * Only the size the request number encodes is checked (a shorter buffer is
 * a RangeError): a request without one (old numbers such as FIONREAD) or
 * whose struct is followed by more data may still make the kernel write
 * past the buffer, and an integer the ioctl takes as a pointer is one.
 * @returns the kernel's non-negative return value (KVM_CREATE_VM's fd, a size, 0).
 * @throws TypeError/RangeError for a bad argument; VfioError (operation: the
 *   request in hex) when the kernel refuses.
 */
export function ioctl(fd: number, request: number, arg?: number | Uint8Array, options?: UnsafeOptions): number {
  checkFd(fd);
  checkInteger('request', request, 0, 0xffff_ffff);
  if (typeof arg === 'number') checkInteger('arg', arg, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  else if (arg !== undefined) {
    checkBytes('arg', arg);
    const size = encodedSize(request);
    // A shorter buffer would let the kernel read or write past its end.
    if (arg.byteLength < size) throw rangeError('arg', `holds ${arg.byteLength} bytes, fewer than the ${size} that request ${hex(request)} encodes (_IOC_SIZE)`);
  }
  const backend = backendOf(options);
  // Not kernelCall: its context (the request in hex) would be built on every
  // call, and this is the hot path of a VMM's exit loop; built on failure only.
  try {
    return backend.ioctl(fd, request, arg);
  } catch (error) {
    throw VfioError.annotate(error, { syscall: 'ioctl', operation: hex(request), hint: NO_HINT });
  }
}

/**
 * mmap(2) MAP_SHARED of `length` bytes of `fd` at `offset`, as an
 * ArrayBuffer over the memory itself. Unmap it with munmap().
 * @param prot - PROT_READ | PROT_WRITE (or PROT_NONE).
 * @throws TypeError/RangeError for a bad argument (length past one
 *   ArrayBuffer, offset past 2^63 - 1); VfioError when the kernel refuses.
 */
export function mmap(fd: number, length: number, prot: number, offset: bigint | number, options?: UnsafeOptions): ArrayBuffer {
  checkFd(fd);
  checkInteger('length', length, 1, MAX_MAPPING_LENGTH);
  checkInteger('prot', prot, 0, FD_MAX);
  const at = checkU64('offset', offset, 0n, OFF_T_MAX);
  const backend = backendOf(options);
  const buffer = kernelCall({ syscall: 'mmap', hint: NO_HINT }, () => backend.mmap(fd, length, prot, at));
  ownMappings.add(buffer);
  return buffer;
}

/**
 * munmap(2) of a mapping from mmap() here: the ArrayBuffer is detached
 * first, so its views throw instead of touching unmapped memory. Memory the
 * library owns (a RegionMapping's, a DmaBuffer's) is refused.
 * @throws TypeError (ERR_INVALID_ARG_VALUE) for a buffer mmap() here did not
 *   return, or one already unmapped.
 */
export function munmap(buffer: ArrayBuffer, options?: UnsafeOptions): void {
  if (!(buffer instanceof ArrayBuffer)) throw typeError('buffer', 'an ArrayBuffer', buffer);
  if (!ownMappings.has(buffer)) throw notOwnMapping();
  const backend = backendOf(options);
  kernelCall({ syscall: 'munmap', hint: NO_HINT }, () => backend.munmap(buffer));
  ownMappings.delete(buffer);
}

/**
 * eventfd(2), for KVM_IRQFD and KVM_IOEVENTFD. EFD_CLOEXEC and EFD_NONBLOCK
 * are always added; `flags` may add EFD_SEMAPHORE. Close it with close().
 */
export function eventfd(initval = 0, flags = 0, options?: UnsafeOptions): number {
  checkInteger('initval', initval, 0, 0xffff_ffff);
  checkInteger('flags', flags, 0, FD_MAX);
  const backend = backendOf(options);
  return kernelCall({ syscall: 'eventfd', hint: NO_HINT }, () => backend.eventfd(initval, flags));
}

/**
 * Reads and resets an eventfd's counter (or takes 1 from it, with EFD_SEMAPHORE).
 * @throws VfioError EAGAIN when the counter is zero (the fd is non-blocking).
 */
export function eventfdRead(fd: number, options?: UnsafeOptions): bigint {
  checkFd(fd);
  const backend = backendOf(options);
  return kernelCall({ hint: NO_HINT }, () => backend.eventfdRead(fd));
}

/** Adds `value` to an eventfd's counter. @throws VfioError EAGAIN when it would overflow. */
export function eventfdWrite(fd: number, value: bigint | number, options?: UnsafeOptions): void {
  checkFd(fd);
  const add = checkU64('value', value);
  const backend = backendOf(options);
  kernelCall({ hint: NO_HINT }, () => backend.eventfdWrite(fd, add));
}

/**
 * close(2) of any fd: one that eventfd() or a raw ioctl (KVM_CREATE_VM)
 * returned. Closing an fd the library holds (a Device's) breaks that handle.
 */
export function close(fd: number, options?: UnsafeOptions): void {
  checkFd(fd);
  const backend = backendOf(options);
  kernelCall({ syscall: 'close', hint: NO_HINT }, () => backend.close(fd));
}

/**
 * The process (user) address of a DmaBuffer's memory, or of a mapping from
 * mmap() here (a device BAR mapped through its VFIO fd), for a KVM memory
 * slot (kvm_userspace_memory_region's userspace_addr). Valid while the
 * buffer is open or the mapping mapped: delete the slot first, or the guest
 * sees freed memory.
 * @throws TypeError for anything else (an ArrayBuffer mmap() here did not
 *   return, or one already unmapped); VfioError ERR_VFIO_CLOSED for a closed
 *   DmaBuffer.
 */
export function addressOf(buffer: DmaBuffer | ArrayBuffer, options?: UnsafeOptions): bigint {
  if (buffer instanceof ArrayBuffer) {
    if (!ownMappings.has(buffer)) throw notOwnMapping();
    const backend = backendOf(options);
    return kernelCall({ syscall: 'addressOf', hint: NO_HINT }, () => backend.addressOf(buffer));
  }
  checkInstance('buffer', buffer, DmaBuffer);
  return bufferAddress(bufferState(buffer));
}
