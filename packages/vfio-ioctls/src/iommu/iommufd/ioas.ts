import type { ArgBuffer } from '../../abi/arg-buffer';
import { fillIoasMap, fillIoasUnmap, newIoasMapArg, newIoasUnmapArg } from '../../abi/ioas-args';
import { bindings as b } from '../../abi/structs';
import { decodeAnswer, encodeSized, withUserMemory } from '../../abi/iommufd-args';
import { closedError, VfioError } from '../../core/errors';
import { runAll } from '../../core/handle';
import { checkBoolean, checkInstance, checkInteger, checkOptions, checkU64, hex, rangeError, typeError } from '../../core/validate';
import { bufferMemfd, bufferState, DmaBuffer } from '../../dma/dma-buffer';
import { DmaSpace, type DmaKernel, type DmaMapOptions } from '../../dma/dma-space';
import type { IovaRange } from '../../dma/iova-allocator';
import type { DmaMapping } from '../../dma/mapping';
import type { PhysicalSegment } from '../../dma/physical-memory';
import type { IommuContext } from '../context';
import { Hwpt, releaseHwpt, type HwptPort } from './hwpt';
import type { Iommufd, IommufdPort } from './iommufd';

/** Something attached to the IOAS that must close before it is destroyed (a Device). */
export interface IoasMember {
  /** What errors about it name (a Device's PCI address). */
  readonly name: string;
  close(): void;
}

/** What the iommufd and the cdev binding may do with an Ioas beyond its public API. */
export interface IoasPort {
  /** The iommufd closed (or the IOAS was destroyed): forget every mapping and member. */
  released(): void;
  /**
   * A device was attached, with its dev id in the iommufd and its cdev fd
   * (a HWPT moves it by that fd); it closes before the IOAS is destroyed.
   */
  addMember(member: IoasMember, devId: number, fd: number): void;
  /** The dev id of an attached member, for iommufd calls about the device (GET_HW_INFO). */
  devIdOf(member: object): number | undefined;
  removeMember(member: IoasMember): void;
  /** Runs `callback` when the last member leaves (Device.open's shared IOAS closes then). */
  whenUnused(callback: () => void): void;
}

const ports = new WeakMap<Ioas, IoasPort>();

/** The internal side of an Ioas (not reachable from the package's exports). */
export function ioasPort(ioas: Ioas): IoasPort {
  const port = ports.get(ioas);
  if (!port) throw typeError('ioas', 'an Ioas', ioas);
  return port;
}

const ALL = 0xffff_ffff_ffff_ffffn;
// Read once for map/unmap: vfio-bindings' exports are getters (see abi/irq-info.ts).
const IOAS_MAP = b.IOMMU_IOAS_MAP;
const IOAS_UNMAP = b.IOMMU_IOAS_UNMAP;
const MAX_RANGES = 1024;

/**
 * An iommufd IO address space: the iommufd counterpart of a VFIO container,
 * an {@link IommuContext} with the same checks and errors. Devices whose
 * cdev is attached to it DMA through its mappings, in a page table the
 * kernel makes or one allocated by hand (allocHwpt, for dirty tracking).
 * close() closes those devices, then those HWPTs, unmaps, and destroys the
 * IOAS (IOMMU_DESTROY).
 */
export class Ioas implements IommuContext, Disposable {
  readonly kind = 'iommufd';
  /** The iommufd it belongs to. */
  readonly iommufd: Iommufd;
  /** The IOAS object id. */
  readonly id: number;
  readonly #port: IommufdPort;
  readonly #dma: DmaSpace;
  readonly #members = new Set<WeakRef<IoasMember>>();
  /** Per open member: its dev id, cdev fd, and the HWPT allocated by hand it is on (none: the automatic one). */
  readonly #bindings = new WeakMap<object, { devId: number; fd: number; name: string; hwpt?: Hwpt }>();
  readonly #hwpts = new Set<Hwpt>();
  #closed = false;
  #whenUnused: (() => void) | undefined;
  /** What allowIovas() allowed, when it restricted anything. */
  #allowed: IovaRange[] | undefined;

