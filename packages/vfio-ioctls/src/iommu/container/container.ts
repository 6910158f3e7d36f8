import { constants as fsConstants } from 'node:fs';
import { bindings as b, capabilityChain, encodeArg, publicCapability, queryInfo, type CapabilityRef } from '../../abi/structs';
import { kernelCall, VfioContext, type VfioOptions } from '../../core/context';
import type { ArgBuffer } from '../../abi/arg-buffer';
import { fillMapDma, fillUnmapDma, newMapDmaArg, newUnmapDmaArg } from '../../abi/dma-args';
import type { DmaBuffer } from '../../dma/dma-buffer';
import { DmaSpace, type DmaKernel, type DmaMapOptions } from '../../dma/dma-space';
import type { IovaRange } from '../../dma/iova-allocator';
import { DmaMapping } from '../../dma/mapping';
import { VfioError } from '../../core/errors';
import type { Group } from './group';
import { FdHandle, runAll } from '../../core/handle';
import type { IommuContext } from '../context';
import { checkInteger, checkU64, hex, rangeError } from '../../core/validate';
import { checkDirtyRange, mergeRuns, type DirtyRange } from '../../dma/dirty-bitmap';
import { dirtyPagesFlagArg, readDirtyBitmap } from './dirty-pages';

/** What VFIO_IOMMU_GET_INFO reports, capabilities decoded. */
export interface IommuInfo {
  /** VFIO_IOMMU_INFO_* flags. */
  flags: number;
  /** Bitmap of supported page sizes (bit n: 2^n bytes). */
  pageSizes: bigint;
  /** Valid IOVA ranges (IOVA_RANGE capability); one full 64-bit range when the kernel reports none. */
  iovaRanges: IovaRange[];
  /** How many more DMA mappings the container accepts (DMA_AVAIL capability), when reported. */
  dmaAvail?: number;
  /** Dirty page tracking support (MIGRATION capability), when reported. */
  migration?: { flags: number; pageSizes: bigint; maxDirtyBitmapSize: bigint };
  /** Every capability in the chain, including ones not decoded above. */
  capabilities: CapabilityRef[];
}

const FULL_IOVA_SPACE: IovaRange = { start: 0n, end: 0xffff_ffff_ffff_ffffn };

// Read once for map/unmap: vfio-bindings' exports are getters (see irq.ts).
const MAP_DMA = b.VFIO_IOMMU_MAP_DMA;
const UNMAP_DMA = b.VFIO_IOMMU_UNMAP_DMA;
const MAP_READ = b.VFIO_DMA_MAP_FLAG_READ;
const MAP_WRITE = b.VFIO_DMA_MAP_FLAG_WRITE;
const vaddrHint = 'a new vaddr is taken only by a mapping whose vaddr was invalidated (invalidateVaddr()), for its whole IOVA range';

/**
 * A VFIO container (/dev/vfio/vfio): the IOMMU context that groups attach to
 * and DMA is mapped into. Implements {@link IommuContext}.
 *
 * The IOMMU type is set automatically when the first group attaches
 * (TYPE1v2, or TYPE1 where v2 is missing). close() closes the devices of
 * its groups, unmaps DMA, detaches the groups, then closes the container:
 * the order the kernel expects.
 */
export class Container extends FdHandle implements IommuContext {
  readonly kind = 'container';
  /** Where it was opened. */
  readonly context: VfioContext;
  /** The node it was opened from. */
  readonly path: string;
  /** VFIO_GET_API_VERSION's answer (checked to be VFIO_API_VERSION). */
  readonly apiVersion: number;
  #iommuType: number | undefined;
  #dirtyTracking = false;
  readonly #groups = new Set<Group>();
  readonly #dma: DmaSpace;

  private constructor(context: VfioContext, fd: number, apiVersion: number) {
    super(context.backend, fd, `container ${context.containerPath}`);
    this.context = context;
    this.path = context.containerPath;
    this.apiVersion = apiVersion;
    this.#dma = new DmaSpace(context.backend, this.dmaKernel());
  }

