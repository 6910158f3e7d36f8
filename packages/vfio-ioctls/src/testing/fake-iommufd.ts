import {
  iommu_destroy, iommu_hw_info, iommu_hwpt_alloc, iommu_hwpt_get_dirty_bitmap, iommu_hwpt_set_dirty_tracking,
  IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HWPT_ALLOC, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_HWPT_SET_DIRTY_TRACKING, iommu_hw_info_vtd, iommu_ioas_alloc, iommu_ioas_allow_iovas, iommu_ioas_copy,
  iommu_ioas_iova_ranges, iommu_ioas_map, iommu_ioas_map_file, iommu_ioas_unmap, iommu_iova_range, iommu_option,
  IOMMU_DESTROY, IOMMU_GET_HW_INFO, IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  IOMMU_IOAS_ALLOC, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_COPY, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_NOIOMMU_GET_PA, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE, IOMMUFD_CMD_BASE, IOMMUFD_TYPE, iommu_ioas_noiommu_get_pa,
} from 'vfio-bindings';
import { pointerArg } from './abi';
import { DirtyLog } from './dirty-log';
import { Errno } from './errno';
import type { FakeDevice } from './fake-device';
import type { FakeMemfd } from './fake-memfd';
import { IoPagetable, ULONG_MAX, type IoDomain, type IoPages, type PagesSlice, type PinCheck } from './io-pagetable';
import { readUcmd, respond, userSizeOf, type Ucmd } from './ucmd';
import { userBytes } from './user-memory';
import type { FakeAddressSpace } from './fake-memory';

/** An IOAS object. */
export interface FakeIoas {
  readonly type: 'ioas';
  readonly id: number;
  readonly iopt: IoPagetable;
  /** The paging HWPTs over this IOAS (automatic and allocated by hand); each holds it. */
  readonly hwpts: Set<FakeHwpt>;
}

/**
 * A paging HWPT: one IOMMU domain over an IOAS. An automatic one (made by
 * an attach to the IOAS) is held by its devices and goes with the last;
 * one allocated by hand (IOMMU_HWPT_ALLOC) stays until IOMMU_DESTROY, and
 * automatic domain selection never picks it.
 */
export interface FakeHwpt {
  readonly type: 'hwpt_paging';
  readonly id: number;
  readonly ioas: FakeIoas;
  readonly domain: IoDomain & { readonly noiommu: boolean };
  readonly devices: Set<FakeBoundDevice>;
  readonly manual: boolean;
  /** Its dirty bits, when allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING (the domain has dirty ops). */
  readonly dirty: DirtyLog | null;
}

/** A device bound to this iommufd (VFIO_DEVICE_BIND_IOMMUFD); the binding holds the context. */
export interface FakeBoundDevice {
  readonly type: 'device';
  readonly id: number;
  readonly device: FakeDevice;
  readonly ctx: FakeIommufd;
  readonly noiommu: boolean;
  hwpt: FakeHwpt | null;
}

type IommufdObject = FakeIoas | FakeHwpt | FakeBoundDevice;

/** What an iommufd needs from the machine around it. */
export interface IommufdHost {
  readonly pageSize: bigint;
  /** The platform's usable IOVA ranges: the domain aperture spans them, a device reserves the gaps (its MSI window). */
  readonly iovaRanges: readonly { start: bigint; end: bigint }[];
  /** IOMMU page-size bitmap. */
  readonly iommuPageSizes: bigint;
  /** What IOMMU_GET_HW_INFO reports. */
  readonly hwInfo: 'intel-vtd' | 'none';
  /** The IOMMU can track dirty pages (IOMMU_CAP_DIRTY_TRACKING). */
  readonly dirtyTracking: boolean;
  readonly memory: FakeAddressSpace;
  /** Pins areas for a domain: checks the memory and RLIMIT_MEMLOCK across the process. */
  readonly pin: PinCheck;
  /** The memfd behind an fd, null for another kind of file (EBADF when no such fd). */
  memfdOf(fd: number): FakeMemfd | null;
  /** The physical address of a byte of pinned process memory (no-IOMMU mode). */
  physicalOf(vaddr: bigint): bigint;
  /** Whether the process has CAP_SYS_RAWIO. */
  capSysRawio(): boolean;
}