  /** @internal Made by Iommufd.allocIoas(). */
  constructor(iommufd: Iommufd, id: number, port: IommufdPort) {
    this.iommufd = iommufd;
    this.id = id;
    this.#port = port;
    this.#dma = new DmaSpace(iommufd.context.backend, this.dmaKernel());
    ports.set(this, {
      released: () => this.released(),
      addMember: (member, devId, fd) => {
        this.#members.add(new WeakRef(member));
        this.#bindings.set(member, { devId, fd, name: member.name });
        // A device's reserved regions shrink the usable IOVA ranges.
        this.#dma.invalidateGeometry();
      },
      removeMember: (member) => {
        this.#bindings.delete(member);
        for (const ref of this.#members) if (ref.deref() === member || !ref.deref()) this.#members.delete(ref);
        if (this.#members.size === 0 && !this.#closed) this.#whenUnused?.();
      },
      devIdOf: (member) => this.#bindings.get(member)?.devId,
      whenUnused: (callback) => {
        this.#whenUnused = callback;
      },
    });
  }

  /** Where errors point. */
  get path(): string {
    return `${this.iommufd.path} (IOAS ${this.id})`;
  }

  /** True once closed (or its iommufd closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The IOVA ranges devices attached to this IOAS can use
   * (IOMMU_IOAS_IOVA_RANGES): the IOMMU's aperture minus every attached
   * device's reserved regions, narrowed by allowIovas().
   */
  iovaRanges(): readonly IovaRange[] {
    this.assertOpen();
    return this.#dma.iovaRanges();
  }

  /**
   * The smallest mapping granularity, as a page-size bitmap with one bit
   * (iommufd reports an alignment, not the IOMMU's page sizes).
   */
  pageSizes(): bigint {
    this.assertOpen();
    return this.#dma.pageSizes();
  }

  /**
   * Maps a DmaBuffer, or the part `options.offset`/`options.size` of it
   * (IOMMU_IOAS_MAP), at a caller-chosen or library-chosen IOVA, with the
   * same checks and errors as Container.map.
   */
  map(buffer: DmaBuffer, options?: DmaMapOptions): DmaMapping {
    return this.#dma.map(buffer, options);
  }

  /**
   * Maps a memfd-backed DmaBuffer (`DmaBuffer.alloc(size, { memfd: true })`)
   * by its fd (IOMMU_IOAS_MAP_FILE, Linux >= 6.13): the kernel pins the
   * file's pages, not the process mapping. Same options, checks, errors and
   * unmapping as map(); `offset` is where the mapped part starts in the
   * file (the command's `start`).
   * @throws TypeError naming `buffer` for a buffer without a memfd;
   *   VfioError ENOTTY (with a hint) from a kernel older than 6.13.
   */
  mapFile(buffer: DmaBuffer, options?: DmaMapOptions): DmaMapping {
    checkInstance('buffer', buffer, DmaBuffer);
    const fd = bufferMemfd(bufferState(buffer));
    if (fd === undefined) throw typeError('buffer', 'a DmaBuffer allocated with { memfd: true }', buffer);
    return this.#dma.mapWith(buffer, options, 'IOMMU_IOAS_MAP_FILE', (_vaddr, iova, size, read, write, offset) => {
      const arg = encodeSized(b.iommu_ioas_map_file, { flags: fixedMapFlags(read, write), ioas_id: this.id, fd, start: BigInt(offset), length: size, iova });
      try {
        this.#port.ioctl('IOMMU_IOAS_MAP_FILE', b.IOMMU_IOAS_MAP_FILE, arg);
      } catch (error) {
        throw withMapFileHint(error);
      }
    });
  }

