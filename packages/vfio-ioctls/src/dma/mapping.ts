import { illegalConstructor } from '../core/illegal-constructor';
import type { DmaBuffer } from './dma-buffer';
import type { MappingOwner } from './dma-space';

/** Only this module holds it: DmaMapping's constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('DmaMapping');

type MappingArgs = [owner: MappingOwner, buffer: DmaBuffer, iova: bigint, size: bigint, read: boolean, write: boolean, offset: number];

// Set by DmaMapping's static block, which may reach its private parts.
let construct: (...args: MappingArgs) => DmaMapping;
let forgetOwner: (mapping: DmaMapping) => void;

/**
 * A DmaBuffer mapped at an IOVA for device DMA. While it exists the buffer
 * cannot be closed. Made by {@link IommuContext.map}; unmap() or close()
 * removes it from the IOMMU (idempotent).
 */
export class DmaMapping implements Disposable {
  /** The IO virtual address the device uses. */
  readonly iova: bigint;
  /** Mapped bytes (the whole buffer unless map() was given `size`). */
  readonly size: bigint;
  /** The mapped buffer. */
  readonly buffer: DmaBuffer;
  /** Where the mapped bytes start in the buffer (map()'s `offset`; 0 for the whole buffer). */
  readonly offset: number;
  /** The device may read the buffer. */
  readonly read: boolean;
  /** The device may write the buffer. */
  readonly write: boolean;
  #owner: MappingOwner | undefined;

  static {
    construct = (...args) => new DmaMapping(constructKey, ...args);
    forgetOwner = (mapping) => {
      mapping.#owner = undefined;
    };
  }

  private constructor(key: symbol, owner: MappingOwner, buffer: DmaBuffer, iova: bigint, size: bigint, read: boolean, write: boolean, offset: number) {
    if (key !== constructKey) throw illegalConstructor();
    this.offset = offset;
    this.#owner = owner;
    this.buffer = buffer;
    this.iova = iova;
    this.size = size;
    this.read = read;
    this.write = write;
  }

  /** False once unmapped (explicitly, by unmapAll, or by closing the context). */
  get mapped(): boolean {
    return this.#owner !== undefined;
  }

  /** The last IOVA of the mapping (inclusive). */
  get end(): bigint {
    return this.iova + this.size - 1n;
  }

  /**
   * Unmaps it from the IOMMU and releases the buffer. Idempotent.
   * @throws VfioError when VFIO_IOMMU_UNMAP_DMA fails (the mapping then stays mapped).
   */
  unmap(): void {
    this.#owner?.unmapMapping(this);
  }

  /** Same as unmap(). */
  close(): void {
    this.unmap();
  }

  /** Same as unmap(), for `using`. */
  [Symbol.dispose](): void {
    this.unmap();
  }
}

/**
 * @internal For dma-space.ts: a mapping the IOMMU context has already made
 * of `size` bytes from `offset` in the buffer. Not exported from the package.
 */
export function newDmaMapping(...args: MappingArgs): DmaMapping {
  return construct(...args);
}

/** @internal For dma-space.ts: the IOMMU no longer maps it; unmap() becomes a no-op. */
export function markDmaMappingUnmapped(mapping: DmaMapping): void {
  forgetOwner(mapping);
}
