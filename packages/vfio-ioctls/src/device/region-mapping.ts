import type { Backend } from '../core/backend';
import { kernelCall } from '../core/context';
import { closedError, regionAccessError } from '../core/errors';
import { runAll } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkInteger, checkU64, hex, rangeError } from '../core/validate';

/** @internal One mmapped area, as Region.map() made it. */
export interface MmioWindowSpec {
  /** Offset of the area within the region. */
  offset: number;
  /** The mmapped memory. */
  buffer: ArrayBuffer;
}

/** @internal What the windows of one mapping share, the region's name and permissions. */
export interface MmioAccess {
  /** The region index and device name, for errors. */
  index: number;
  device: string;
  readable: boolean;
  writable: boolean;
}

/** Only this module holds it: the constructors below demand it (see illegal-constructor.ts). */
const constructKey = Symbol('RegionMapping');

// Set by the classes' static blocks, which may reach their private parts.
let newWindow: (backend: Backend, spec: MmioWindowSpec, access: MmioAccess) => MmioWindow;
let unmapWindow: (window: MmioWindow, backend: Backend) => void;
let newMapping: (backend: Backend, index: number, specs: MmioWindowSpec[], access: MmioAccess, onUnmap: () => void) => RegionMapping;

/**
 * One mmapped window of a region. Offsets given to its accessors are
 * relative to the region (not the window), so code written against a
 * register map reads the same whether or not the region is sparse. Every
 * access is bounds-, alignment- and permission-checked, then done as one
 * access of exactly that width (MMIO registers care: a DataView gives no
 * such guarantee).
 *
 * On the real kernel the access is made from JavaScript on typed-array
 * views of the mapping, without a native call: reads are Atomics.load,
 * which the engine may not drop, merge, hoist out of a polling loop or
 * split, so each is one load of its width; writes are element stores, one
 * store of their width (Atomics.store is no use: on x86 it is a locked
 * exchange, a read-modify-write the device would see). That engines keep
 * those stores, in order and none merged or dropped, even in optimized
 * code, is checked against the device in the guest suite. On a backend
 * whose mappings are not the device (the fake kernel) the backend's
 * accessors do the access.
 */
export class MmioWindow {
  /** Offset of the window within the region. */
  readonly offset: number;
  /** Size of the window in bytes. */
  readonly size: number;
  #buffer: ArrayBuffer | undefined;
  // The backend's accessors, on a backend whose mappings are not the device
  // memory; undefined on a direct one, so that a direct window can never
  // fall back to a native call unnoticed (it would throw instead).
  readonly #accessors: Backend | undefined;
  readonly #access: MmioAccess;
  // Views of the device memory (direct backends only); detached with it.
  readonly #u8: Uint8Array | undefined;
  readonly #u16: Uint16Array | undefined;
  readonly #u32: Uint32Array | undefined;
  readonly #u64: BigUint64Array | undefined;

  static {
    newWindow = (backend, spec, access) => new MmioWindow(constructKey, backend, spec, access);
    unmapWindow = (window, backend) => window.#unmap(backend);
  }

