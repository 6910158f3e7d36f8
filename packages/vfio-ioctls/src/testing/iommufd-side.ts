import { Errno } from './errno';
import { FakeCdevs, releaseCdev, type CdevContext, type CdevState } from './fake-cdev';
import type { FakeDevice } from './fake-device';
import { FakeIommufd, type FakeBoundDevice, type IommufdHost } from './fake-iommufd';
import type { FakeAddressSpace } from './fake-memory';
import type { FakeMemfd } from './fake-memfd';
import type { FdTable, DeviceFile, OpenFile } from './fd-table';
import type { DeviceIoctlContext } from './device-ioctls';
import type { IoArea } from './io-pagetable';
import type { ResolvedOptions } from './options';
import type { FakeGroup } from './fake-group';

const PROT_WRITE = 2;
// Drivers that leave a group's DMA unclaimed (driver_managed_dma), so iommufd may own it.
const DMA_FREE_DRIVERS = new Set(['vfio-pci', 'pci-stub', 'pcieport']);

/** What the iommufd side needs from the rest of the machine. */
export interface IommufdMachine {
  readonly options: ResolvedOptions;
  readonly memory: FakeAddressSpace;
  readonly fds: FdTable;
  readonly groups: Map<number, FakeGroup>;
  readonly deviceContext: DeviceIoctlContext;
  /** Bytes the legacy containers have pinned, for the process-wide RLIMIT_MEMLOCK. */
  containerPinnedBytes(): bigint;
  /** The physical address of a byte of pinned process memory. */
  physicalOf(vaddr: bigint): bigint;
  /** Whether the process has CAP_SYS_RAWIO (no-IOMMU cdevs and physical addresses need it). */
  capSysRawio(): boolean;
}

/**
 * /dev/iommu and the device cdevs, beside the group/container model: the
 * iommufd contexts alive (open, or held by a bound device), the cdev names,
 * what a cdev bind may claim, and how a bound device's DMA resolves through
 * its IOAS.
 */
export class IommufdSide {
  readonly cdevs: FakeCdevs;
  private readonly contexts = new Set<FakeIommufd>();
  private readonly host: IommufdHost;

  constructor(private readonly machine: IommufdMachine) {
    const o = machine.options;
    this.cdevs = new FakeCdevs(o.noiommu);
    this.host = {
      pageSize: BigInt(o.pageSize),
      iovaRanges: o.iovaRanges,
      iommuPageSizes: o.iommuPageSizes,
      hwInfo: o.iommuHwInfo,
      dirtyTracking: o.iommuDirtyTracking,
      memory: machine.memory,
      pin: (areas) => this.pin(areas),
      memfdOf: (fd) => {
        const file = this.machine.fds.get(fd);
        if (!file) throw new Errno('EBADF');
        return file.kind === 'memfd' ? file.memfd : null;
      },
      physicalOf: (vaddr) => machine.physicalOf(vaddr),
      capSysRawio: () => machine.capSysRawio(),
    };
  }

  /** /dev/iommu next to the VFIO nodes: '/dev/iommu' for the default devRoot '/dev/vfio'. */
  get iommuPath(): string {
    return `${this.machine.options.devRoot.replace(/\/[^/]*$/, '')}/iommu`;
  }

  /** open(2) of /dev/iommu or a cdev; undefined for another path. */
  open(path: string, deviceFile: (device: FakeDevice, cdev: CdevState) => DeviceFile): number | undefined {
    if (path === this.iommuPath) {
      const iommufd = new FakeIommufd(this.host);
      this.contexts.add(iommufd);
      return this.machine.fds.install({ kind: 'iommufd', path, iommufd });
    }
    const prefix = `${this.machine.options.devRoot}/devices/`;
    if (!path.startsWith(prefix)) return undefined;
    if (!this.machine.options.deviceCdevs) throw new Errno('ENOENT');
    const device = this.cdevs.deviceNamed(path.slice(prefix.length));
    if (!device) throw new Errno('ENOENT');
    // vfio_device_fops_cdev_open: a no-IOMMU device is for CAP_SYS_RAWIO only.
    if (this.machine.options.noiommu && !this.machine.capSysRawio()) throw new Errno('EPERM');
    return this.machine.fds.install({ kind: 'device', path, file: deviceFile(device, { bound: null }) });
  }

  /** The iommufd fd was closed: the context goes when no bound device holds it. */
  closed(iommufd: FakeIommufd): void {
    iommufd.fdOpen = false;
    this.forgetIfDead(iommufd);
  }

  /** The last reference to a cdev file went. */
  cdevReleased(file: DeviceFile, cdev: CdevState): void {
    const iommufd = releaseCdev(file, cdev);
    if (iommufd) this.forgetIfDead(iommufd);
  }

  /** Every live iommufd context. */
  live(): FakeIommufd[] {
    return [...this.contexts];
  }

  /** The binding of `device`, through any cdev file. */
  boundDevice(device: FakeDevice): FakeBoundDevice | undefined {
    for (const ctx of this.contexts) {
      const bound = ctx.devices().find((d) => d.device === device);
      if (bound) return bound;
    }
    return undefined;
  }