  /**
   * The physical addresses behind a mapping, for a device in no-IOMMU mode
   * attached to this IOAS (a noiommu-vfioN cdev, opened with
   * `iommu: 'noiommu'`): nothing translates its DMA, so it is given these
   * instead of IOVAs. The kernel answers them (IOMMU_IOAS_NOIOMMU_GET_PA,
   * Linux >= 7.3 with CONFIG_IOMMUFD_NOIOMMU) for the pages the mapping
   * pinned, which stay in place until it is unmapped: no mlock, no pagemap.
   * Runs are in mapping order; `offset` is from the mapping's start.
   * @throws TypeError naming `mapping` when it is not a live mapping of
   *   this IOAS; VfioError EPERM (needs CAP_SYS_RAWIO), ENOTSUP (no no-IOMMU
   *   device attached), ENOTTY (older kernel), each with a hint.
   */
  physicalSegments(mapping: DmaMapping): PhysicalSegment[] {
    this.checkMapping(mapping);
    const segments: PhysicalSegment[] = [];
    let offset = 0n;
    while (offset < mapping.size) {
      const { physical, length } = this.physicalRun(mapping.iova + offset, mapping.size - offset);
      const last = segments[segments.length - 1];
      if (last && last.physical + BigInt(last.size) === physical) last.size += Number(length);
      else segments.push({ offset: Number(offset), physical, size: Number(length) });
      offset += length;
    }
    return segments;
  }

  /**
   * The physical address of byte `offset` of a mapping (see
   * physicalSegments). A device access must not run past the contiguous
   * run that holds it.
   * @throws RangeError when `offset` is outside the mapping; the errors of physicalSegments.
   */
  physicalAddress(mapping: DmaMapping, offset = 0): bigint {
    this.checkMapping(mapping);
    checkInteger('offset', offset, 0, Number(mapping.size) - 1);
    return this.physicalRun(mapping.iova + BigInt(offset), 1n).physical;
  }

  /** The live mappings. */
  mappings(): readonly DmaMapping[] {
    return this.#dma.mappings();
  }

  /** Unmaps everything in one IOMMU_IOAS_UNMAP of the whole IOVA space. */
  unmapAll(): void {
    this.assertOpen();
    this.#dma.unmapAll();
  }

  /**
   * Unmaps every mapping inside [iova, iova + size) (IOMMU_IOAS_UNMAP by
   * range). A mapping that straddles an edge is refused before the kernel,
   * which would refuse it too.
   * @returns the mappings unmapped.
   */
  unmapRange(iova: number | bigint, size: number | bigint): DmaMapping[] {
    const start = checkU64('iova', iova);
    const length = checkU64('size', size);
    this.assertOpen();
    return this.#dma.unmapRange(start, length);
  }

  /**
   * Restricts the IOVAs this IOAS hands out and accepts
   * (IOMMU_IOAS_ALLOW_IOVAS): a device attached later must not reserve any
   * of them. An empty list lifts the restriction. The kernel keeps
   * reporting its own ranges (IOMMU_IOAS_IOVA_RANGES does not narrow), so
   * iovaRanges() intersects the two.
   */
  allowIovas(ranges: readonly IovaRange[]): void {
    if (!Array.isArray(ranges)) throw typeError('ranges', 'an array of { start, end }', ranges);
    if (ranges.length > MAX_RANGES) throw rangeError('ranges', `has ${ranges.length} entries, at most ${MAX_RANGES}`);
    const checked = ranges.map((range, i) => {
      const r = checkOptions(`ranges[${i}]`, range);
      const start = checkU64(`ranges[${i}].start`, r.start as bigint);
      const end = checkU64(`ranges[${i}].end`, r.end as bigint);
      if (end < start) throw rangeError(`ranges[${i}]`, `ends (${hex(end)}) before it starts (${hex(start)})`);
      return { start, end };
    });
    this.assertOpen();
    const { backend } = this.iommufd.context;
    withUserMemory(backend, Math.max(1, checked.length) * b.iommu_iova_range.size, (bytes, address) => {
      checked.forEach((r, i) => b.iommu_iova_range.encode({ start: r.start, last: r.end }, bytes, i * b.iommu_iova_range.size));
      const arg = encodeSized(b.iommu_ioas_allow_iovas, { ioas_id: this.id, num_iovas: checked.length, __reserved: 0, allowed_iovas: address });
      this.#port.ioctl('IOMMU_IOAS_ALLOW_IOVAS', b.IOMMU_IOAS_ALLOW_IOVAS, arg);
    });
    this.#allowed = checked.length === 0 ? undefined : checked;
    this.#dma.invalidateGeometry();
  }