// VT-d capability registers as QEMU's intel-iommu reports them with aw-bits=39 (illustrative; nothing reads the bits).
const VTD_CAP_REG = 0x00d2_0080_2266_0462n;
const VTD_ECAP_REG = 0x0000_0000_00f0_101an;
const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/**
 * An open /dev/iommu (struct iommufd_ctx): its objects (IOAS, HWPT,
 * device) by id, the ioctls of drivers/iommu/iommufd with their checks in
 * the kernel's order, and the binding of VFIO device cdevs. Ids are the
 * lowest free number from 1, as xa_alloc gives them.
 *
 * The file lives while its fd is open or a device is bound to it (a bound
 * device holds the context); when both are gone every object is destroyed,
 * unmapping and unpinning all.
 */
export class FakeIommufd {
  fdOpen = true;
  private readonly objects = new Map<number, IommufdObject>();
  private accountMm = false;

  constructor(private readonly host: IommufdHost) {}

  /** Still referenced by its fd or a bound device. */
  get alive(): boolean {
    return this.fdOpen || this.devices().length > 0;
  }

  /** Every live object, for leak accounting. */
  list(): { id: number; type: IommufdObject['type'] }[] {
    return [...this.objects.values()].map((o) => ({ id: o.id, type: o.type })).sort((a, b) => a.id - b.id);
  }

  has(id: number): boolean {
    return this.objects.has(id);
  }

  ioas(id: number): FakeIoas | undefined {
    const o = this.objects.get(id);
    return o?.type === 'ioas' ? o : undefined;
  }

  /** IOASes with a domain attached (their areas are pinned). */
  pinnedIoas(): FakeIoas[] {
    return [...this.objects.values()].filter((o): o is FakeIoas => o.type === 'ioas' && o.iopt.hasDomains);
  }

  devices(): FakeBoundDevice[] {
    return [...this.objects.values()].filter((o): o is FakeBoundDevice => o.type === 'device');
  }

  /** The file was released: every object goes, as iommufd_fops_release destroys them. */
  destroyAll(): void {
    this.objects.clear();
  }

  ioctl(request: number, arg: number | Uint8Array | undefined): number {
    const nr = request & 0xff;
    const type = (request >> 8) & 0xff;
    // Outside iommufd's own numbers the kernel tries its VFIO compat layer (not modelled: ENOTTY).
    if (type !== IOMMUFD_TYPE || nr < IOMMUFD_CMD_BASE) throw new Errno('ENOTTY');
    const bytes = pointerArg(arg);
    userSizeOf(bytes);
    switch (request) {
      case IOMMU_DESTROY: return this.destroy(readUcmd(bytes, iommu_destroy, 'id'));
      case IOMMU_IOAS_ALLOC: return this.ioasAlloc(readUcmd(bytes, iommu_ioas_alloc, 'out_ioas_id'));
      case IOMMU_IOAS_IOVA_RANGES: return this.iovaRanges(readUcmd(bytes, iommu_ioas_iova_ranges, 'out_iova_alignment'));
      case IOMMU_IOAS_ALLOW_IOVAS: return this.allowIovas(readUcmd(bytes, iommu_ioas_allow_iovas, 'allowed_iovas'));
      case IOMMU_IOAS_MAP: return this.map(readUcmd(bytes, iommu_ioas_map, 'iova'));
      case IOMMU_IOAS_MAP_FILE: return this.mapFile(readUcmd(bytes, iommu_ioas_map_file, 'iova'));
      case IOMMU_IOAS_COPY: return this.copy(readUcmd(bytes, iommu_ioas_copy, 'src_iova'));
      case IOMMU_IOAS_UNMAP: return this.unmap(readUcmd(bytes, iommu_ioas_unmap, 'length'));
      case IOMMU_OPTION: return this.option(readUcmd(bytes, iommu_option, 'val64'));
      case IOMMU_GET_HW_INFO: return this.hwInfo(readUcmd(bytes, iommu_hw_info, '__reserved'));
      case IOMMU_IOAS_NOIOMMU_GET_PA: return this.noiommuGetPa(readUcmd(bytes, iommu_ioas_noiommu_get_pa, 'out_phys'));
      case IOMMU_HWPT_ALLOC: return this.hwptAlloc(readUcmd(bytes, iommu_hwpt_alloc, '__reserved'));
      case IOMMU_HWPT_SET_DIRTY_TRACKING: return this.setDirtyTracking(readUcmd(bytes, iommu_hwpt_set_dirty_tracking, '__reserved'));
      case IOMMU_HWPT_GET_DIRTY_BITMAP: return this.getDirtyBitmap(readUcmd(bytes, iommu_hwpt_get_dirty_bitmap, 'data'));
      // HWPT invalidation, vIOMMU, fault queues...: not modelled, answered as a kernel without them.
      default: throw new Errno('ENOTTY');
    }
  }

