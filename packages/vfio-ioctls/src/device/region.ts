import { bindings as b, capabilityChain, publicCapability, queryInfo, type CapabilityRef } from '../abi/structs';
import { MAX_MAPPING_LENGTH } from '../core/backend';
import { kernelCall, type VfioContext } from '../core/context';
import { regionAccessError, VfioError } from '../core/errors';
import { newRegionMapping, type MmioWindowSpec, type RegionMapping } from './region-mapping';
import { runAll } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkBytes, checkInteger, checkOptions, checkU64, hex, optionKeys, rangeError } from '../core/validate';

/** The device side a region needs; Device implements it. */
export interface RegionHost {
  /** The device fd; throws once the device is closed. */
  readonly fd: number;
  readonly context: VfioContext;
  /** The device name, for errors. */
  readonly name: string;
}

/**
 * What must happen before a region of `host` is mapped, set by its device:
 * leaving low power (a mapping made while low power is entered faults with
 * SIGBUS on its first access). Kept off the RegionHost interface so that
 * Device's public surface stays free of collaborator methods.
 */
const beforeMapOf = new WeakMap<RegionHost, () => void>();

/** @internal The device registers what map() must do first. */
export function setBeforeMap(host: RegionHost, hook: () => void): void {
  beforeMapOf.set(host, hook);
}

/** An mmappable part of a region (SPARSE_MMAP capability), relative to the region. */
export interface SparseMmapArea {
  /** Offset of the area within the region. */
  offset: bigint;
  /** Length in bytes. */
  size: bigint;
}

/** A region's capabilities, decoded. */
export interface RegionCapabilities {
  /** The mmappable areas, when the region has a SPARSE_MMAP capability. */
  sparseMmap?: SparseMmapArea[];
  /** The region's type and subtype (TYPE capability), for device-specific regions. */
  type?: { type: number; subtype: number };
  /** The MSI-X table in this BAR may be mmapped (MSIX_MAPPABLE capability). */
  msixMappable: boolean;
  /** Every capability in the chain, including ones not decoded above. */
  all: CapabilityRef[];
}

/** Options of Region.map: the part of the region to map, for a region too large to map whole. */
export interface RegionMapOptions {
  /** Region offset of the part, a multiple of the page size; default 0. */
  offset?: number | bigint;
  /** Bytes to map (> 0); default: to the end of the mmappable area holding `offset`. */
  size?: number | bigint;
}

const mapOptionKeys = optionKeys<RegionMapOptions>({ offset: true, size: true });

type RegionInfoStruct = b.vfio_region_info;

/** Only this module holds it: Region's constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('Region');

// Set by Region's static block, which may reach its private parts.
let construct: (host: RegionHost, info: RegionInfoStruct, caps: RegionCapabilities) => Region;
let unmapMappings: (region: Region) => void;

/**
 * A region of a device (a BAR, the ROM, config space, or a device-specific
 * region), read and written through the device fd with bounds and
 * permission checks, or mmapped with {@link Region.map}.
 */
export class Region {
  /** The region index (VFIO_PCI_BAR0_REGION_INDEX ...). */
  readonly index: number;
  /** Size in bytes. */
  readonly size: bigint;
  /** VFIO_REGION_INFO_FLAG_* bits. */
  readonly flags: number;
  /** The region's offset within the device fd. */
  readonly offset: bigint;
  /** Decoded capabilities. */
  readonly caps: RegionCapabilities;
  readonly #host: RegionHost;
  readonly #mappings = new Set<RegionMapping>();
  /** size as a number for the fast offset checks (capped where a number would round). */
  readonly #sizeNumber: number;
  /** Buffer of the scalar accessors, reused (see scalarScratch). */
  #scratch: Scratch | undefined;
  #scratchBusy = false;

  static {
    construct = (host, info, caps) => new Region(constructKey, host, info, caps);
    unmapMappings = (region) => runAll(region.mappings().map((mapping) => () => mapping.unmap()));
  }

