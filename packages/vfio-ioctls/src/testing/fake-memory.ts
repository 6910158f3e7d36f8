/**
 * The fake process address space: every allocDma buffer and every mmap gets a
 * made-up, page-aligned virtual address, so MAP_DMA's vaddr can be checked the
 * way the kernel pins pages (the whole range must be mapped memory) and a
 * device model can reach the bytes behind an IOVA.
 */
export type MemoryKind = 'dma' | 'mmap';

export interface MemoryArea {
  readonly base: bigint;
  readonly length: number;
  readonly buffer: ArrayBuffer;
  readonly kind: MemoryKind;
  /** PROT_READ | PROT_WRITE bits the memory was mapped with. */
  readonly prot: number;
}

// Where user mappings live on x86-64 Linux; any value works, this one reads naturally.
const FIRST_ADDRESS = 0x7f00_0000_0000n;

export class FakeAddressSpace {
  private next = FIRST_ADDRESS;
  private readonly areas = new Map<ArrayBuffer, MemoryArea>();

  constructor(private readonly pageSize: number) {}

  /** Gives `buffer` a fresh address; addresses are never reused, and a guard page separates areas. */
  add(buffer: ArrayBuffer, kind: MemoryKind, prot: number): MemoryArea {
    const page = BigInt(this.pageSize);
    const pages = (BigInt(buffer.byteLength) + page - 1n) / page;
    const area: MemoryArea = { base: this.next, length: buffer.byteLength, buffer, kind, prot };
    this.next += (pages + 1n) * page;
    this.areas.set(buffer, area);
    return area;
  }

  remove(buffer: ArrayBuffer): MemoryArea | undefined {
    const area = this.areas.get(buffer);
    this.areas.delete(buffer);
    return area;
  }

  get(buffer: ArrayBuffer): MemoryArea | undefined {
    return this.areas.get(buffer);
  }

  /**
   * The live area holding all of [vaddr, vaddr + size), if one does. An area
   * spans whole pages (the kernel pins pages), even when its buffer is shorter.
   */
  find(vaddr: bigint, size: bigint): MemoryArea | undefined {
    const page = BigInt(this.pageSize);
    for (const area of this.areas.values()) {
      const span = ((BigInt(area.length) + page - 1n) / page) * page;
      if (vaddr >= area.base && vaddr + size <= area.base + span) return area;
    }
    return undefined;
  }

  count(kind: MemoryKind): number {
    let n = 0;
    for (const area of this.areas.values()) if (area.kind === kind) n++;
    return n;
  }
}
