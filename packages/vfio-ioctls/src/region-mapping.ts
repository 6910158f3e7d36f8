import type { Backend } from './backend';
import { kernelCall } from './context';
import { closedError } from './errors';
import { runAll } from './handle';
import { checkInteger, checkU64, hex, rangeError } from './validate';

/** @internal One mmapped area, as Region.map() made it. */
export interface MmioWindowSpec {
  /** Offset of the area within the region. */
  offset: number;
  /** The mmapped memory. */
  buffer: ArrayBuffer;
}

/**
 * One mmapped window of a region. Offsets given to its accessors are
 * relative to the region (not the window), so code written against a
 * register map reads the same whether or not the region is sparse. Every
 * access is bounds- and alignment-checked and done by the backend's
 * volatile accessors of exactly that width (a DataView gives no such
 * guarantee, and MMIO registers care).
 */
export class MmioWindow {
  /** Offset of the window within the region. */
  readonly offset: number;
  /** Size of the window in bytes. */
  readonly size: number;
  #buffer: ArrayBuffer | undefined;
  readonly #backend: Backend;

  /** @internal */
  constructor(backend: Backend, spec: MmioWindowSpec) {
    this.#backend = backend;
    this.offset = spec.offset;
    this.size = spec.buffer.byteLength;
    this.#buffer = spec.buffer;
  }

  /** True when `offset` (region-relative) lies in this window. */
  contains(offset: number, width = 1): boolean {
    return offset >= this.offset && offset + width <= this.offset + this.size;
  }

  /** False once the mapping is unmapped. */
  get mapped(): boolean {
    return this.#buffer !== undefined;
  }

  // Each accessor tests the valid case in one expression (#relative) and
  // leaves every failure to #reject, which runs the full checks for the
  // precise error: the same conditions, so nothing is weakened.

  /** Reads a byte at region offset `offset` (a volatile 8-bit load). */
  read8(offset: number): number {
    const at = this.#relative(offset, 1);
    if (at < 0) this.#reject(offset, 1);
    return this.#backend.mmioRead8(this.#buffer!, at);
  }
  /** Reads 16 bits at region offset `offset` (2-aligned; one volatile load). */
  read16(offset: number): number {
    const at = this.#relative(offset, 2);
    if (at < 0) this.#reject(offset, 2);
    return this.#backend.mmioRead16(this.#buffer!, at);
  }
  /** Reads 32 bits at region offset `offset` (4-aligned; one volatile load). */
  read32(offset: number): number {
    const at = this.#relative(offset, 4);
    if (at < 0) this.#reject(offset, 4);
    return this.#backend.mmioRead32(this.#buffer!, at);
  }
  /** Reads 64 bits at region offset `offset` (8-aligned; one volatile load). */
  read64(offset: number): bigint {
    const at = this.#relative(offset, 8);
    if (at < 0) this.#reject(offset, 8);
    return this.#backend.mmioRead64(this.#buffer!, at);
  }
  /** Writes a byte at region offset `offset` (a volatile 8-bit store). */
  write8(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xff);
    const at = this.#relative(offset, 1);
    if (at < 0) this.#reject(offset, 1);
    this.#backend.mmioWrite8(this.#buffer!, at, value);
  }
  /** Writes 16 bits at region offset `offset` (2-aligned; one volatile store). */
  write16(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xffff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xffff);
    const at = this.#relative(offset, 2);
    if (at < 0) this.#reject(offset, 2);
    this.#backend.mmioWrite16(this.#buffer!, at, value);
  }
  /** Writes 32 bits at region offset `offset` (4-aligned; one volatile store). */
  write32(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xffff_ffff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xffff_ffff);
    const at = this.#relative(offset, 4);
    if (at < 0) this.#reject(offset, 4);
    this.#backend.mmioWrite32(this.#buffer!, at, value);
  }
  /** Writes 64 bits at region offset `offset` (8-aligned; one volatile store). */
  write64(offset: number, value: bigint | number): void {
    const big = checkU64('value', value);
    const at = this.#relative(offset, 8);
    if (at < 0) this.#reject(offset, 8);
    this.#backend.mmioWrite64(this.#buffer!, at, big);
  }

  /** The window-relative offset of a valid access (mapped, integer, inside, aligned), else -1. */
  #relative(offset: number, width: number): number {
    if (this.#buffer === undefined || typeof offset !== 'number') return -1;
    const at = offset - this.offset;
    return at >= 0 && at <= this.size - width && (offset & (width - 1)) === 0 && Number.isInteger(offset) ? at : -1;
  }

  /** Throws the error for an access #relative refused. */
  #reject(offset: number, width: number): never {
    checkInteger('offset', offset);
    if (!this.#buffer) throw closedError('region mapping');
    if (!this.contains(offset, width)) {
      throw rangeError('offset', `${hex(offset)} (${width} bytes) is outside the window ${hex(this.offset)}-${hex(this.offset + this.size - 1)}`);
    }
    throw rangeError('offset', `must be ${width}-byte aligned, got ${hex(offset)}`, 'ERR_VFIO_MISALIGNED');
  }

  /**
   * @internal Detaches and munmaps the window (views then throw);
   * idempotent. When munmap fails the window stays mapped and owned, so a
   * later unmap (or the device's close) tries again instead of leaking it.
   */
  unmap(): void {
    const buffer = this.#buffer;
    if (!buffer) return;
    kernelCall({ syscall: 'munmap' }, () => this.#backend.munmap(buffer));
    this.#buffer = undefined;
  }
}

