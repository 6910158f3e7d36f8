import type { Backend } from '../core/backend';
import { VfioError } from '../core/errors';
import { runAll } from '../core/handle';
import { checkAligned, checkBoolean, checkInstance, checkInteger, checkOptions, checkU64, hex, rangeError, typeError } from '../core/validate';
import { bufferAddress, bufferState, DmaBuffer, unpinBuffer, type BufferState } from './dma-buffer';
import { IovaAllocator, type IovaRange } from './iova-allocator';
import { DmaMapping, markDmaMappingUnmapped, newDmaMapping } from './mapping';

/** Options of IommuContext.map(). */
export interface DmaMapOptions {
  /**
   * The IOVA the device will use. Must be aligned to the IOMMU's smallest
   * page size, inside one IOVA range and free. Left out, the library picks
   * one (first fit in the IOMMU's IOVA ranges, never 0).
   */
  iova?: number | bigint;
  /** The device may read the buffer (default true). */
  read?: boolean;
  /** The device may write the buffer (default true). */
  write?: boolean;
  /**
   * The highest IOVA the device can address (its DMA mask), used when the
   * library picks the IOVA: 2n ** 28n - 1n for a device with a 28-bit mask.
   */
  maxIova?: number | bigint;
  /**
   * Where the mapped part starts in the buffer, in bytes (default 0): a
   * multiple of the IOMMU's smallest page size (and of the CPU page).
   */
  offset?: number;
  /**
   * How many bytes of the buffer to map from `offset` (default: to the
   * buffer's end), a multiple of the same page size. With `iova`, a VMM
   * maps a range of guest RAM at its guest physical address.
   */
  size?: number;
}

/** What a DmaMapping needs from the space that made it (so it cannot be unmapped through another). */
export interface MappingOwner {
  unmapMapping(mapping: DmaMapping): void;
}

/** The IOMMU's geometry, as its kernel interface reports it. */
export interface IommuGeometry {
  ranges: readonly IovaRange[];
  /** Bitmap of page sizes (bit n: 2^n bytes). */
  pageSizes: bigint;
}

/**
 * The kernel side of one IOMMU context: the only part that differs between
 * the legacy container and an iommufd IOAS. Each call throws the kernel's
 * error already annotated with its operation.
 */
export interface DmaKernel {
  /** Where errors point: '/dev/vfio/vfio', '/dev/iommu (IOAS 2)'. */
  readonly path: string;
  /** The ioctl that maps, for errors: 'VFIO_IOMMU_MAP_DMA', 'IOMMU_IOAS_MAP'. */
  readonly mapOperation: string;
  /** Throws when the context cannot map yet (no IOMMU set, closed); called after the argument checks. */
  assertReady(): void;
  geometry(): IommuGeometry;
  map(vaddr: bigint, iova: bigint, size: bigint, read: boolean, write: boolean): void;
  unmap(iova: bigint, size: bigint): void;
  /** Unmaps everything in one call; false when the kernel cannot, so the space unmaps one by one. */
  unmapAll(): boolean;
}

/**
 * The DMA bookkeeping every IommuContext shares: argument checks before any
 * syscall, IOVA allocation inside the IOMMU's ranges, pinning the buffers
 * that are mapped (a mapped DmaBuffer cannot be freed) and the mapping set.
 */
export class DmaSpace implements MappingOwner {
  readonly #backend: Backend;
  readonly #kernel: DmaKernel;
  readonly #mappings = new Set<DmaMapping>();
  #allocator: IovaAllocator | undefined;
  #pageSizes = 0n;
  #stale = false;

  constructor(backend: Backend, kernel: DmaKernel) {
    this.#backend = backend;
    this.#kernel = kernel;
  }

