import { MAX_MAPPING_LENGTH, type Backend } from '../core/backend';
import { kernelCall, VfioContext, vfioOptionKeys, vfioOptionsOf, type VfioOptions } from '../core/context';
import { closedError, VfioError } from '../core/errors';
import { runAll } from '../core/handle';
import { checkBoolean, checkInteger, checkOptions, hex, optionKeys, rangeError } from '../core/validate';

/** Options of DmaBuffer.alloc: where the kernel is, and how the memory is backed. */
export interface DmaBufferOptions extends VfioOptions {
  /**
   * Back the memory with a memfd (shmem, mapped MAP_SHARED) instead of
   * anonymous memory, so that an iommufd IOAS can map it by fd with
   * Ioas.mapFile (IOMMU_IOAS_MAP_FILE). Default false.
   */
  memfd?: boolean;
}

const allocOptionKeys = [...vfioOptionKeys, ...optionKeys<Pick<DmaBufferOptions, 'memfd'>>({ memfd: true })];
const PROT_READ_WRITE = 3;

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
  #bytes: Uint8Array | undefined;

  private constructor(state: BufferState) {
    this.size = state.memory.byteLength;
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
    const memfd = opts.memfd === undefined ? false : checkBoolean('options.memfd', opts.memfd);
    const { backend } = VfioContext.from(vfioOptionsOf(opts));
    const page = backend.pageSize();
    const rounded = Math.ceil(size / page) * page;
    if (rounded > MAX_MAPPING_LENGTH) {
      throw rangeError('size', `${hex(size)} (${hex(rounded)} in whole pages) is more than one ArrayBuffer holds on this Node.js (${hex(MAX_MAPPING_LENGTH)}, buffer.constants.MAX_LENGTH): allocate several buffers`);
    }
    if (!memfd) {
      const memory = kernelCall({ syscall: 'allocDma' }, () => backend.allocDma(rounded));
      return new DmaBuffer({ backend, memory, pins: 0, sizeBig: BigInt(memory.byteLength) });
    }
    const fd = kernelCall({ syscall: 'memfd_create' }, () => backend.memfd('vfio-dma', rounded));
    let memory: ArrayBuffer;
    try {
      memory = kernelCall({ syscall: 'mmap' }, () => backend.mmap(fd, rounded, PROT_READ_WRITE, 0n));
    } catch (error) {
      try {
        backend.close(fd);
      } catch {
        // The mmap failure is the one to report.
      }
      throw error;
    }
    return new DmaBuffer({ backend, memory, pins: 0, sizeBig: BigInt(memory.byteLength), memfd: fd });
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