  /** Whether an IOAS with a domain pins the process page `vpn` (its frame then stays put). */
  pinsUserPage(vpn: bigint): boolean {
    const page = BigInt(this.machine.options.pageSize);
    return this.live().some((c) => c.pinnedIoas().some((ioas) => ioas.iopt.list().some((area) => {
      if (area.pages.source.kind !== 'user') return false;
      const first = area.pages.source.base + area.startByte;
      return first / page <= vpn && vpn <= (first + (area.last - area.iova)) / page;
    })));
  }

  /** Bytes pinned for IOAS domains, all contexts together (a page shared by COPY counts once). */
  pinnedBytes(extra: readonly IoArea[] = []): bigint {
    const areas = [...this.live().flatMap((c) => c.pinnedIoas().flatMap((i) => i.iopt.list())), ...extra];
    return countPinned(areas, BigInt(this.machine.options.pageSize));
  }

  /** A bound device's DMA through its IOAS: the bytes behind [iova, iova + length), or an Error (IOMMU fault). */
  dmaView(bound: FakeBoundDevice, iova: bigint, length: number, write: boolean, where: string): Uint8Array {
    const hwpt = bound.hwpt;
    if (!hwpt) throw new Error(`IOMMU fault: ${where}: the device is bound to an iommufd but not attached to an IOAS`);
    const area = hwpt.ioas.iopt.lookup(iova, BigInt(length));
    if (!area) throw new Error(`IOMMU fault: ${where}: not mapped in IOAS ${hwpt.ioas.id}`);
    if (write ? !area.write : !area.read) throw new Error(`IOMMU fault: ${where}: mapping does not allow it`);
    // The IOMMU marks what a device writes in the page table it goes through, while tracking is on.
    if (write) hwpt.dirty?.written(iova, BigInt(length));
    const offset = area.pages.source.base + area.startByte + (iova - area.iova);
    const source = area.pages.source;
    if (source.kind === 'file') return source.memfd!.bytes.subarray(Number(offset), Number(offset) + length);
    const memory = this.machine.memory.find(offset, BigInt(length));
    const at = memory ? Number(offset - memory.base) : 0;
    if (!memory || at + length > memory.buffer.byteLength) throw new Error(`${where}: the memory behind the mapping was freed or unmapped`);
    return new Uint8Array(memory.buffer, at, length);
  }

  /** The context of a cdev bind. */
  cdevContext(): CdevContext {
    const o = this.machine.options;
    return {
      ...this.machine.deviceContext,
      memory: this.machine.memory,
      noiommu: o.noiommu,
      msiIsolated: o.interruptRemapping,
      iommufdOf: (fd) => {
        const file: OpenFile | undefined = this.machine.fds.get(fd);
        if (!file) throw new Errno('EBADF');
        if (file.kind !== 'iommufd') throw new Errno('EBADFD');
        return file.iommufd;
      },
      groupOwnedElsewhere: (device, ctx) => {
        const group = this.machine.groups.get(device.group)!;
        if (group.devices.some((d) => d.driver !== null && !DMA_FREE_DRIVERS.has(d.driver))) return true;
        return group.devices.some((d) => {
          const bound = this.boundDevice(d);
          return bound !== undefined && bound.ctx !== ctx;
        });
      },
      boundDevice: (device) => this.boundDevice(device),
    };
  }

  /** Pinning areas for a domain: the memory must be there (and writable for a writable mapping), within RLIMIT_MEMLOCK. */
  private pin(areas: readonly IoArea[]): string | undefined {
    const page = BigInt(this.machine.options.pageSize);
    for (const area of areas) {
      const first = (area.startByte / page) * page;
      const span = ((area.startByte + area.last - area.iova + page) / page) * page - first;
      const source = area.pages.source;
      if (source.kind === 'file') {
        // memfd_pin_folios: shmem files only, and the range must be inside the file.
        if (!source.memfd || source.base + first + span > BigInt(source.memfd.bytes.length)) return 'EINVAL';
        continue;
      }
      // pin_user_pages: ordinary memory only (a device mapping is VM_IO | VM_PFNMAP).
      const memory = this.machine.memory.find(source.base + first, span);
      if (!memory || memory.kind === 'mmap' || (area.pages.writable && !(memory.prot & PROT_WRITE))) return 'EFAULT';
    }
    const total = this.machine.containerPinnedBytes() + this.pinnedBytes(areas);
    if (total > this.machine.options.memlockLimit) return 'ENOMEM';
    return undefined;
  }

  private forgetIfDead(iommufd: FakeIommufd): void {
    if (iommufd.alive) return;
    iommufd.destroyAll();
    this.contexts.delete(iommufd);
  }
}

/** Whole pages under `areas`, each page of a pages object counted once. */
function countPinned(areas: readonly IoArea[], page: bigint): bigint {
  const byPages = new Map<object, { start: bigint; last: bigint }[]>();
  for (const a of areas) {
    const first = a.startByte / page;
    const last = (a.startByte + a.last - a.iova) / page;
    const list = byPages.get(a.pages) ?? [];
    list.push({ start: first, last });
    byPages.set(a.pages, list);
  }
  let pages = 0n;
  for (const list of byPages.values()) {
    list.sort((x, y) => (x.start < y.start ? -1 : 1));
    let end = -1n;
    for (const s of list) {
      const from = s.start > end ? s.start : end + 1n;
      if (s.last >= from) pages += s.last - from + 1n;
      if (s.last > end) end = s.last;
    }
  }
  return pages * page;
}