  private constructor(key: symbol, host: RegionHost, info: RegionInfoStruct, caps: RegionCapabilities) {
    if (key !== constructKey) throw illegalConstructor();
    this.#host = host;
    this.index = info.index;
    this.size = info.size;
    this.flags = info.flags;
    this.offset = info.offset;
    this.caps = caps;
    this.#sizeNumber = info.size > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(info.size);
  }

  /** The region supports read(). */
  get readable(): boolean {
    return (this.flags & FLAG_READ) !== 0;
  }

  /** The region supports write(). */
  get writable(): boolean {
    return (this.flags & FLAG_WRITE) !== 0;
  }

  /** The region supports map() (whole, or in the sparse areas). */
  get mappable(): boolean {
    return (this.flags & b.VFIO_REGION_INFO_FLAG_MMAP) !== 0;
  }

  /**
   * Reads `length` bytes at `offset` (pread on the device fd).
   * @throws RangeError past the end; VfioError ERR_VFIO_UNSUPPORTED when not readable.
   */
  read(offset: number | bigint, length: number): Uint8Array {
    // Offset errors come before length errors, as they always did.
    if (!(typeof offset === 'number' && offset >= 0 && Number.isSafeInteger(offset))) checkU64('offset', offset);
    // The result is one Uint8Array, which holds at most MAX_MAPPING_LENGTH bytes.
    checkInteger('length', length, 0, MAX_MAPPING_LENGTH);
    const start = this.#checkedStart(offset, length, 1);
    this.#checkAccess('read', this.readable);
    const bytes = new Uint8Array(length);
    // Nothing to move: no syscall (the kernel would refuse one at the very
    // end of the region with EINVAL, although the span is valid).
    if (length > 0) this.#transfer('pread', bytes, start);
    return bytes;
  }

  /**
   * Writes `bytes` at `offset` (pwrite on the device fd).
   * @throws RangeError past the end; VfioError ERR_VFIO_UNSUPPORTED when not writable.
   */
  write(offset: number | bigint, bytes: Uint8Array): void {
    // Offset errors come before length errors, as they always did.
    if (!(typeof offset === 'number' && offset >= 0 && Number.isSafeInteger(offset))) checkU64('offset', offset);
    checkBytes('bytes', bytes);
    const start = this.#checkedStart(offset, bytes.length, 1);
    this.#checkAccess('write', this.writable);
    if (bytes.length > 0) this.#transfer('pwrite', bytes, start);
  }

  /** Reads a byte. */
  readUint8(offset: number | bigint): number {
    return this.#readScalar(offset, 1).getUint8(0);
  }

  /** Reads a little-endian 16-bit value (PCI is little-endian); offset 2-aligned. */
  readUint16(offset: number | bigint): number {
    return this.#readScalar(offset, 2).getUint16(0, true);
  }

  /** Reads a little-endian 32-bit value; offset 4-aligned. */
  readUint32(offset: number | bigint): number {
    return this.#readScalar(offset, 4).getUint32(0, true);
  }

  /** Reads a little-endian 64-bit value; offset 8-aligned. */
  readBigUint64(offset: number | bigint): bigint {
    return this.#readScalar(offset, 8).getBigUint64(0, true);
  }

  /** Writes a byte. */
  writeUint8(offset: number | bigint, value: number): void {
    checkInteger('value', value, 0, 0xff);
    const scratch = this.#scalarScratch();
    scratch.view.setUint8(0, value);
    this.#writeScalar(offset, 1, scratch);
  }

  /** Writes a little-endian 16-bit value; offset 2-aligned. */
  writeUint16(offset: number | bigint, value: number): void {
    checkInteger('value', value, 0, 0xffff);
    const scratch = this.#scalarScratch();
    scratch.view.setUint16(0, value, true);
    this.#writeScalar(offset, 2, scratch);
  }

  /** Writes a little-endian 32-bit value; offset 4-aligned. */
  writeUint32(offset: number | bigint, value: number): void {
    checkInteger('value', value, 0, 0xffff_ffff);
    const scratch = this.#scalarScratch();
    scratch.view.setUint32(0, value, true);
    this.#writeScalar(offset, 4, scratch);
  }