  private constructor(key: symbol, backend: Backend, spec: MmioWindowSpec, access: MmioAccess) {
    if (key !== constructKey) throw illegalConstructor();
    const direct = backend.directMmio === true;
    this.#accessors = direct ? undefined : backend;
    this.#access = access;
    this.offset = spec.offset;
    this.size = spec.buffer.byteLength;
    this.#buffer = spec.buffer;
    if (direct) {
      // Lengths and indexes below are divided, never shifted: `>>>` works
      // modulo 2^32, so a 4 GiB window's `byteLength >>> 1` is 0 and an
      // offset past 4 GiB would wrap onto the start of the window.
      const { buffer } = spec;
      this.#u8 = new Uint8Array(buffer);
      this.#u16 = new Uint16Array(buffer, 0, Math.floor(buffer.byteLength / 2));
      this.#u32 = new Uint32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
      this.#u64 = new BigUint64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
    }
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

  /** Reads a byte at region offset `offset` (one 8-bit load). */
  read8(offset: number): number {
    const at = this.#relative(offset, 1, this.#access.readable);
    if (at < 0) this.#reject(offset, 1, 'read');
    const view = this.#u8;
    return view !== undefined ? Atomics.load(view, at) : this.#accessors!.mmioRead8(this.#buffer!, at);
  }
  /** Reads 16 bits at region offset `offset` (2-aligned; one load). */
  read16(offset: number): number {
    const at = this.#relative(offset, 2, this.#access.readable);
    if (at < 0) this.#reject(offset, 2, 'read');
    const view = this.#u16;
    return view !== undefined ? Atomics.load(view, at / 2) : this.#accessors!.mmioRead16(this.#buffer!, at);
  }
  /** Reads 32 bits at region offset `offset` (4-aligned; one load). */
  read32(offset: number): number {
    const at = this.#relative(offset, 4, this.#access.readable);
    if (at < 0) this.#reject(offset, 4, 'read');
    const view = this.#u32;
    return view !== undefined ? Atomics.load(view, at / 4) : this.#accessors!.mmioRead32(this.#buffer!, at);
  }
  /** Reads 64 bits at region offset `offset` (8-aligned; one load). */
  read64(offset: number): bigint {
    const at = this.#relative(offset, 8, this.#access.readable);
    if (at < 0) this.#reject(offset, 8, 'read');
    const view = this.#u64;
    return view !== undefined ? Atomics.load(view, at / 8) : this.#accessors!.mmioRead64(this.#buffer!, at);
  }
  /** Writes a byte at region offset `offset` (one 8-bit store). */
  write8(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xff);
    const at = this.#relative(offset, 1, this.#access.writable);
    if (at < 0) this.#reject(offset, 1, 'write');
    const view = this.#u8;
    if (view !== undefined) view[at] = value;
    else this.#accessors!.mmioWrite8(this.#buffer!, at, value);
  }
  /** Writes 16 bits at region offset `offset` (2-aligned; one store). */
  write16(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xffff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xffff);
    const at = this.#relative(offset, 2, this.#access.writable);
    if (at < 0) this.#reject(offset, 2, 'write');
    const view = this.#u16;
    if (view !== undefined) view[at / 2] = value;
    else this.#accessors!.mmioWrite16(this.#buffer!, at, value);
  }
  /** Writes 32 bits at region offset `offset` (4-aligned; one store). */
  write32(offset: number, value: number): void {
    if (typeof value !== 'number' || !(value >= 0 && value <= 0xffff_ffff) || !Number.isInteger(value)) checkInteger('value', value, 0, 0xffff_ffff);
    const at = this.#relative(offset, 4, this.#access.writable);
    if (at < 0) this.#reject(offset, 4, 'write');
    const view = this.#u32;
    if (view !== undefined) view[at / 4] = value;
    else this.#accessors!.mmioWrite32(this.#buffer!, at, value);
  }
  /** Writes 64 bits at region offset `offset` (8-aligned; one store). */
  write64(offset: number, value: bigint | number): void {
    const big = checkU64('value', value);
    const at = this.#relative(offset, 8, this.#access.writable);
    if (at < 0) this.#reject(offset, 8, 'write');
    const view = this.#u64;
    if (view !== undefined) view[at / 8] = big;
    else this.#accessors!.mmioWrite64(this.#buffer!, at, big);
  }

  /** The window-relative offset of a valid access (allowed, mapped, integer, inside, aligned), else -1. */
  #relative(offset: number, width: number, allowed: boolean): number {
    if (!allowed || this.#buffer === undefined || typeof offset !== 'number') return -1;
    const at = offset - this.offset;
    // `&` sees the integer's low 32 bits: exact for alignment at any offset.
    return at >= 0 && at <= this.size - width && (offset & (width - 1)) === 0 && Number.isInteger(offset) ? at : -1;
  }

  /** Throws the error for an access #relative refused. */
  #reject(offset: number, width: number, what: 'read' | 'write'): never {
    checkInteger('offset', offset);
    if (!this.#buffer) throw closedError('region mapping');
    if (!(what === 'read' ? this.#access.readable : this.#access.writable)) {
      // On the mapping itself this would be SIGSEGV, not an exception.
      throw regionAccessError(this.#access.index, this.#access.device, what);
    }
    if (!this.contains(offset, width)) {
      throw rangeError('offset', `${hex(offset)} (${width} bytes) is outside the window ${hex(this.offset)}-${hex(this.offset + this.size - 1)}`);
    }
    throw rangeError('offset', `must be ${width}-byte aligned, got ${hex(offset)}`, 'ERR_VFIO_MISALIGNED');
  }

  /**
   * Detaches and munmaps the window (views then throw); idempotent. When
   * munmap fails the window stays mapped and owned, so a later unmap (or
   * the device's close) tries again instead of leaking it. Only through its
   * RegionMapping, which must know.
   */
  #unmap(backend: Backend): void {
    const buffer = this.#buffer;
    if (!buffer) return;
    kernelCall({ syscall: 'munmap' }, () => backend.munmap(buffer));
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
  readonly #backend: Backend;
  readonly #onUnmap: () => void;
  #mapped = true;

  static {
    newMapping = (backend, index, specs, access, onUnmap) => new RegionMapping(constructKey, backend, index, specs, access, onUnmap);
  }

  private constructor(key: symbol, backend: Backend, index: number, specs: MmioWindowSpec[], access: MmioAccess, onUnmap: () => void) {
    if (key !== constructKey) throw illegalConstructor();
    this.index = index;
    this.#backend = backend;
    // Frozen: unmap() walks this list, so nobody may drop a window from it.
    this.windows = Object.freeze(specs.map((spec) => newWindow(backend, spec, access)).sort((a, b) => a.offset - b.offset));
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

  /** Reads a byte at region offset `offset` (one 8-bit load). */
  read8(offset: number): number {
    return this.window(offset, 1).read8(offset);
  }
  /** Reads 16 bits at region offset `offset` (2-aligned; one load). */
  read16(offset: number): number {
    return this.window(offset, 2).read16(offset);
  }
  /** Reads 32 bits at region offset `offset` (4-aligned; one load). */
  read32(offset: number): number {
    return this.window(offset, 4).read32(offset);
  }
  /** Reads 64 bits at region offset `offset` (8-aligned; one load). */
  read64(offset: number): bigint {
    return this.window(offset, 8).read64(offset);
  }
  /** Writes a byte at region offset `offset` (one 8-bit store). */
  write8(offset: number, value: number): void {
    this.window(offset, 1).write8(offset, value);
  }
  /** Writes 16 bits at region offset `offset` (2-aligned; one store). */
  write16(offset: number, value: number): void {
    this.window(offset, 2).write16(offset, value);
  }
  /** Writes 32 bits at region offset `offset` (4-aligned; one store). */
  write32(offset: number, value: number): void {
    this.window(offset, 4).write32(offset, value);
  }
  /** Writes 64 bits at region offset `offset` (8-aligned; one store). */
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
    runAll(this.windows.map((w) => () => unmapWindow(w, this.#backend)));
    this.#mapped = false;
    this.#onUnmap();
  }

  /** Same as unmap(), for `using`. */
  [Symbol.dispose](): void {
    this.unmap();
  }
}

/**
 * @internal For Region.map(): wraps the mmapped areas; `onUnmap` runs once they
 * are all unmapped. Not exported from the package.
 */
export function newRegionMapping(backend: Backend, index: number, specs: MmioWindowSpec[], access: MmioAccess, onUnmap: () => void): RegionMapping {
  return newMapping(backend, index, specs, access, onUnmap);
}