  // ---- devices (called by the cdev model) ----

  /** iommufd_device_bind. `groupOwned` is false when another context or a kernel driver owns the device's group. */
  bind(device: FakeDevice, noiommu: boolean, groupOwnedElsewhere: boolean, msiIsolated: boolean): FakeBoundDevice {
    if (!noiommu) {
      if (!msiIsolated) throw new Errno('EPERM');
      if (groupOwnedElsewhere) throw new Errno('EBUSY');
    }
    const bound: FakeBoundDevice = { type: 'device', id: this.nextId(), device, ctx: this, noiommu, hwpt: null };
    this.objects.set(bound.id, bound);
    return bound;
  }

  /** iommufd_device_unbind (after detaching). */
  unbind(bound: FakeBoundDevice): void {
    this.detach(bound);
    this.objects.delete(bound.id);
  }

  /**
   * VFIO_DEVICE_ATTACH_IOMMUFD_PT with an IOAS or HWPT id: attaches (or
   * replaces) through an auto domain on the IOAS, creating it when no
   * compatible one exists; returns the HWPT id.
   */
  attach(bound: FakeBoundDevice, ptId: number): number {
    const target = this.objects.get(ptId);
    if (!target) throw new Errno('ENOENT');
    if (target.type === 'hwpt_paging') {
      if (target !== bound.hwpt) this.attachTo(bound, target);
      return target.id;
    }
    if (target.type !== 'ioas') throw new Errno('EINVAL');
    if (bound.hwpt?.ioas === target && !bound.hwpt.manual) return bound.hwpt.id;
    for (const hwpt of target.hwpts) {
      if (hwpt.manual) continue;
      try {
        this.attachTo(bound, hwpt);
        return hwpt.id;
      } catch (error) {
        // EINVAL: incompatible with this domain, try the next; anything else is the answer.
        if (!(error instanceof Errno) || error.code !== 'EINVAL') throw error;
      }
    }
    return this.attachNewDomain(bound, target).id;
  }

  /** VFIO_DEVICE_DETACH_IOMMUFD_PT: the device leaves its HWPT; an auto HWPT left unused is destroyed. */
  detach(bound: FakeBoundDevice): void {
    const hwpt = bound.hwpt;
    if (!hwpt) return;
    hwpt.devices.delete(bound);
    if (!bound.noiommu) hwpt.ioas.iopt.release(bound);
    bound.hwpt = null;
    if (hwpt.devices.size === 0 && !hwpt.manual) this.destroyHwpt(hwpt);
  }

  // ---- internals ----

  private attachTo(bound: FakeBoundDevice, hwpt: FakeHwpt): void {
    // Devices of one IOMMU group share a domain.
    const sibling = this.devices().find((d) => d !== bound && d.device.group === bound.device.group && d.hwpt);
    if (sibling && sibling.hwpt !== hwpt) throw new Errno('EINVAL');
    if (hwpt.domain.noiommu !== bound.noiommu) throw new Errno('EINVAL');
    if (!bound.noiommu) hwpt.ioas.iopt.reserveFor(bound, this.reservedRegions());
    const old = bound.hwpt;
    if (old) {
      old.devices.delete(bound);
      if (!bound.noiommu && old.ioas !== hwpt.ioas) old.ioas.iopt.release(bound);
    }
    hwpt.devices.add(bound);
    bound.hwpt = hwpt;
    if (old && old.devices.size === 0 && !old.manual) this.destroyHwpt(old);
  }

  /** iommufd_hwpt_paging_alloc with immediate attach: the device's regions, then the domain's aperture and pins. */
  private attachNewDomain(bound: FakeBoundDevice, ioas: FakeIoas): FakeHwpt {
    const domain = this.domainFor(bound);
    const hwpt: FakeHwpt = { type: 'hwpt_paging', id: this.nextId(), ioas, domain, devices: new Set(), manual: false, dirty: null };
    this.objects.set(hwpt.id, hwpt); // the id is taken from here on, as xa_alloc reserves it
    try {
      this.attachTo(bound, hwpt);
      try {
        ioas.iopt.addDomain(domain);
      } catch (error) {
        this.detach(bound);
        throw error;
      }
    } catch (error) {
      this.objects.delete(hwpt.id);
      throw error;
    }
    ioas.hwpts.add(hwpt);
    return hwpt;
  }