  /** The geometry may have changed (a group or device joined and brought reserved regions): ask again on next use. */
  invalidateGeometry(): void {
    if (this.#allocator) this.#stale = true;
  }

  /** The IOVA ranges, asked of the kernel once (and again after invalidateGeometry). */
  iovaRanges(): readonly IovaRange[] {
    return this.allocator().ranges;
  }

  pageSizes(): bigint {
    this.allocator();
    return this.#pageSizes;
  }

  private allocator(): IovaAllocator {
    if (this.#allocator && !this.#stale) return this.#allocator;
    const geometry = this.#kernel.geometry();
    const systemPage = BigInt(this.#backend.pageSize());
    // The smallest IOMMU page size, but never below the CPU page: mapping pins whole CPU pages.
    let alignment = geometry.pageSizes & -geometry.pageSizes;
    if (alignment < systemPage) alignment = systemPage;
    const allocator = new IovaAllocator(geometry.ranges, alignment);
    for (const mapping of this.#mappings) allocator.reserve(mapping.iova, mapping.size);
    this.#pageSizes = geometry.pageSizes;
    this.#allocator = allocator;
    this.#stale = false;
    return allocator;
  }

  /**
   * Checks the arguments, picks or checks the IOVA, maps the buffer (or
   * the part `options.offset`/`options.size` of it) through the kernel and
   * pins the buffer.
   * @throws TypeError for a bad buffer or options; RangeError (code
   *   ERR_VFIO_MISALIGNED, ERR_OUT_OF_RANGE or ERR_VFIO_DMA_OVERLAP) for a
   *   bad IOVA or part; VfioError ERR_VFIO_NO_IOVA_SPACE when no IOVA is free; the
   *   kernel's error (ENOMEM: RLIMIT_MEMLOCK).
   */
  map(buffer: DmaBuffer, options: DmaMapOptions | undefined): DmaMapping {
    return this.mapWith(buffer, options, this.#kernel.mapOperation, (vaddr, iova, size, read, write) => this.#kernel.map(vaddr, iova, size, read, write));
  }

  /**
   * map() with another kernel call doing the mapping (iommufd's IOAS_COPY
   * maps what another IOAS maps): same checks, allocation and pinning.
   */
  mapWith(
    buffer: DmaBuffer,
    options: DmaMapOptions | undefined,
    operation: string,
    kernelMap: (vaddr: bigint, iova: bigint, size: bigint, read: boolean, write: boolean, offset: number) => void,
  ): DmaMapping {
    checkInstance('buffer', buffer, DmaBuffer);
    let read = true;
    let write = true;
    let requested: bigint | undefined;
    let maxIova: bigint | undefined;
    let offset: number | undefined;
    let length: number | undefined;
    if (options !== undefined) {
      const opts = checkOptions('options', options, ['iova', 'read', 'write', 'maxIova', 'offset', 'size']);
      if (opts.offset !== undefined) offset = checkInteger('options.offset', opts.offset, 0);
      if (opts.size !== undefined) length = checkInteger('options.size', opts.size, 1);
      if (opts.read !== undefined) read = checkBoolean('options.read', opts.read);
      if (opts.write !== undefined) write = checkBoolean('options.write', opts.write);
      if (!read && !write) throw rangeError('options', 'must allow the device to read, write or both');
      if (opts.iova !== undefined) requested = checkU64('options.iova', opts.iova);
      if (opts.maxIova !== undefined) maxIova = checkU64('options.maxIova', opts.maxIova);
    }
    const state = bufferState(buffer);
    if (state.backend !== this.#backend) throw typeError('buffer', 'a DmaBuffer of the same backend as the IOMMU context', buffer);
    this.#kernel.assertReady();
    const allocator = this.allocator();
    const { start, size } = checkPart(state.sizeBig, offset, length, allocator.alignment);
    const iova = requested === undefined ? this.pickIova(allocator, size, maxIova, operation) : checkIova(allocator, requested, size, maxIova);
    const vaddr = alignedAddress(state, start, allocator.alignment);
    kernelMap(vaddr, iova, size, read, write, start);
    allocator.reserve(iova, size);
    state.pins++;
    const mapping = newDmaMapping(this, buffer, iova, size, read, write, start);
    this.#mappings.add(mapping);
    return mapping;
  }

  /**
   * Moves a live mapping onto other memory holding the same pages (a
   * DmaBuffer.fromMemfd of the same memfd), once `kernelUpdate` has given
   * the kernel the new process address (VFIO_DMA_MAP_FLAG_VADDR). The IOVA,
   * size and permissions stay; the old mapping object ends (mapped: false)
   * and its buffer is released; the new one pins `buffer`.
   * @throws TypeError when `mapping` is not a live mapping of this space or
   *   `buffer` not a live DmaBuffer of its backend; RangeError when
   *   [offset, offset + mapping.size) is not inside `buffer` or misaligned.
   */
  rebind(mapping: DmaMapping, buffer: DmaBuffer, offset: number | undefined, kernelUpdate: (vaddr: bigint) => void): DmaMapping {
    checkInstance('mapping', mapping, DmaMapping);
    if (!this.#mappings.has(mapping)) throw typeError('mapping', `a live DmaMapping of ${this.#kernel.path}`, mapping);
    checkInstance('buffer', buffer, DmaBuffer);
    const start = offset === undefined ? 0 : checkInteger('offset', offset, 0);
    const state = bufferState(buffer);
    if (state.backend !== this.#backend) throw typeError('buffer', 'a DmaBuffer of the same backend as the IOMMU context', buffer);
    const allocator = this.allocator();
    const part = checkPart(state.sizeBig, start, Number(mapping.size), allocator.alignment, 'offset');
    kernelUpdate(alignedAddress(state, part.start, allocator.alignment));
    this.#mappings.delete(mapping);
    unpinBuffer(mapping.buffer);
    markDmaMappingUnmapped(mapping);
    state.pins++;
    const moved = newDmaMapping(this, buffer, mapping.iova, mapping.size, mapping.read, mapping.write, part.start);
    this.#mappings.add(moved);
    return moved;
  }

  private pickIova(allocator: IovaAllocator, size: bigint, maxIova: bigint | undefined, operation: string): bigint {
    const iova = allocator.allocate(size, maxIova);
    if (iova === undefined) {
      const path = this.#kernel.path;
      throw new VfioError('ERR_VFIO_NO_IOVA_SPACE', `${path}: no free IOVA range of ${hex(size)} bytes${maxIova === undefined ? '' : ` below ${hex(maxIova)}`}`, {
        operation,
        path,
      });
    }
    return iova;
  }

  /** DmaMapping.unmap() lands here. */
  unmapMapping(mapping: DmaMapping): void {
    if (!this.#mappings.has(mapping)) return;
    this.#kernel.unmap(mapping.iova, mapping.size);
    this.forget(mapping);
  }

  /**
   * Unmaps every mapping inside [iova, iova + size) in one kernel call.
   * Every mapping touched must lie wholly inside: the kernels refuse to
   * split one, and so does this check, before the call.
   * @returns the mappings unmapped.
   */
  unmapRange(iova: bigint, size: bigint): DmaMapping[] {
    if (size === 0n) throw rangeError('size', 'must be greater than 0');
    const last = iova + size - 1n;
    if (last > 0xffff_ffff_ffff_ffffn) throw rangeError('size', `${hex(iova)} + ${hex(size)} passes the end of the 64-bit IOVA space`);
    const inside: DmaMapping[] = [];
    for (const mapping of this.#mappings) {
      if (mapping.end < iova || mapping.iova > last) continue;
      if (mapping.iova < iova || mapping.end > last) {
        throw rangeError('iova', `${hex(iova)}-${hex(last)} cuts the mapping at ${hex(mapping.iova)}-${hex(mapping.end)}; unmap whole mappings`, 'ERR_VFIO_DMA_PARTIAL');
      }
      inside.push(mapping);
    }
    if (inside.length === 0) return [];
    this.#kernel.unmap(iova, size);
    for (const mapping of inside) this.forget(mapping);
    return inside;
  }

  /** Unmaps everything: one call where the kernel can, else one per mapping. */
  unmapAll(): void {
    if (this.#mappings.size === 0) return;
    if (this.#kernel.unmapAll()) this.forgetAll();
    else runAll(this.mappings().map((mapping) => () => this.unmapMapping(mapping)));
  }

  /** The kernel no longer maps anything (its fd closed, its last group left): release every buffer. */
  forgetAll(): void {
    for (const mapping of this.mappings()) this.forget(mapping);
  }

  /** Forgets the geometry too, as when the IOMMU itself goes away. */
  reset(): void {
    this.forgetAll();
    this.#allocator = undefined;
  }

  mappings(): readonly DmaMapping[] {
    return [...this.#mappings];
  }

  private forget(mapping: DmaMapping): void {
    this.#mappings.delete(mapping);
    this.#allocator?.release(mapping.iova);
    unpinBuffer(mapping.buffer);
    markDmaMappingUnmapped(mapping);
  }
}

/**
 * The part of a buffer of `total` bytes a map covers: [offset, offset +
 * size), both multiples of the IOMMU page `alignment`, inside the buffer.
 */
function checkPart(total: bigint, offset: number | undefined, size: number | undefined, alignment: bigint, offsetName = 'options.offset'): { start: number; size: bigint } {
  const start = BigInt(offset ?? 0);
  const length = size === undefined ? total - start : BigInt(size);
  checkAligned(offsetName, start, alignment);
  if (size === undefined) checkAligned('buffer.size', total, alignment);
  else checkAligned('options.size', length, alignment);
  if (start >= total || start + length > total) {
    throw rangeError(offsetName, `[${hex(start)}, ${hex(start + length)}) is not inside the buffer of ${hex(total)} bytes`);
  }
  return { start: Number(start), size: length };
}

/** The process address of byte `offset` of the buffer, checked to be aligned like the IOVA (the kernel needs both alike). */
function alignedAddress(state: BufferState, offset: number, alignment: bigint): bigint {
  const vaddr = bufferAddress(state) + BigInt(offset);
  // Memory from allocDma is only CPU-page aligned, less than a larger IOMMU page.
  if (vaddr % alignment !== 0n) {
    throw rangeError('buffer', `memory is not aligned to the IOMMU page size ${hex(alignment)}`, 'ERR_VFIO_MISALIGNED');
  }
  return vaddr;
}

function checkIova(allocator: IovaAllocator, iova: bigint, size: bigint, maxIova: bigint | undefined): bigint {
  checkAligned('options.iova', iova, allocator.alignment);
  const last = iova + size - 1n;
  if (!allocator.rangeOf(iova, size)) {
    const ranges = allocator.ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(', ');
    throw rangeError('options.iova', `${hex(iova)}-${hex(last)} is outside the IOMMU's IOVA ranges (${ranges})`);
  }
  if (maxIova !== undefined && last > maxIova) {
    throw rangeError('options.iova', `${hex(iova)}-${hex(last)} ends above options.maxIova ${hex(maxIova)}`);
  }
  const clash = allocator.overlapping(iova, size);
  if (clash) {
    throw rangeError('options.iova', `${hex(iova)}-${hex(last)} overlaps the mapping at ${hex(clash.start)}-${hex(clash.start + clash.size - 1n)}`, 'ERR_VFIO_DMA_OVERLAP');
  }
  return iova;
}