  /**
   * Opens the container node and checks the API version.
   * @throws VfioError from open(2) (ENOENT: vfio not loaded; EACCES: permissions), or ERR_VFIO_API_VERSION.
   */
  static open(options?: VfioOptions): Container {
    const context = VfioContext.from(options);
    const { backend } = context;
    const path = context.containerPath;
    const fd = kernelCall({ syscall: 'open', path }, () => backend.open(path, fsConstants.O_RDWR));
    try {
      const version = kernelCall({ syscall: 'ioctl', operation: 'VFIO_GET_API_VERSION', path }, () =>
        backend.ioctl(fd, b.VFIO_GET_API_VERSION),
      );
      if (version !== b.VFIO_API_VERSION) {
        throw new VfioError('ERR_VFIO_API_VERSION', `${path} speaks VFIO API ${version}, expected ${b.VFIO_API_VERSION}`, {
          operation: 'VFIO_GET_API_VERSION',
          path,
        });
      }
      return new Container(context, fd, version);
    } catch (error) {
      try {
        backend.close(fd);
      } catch {
        // The open failure is the one worth reporting.
      }
      throw error;
    }
  }

  protected errorContext(): { path: string } {
    return { path: this.path };
  }

  /**
   * Asks whether the kernel supports an extension (VFIO_TYPE1v2_IOMMU,
   * VFIO_UNMAP_ALL, ...).
   */
  checkExtension(extension: number): boolean {
    checkInteger('extension', extension, 0, 0x7fff_ffff);
    const fd = this.fd;
    return this.ioctl('VFIO_CHECK_EXTENSION', () => this.backend.ioctl(fd, b.VFIO_CHECK_EXTENSION, extension)) > 0;
  }

  /** The IOMMU type set (VFIO_TYPE1v2_IOMMU, ...), or undefined before a group attaches. */
  get iommuType(): number | undefined {
    return this.#iommuType;
  }