  /** A new domain for a device: the IOMMU's pages and aperture, or no-IOMMU mode's software one over every IOVA. */
  private domainFor(bound: FakeBoundDevice): FakeHwpt['domain'] {
    const ranges = this.host.iovaRanges;
    return bound.noiommu
      ? { pgsizeMin: this.host.pageSize, apertureStart: 0n, apertureEnd: ULONG_MAX, noiommu: true }
      : { pgsizeMin: lowestBit(this.host.iommuPageSizes), apertureStart: ranges[0].start, apertureEnd: ranges[ranges.length - 1].end, noiommu: false };
  }

  private destroyHwpt(hwpt: FakeHwpt): void {
    if (hwpt.ioas.hwpts.delete(hwpt)) hwpt.ioas.iopt.removeDomain(hwpt.domain);
    this.objects.delete(hwpt.id);
  }

  /** The gaps between the platform's IOVA ranges: what a device reserves (the MSI window on x86). */
  private reservedRegions(): { start: bigint; last: bigint }[] {
    const ranges = this.host.iovaRanges;
    const gaps: { start: bigint; last: bigint }[] = [];
    for (let i = 1; i < ranges.length; i++) gaps.push({ start: ranges[i - 1].end + 1n, last: ranges[i].start - 1n });
    return gaps;
  }

  private nextId(): number {
    let id = 1;
    while (this.objects.has(id)) id++;
    return id;
  }

  private ioasOf(id: number): FakeIoas {
    const ioas = this.ioas(id);
    if (!ioas) throw new Errno('ENOENT');
    return ioas;
  }

  /** iommufd_get_hwpt_paging: ENOENT for a missing id or another kind of object. */
  private hwptOf(id: number): FakeHwpt {
    const hwpt = this.objects.get(id);
    if (hwpt?.type !== 'hwpt_paging') throw new Errno('ENOENT');
    return hwpt;
  }

  private destroy(u: Ucmd<{ size: number; id: number }>): number {
    const object = this.objects.get(u.cmd.id);
    if (!object) throw new Errno('ENOENT');
    // A bound device is held by its driver, a HWPT by its devices (an automatic one has some while it exists), an IOAS by its HWPTs.
    if (object.type === 'device' || (object.type === 'hwpt_paging' && object.devices.size > 0) || (object.type === 'ioas' && object.hwpts.size > 0)) {
      throw new Errno('EBUSY');
    }
    if (object.type === 'hwpt_paging') this.destroyHwpt(object);
    else this.objects.delete(object.id);
    return 0;
  }