  /**
   * Maps, in this IOAS, the pages a mapping of another IOAS of the same
   * iommufd maps (IOMMU_IOAS_COPY): no second pin of the memory in the
   * kernel. The copy pins the buffer like any mapping.
   */
  copyFrom(source: DmaMapping, options?: { iova?: number | bigint }): DmaMapping {
    this.assertOpen();
    const from = this.iommufd.ioases().find((ioas) => ioas !== this && ioas.mappings().includes(source));
    if (!from) throw typeError('source', `a live DmaMapping of another IOAS of ${this.iommufd.path}`, source);
    const opts = checkOptions('options', options, ['iova']);
    const mapOptions: DmaMapOptions = { read: source.read, write: source.write, offset: source.offset, size: Number(source.size) };
    if (opts.iova !== undefined) mapOptions.iova = opts.iova as bigint;
    const flags = fixedMapFlags(source.read, source.write);
    return this.#dma.mapWith(source.buffer, mapOptions, 'IOMMU_IOAS_COPY', (_vaddr, iova, size) => {
      const arg = encodeSized(b.iommu_ioas_copy, { flags, dst_ioas_id: this.id, src_ioas_id: from.id, length: size, dst_iova: iova, src_iova: source.iova });
      this.#port.ioctl('IOMMU_IOAS_COPY', b.IOMMU_IOAS_COPY, arg);
    });
  }

  /**
   * Allocates a hardware page table over this IOAS by hand
   * (IOMMU_HWPT_ALLOC), for `device`, a device attached to it: the kernel
   * makes the domain for that device's IOMMU and fills it with the IOAS's
   * mappings. `hwpt.attach(device)` then moves the device onto it. With
   * `dirtyTracking` it is the domain the IOMMU tracks dirty pages in.
   * @throws TypeError naming `device` when it is not an open Device
   *   attached to this IOAS; VfioError ENOTSUP (with a hint) when the IOMMU
   *   cannot track dirty pages (hwInfo(device).dirtyTracking is false).
   */
  allocHwpt(device: object, options?: { dirtyTracking?: boolean }): Hwpt {
    const opts = checkOptions('options', options, ['dirtyTracking']);
    const dirtyTracking = opts.dirtyTracking === undefined ? false : checkBoolean('options.dirtyTracking', opts.dirtyTracking);
    this.assertOpen();
    const binding = this.#bindings.get(device);
    if (!binding) throw typeError('device', `an open Device attached to ${this.path}`, device);
    const arg = encodeSized(b.iommu_hwpt_alloc, {
      flags: dirtyTracking ? b.IOMMU_HWPT_ALLOC_DIRTY_TRACKING : 0, dev_id: binding.devId, pt_id: this.id, out_hwpt_id: 0, __reserved: 0,
      data_type: b.IOMMU_HWPT_DATA_NONE, data_len: 0, data_uptr: 0n, fault_id: 0, __reserved2: 0,
    });
    this.#port.ioctl('IOMMU_HWPT_ALLOC', b.IOMMU_HWPT_ALLOC, arg);
    const id = decodeAnswer(b.iommu_hwpt_alloc, arg, 'IOMMU_HWPT_ALLOC').out_hwpt_id;
    const hwpt = new Hwpt(this, id, dirtyTracking, this.hwptPort());
    this.#hwpts.add(hwpt);
    // Its domain joins the IOAS's: the IOVA alignment and ranges may narrow.
    this.#dma.invalidateGeometry();
    return hwpt;
  }

  /**
   * Closes the attached devices, then the HWPTs allocated by hand, unmaps
   * everything and destroys the IOAS. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    const members = this.liveMembers();
    try {
      runAll([
        ...members.map((member) => () => member.close()),
        // After the devices (none is left on them), before the IOAS they hold.
        ...[...this.#hwpts].map((hwpt) => () => hwpt.close()),
        () => this.#dma.unmapAll(),
        () => this.#port.destroy(this.id),
      ]);
    } finally {
      this.released();
      this.#port.closed(this);
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  private released(): void {
    this.#closed = true;
    this.#dma.reset();
    this.#members.clear();
    for (const hwpt of this.#hwpts) releaseHwpt(hwpt);
    this.#hwpts.clear();
  }

  private liveMembers(): IoasMember[] {
    return [...this.#members].map((ref) => ref.deref()).filter((m): m is IoasMember => m !== undefined);
  }

  private hwptPort(): HwptPort {
    return {
      ioctl: (operation, request, bytes) => this.#port.ioctl(operation, request, bytes),
      destroy: (id) => this.#port.destroy(id),
      member: (device) => {
        const binding = this.#bindings.get(device);
        return binding && { fd: binding.fd, name: binding.name };
      },
      place: (device, hwpt) => {
        const binding = this.#bindings.get(device);
        if (binding) binding.hwpt = hwpt;
      },
      devicesOn: (hwpt) => this.liveMembers().filter((member) => this.#bindings.get(member)?.hwpt === hwpt),
      closed: (hwpt) => {
        this.#hwpts.delete(hwpt);
        this.#dma.invalidateGeometry();
      },
    };
  }

  private checkMapping(mapping: DmaMapping): void {
    this.assertOpen();
    if (!this.#dma.mappings().includes(mapping)) throw typeError('mapping', `a live DmaMapping of ${this.path}`, mapping);
  }

  /** IOMMU_IOAS_NOIOMMU_GET_PA: the physical address of `iova` and the contiguous bytes from it, at most `length`. */
  private physicalRun(iova: bigint, length: bigint): { physical: bigint; length: bigint } {
    const arg = encodeSized(b.iommu_ioas_noiommu_get_pa, { flags: 0, ioas_id: this.id, __reserved: 0, iova, length, out_phys: 0n });
    this.#port.ioctl('IOMMU_IOAS_NOIOMMU_GET_PA', b.IOMMU_IOAS_NOIOMMU_GET_PA, arg);
    const answer = decodeAnswer(b.iommu_ioas_noiommu_get_pa, arg, 'IOMMU_IOAS_NOIOMMU_GET_PA');
    if (answer.length === 0n || answer.length > length) {
      throw new VfioError('ERR_VFIO_PROTOCOL', `${this.path}: IOMMU_IOAS_NOIOMMU_GET_PA answered ${answer.length} bytes for a query of ${length}`, { operation: 'IOMMU_IOAS_NOIOMMU_GET_PA', path: this.path });
    }
    return { physical: answer.out_phys, length: answer.length };
  }

  private assertOpen(): void {
    if (this.#closed) throw closedError(`IOAS ${this.id}`);
  }

  private dmaKernel(): DmaKernel {
    const ioctl = (operation: string, request: number, bytes: Uint8Array) => this.#port.ioctl(operation, request, bytes);
    let mapArg: ArgBuffer | undefined;
    let unmapArg: ArgBuffer | undefined;
    return {
      path: this.path,
      mapOperation: 'IOMMU_IOAS_MAP',
      assertReady: () => this.assertOpen(),
      geometry: () => {
        const { ranges, pageSizes } = this.queryRanges();
        return { ranges: this.#allowed ? intersect(ranges, this.#allowed) : ranges, pageSizes };
      },
      map: (vaddr, iova, size, read, write) => {
        // Reused: ioctls are synchronous, and map is a hot path.
        const arg = (mapArg ??= newIoasMapArg());
        fillIoasMap(arg, fixedMapFlags(read, write), this.id, vaddr, size, iova);
        ioctl('IOMMU_IOAS_MAP', IOAS_MAP, arg.bytes);
      },
      unmap: (iova, size) => {
        const arg = (unmapArg ??= newIoasUnmapArg());
        fillIoasUnmap(arg, this.id, iova, size);
        ioctl('IOMMU_IOAS_UNMAP', IOAS_UNMAP, arg.bytes);
      },
      unmapAll: () => {
        const arg = (unmapArg ??= newIoasUnmapArg());
        fillIoasUnmap(arg, this.id, 0n, ALL);
        try {
          ioctl('IOMMU_IOAS_UNMAP', IOAS_UNMAP, arg.bytes);
        } catch (error) {
          // ENOENT: nothing was mapped in the kernel either.
          if ((error as { code?: string }).code !== 'ENOENT') throw error;
        }
        return true;
      },
    };
  }

  /** IOMMU_IOAS_IOVA_RANGES, asked again with room for every range when the kernel answers EMSGSIZE (and the count it needs). */
  private queryRanges(): { ranges: IovaRange[]; pageSizes: bigint } {
    const { backend } = this.iommufd.context;
    let room = 8;
    for (let attempt = 0; attempt < 4; attempt++) {
      const answer = withUserMemory(backend, room * b.iommu_iova_range.size, (bytes, address) => {
        const arg = encodeSized(b.iommu_ioas_iova_ranges, { ioas_id: this.id, num_iovas: room, __reserved: 0, allowed_iovas: address, out_iova_alignment: 0n });
        try {
          this.#port.ioctl('IOMMU_IOAS_IOVA_RANGES', b.IOMMU_IOAS_IOVA_RANGES, arg);
        } catch (error) {
          if ((error as { code?: string }).code !== 'EMSGSIZE') throw error;
          return { ranges: undefined, alignment: 0n, needed: decodeAnswer(b.iommu_ioas_iova_ranges, arg, 'IOMMU_IOAS_IOVA_RANGES').num_iovas };
        }
        const info = decodeAnswer(b.iommu_ioas_iova_ranges, arg, 'IOMMU_IOAS_IOVA_RANGES');
        const ranges: IovaRange[] = [];
        for (let i = 0; i < info.num_iovas; i++) {
          const r = b.iommu_iova_range.decode(bytes, i * b.iommu_iova_range.size);
          ranges.push({ start: r.start, end: r.last });
        }
        return { ranges, alignment: info.out_iova_alignment, needed: 0 };
      });
      if (answer.ranges) {
        const alignment = answer.alignment === 0n ? BigInt(backend.pageSize()) : answer.alignment;
        return { ranges: answer.ranges, pageSizes: alignment };
      }
      if (answer.needed <= room || answer.needed > MAX_RANGES) break;
      room = answer.needed;
    }
    throw new VfioError('ERR_VFIO_PROTOCOL', `${this.path}: IOMMU_IOAS_IOVA_RANGES kept asking for more room`, { operation: 'IOMMU_IOAS_IOVA_RANGES', path: this.path });
  }
}

/** IOAS_MAP / IOAS_COPY flags: the library always picks the IOVA itself (FIXED_IOVA). */
function fixedMapFlags(read: boolean, write: boolean): number {
  return b.IOMMU_IOAS_MAP_FIXED_IOVA | (read ? b.IOMMU_IOAS_MAP_READABLE : 0) | (write ? b.IOMMU_IOAS_MAP_WRITEABLE : 0);
}

/** A kernel without IOMMU_IOAS_MAP_FILE answers ENOTTY (an unknown iommufd ioctl); EOPNOTSUPP (Node's ENOTSUP) likewise means it cannot. */
function withMapFileHint(error: unknown): unknown {
  if (!(error instanceof VfioError) || (error.code !== 'ENOTTY' && error.code !== 'ENOTSUP')) return error;
  return VfioError.fromErrno(error.errno, {
    syscall: error.syscall, operation: error.operation, path: error.path,
    hint: 'IOMMU_IOAS_MAP_FILE needs Linux >= 6.13; map the buffer by address with map() instead',
  });
}

/** The IOVAs in both lists of inclusive ranges. */
function intersect(reported: readonly IovaRange[], allowed: readonly IovaRange[]): IovaRange[] {
  const out: IovaRange[] = [];
  for (const x of reported) {
    for (const y of allowed) {
      const start = x.start > y.start ? x.start : y.start;
      const end = x.end < y.end ? x.end : y.end;
      if (start <= end) out.push({ start, end });
    }
  }
  return out.sort((p, q) => (p.start < q.start ? -1 : p.start > q.start ? 1 : 0));
}
