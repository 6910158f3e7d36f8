/**
 * The fake process address space: every allocDma buffer and every mmap gets a
 * made-up, page-aligned virtual address, so MAP_DMA's vaddr can be checked the
 * way the kernel pins pages (the whole range must be mapped memory) and a
 * device model can reach the bytes behind an IOVA.
 *
 * Buffers are held weakly, as the addon's table holds them: a buffer the
 * program drops can be collected, and its owner (FakeMachine) releases the
 * area from a FinalizationRegistry, as the addon's finalizer munmaps it.
 */
// allocDma memory, an mmap of a device region, an mmap of a memfd (ordinary shared memory).
export type MemoryKind = 'dma' | 'mmap' | 'shmem';

export interface MemoryArea {
  readonly base: bigint;
  readonly length: number;
  readonly buffer: ArrayBuffer;
  readonly kind: MemoryKind;
  /** PROT_READ | PROT_WRITE bits the memory was mapped with. */
  readonly prot: number;
}

interface Entry {
  readonly base: bigint;
  readonly length: number;
  readonly kind: MemoryKind;
  readonly prot: number;
  readonly ref: WeakRef<ArrayBuffer>;
}

// Where user mappings live on x86-64 Linux; any value works, this one reads naturally.
const FIRST_ADDRESS = 0x7f00_0000_0000n;

export class FakeAddressSpace {
  private next = FIRST_ADDRESS;
  private readonly byBuffer = new WeakMap<ArrayBuffer, Entry>();
  private readonly byBase = new Map<bigint, Entry>();

  constructor(private readonly pageSize: number) {}

  /** Gives `buffer` a fresh address; addresses are never reused, and a guard page separates areas. */
  add(buffer: ArrayBuffer, kind: MemoryKind, prot: number): MemoryArea {
    const page = BigInt(this.pageSize);
    const pages = (BigInt(buffer.byteLength) + page - 1n) / page;
    const entry: Entry = { base: this.next, length: buffer.byteLength, kind, prot, ref: new WeakRef(buffer) };
    this.next += (pages + 1n) * page;
    this.byBuffer.set(buffer, entry);
    this.byBase.set(entry.base, entry);
    return areaOf(entry, buffer);
  }

  remove(buffer: ArrayBuffer): MemoryArea | undefined {
    const entry = this.byBuffer.get(buffer);
    if (!entry) return undefined;
    this.byBuffer.delete(buffer);
    this.byBase.delete(entry.base);
    return areaOf(entry, buffer);
  }

  /** Drops the area at `base` whose buffer was collected (the finalizer's munmap). */
  forget(base: bigint): void {
    this.byBase.delete(base);
  }

  get(buffer: ArrayBuffer): MemoryArea | undefined {
    const entry = this.byBuffer.get(buffer);
    return entry && areaOf(entry, buffer);
  }

  /**
   * The live area holding all of [vaddr, vaddr + size), if one does. An area
   * spans whole pages (the kernel pins pages), even when its buffer is shorter.
   */
  find(vaddr: bigint, size: bigint): MemoryArea | undefined {
    const page = BigInt(this.pageSize);
    for (const entry of this.byBase.values()) {
      const span = ((BigInt(entry.length) + page - 1n) / page) * page;
      if (vaddr < entry.base || vaddr + size > entry.base + span) continue;
      const buffer = entry.ref.deref();
      return buffer && areaOf(entry, buffer);
    }
    return undefined;
  }

  /** Areas of `kind` not yet removed or forgotten. */
  count(kind: MemoryKind): number {
    let n = 0;
    for (const entry of this.byBase.values()) if (entry.kind === kind) n++;
    return n;
  }
}

function areaOf(entry: Entry, buffer: ArrayBuffer): MemoryArea {
  return { base: entry.base, length: entry.length, buffer, kind: entry.kind, prot: entry.prot };
}