  /**
   * IOMMU_HWPT_ALLOC of a paging HWPT over an IOAS (iommufd_hwpt_alloc,
   * iommufd_hwpt_paging_alloc without immediate attach): a new domain for
   * the device's IOMMU, filled with the IOAS's mappings (pinned for it),
   * that no device uses yet. Of the flags only DIRTY_TRACKING is modelled,
   * and only where the IOMMU can (`iommuDirtyTracking`); nesting, PASID,
   * fault queues and driver data are refused as by an IOMMU without them.
   */
  private hwptAlloc(u: Ucmd<import('vfio-bindings').iommu_hwpt_alloc>): number {
    const { cmd } = u;
    if (cmd.__reserved) throw new Errno('EOPNOTSUPP');
    if ((cmd.data_type === IOMMU_HWPT_DATA_NONE) !== (cmd.data_len === 0)) throw new Errno('EINVAL');
    const bound = this.objects.get(cmd.dev_id);
    if (bound?.type !== 'device') throw new Errno('ENOENT');
    const ioas = this.objects.get(cmd.pt_id);
    if (!ioas) throw new Errno('EINVAL');
    // Over a paging HWPT: a nested one, which needs an IOMMU that nests.
    if (ioas.type === 'hwpt_paging') throw new Errno('EOPNOTSUPP');
    if (ioas.type !== 'ioas') throw new Errno('EINVAL');
    if (cmd.flags & ~IOMMU_HWPT_ALLOC_DIRTY_TRACKING || cmd.data_len) throw new Errno('EOPNOTSUPP');
    const dirty = (cmd.flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    // device_iommu_capable(IOMMU_CAP_DIRTY_TRACKING); a no-IOMMU device has no IOMMU to ask.
    if (dirty && (bound.noiommu || !this.host.dirtyTracking)) throw new Errno('EOPNOTSUPP');
    const domain = this.domainFor(bound);
    const hwpt: FakeHwpt = {
      type: 'hwpt_paging', id: this.nextId(), ioas, domain, devices: new Set(), manual: true, dirty: dirty ? new DirtyLog(domain.pgsizeMin) : null,
    };
    this.objects.set(hwpt.id, hwpt);
    try {
      ioas.iopt.addDomain(domain);
    } catch (error) {
      this.objects.delete(hwpt.id);
      throw error;
    }
    ioas.hwpts.add(hwpt);
    try {
      respond(u, iommu_hwpt_alloc, { ...cmd, out_hwpt_id: hwpt.id });
    } catch (error) {
      this.destroyHwpt(hwpt);
      throw error;
    }
    return 0;
  }

  /** IOMMU_HWPT_SET_DIRTY_TRACKING (iopt_set_dirty_tracking): EOPNOTSUPP for a domain without dirty ops. */
  private setDirtyTracking(u: Ucmd<import('vfio-bindings').iommu_hwpt_set_dirty_tracking>): number {
    const { cmd } = u;
    if (cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) throw new Errno('EOPNOTSUPP');
    const hwpt = this.hwptOf(cmd.hwpt_id);
    if (!hwpt.dirty) throw new Errno('EOPNOTSUPP');
    hwpt.dirty.setTracking((cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
    return 0;
  }

  /**
   * IOMMU_HWPT_GET_DIRTY_BITMAP (iopt_read_and_clear_dirty_data): the
   * range checks of iommufd_check_iova_range, then the dirty pages of the
   * areas that follow one another from `iova`, one bit per `page_size`
   * ORed into the caller's bitmap, cleared unless NO_CLEAR. As in Linux
   * 7.3, the walk stops at the first unmapped IOVA and the call still
   * succeeds (iommu_read_and_clear_dirty drops the walk's EINVAL), and a
   * bitmap the kernel cannot write loses the bits without an error.
   */
  private getDirtyBitmap(u: Ucmd<import('vfio-bindings').iommu_hwpt_get_dirty_bitmap>): number {
    const { cmd } = u;
    if (cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cmd.__reserved) throw new Errno('EOPNOTSUPP');
    const hwpt = this.hwptOf(cmd.hwpt_id);
    const iopt = hwpt.ioas.iopt;
    if (cmd.length === 0n) throw new Errno('EINVAL');
    const last = cmd.iova + cmd.length - 1n;
    if (last > ULONG_MAX) throw new Errno('EOVERFLOW');
    const misaligned = (mask: bigint) => (cmd.iova & mask) !== 0n || ((last + 1n) & mask) !== 0n;
    if (misaligned(iopt.alignment - 1n)) throw new Errno('EINVAL');
    if (cmd.page_size === 0n || misaligned(cmd.page_size - 1n)) throw new Errno('EINVAL');
    if (!hwpt.dirty) throw new Errno('EOPNOTSUPP');
    // iova_bitmap: bit n covers page_size bytes from iova + n * page_size (its shift is that of page_size's lowest bit).
    const shift = BigInt(lowestBit(cmd.page_size).toString(2).length - 1);
    const words = ((cmd.length - 1n) >> shift) / 64n + 1n;
    let bitmap: Uint8Array | null = null;
    try {
      bitmap = userBytes(this.host.memory, cmd.data, Number(words * 8n), true);
    } catch {
      // The bits are read (and cleared) all the same.
    }
    const clear = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) === 0;
    for (const span of iopt.contiguousFrom(cmd.iova, last)) {
      for (const page of hwpt.dirty.read(span.start, span.last, clear)) {
        const first = page > cmd.iova ? page : cmd.iova;
        const end = page + hwpt.dirty.page - 1n < last ? page + hwpt.dirty.page - 1n : last;
        for (let bit = (first - cmd.iova) >> shift; bit <= (end - cmd.iova) >> shift; bit++) {
          if (bitmap) bitmap[Number(bit / 8n)] |= 1 << Number(bit % 8n);
        }
      }
    }
    return 0;
  }

  private ioasAlloc(u: Ucmd<{ size: number; flags: number; out_ioas_id: number }>): number {
    if (u.cmd.flags) throw new Errno('EOPNOTSUPP');
    const page = this.host.pageSize;
    const ioas: FakeIoas = { type: 'ioas', id: this.nextId(), iopt: new IoPagetable(this.host.pin, page, page * 512n), hwpts: new Set() };
    // The answer is written before the object is published: a fault leaves no IOAS behind.
    respond(u, iommu_ioas_alloc, { ...u.cmd, out_ioas_id: ioas.id });
    this.objects.set(ioas.id, ioas);
    return 0;
  }

  private iovaRanges(u: Ucmd<import('vfio-bindings').iommu_ioas_iova_ranges>): number {
    if (u.cmd.__reserved) throw new Errno('EOPNOTSUPP');
    const ioas = this.ioasOf(u.cmd.ioas_id);
    const ranges = ioas.iopt.iovaRanges();
    const room = u.cmd.num_iovas;
    const written = Math.min(room, ranges.length);
    if (written > 0) {
      const out = userBytes(this.host.memory, u.cmd.allowed_iovas, written * iommu_iova_range.size, true);
      ranges.slice(0, written).forEach((r, i) => iommu_iova_range.encode(r, out, i * iommu_iova_range.size));
    }
    respond(u, iommu_ioas_iova_ranges, { ...u.cmd, num_iovas: ranges.length, out_iova_alignment: ioas.iopt.alignment });
    if (ranges.length > room) throw new Errno('EMSGSIZE');
    return 0;
  }

  private allowIovas(u: Ucmd<import('vfio-bindings').iommu_ioas_allow_iovas>): number {
    if (u.cmd.__reserved) throw new Errno('EOPNOTSUPP');
    const ioas = this.ioasOf(u.cmd.ioas_id);
    const ranges: { start: bigint; last: bigint }[] = [];
    for (let i = 0; i < u.cmd.num_iovas; i++) {
      const at = u.cmd.allowed_iovas + BigInt(i * iommu_iova_range.size);
      const range = iommu_iova_range.decode(userBytes(this.host.memory, at, iommu_iova_range.size, false));
      if (range.start >= range.last) throw new Errno('EINVAL');
      if (ranges.some((r) => r.start <= range.last && range.start <= r.last)) throw new Errno('EINVAL');
      ranges.push(range);
    }
    ioas.iopt.setAllowed(ranges);
    return 0;
  }

  /** The checks IOAS_MAP, MAP_FILE and COPY share before the IOAS lookup. */
  private mapFlags(flags: number, ...values: bigint[]): { read: boolean; write: boolean; fixed: boolean } {
    if (flags & ~MAP_FLAGS) throw new Errno('EOPNOTSUPP');
    if (values.some((v) => v >= ULONG_MAX)) throw new Errno('EOVERFLOW');
    if (!(flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) throw new Errno('EINVAL');
    return { read: !!(flags & IOMMU_IOAS_MAP_READABLE), write: !!(flags & IOMMU_IOAS_MAP_WRITEABLE), fixed: !!(flags & IOMMU_IOAS_MAP_FIXED_IOVA) };
  }

  private map(u: Ucmd<import('vfio-bindings').iommu_ioas_map>): number {
    const { cmd } = u;
    if (cmd.flags & ~MAP_FLAGS || cmd.__reserved) throw new Errno('EOPNOTSUPP');
    const f = this.mapFlags(cmd.flags, cmd.iova, cmd.length);
    const ioas = this.ioasOf(cmd.ioas_id);
    // iopt_alloc_user_pages
    if (cmd.user_va + cmd.length > ULONG_MAX) throw new Errno('EOVERFLOW');
    const base = cmd.user_va - (cmd.user_va % this.host.pageSize);
    const pages = this.pagesOf({ kind: 'user', base }, cmd.user_va - base, cmd.length, f.write);
    const iova = ioas.iopt.map([{ pages, startByte: cmd.user_va - base, length: cmd.length }], cmd.length, f.fixed ? cmd.iova : undefined, f.read, f.write);
    respond(u, iommu_ioas_map, { ...cmd, iova });
    return 0;
  }

  private mapFile(u: Ucmd<import('vfio-bindings').iommu_ioas_map_file>): number {
    const { cmd } = u;
    const f = this.mapFlags(cmd.flags, cmd.iova, cmd.length);
    const ioas = this.ioasOf(cmd.ioas_id);
    if (cmd.length === 0n) throw new Errno('EINVAL');
    if (cmd.start + cmd.length - 1n > ULONG_MAX) throw new Errno('EOVERFLOW');
    const startByte = cmd.start % this.host.pageSize;
    const memfd = this.host.memfdOf(cmd.fd);
    const pages = this.pagesOf({ kind: 'file', memfd, base: cmd.start - startByte }, startByte, cmd.length, f.write);
    const iova = ioas.iopt.map([{ pages, startByte, length: cmd.length }], cmd.length, f.fixed ? cmd.iova : undefined, f.read, f.write);
    respond(u, iommu_ioas_map_file, { ...cmd, iova });
    return 0;
  }

  private copy(u: Ucmd<import('vfio-bindings').iommu_ioas_copy>): number {
    const { cmd } = u;
    const f = this.mapFlags(cmd.flags, cmd.length, cmd.src_iova, cmd.dst_iova);
    const slices: PagesSlice[] = this.ioasOf(cmd.src_ioas_id).iopt.slices(cmd.src_iova, cmd.length);
    const dst = this.ioasOf(cmd.dst_ioas_id);
    const iova = dst.iopt.map(slices, cmd.length, f.fixed ? cmd.dst_iova : undefined, f.read, f.write);
    respond(u, iommu_ioas_copy, { ...cmd, dst_iova: iova });
    return 0;
  }

  private unmap(u: Ucmd<import('vfio-bindings').iommu_ioas_unmap>): number {
    const { cmd } = u;
    const ioas = this.ioasOf(cmd.ioas_id);
    let unmapped: bigint;
    try {
      if (cmd.iova === 0n && cmd.length === ULONG_MAX) {
        unmapped = ioas.iopt.unmap(0n, ULONG_MAX);
      } else {
        if (cmd.iova >= ULONG_MAX || cmd.length >= ULONG_MAX) throw new Errno('EOVERFLOW');
        if (cmd.length === 0n) throw new Errno('EINVAL');
        if (cmd.iova + cmd.length - 1n > ULONG_MAX) throw new Errno('EOVERFLOW');
        unmapped = ioas.iopt.unmap(cmd.iova, cmd.iova + cmd.length - 1n);
        if (unmapped === 0n) throw new Errno('ENOENT');
      }
    } finally {
      // Unmapped pages leave their domains' page tables, dirty bits and all (also those unmapped before an ENOENT).
      for (const hwpt of ioas.hwpts) hwpt.dirty?.forgetUnmapped((iova) => ioas.iopt.lookup(iova, 1n) !== undefined);
    }
    respond(u, iommu_ioas_unmap, { ...cmd, length: unmapped });
    return 0;
  }

  private option(u: Ucmd<import('vfio-bindings').iommu_option>): number {
    const { cmd } = u;
    if (cmd.__reserved) throw new Errno('EOPNOTSUPP');
    let val64: bigint;
    if (cmd.option_id === IOMMU_OPTION_RLIMIT_MODE) {
      if (cmd.object_id) throw new Errno('EOPNOTSUPP');
      if (cmd.op === IOMMU_OPTION_OP_GET) val64 = this.accountMm ? 1n : 0n;
      else if (cmd.op === IOMMU_OPTION_OP_SET) {
        // The fake process has CAP_SYS_RESOURCE, as root does.
        if (this.objects.size > 0) throw new Errno('EBUSY');
        if (cmd.val64 > 1n) throw new Errno('EINVAL');
        this.accountMm = cmd.val64 === 1n;
        val64 = cmd.val64;
      } else throw new Errno('EOPNOTSUPP');
    } else if (cmd.option_id === IOMMU_OPTION_HUGE_PAGES) {
      const ioas = this.ioasOf(cmd.object_id);
      if (cmd.op === IOMMU_OPTION_OP_GET) val64 = ioas.iopt.largePages ? 1n : 0n;
      else if (cmd.op === IOMMU_OPTION_OP_SET) {
        if (cmd.val64 > 1n) throw new Errno('EINVAL');
        ioas.iopt.setLargePages(cmd.val64 === 1n);
        val64 = cmd.val64;
      } else throw new Errno('EOPNOTSUPP');
    } else throw new Errno('EOPNOTSUPP');
    // Only val64 goes back to the caller.
    const at = iommu_option.offsetOf('val64');
    if (u.bytes.length < at + 8) throw new Errno('EFAULT');
    new DataView(u.bytes.buffer, u.bytes.byteOffset + at, 8).setBigUint64(0, val64, true);
    return 0;
  }

  private hwInfo(u: Ucmd<import('vfio-bindings').iommu_hw_info>): number {
    const { cmd } = u;
    if (cmd.flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) throw new Errno('EOPNOTSUPP');
    if (cmd.__reserved.some((b) => b !== 0)) throw new Errno('EOPNOTSUPP');
    const inType = cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE ? cmd.in_data_type : IOMMU_HW_INFO_TYPE_DEFAULT;
    const bound = this.objects.get(cmd.dev_id);
    if (bound?.type !== 'device') throw new Errno('ENOENT');
    if (bound.noiommu) throw new Errno('EOPNOTSUPP');
    let data: Uint8Array = new Uint8Array(0);
    let outType = IOMMU_HW_INFO_TYPE_NONE;
    if (this.host.hwInfo === 'intel-vtd') {
      if (inType !== IOMMU_HW_INFO_TYPE_DEFAULT && inType !== IOMMU_HW_INFO_TYPE_INTEL_VTD) throw new Errno('EOPNOTSUPP');
      data = iommu_hw_info_vtd.encode({ flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, __reserved: 0, cap_reg: VTD_CAP_REG, ecap_reg: VTD_ECAP_REG });
      outType = IOMMU_HW_INFO_TYPE_INTEL_VTD;
    }
    if (cmd.data_len > 0) {
      // The kernel copies what fits and zeroes the rest of the caller's buffer.
      const out = userBytes(this.host.memory, cmd.data_uptr, cmd.data_len, true);
      out.fill(0);
      out.set(data.subarray(0, Math.min(cmd.data_len, data.length)));
    }
    const { in_data_type: _input, ...answer } = cmd; // the union member written back is the output type
    respond(u, iommu_hw_info, {
      ...answer, data_len: data.length, out_data_type: outType, out_max_pasid_log2: 0,
      out_capabilities: BigInt(IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED) | (this.host.dirtyTracking ? BigInt(IOMMU_HW_CAP_DIRTY_TRACKING) : 0n),
    });
    return 0;
  }

  /**
   * IOMMU_IOAS_NOIOMMU_GET_PA (iommufd_ioas_noiommu_get_pa, iopt_get_phys):
   * the physical address behind `iova` and how many bytes from it are
   * physically contiguous, within its area and capped by `length`. Only an
   * area stored in a no-IOMMU domain has them. Physical addresses of memfd
   * pages are not modelled (EOPNOTSUPP, as without a no-IOMMU domain).
   */
  private noiommuGetPa(u: Ucmd<import('vfio-bindings').iommu_ioas_noiommu_get_pa>): number {
    const { cmd } = u;
    if (!this.host.capSysRawio()) throw new Errno('EPERM');
    if (cmd.flags || cmd.__reserved) throw new Errno('EOPNOTSUPP');
    if (cmd.length === 0n) throw new Errno('EINVAL');
    if (cmd.iova >= ULONG_MAX) throw new Errno('EOVERFLOW');
    const ioas = this.ioasOf(cmd.ioas_id);
    const area = ioas.iopt.lookup(cmd.iova, 1n);
    if (!area) throw new Errno('ENOENT');
    const source = area.pages.source;
    if (![...ioas.hwpts].some((h) => h.domain.noiommu) || source.kind !== 'user') throw new Errno('EOPNOTSUPP');
    const page = this.host.pageSize;
    const physicalAt = (iova: bigint) => this.host.physicalOf(source.base + area.startByte + (iova - area.iova));
    // The kernel's walk: the rest of the first page, then whole pages while the next one follows physically.
    const out = physicalAt(cmd.iova);
    let iova = cmd.iova;
    let physical = out;
    let length = page - (iova % page) < area.last - iova + 1n ? page - (iova % page) : area.last - iova + 1n;
    while (iova < area.last && length < cmd.length) {
      const next = iova + page;
      if (next > area.last || physicalAt(next) !== physical + page) break;
      iova = next;
      physical += page;
      length += page;
    }
    respond(u, iommu_ioas_noiommu_get_pa, { ...cmd, length: length > cmd.length ? cmd.length : length, out_phys: out });
    return 0;
  }

  private pagesOf(source: IoPages['source'], startByte: bigint, length: bigint, writable: boolean): IoPages {
    const page = this.host.pageSize;
    if (length > ULONG_MAX - page || length === 0n) throw new Errno('EINVAL');
    return { source, npages: (length + startByte + page - 1n) / page, writable };
  }
}

function lowestBit(bits: bigint): bigint {
  return bits & -bits;
}
