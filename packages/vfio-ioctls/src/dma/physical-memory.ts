/**
 * Physical addresses of DmaBuffers, for no-IOMMU mode
 * (vfio.enable_unsafe_noiommu_mode=1), where nothing translates the
 * device's addresses: it must be given the physical address of memory that
 * stays in place.
 *
 * This lives apart from DmaBuffer on purpose, so that IOMMU users never pay
 * for it: no mlock (MAP_DMA pins the pages already, and an mlock would count
 * them against RLIMIT_MEMLOCK a second time), no pagemap fd, no field on every
 * buffer. The only state is a WeakSet of the buffers locked here, and closing
 * a buffer needs no hook: munmap, which frees it, drops the lock with it.
 *
 * What no-IOMMU mode cannot give: the library cannot stop the device from
 * using an address after the buffer is closed (nothing to unmap), so keep the
 * buffer open while the device may use it. And mlock keeps pages resident,
 * not fixed: Linux may still migrate locked pages while compacting memory
 * unless vm.compact_unevictable_allowed is 0, which a no-IOMMU setup should set.
 */
import { constants as fsConstants } from 'node:fs';
import { kernelCall } from '../core/context';
import { VfioError } from '../core/errors';
import { checkInstance, checkInteger } from '../core/validate';
import { bufferAddress, bufferState, DmaBuffer, type BufferState } from './dma-buffer';

/** A run of a DmaBuffer that is contiguous in physical memory. */
export interface PhysicalSegment {
  /** Where the run starts in the buffer, in bytes. */
  offset: number;
  /** Its physical address, what a device in no-IOMMU mode is given. */
  physical: bigint;
  /** Its length in bytes (whole pages). */
  size: number;
}

const PAGEMAP = '/proc/self/pagemap';
const ENTRY_BYTES = 8;
const PRESENT = 1n << 63n;
const FRAME_MASK = (1n << 55n) - 1n;

const lockedBuffers = new WeakSet<BufferState>();

/**
 * The physically contiguous runs of `buffer`, in buffer order, together
 * covering all of it. The first call locks the buffer in memory (mlock) until
 * it is closed. Needs CAP_SYS_ADMIN (root): without it Linux hides physical
 * addresses.
 * @throws VfioError ENOMEM/EPERM when the lock exceeds RLIMIT_MEMLOCK;
 *   ERR_VFIO_NO_PHYSICAL_ADDRESS without CAP_SYS_ADMIN; ERR_VFIO_CLOSED after close().
 */
export function physicalSegments(buffer: DmaBuffer): PhysicalSegment[] {
  checkInstance('buffer', buffer, DmaBuffer);
  const state = bufferState(buffer);
  const page = state.backend.pageSize();
  const frames = readFrames(state, 0, state.memory.byteLength / page);
  const segments: PhysicalSegment[] = [];
  frames.forEach((frame, index) => {
    const last = segments[segments.length - 1];
    const physical = frame * BigInt(page);
    if (last && last.physical + BigInt(last.size) === physical) last.size += page;
    else segments.push({ offset: index * page, physical, size: page });
  });
  return segments;
}

/**
 * The physical address of byte `offset` of `buffer`. Locks the buffer as
 * {@link physicalSegments} does. A device access must not cross into the next
 * page unless physicalSegments shows the two pages contiguous.
 * @throws RangeError when `offset` is outside the buffer; the VfioErrors of physicalSegments.
 */
export function physicalAddress(buffer: DmaBuffer, offset = 0): bigint {
  checkInstance('buffer', buffer, DmaBuffer);
  const state = bufferState(buffer);
  checkInteger('offset', offset, 0, state.memory.byteLength - 1);
  const page = state.backend.pageSize();
  const [frame] = readFrames(state, Math.floor(offset / page), 1);
  return frame * BigInt(page) + BigInt(offset % page);
}

/** Locks the buffer (once), then reads the frame numbers of `count` pages from page `first` on. */
function readFrames(state: BufferState, first: number, count: number): bigint[] {
  lockInPlace(state);
  const { backend } = state;
  const page = backend.pageSize();
  const entries = new Uint8Array(count * ENTRY_BYTES);
  const at = (bufferAddress(state) / BigInt(page) + BigInt(first)) * BigInt(ENTRY_BYTES);
  const fd = kernelCall({ syscall: 'open', path: PAGEMAP }, () => backend.open(PAGEMAP, fsConstants.O_RDONLY));
  try {
    const got = kernelCall({ syscall: 'pread', path: PAGEMAP }, () => backend.pread(fd, entries, at));
    if (got !== entries.byteLength) {
      throw new VfioError('ERR_VFIO_SHORT_IO', `${PAGEMAP} gave ${got} of ${entries.byteLength} bytes`, { path: PAGEMAP });
    }
  } finally {
    kernelCall({ syscall: 'close', path: PAGEMAP }, () => backend.close(fd));
  }
  const view = new DataView(entries.buffer);
  const frames: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const entry = view.getBigUint64(i * ENTRY_BYTES, true);
    // mlock made every page present, so an absent one means the lock did not hold.
    if ((entry & PRESENT) === 0n) throw noPhysicalAddress(`page ${first + i} of the DMA buffer is not in memory`);
    const frame = entry & FRAME_MASK;
    // Frame 0 is never process memory: Linux shows 0 to readers without CAP_SYS_ADMIN.
    if (frame === 0n) {
      throw noPhysicalAddress('the kernel hides physical addresses from this process', 'reading them from /proc/self/pagemap needs CAP_SYS_ADMIN: run as root');
    }
    frames.push(frame);
  }
  return frames;
}

/**
 * mlock keeps the pages resident; writing each page once makes sure each is
 * a page of its own, not the shared zero page an untouched private page reads
 * as (a device writing there would write into every such page).
 */
function lockInPlace(state: BufferState): void {
  if (lockedBuffers.has(state)) return;
  const hint = 'locking the buffer in memory went past RLIMIT_MEMLOCK: raise it (ulimit -l) or give the process CAP_IPC_LOCK';
  kernelCall({ syscall: 'mlock', hint }, () => state.backend.mlock(state.memory));
  const bytes = new Uint8Array(state.memory);
  const page = state.backend.pageSize();
  for (let at = 0; at < bytes.length; at += page) bytes[at] = bytes[at];
  lockedBuffers.add(state);
}

function noPhysicalAddress(message: string, hint?: string): VfioError {
  return new VfioError('ERR_VFIO_NO_PHYSICAL_ADDRESS', message, { path: PAGEMAP, hint });
}