  /** The groups attached. */
  groups(): readonly Group[] {
    return [...this.#groups];
  }

  /**
   * Sets the IOMMU type. Group.attach() calls it for the first group, so
   * callers need it only to force a type. Without `type`: TYPE1v2 when the
   * kernel has it, else TYPE1.
   * @returns the type set.
   * @throws VfioError ERR_VFIO_NOT_ATTACHED before a group is attached (the kernel needs one);
   *   ERR_VFIO_IOMMU_SET when another type is already set; EPERM without interrupt remapping.
   */
  setIommu(type?: number): number {
    if (type !== undefined) checkInteger('type', type, 1, 0x7fff_ffff);
    this.assertOpen();
    if (this.#iommuType !== undefined) {
      if (type === undefined || type === this.#iommuType) return this.#iommuType;
      throw new VfioError('ERR_VFIO_IOMMU_SET', `${this.path} already has IOMMU type ${this.#iommuType}`, { path: this.path });
    }
    if (this.#groups.size === 0) {
      throw new VfioError('ERR_VFIO_NOT_ATTACHED', `${this.path}: the IOMMU type can be set only once a group is attached`, {
        operation: 'VFIO_SET_IOMMU',
        path: this.path,
        hint: 'attach a group first (group.attach(container)); attaching sets the IOMMU type itself',
      });
    }
    const chosen = type ?? this.pickIommuType();
    const fd = this.fd;
    this.ioctl('VFIO_SET_IOMMU', () => this.backend.ioctl(fd, b.VFIO_SET_IOMMU, chosen));
    this.#iommuType = chosen;
    return chosen;
  }

  private pickIommuType(): number {
    if (this.checkExtension(b.VFIO_TYPE1v2_IOMMU)) return b.VFIO_TYPE1v2_IOMMU;
    if (this.checkExtension(b.VFIO_TYPE1_IOMMU)) return b.VFIO_TYPE1_IOMMU;
    throw new VfioError('ERR_VFIO_IOMMU_UNAVAILABLE', `${this.path} supports neither the TYPE1v2 nor the TYPE1 IOMMU`, {
      operation: 'VFIO_CHECK_EXTENSION',
      path: this.path,
      hint: 'load vfio_iommu_type1 (modprobe vfio_iommu_type1)',
    });
  }

  /**
   * Queries the IOMMU: flags, page sizes and the capability chain (IOVA
   * ranges, dma_avail, migration).
   * @throws VfioError ERR_VFIO_NOT_ATTACHED before a group is attached.
   */
  iommuInfo(): IommuInfo {
    this.assertIommu('VFIO_IOMMU_GET_INFO');
    const fd = this.fd;
    const { info, bytes } = queryInfo(
      b.vfio_iommu_type1_info,
      {},
      (arg) => this.ioctl('VFIO_IOMMU_GET_INFO', () => this.backend.ioctl(fd, b.VFIO_IOMMU_GET_INFO, arg)),
      'VFIO_IOMMU_GET_INFO',
    );
    const caps = info.flags & b.VFIO_IOMMU_INFO_CAPS && info.cap_offset !== 0
      ? capabilityChain(bytes, 'iommu_type1', info.cap_offset, 'VFIO_IOMMU_GET_INFO')
      : [];
    const result: IommuInfo = { flags: info.flags, pageSizes: info.iova_pgsizes, iovaRanges: [], capabilities: caps.map(publicCapability) };
    for (const cap of caps) {
      if (cap.id === b.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
        const value = cap.value as b.vfio_iommu_type1_info_cap_iova_range;
        result.iovaRanges = (value.iova_ranges ?? []).map(({ start, end }) => ({ start, end }));
      } else if (cap.id === b.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
        result.dmaAvail = (cap.value as b.vfio_iommu_type1_info_dma_avail).avail;
      } else if (cap.id === b.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) {
        const m = cap.value as b.vfio_iommu_type1_info_cap_migration;
        result.migration = { flags: m.flags, pageSizes: m.pgsize_bitmap, maxDirtyBitmapSize: m.max_dirty_bitmap_size };
      }
    }
    if (result.iovaRanges.length === 0) result.iovaRanges = [{ ...FULL_IOVA_SPACE }];
    return result;
  }

  /** The IOVA ranges the IOMMU accepts (queried once, when first needed). */
  iovaRanges(): readonly IovaRange[] {
    this.assertIommu('VFIO_IOMMU_GET_INFO');
    return this.#dma.iovaRanges();
  }

  /** Bitmap of the IOMMU's page sizes. */
  pageSizes(): bigint {
    this.assertIommu('VFIO_IOMMU_GET_INFO');
    return this.#dma.pageSizes();
  }

  /**
   * Maps a DmaBuffer, or the part `options.offset`/`options.size` of it,
   * for device DMA at a caller-chosen or allocated IOVA. Alignment, the
   * part, IOVA range and overlap are checked before the kernel.
   * @throws TypeError for a bad buffer or options; RangeError (code
   *   ERR_VFIO_MISALIGNED, ERR_OUT_OF_RANGE or ERR_VFIO_DMA_OVERLAP) for a
   *   bad IOVA or part; VfioError ERR_VFIO_NO_IOVA_SPACE when no IOVA is free;
   *   VfioError from VFIO_IOMMU_MAP_DMA (ENOMEM: RLIMIT_MEMLOCK).
   */
  map(buffer: DmaBuffer, options?: DmaMapOptions): DmaMapping {
    return this.#dma.map(buffer, options);
  }

  /** The live mappings. */
  mappings(): readonly DmaMapping[] {
    return this.#dma.mappings();
  }

  /**
   * Unmaps every mapping: one VFIO_DMA_UNMAP_FLAG_ALL call where the kernel
   * has VFIO_UNMAP_ALL, else one call per mapping.
   */
  unmapAll(): void {
    this.assertOpen();
    this.#dma.unmapAll();
  }

  /**
   * Unmaps every mapping inside [iova, iova + size) in one
   * VFIO_IOMMU_UNMAP_DMA. A mapping that straddles an edge is refused
   * before the kernel (ERR_VFIO_DMA_PARTIAL), which refuses it too (TYPE1v2).
   * @returns the mappings unmapped.
   */
  unmapRange(iova: number | bigint, size: number | bigint): DmaMapping[] {
    const start = checkU64('iova', iova);
    const length = checkU64('size', size);
    this.assertIommu('VFIO_IOMMU_UNMAP_DMA');
    return this.#dma.unmapRange(start, length);
  }

  /**
   * Live update, step 1: invalidates the process address of every mapping
   * (VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR |
   * VFIO_DMA_UNMAP_FLAG_ALL). The IOMMU keeps mapping the pinned pages, so
   * devices go on DMAing; the kernel refuses to attach groups until every
   * mapping has a new address ({@link Container.updateVaddr}). Needs the
   * VFIO_UPDATE_VADDR extension (type1, Linux >= 5.12, no mdev in the container).
   * @throws VfioError ERR_VFIO_UNSUPPORTED without VFIO_UPDATE_VADDR (iommufd's
   *   compat container has none); the kernel's EINVAL when a vaddr is already invalid.
   */
  invalidateVaddr(): void {
    this.assertUpdateVaddr();
    const fd = this.fd;
    const arg = encodeArg(b.vfio_iommu_type1_dma_unmap, { flags: b.VFIO_DMA_UNMAP_FLAG_VADDR | b.VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: 0n });
    this.ioctl('VFIO_IOMMU_UNMAP_DMA', () => this.backend.ioctl(fd, b.VFIO_IOMMU_UNMAP_DMA, arg));
  }

  /**
   * Live update, step 2: gives a mapping whose vaddr was invalidated its new
   * process address, `buffer` from `offset` on (VFIO_IOMMU_MAP_DMA with
   * VFIO_DMA_MAP_FLAG_VADDR). `buffer` must hold the same pages as the old
   * one: a DmaBuffer.fromMemfd of the same memfd (the kernel cannot check;
   * other memory would leave the device on the old pages). Returns the
   * mapping that replaces `mapping` (same IOVA, size and permissions, now
   * pinning `buffer`); `mapping` ends and releases its buffer, which can
   * then be closed.
   * @throws TypeError/RangeError for a bad mapping, buffer or offset;
   *   VfioError ERR_VFIO_UNSUPPORTED without VFIO_UPDATE_VADDR; the kernel's
   *   EINVAL when the mapping's vaddr is still valid (invalidateVaddr() first).
   */
  updateVaddr(mapping: DmaMapping, buffer: DmaBuffer, offset?: number): DmaMapping {
    this.assertUpdateVaddr();
    const fd = this.fd;
    return this.#dma.rebind(mapping, buffer, offset, (vaddr) => {
      const arg = newMapDmaArg();
      fillMapDma(arg, b.VFIO_DMA_MAP_FLAG_VADDR, vaddr, mapping.iova, mapping.size);
      try {
        this.backend.ioctl(fd, MAP_DMA, arg.bytes);
      } catch (error) {
        const code = (error as { code?: string }).code;
        const hint = code === 'EINVAL' || code === 'ENOENT' ? vaddrHint : undefined;
        throw VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_IOMMU_MAP_DMA', path: this.path, hint });
      }
    });
  }

