import { VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from 'vfio-bindings';
import { Errno } from './errno';
import { SparseBytes } from './sparse-bytes';
import type { FakeRegionSpec } from './types';

/**
 * Regions larger than this (1 GiB) are stored sparsely: their pages are
 * allocated when first written, so a test can model a GPU-sized BAR.
 */
export const SPARSE_REGION_SIZE = 2 ** 30;

/** A live mmap of part of a region, which holds those bytes until unmapped (or collected). */
interface Window {
  offset: number;
  length: number;
  ref: WeakRef<ArrayBuffer>;
}

/**
 * The bytes of one device region, shared by mmap, pread/pwrite, the MMIO
 * accessors and the test's `region(index)`.
 *
 * An ArrayBuffer cannot alias another one, and munmap must detach the
 * mapping, so the bytes have one owner at a time: a mapping of the whole
 * region IS the region's memory (zero copy; on munmap its contents move to
 * a fresh store), and a mapping of part of a region holds its bytes while it
 * lives (copied in at mmap, back out at munmap), the newest mapping winning
 * where several overlap. Everything but raw views goes through read/write
 * here, so every path sees the same bytes.
 *
 * Mappings are held weakly, so a mapping the program drops can be collected
 * as the addon's can. `store` is kept current with every write made through
 * the fake, so a collected mapping loses only the bytes the program stored
 * into it directly (through typed arrays) since it was mapped.
 *
 * A region over SPARSE_REGION_SIZE keeps its bytes in SparseBytes and is
 * only ever mapped in windows, each filled from the pages written so far.
 * Reading a multi-GiB mapping back costs a page fault per page, so at
 * munmap such a window's bytes are not copied back: what the program
 * stored straight into it (typed arrays, FakeKernelOptions.directMmio) is
 * seen by pread/pwrite while it is mapped and dropped with it. Everything
 * that goes through the fake (pread/pwrite, the MMIO accessors) stays.
 */
export class FakeRegion {
  readonly index: number;
  readonly size: number;
  readonly flags: number;
  readonly sparseAreas?: readonly { offset: number; size: number }[];
  readonly type?: { type: number; subtype: number };
  readonly msixMappable: boolean;
  private store: ArrayBuffer;
  /** The bytes of a region over SPARSE_REGION_SIZE (then `store` is empty). */
  private readonly sparse?: SparseBytes;
  /** The live mapping of the whole region, which is then the region's memory. */
  private whole: WeakRef<ArrayBuffer> | null = null;
  private readonly windows: Window[] = [];

  constructor(spec: FakeRegionSpec, private readonly pageSize: number) {
    this.index = spec.index;
    this.size = spec.size;
    this.flags = (spec.flags ?? VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
      | (spec.sparseAreas ? VFIO_REGION_INFO_FLAG_MMAP : 0);
    this.sparseAreas = spec.sparseAreas?.map((a) => ({ ...a }));
    this.type = spec.type;
    this.msixMappable = spec.msixMappable ?? false;
    if (this.size > SPARSE_REGION_SIZE) {
      this.sparse = new SparseBytes(pageSize);
      this.store = new ArrayBuffer(0);
    } else {
      // mmap works in whole pages, so a mappable region is backed to the page end.
      this.store = new ArrayBuffer(this.mappable ? roundUp(this.size, pageSize) : this.size);
    }
  }

  get mappable(): boolean {
    return (this.flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0 && this.size > 0;
  }

  /**
   * The backing bytes. While the whole region is mmapped this is that
   * mapping's memory; a partial mapping's bytes show here once it is unmapped.
   * munmap of a whole-region mapping detaches older views: take a new one.
   */
  view(): Uint8Array {
    if (this.sparse) {
      throw new RangeError(`region ${this.index} is ${this.size} bytes, stored sparsely: use FakeDevice.readRegion/writeRegion`);
    }
    return new Uint8Array(this.current(), 0, this.size);
  }

  /** Pages a sparsely stored region has allocated (0 for any other region). */
  get allocatedPages(): number {
    return this.sparse?.allocatedPages ?? 0;
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    if (this.sparse) this.sparse.read(offset, out);
    else out.set(new Uint8Array(this.current(), offset, length));
    for (const w of this.liveWindows()) overlay(w.offset, w.bytes, offset, out, 'in');
    return out;
  }

  write(offset: number, data: Uint8Array): void {
    if (this.sparse) {
      this.sparse.write(offset, data);
    } else {
      const whole = this.whole?.deref();
      if (whole) new Uint8Array(whole, offset, data.length).set(data);
      new Uint8Array(this.store, offset, data.length).set(data);
    }
    for (const w of this.liveWindows()) overlay(w.offset, w.bytes, offset, data, 'out');
  }

  /** mmap(2) of [offset, offset + length) of this region, as vfio-pci checks it. */
  mmap(offset: number, length: number): ArrayBuffer {
    if (!this.mappable) throw new Errno('EINVAL');
    if (offset % this.pageSize !== 0) throw new Errno('EINVAL');
    const end = offset + roundUp(length, this.pageSize);
    const areas = this.sparseAreas ?? [{ offset: 0, size: this.size }];
    const fits = areas.some((a) => offset >= a.offset && end <= a.offset + roundUp(a.size, this.pageSize));
    if (!fits) throw new Errno('EINVAL');
    if (!this.sparse && offset === 0 && length === this.store.byteLength && !this.whole?.deref() && this.liveWindows().length === 0) {
      // The mapping takes the store itself; the region keeps a copy it writes through to.
      const mapped = this.store;
      this.store = mapped.slice(0);
      this.whole = new WeakRef(mapped);
      return mapped;
    }
    const buffer = new ArrayBuffer(length);
    if (this.sparse) this.sparse.copyInto(offset, new Uint8Array(buffer));
    else new Uint8Array(buffer).set(this.read(offset, Math.min(length, this.store.byteLength - offset)));
    this.windows.push({ offset, length, ref: new WeakRef(buffer) });
    return buffer;
  }

  /** munmap(2): the mapping's bytes return to the store, then the buffer is detached. */
  unmap(buffer: ArrayBuffer): void {
    if (buffer === this.whole?.deref()) {
      this.store = detach(buffer);
      this.whole = null;
      return;
    }
    const i = this.windows.findIndex((w) => w.ref.deref() === buffer);
    if (i < 0) throw new Errno('EINVAL');
    const [w] = this.windows.splice(i, 1);
    if (!this.sparse) {
      const bytes = new Uint8Array(buffer);
      const kept = bytes.subarray(0, Math.max(0, Math.min(w.length, this.store.byteLength - w.offset)));
      this.write(w.offset, kept);
    }
    detach(buffer);
  }

  /** Forgets mappings whose buffers were collected (the finalizer's munmap). */
  sweep(): void {
    if (this.whole && !this.whole.deref()) this.whole = null;
    for (let i = this.windows.length - 1; i >= 0; i--) if (!this.windows[i].ref.deref()) this.windows.splice(i, 1);
  }

  private current(): ArrayBuffer {
    return this.whole?.deref() ?? this.store;
  }

  private liveWindows(): { offset: number; bytes: Uint8Array }[] {
    const live: { offset: number; bytes: Uint8Array }[] = [];
    for (const w of this.windows) {
      const buffer = w.ref.deref();
      if (buffer) live.push({ offset: w.offset, bytes: new Uint8Array(buffer) });
    }
    return live;
  }
}

/** Copies between a window and an access buffer where they overlap ('in': window to access). */
function overlay(windowOffset: number, window: Uint8Array, accessOffset: number, access: Uint8Array, direction: 'in' | 'out'): void {
  const start = Math.max(windowOffset, accessOffset);
  const end = Math.min(windowOffset + window.length, accessOffset + access.length);
  if (start >= end) return;
  const w = window.subarray(start - windowOffset, end - windowOffset);
  const a = access.subarray(start - accessOffset, end - accessOffset);
  if (direction === 'in') a.set(w);
  else w.set(a);
}

/** Detaches `buffer` (its views then read as empty) and returns a buffer holding its bytes. */
export function detach(buffer: ArrayBuffer): ArrayBuffer {
  return structuredClone(buffer, { transfer: [buffer] });
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