/**
 * A mapped region: its windows (one per mmappable area) and accessors that
 * find the window for a region offset. unmap() detaches every window.
 */
export class RegionMapping implements Disposable {
  /** The region index. */
  readonly index: number;
  /** The windows, sorted by offset; the gaps between them are not mapped. */
  readonly windows: readonly MmioWindow[];
  readonly #onUnmap: () => void;
  #mapped = true;

  /** @internal Made by Region.map(). */
  constructor(backend: Backend, index: number, specs: MmioWindowSpec[], onUnmap: () => void) {
    this.index = index;
    this.windows = specs.map((spec) => new MmioWindow(backend, spec)).sort((a, b) => a.offset - b.offset);
    this.#onUnmap = onUnmap;
  }

  /** False once unmapped. */
  get mapped(): boolean {
    return this.#mapped;
  }

  /**
   * The window holding `width` bytes at region offset `offset`.
   * @throws RangeError when no window holds it (outside the region or in a gap); ERR_VFIO_CLOSED after unmap().
   */
  window(offset: number, width = 1): MmioWindow {
    checkInteger('offset', offset);
    if (!this.#mapped) throw closedError('region mapping');
    // A loop, not find(): no closure per MMIO access.
    for (const window of this.windows) if (window.contains(offset, width)) return window;
    throw rangeError('offset', `${hex(offset)} (${width} bytes) is not in a mapped window of region ${this.index}`);
  }

  /** Reads a byte at region offset `offset` (a volatile 8-bit load). */
  read8(offset: number): number {
    return this.window(offset, 1).read8(offset);
  }
  /** Reads 16 bits at region offset `offset` (2-aligned; one volatile load). */
  read16(offset: number): number {
    return this.window(offset, 2).read16(offset);
  }
  /** Reads 32 bits at region offset `offset` (4-aligned; one volatile load). */
  read32(offset: number): number {
    return this.window(offset, 4).read32(offset);
  }
  /** Reads 64 bits at region offset `offset` (8-aligned; one volatile load). */
  read64(offset: number): bigint {
    return this.window(offset, 8).read64(offset);
  }
  /** Writes a byte at region offset `offset` (a volatile 8-bit store). */
  write8(offset: number, value: number): void {
    this.window(offset, 1).write8(offset, value);
  }
  /** Writes 16 bits at region offset `offset` (2-aligned; one volatile store). */
  write16(offset: number, value: number): void {
    this.window(offset, 2).write16(offset, value);
  }
  /** Writes 32 bits at region offset `offset` (4-aligned; one volatile store). */
  write32(offset: number, value: number): void {
    this.window(offset, 4).write32(offset, value);
  }
  /** Writes 64 bits at region offset `offset` (8-aligned; one volatile store). */
  write64(offset: number, value: bigint | number): void {
    this.window(offset, 8).write64(offset, value);
  }

  /**
   * Unmaps every window; idempotent. Accessors throw ERR_VFIO_CLOSED
   * afterwards. If a munmap fails, the mapping stays (partly) mapped and
   * unmap() may be called again; closing the device retries it too.
   */
  unmap(): void {
    if (!this.#mapped) return;
    runAll(this.windows.map((w) => () => w.unmap()));
    this.#mapped = false;
    this.#onUnmap();
  }

  /** Same as unmap(), for `using`. */
  [Symbol.dispose](): void {
    this.unmap();
  }
}