  /** Writes a little-endian 64-bit value; offset 8-aligned. */
  writeBigUint64(offset: number | bigint, value: bigint | number): void {
    const big = checkU64('value', value);
    const scratch = this.#scalarScratch();
    scratch.view.setBigUint64(0, big, true);
    this.#writeScalar(offset, 8, scratch);
  }

  /**
   * Maps the region: one window per sparse mmap area, or one for the whole
   * region; with `options`, only [offset, offset + size), which must lie in
   * one mmappable area. Parts outside the windows (an MSI-X table the
   * kernel keeps for itself) stay reachable through read()/write() only.
   * A part longer than one ArrayBuffer can be (MAX_MAPPING_LENGTH: 4 GiB on
   * Node 20) is mapped as consecutive windows of at most that size, so a
   * 16 GiB BAR maps whole; map({ offset, size }) maps a part of a BAR too
   * large to map whole, as a 64 GiB one may be.
   * @throws VfioError ERR_VFIO_UNSUPPORTED when the region has no MMAP flag;
   *   RangeError for an offset or size outside the region or its mmappable
   *   areas, an offset not page-aligned (ERR_VFIO_MISALIGNED), or a part
   *   reaching past 2^53 (mapping offsets are numbers); TypeError for a bad
   *   option; VfioError from mmap(2).
   */
  map(options?: RegionMapOptions): RegionMapping {
    const fd = this.#host.fd;
    if (!this.mappable) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `region ${this.index} of ${this.#host.name} cannot be mmapped`, {
        device: this.#host.name,
        hint: 'use read()/write(); I/O port BARs and config space are never mmappable',
      });
    }
    const { backend } = this.#host.context;
    const page = BigInt(backend.pageSize());
    const spans = windowSpans(this.#mapParts(checkOptions('options', options, mapOptionKeys), page), page);
    beforeMapOf.get(this.#host)?.();
    const prot = (this.readable ? PROT_READ : 0) | (this.writable ? PROT_WRITE : 0);
    const windows: MmioWindowSpec[] = [];
    try {
      for (const span of spans) {
        const buffer = kernelCall({ syscall: 'mmap', device: this.#host.name }, () =>
          backend.mmap(fd, Number(span.size), prot, this.offset + span.offset),
        );
        windows.push({ offset: Number(span.offset), buffer });
      }
    } catch (error) {
      for (const window of windows) {
        try {
          backend.munmap(window.buffer);
        } catch {
          // The mmap failure is the one worth reporting.
        }
      }
      throw error;
    }
    const access = { index: this.index, device: this.#host.name, readable: this.readable, writable: this.writable };
    const mapping = newRegionMapping(backend, this.index, windows, access, () => this.#mappings.delete(mapping));
    this.#mappings.add(mapping);
    return mapping;
  }

  /** The live mappings of this region. */
  mappings(): readonly RegionMapping[] {
    return [...this.#mappings];
  }

  /** The parts map() maps: every mmappable area, or the one part `options` names (checked). */
  #mapParts(options: RegionMapOptions, page: bigint): SparseMmapArea[] {
    const areas = (this.caps.sparseMmap ?? [{ offset: 0n, size: this.size }]).filter((a) => a.size > 0n);
    for (const area of areas) {
      if (area.offset + area.size > this.size) {
        throw new VfioError('ERR_VFIO_PROTOCOL', `region ${this.index}: sparse area ${hex(area.offset)}+${hex(area.size)} lies outside the region`, { device: this.#host.name });
      }
    }
    let parts = areas;
    if (options.offset !== undefined || options.size !== undefined) {
      const offset = options.offset === undefined ? 0n : checkU64('options.offset', options.offset);
      if (offset >= this.size) throw rangeError('options.offset', `${hex(offset)} is past the end of region ${this.index} (size ${hex(this.size)})`);
      if (offset % page !== 0n) throw rangeError('options.offset', `must be a multiple of the page size ${hex(page)}, got ${hex(offset)}`, 'ERR_VFIO_MISALIGNED');
      const area = areas.find((a) => offset >= a.offset && offset < a.offset + a.size);
      if (!area) {
        const list = areas.map((a) => `${hex(a.offset)}+${hex(a.size)}`).join(', ') || 'none';
        throw rangeError('options.offset', `${hex(offset)} is not in an mmappable area of region ${this.index} (areas: ${list})`);
      }
      const rest = area.offset + area.size - offset;
      const size = options.size === undefined ? rest : checkU64('options.size', options.size, 1n);
      if (size > rest) {
        const end = this.caps.sparseMmap ? `mmappable area ${hex(area.offset)}+${hex(area.size)}` : `region ${this.index} (size ${hex(this.size)})`;
        throw rangeError('options.size', `${hex(size)} at ${hex(offset)} runs past the end of ${end}`);
      }
      parts = [{ offset, size }];
    }
    const named = parts !== areas ? (options.size !== undefined ? 'options.size' : 'options.offset') : `region ${this.index}:`;
    for (const part of parts) {
      if (part.offset + part.size > MAX_SAFE) {
        throw rangeError(named, `${hex(part.offset)}+${hex(part.size)} reaches past 2^53, where mapping offsets (numbers) cannot go; use read()/write() there`);
      }
    }
    return parts;
  }

  #checkSpan(start: bigint, length: bigint): void {
    if (start + length > this.size) {
      throw rangeError('offset', `${hex(start)}+${length} is past the end of region ${this.index} (size ${hex(this.size)})`);
    }
  }

  #checkAccess(what: 'read' | 'write', allowed: boolean): void {
    if (!allowed) throw regionAccessError(this.index, this.#host.name, what);
  }

  #transfer(syscall: 'pread' | 'pwrite', bytes: Uint8Array, start: bigint): void {
    const fd = this.#host.fd;
    const { backend } = this.#host.context;
    // Linux moves at most MAX_RW_COUNT (just under 2 GiB) per call, so a
    // longer transfer goes in pieces; each must move whole.
    for (let from = 0; from < bytes.length; from += TRANSFER_PIECE) {
      const piece = bytes.length <= TRANSFER_PIECE ? bytes : bytes.subarray(from, from + TRANSFER_PIECE);
      const at = this.offset + start + (from === 0 ? 0n : BigInt(from));
      let done: number;
      try {
        done = syscall === 'pread' ? backend.pread(fd, piece, at) : backend.pwrite(fd, piece, at);
      } catch (error) {
        throw VfioError.annotate(error, { syscall, device: this.#host.name });
      }
      if (done !== piece.length) {
        throw new VfioError('ERR_VFIO_SHORT_IO', `${syscall} of region ${this.index} at ${hex(at - this.offset)} moved ${done} of ${piece.length} bytes`, {
          syscall,
          device: this.#host.name,
        });
      }
    }
  }

  /**
   * The offset of a `length`-byte access as a bigint, checked: a number
   * offset that is plainly valid skips checkU64's conversions and BigInt
   * arithmetic; anything else takes the full checks (same errors, same
   * order). `align` is 1 or the scalar width.
   */
  #checkedStart(offset: number | bigint, length: number, align: number): bigint {
    if (typeof offset === 'number' && offset >= 0 && offset + length <= this.#sizeNumber && (offset & (align - 1)) === 0 && Number.isInteger(offset)) {
      return BigInt(offset);
    }
    const start = checkU64('offset', offset);
    if (align > 1 && start % BigInt(align) !== 0n) throw rangeError('offset', `must be ${align}-byte aligned, got ${hex(start)}`, 'ERR_VFIO_MISALIGNED');
    this.#checkSpan(start, BigInt(length));
    return start;
  }

  /**
   * The region's 8-byte buffer for scalar reads and writes; a fresh one
   * while it is in use (a fake kernel's register hook may access the region
   * again from inside the pread/pwrite).
   */
  #scalarScratch(): Scratch {
    const scratch = this.#scratch;
    if (scratch === undefined || this.#scratchBusy) return (this.#scratch = newScratch());
    return scratch;
  }

  #readScalar(offset: number | bigint, width: number): DataView {
    const start = this.#checkedStart(offset, width, width);
    this.#checkAccess('read', this.readable);
    const scratch = this.#scalarScratch();
    this.#scratchBusy = true;
    try {
      this.#transfer('pread', scratch.bytes[width]!, start);
    } finally {
      this.#scratchBusy = false;
    }
    return scratch.view;
  }

  #writeScalar(offset: number | bigint, width: number, scratch: Scratch): void {
    const start = this.#checkedStart(offset, width, width);
    this.#checkAccess('write', this.writable);
    this.#scratchBusy = true;
    try {
      this.#transfer('pwrite', scratch.bytes[width]!, start);
    } finally {
      this.#scratchBusy = false;
    }
  }

}

/**
 * @internal For Device: queries VFIO_DEVICE_GET_REGION_INFO. Returns undefined
 * for a region the device does not have (EINVAL, as VGA on a non-VGA
 * device, or size 0), so the caller's map stays keyed by the true index.
 */
export function probeRegion(host: RegionHost, index: number): Region | undefined {
  const { backend } = host.context;
  const fd = host.fd;
  let answer;
  try {
    answer = queryInfo(
      b.vfio_region_info,
      { index },
      (arg) => backend.ioctl(fd, b.VFIO_DEVICE_GET_REGION_INFO, arg),
      'VFIO_DEVICE_GET_REGION_INFO',
    );
  } catch (error) {
    if ((error as { code?: string }).code === 'EINVAL') return undefined;
    throw VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_REGION_INFO', device: host.name });
  }
  const { info, bytes } = answer;
  if (info.size === 0n) return undefined;
  return construct(host, info, decodeRegionCaps(info, bytes));
}

/** @internal For Device.close(): unmaps what is still mapped. */
export function unmapRegion(region: Region): void {
  unmapMappings(region);
}

/** 8 bytes with a view, and a Uint8Array per scalar width over them (no subarray per call). */
interface Scratch {
  view: DataView;
  bytes: Uint8Array[];
}

function newScratch(): Scratch {
  const buffer = new ArrayBuffer(8);
  const bytes: Uint8Array[] = [];
  for (const width of [1, 2, 4, 8]) bytes[width] = new Uint8Array(buffer, 0, width);
  return { view: new DataView(buffer), bytes };
}

// Read once: vfio-bindings' exports are getters (see irq.ts), and the
// accessors ask readable/writable on every call.
const FLAG_READ = b.VFIO_REGION_INFO_FLAG_READ;
const FLAG_WRITE = b.VFIO_REGION_INFO_FLAG_WRITE;

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** The most one pread/pwrite of a region moves: 1 GiB, below Linux's MAX_RW_COUNT. */
const TRANSFER_PIECE = 2 ** 30;

/**
 * The windows for `parts`: each part as consecutive windows of at most the
 * longest ArrayBuffer (rounded down to whole pages, so every window but a
 * part's last starts and ends on a page boundary and no aligned access
 * straddles two).
 */
function windowSpans(parts: readonly SparseMmapArea[], page: bigint): SparseMmapArea[] {
  const longest = (BigInt(MAX_MAPPING_LENGTH) / page) * page;
  const spans: SparseMmapArea[] = [];
  for (const { offset, size } of parts) {
    for (let at = 0n; at < size; at += longest) {
      spans.push({ offset: offset + at, size: size - at < longest ? size - at : longest });
    }
  }
  return spans;
}

function decodeRegionCaps(info: RegionInfoStruct, bytes: Uint8Array): RegionCapabilities {
  const caps: RegionCapabilities = { msixMappable: false, all: [] };
  if (!(info.flags & b.VFIO_REGION_INFO_FLAG_CAPS) || info.cap_offset === 0) return caps;
  const chain = capabilityChain(bytes, 'region', info.cap_offset, `region ${info.index} info`);
  caps.all = chain.map(publicCapability);
  for (const cap of chain) {
    if (cap.id === b.VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
      const value = cap.value as b.vfio_region_info_cap_sparse_mmap;
      caps.sparseMmap = (value.areas ?? []).map(({ offset, size }) => ({ offset, size }));
    } else if (cap.id === b.VFIO_REGION_INFO_CAP_TYPE) {
      const { type, subtype } = cap.value as b.vfio_region_info_cap_type;
      caps.type = { type, subtype };
    } else if (cap.id === b.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
      caps.msixMappable = true;
    }
  }
  return caps;
}