  private assertUpdateVaddr(): void {
    this.assertIommu('VFIO_CHECK_EXTENSION');
    if (this.checkExtension(b.VFIO_UPDATE_VADDR)) return;
    throw new VfioError('ERR_VFIO_UNSUPPORTED', `${this.path}: the IOMMU does not offer VFIO_UPDATE_VADDR`, {
      operation: 'VFIO_CHECK_EXTENSION', path: this.path,
      hint: 'updating DMA vaddrs needs the type1 IOMMU (Linux >= 5.12) with no mdev in the container; iommufd (and its compat container) has none: map memfd memory by fd with Ioas.mapFile instead',
    });
  }

  /** Whether dirty page tracking is on (startDirtyTracking until stopDirtyTracking). */
  get dirtyTracking(): boolean {
    return this.#dirtyTracking;
  }

  /**
   * Starts logging the pages devices may dirty (VFIO_IOMMU_DIRTY_PAGES
   * START; TYPE1v2 only), for migration. Type1 cannot see device writes:
   * for devices behind the IOMMU every mapped page is reported dirty.
   * @throws VfioError ERR_VFIO_NOT_ATTACHED before a group is attached; the kernel's answer (EACCES on TYPE1).
   */
  startDirtyTracking(): void {
    this.dirtyPagesCall(b.VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
    this.#dirtyTracking = true;
  }

  /** Stops dirty page logging (VFIO_IOMMU_DIRTY_PAGES STOP); harmless when it is off. */
  stopDirtyTracking(): void {
    this.dirtyPagesCall(b.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP);
    this.#dirtyTracking = false;
  }

  /**
   * The dirty pages of [iova, iova + size) since tracking started or the
   * last report (VFIO_IOMMU_DIRTY_PAGES GET_BITMAP, one call per mapping in
   * the range), as runs. The range is in whole IOMMU pages and must not cut
   * a mapping in two (the kernel's rule); checked here first.
   * @throws RangeError naming `iova` or `size`; VfioError ERR_VFIO_DIRTY_TRACKING_OFF when not started.
   */
  dirtyPages(iova: number | bigint, size: number | bigint): DirtyRange[] {
    const start = checkU64('iova', iova);
    const length = checkU64('size', size);
    this.assertIommu('VFIO_IOMMU_DIRTY_PAGES');
    const sizes = this.pageSizes();
    const page = sizes & -sizes;
    const end = checkDirtyRange(start, length, page, 'the IOMMU page');
    const cut = this.mappings().find((m) => (m.iova < start && m.end >= start) || (m.iova <= end && m.end > end));
    if (cut) throw rangeError('iova', `[${hex(start)}, ${hex(end)}] cuts the mapping at ${hex(cut.iova)} (${hex(cut.size)} bytes); cover whole mappings`, 'ERR_VFIO_DMA_PARTIAL');
    if (!this.#dirtyTracking) {
      throw new VfioError('ERR_VFIO_DIRTY_TRACKING_OFF', `${this.path}: dirty page tracking is not started`, {
        operation: 'VFIO_IOMMU_DIRTY_PAGES', path: this.path, hint: 'call startDirtyTracking() first',
      });
    }
    const fd = this.fd;
    const inside = this.mappings().filter((m) => m.iova >= start && m.end <= end).sort((x, y) => (x.iova < y.iova ? -1 : 1));
    // One report per mapping, from its first IOVA: see dirty-pages.ts for the kernel's leak between mappings otherwise.
    return mergeRuns(inside.flatMap((m) => readDirtyBitmap(this.backend, m.iova, m.size, page, (arg) =>
      this.ioctl('VFIO_IOMMU_DIRTY_PAGES', () => this.backend.ioctl(fd, b.VFIO_IOMMU_DIRTY_PAGES, arg)))));
  }

  private dirtyPagesCall(flag: number): void {
    this.assertIommu('VFIO_IOMMU_DIRTY_PAGES');
    const fd = this.fd;
    const arg = dirtyPagesFlagArg(flag);
    this.ioctl('VFIO_IOMMU_DIRTY_PAGES', () => this.backend.ioctl(fd, b.VFIO_IOMMU_DIRTY_PAGES, arg));
  }

  /** The kernel half of the DMA bookkeeping: MAP_DMA and UNMAP_DMA on this container's fd. */
  private dmaKernel(): DmaKernel {
    const path = this.path;
    let mapArg: ArgBuffer | undefined;
    let unmapArg: ArgBuffer | undefined;
    let unmapAllSupported: boolean | undefined;
    return {
      path,
      mapOperation: 'VFIO_IOMMU_MAP_DMA',
      assertReady: () => this.assertIommu('VFIO_IOMMU_MAP_DMA'),
      geometry: () => {
        const info = this.iommuInfo();
        return { ranges: info.iovaRanges, pageSizes: info.pageSizes };
      },
      map: (vaddr, iova, size, read, write) => {
        const fd = this.fd;
        // Reused: ioctls are synchronous, and map is a hot path.
        const arg = (mapArg ??= newMapDmaArg());
        fillMapDma(arg, (read ? MAP_READ : 0) | (write ? MAP_WRITE : 0), vaddr, iova, size);
        try {
          this.backend.ioctl(fd, MAP_DMA, arg.bytes);
        } catch (error) {
          throw VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_IOMMU_MAP_DMA', path });
        }
      },
      unmap: (iova, size) => {
        const fd = this.fd;
        const arg = (unmapArg ??= newUnmapDmaArg());
        fillUnmapDma(arg, 0, iova, size);
        try {
          this.backend.ioctl(fd, UNMAP_DMA, arg.bytes);
        } catch (error) {
          throw VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_IOMMU_UNMAP_DMA', path });
        }
      },
      unmapAll: () => {
        unmapAllSupported ??= this.checkExtension(b.VFIO_UNMAP_ALL);
        if (!unmapAllSupported) return false;
        const fd = this.fd;
        const arg = encodeArg(b.vfio_iommu_type1_dma_unmap, { flags: b.VFIO_DMA_UNMAP_FLAG_ALL, iova: 0n, size: 0n });
        this.ioctl('VFIO_IOMMU_UNMAP_DMA', () => this.backend.ioctl(fd, b.VFIO_IOMMU_UNMAP_DMA, arg));
        return true;
      },
    };
  }

  /** @internal Group.attach() registers the group here after VFIO_GROUP_SET_CONTAINER. */
  addGroup(group: Group): void {
    this.#groups.add(group);
    // The group's reserved regions can shrink the IOVA ranges.
    this.#dma.invalidateGeometry();
  }

  /** @internal Group.openDevice() reports here: a device's reserved regions may have joined the IOVA ranges. */
  devicesChanged(): void {
    this.#dma.invalidateGeometry();
  }

  /**
   * @internal Group.detach() reports here (after unmapping everything when it is the last group). With the last group gone the
   * kernel releases the IOMMU, and with it every DMA mapping and the type.
   */
  removeGroup(group: Group): void {
    this.#groups.delete(group);
    if (this.#groups.size > 0) return;
    this.#dma.reset();
    this.#iommuType = undefined;
  }

  protected override releaseDependents(): void {
    const groups = this.groups();
    runAll([
      ...groups.map((group) => () => group.closeDevices()),
      () => this.unmapAll(),
      ...groups.map((group) => () => group.detachForClose()),
    ]);
  }

  protected override afterClose(): void {
    // Closing the container fd releases whatever the kernel still maps.
    this.#dma.forgetAll();
    this.#groups.clear();
  }

  private assertIommu(operation: string): void {
    this.assertOpen();
    if (this.#iommuType === undefined) {
      throw new VfioError('ERR_VFIO_NOT_ATTACHED', `${this.path} has no IOMMU yet`, {
        operation,
        path: this.path,
        hint: 'attach a group to the container first; that sets the IOMMU type',
      });
    }
  }

  private ioctl<T>(operation: string, call: () => T): T {
    return kernelCall({ syscall: 'ioctl', operation, path: this.path }, call);
  }
}
