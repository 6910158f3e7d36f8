import { Errno } from './errno';
import { FakeContainer } from './fake-container';
import type { DeviceIoctlContext } from './device-ioctls';
import { FakeDevice, type DeviceHost } from './fake-device';
import type { FakeEventfd } from './fake-eventfd';
import { FakeGroup, type GroupIoctlContext } from './fake-group';
import { FakeAddressSpace } from './fake-memory';
import type { FakeRegion } from './fake-region';
import { FdTable, type DeviceFile, type OpenFile } from './fd-table';
import { IommufdSide } from './iommufd-side';
import { userBytes } from './user-memory';
import type { ResolvedOptions } from './options';
import type { FakeDeviceSpec, FakeDmaMapping } from './types';

/** A live mmap of a device region. */
export interface Mapping {
  file: DeviceFile;
  region: FakeRegion;
  /** Where the mapping starts inside the region. */
  offset: number;
}

/**
 * The addon's finalizer munmaps a mapping the program dropped; this does the
 * same for the fake. One registry for every machine, at module level as the
 * library's own are: on Node 20 (V8 11.3) a FinalizationRegistry that is
 * itself collected while a cleanup is pending for it leaves the pending-task
 * flag set, and no FinalizationRegistry callback of the process runs again
 * (packages/vfio-ioctls/README.md, "The safety net", has a reproduction). A
 * registry per fake kernel, dropped with it, did exactly that under jest.
 */
const droppedRegionMappings = new FinalizationRegistry<{ machine: FakeMachine; base: bigint; file: DeviceFile; region: FakeRegion }>(
  ({ machine, base, file, region }) => machine.mappingCollected(base, file, region),
);

/**
 * The kernel's object graph behind the syscalls: the fd table, the VFIO
 * devices, groups and containers, live mappings and DMA memory, and the
 * reference rules tying them together (what closing a file releases).
 */
export class FakeMachine {
  readonly fds = new FdTable();
  readonly memory: FakeAddressSpace;
  readonly groups = new Map<number, FakeGroup>();
  readonly devices = new Map<string, FakeDevice>();
  /** Live mmaps by buffer; weak, so a dropped mapping can be collected (then `collected` releases it). */
  readonly mappings = new WeakMap<ArrayBuffer, Mapping>();
  readonly dmaBuffers = new Set<ArrayBuffer>();
  private readonly containers = new Set<FakeContainer>();
  /** Files other kernel objects hold (hold/unhold), and those of them whose fd is closed. */
  private readonly holds = new Map<OpenFile, number>();
  private readonly closedWhileHeld = new Set<OpenFile>();
  private readonly collector = droppedRegionMappings;
  private readonly host: DeviceHost = { dmaView: (device, iova, length, write) => this.dmaView(device, iova, length, write) };
  /** /dev/iommu and the device cdevs (iommufd-side.ts). */
  readonly iommufd: IommufdSide;
  /** Where a no-IOMMU device's DMA lands: the bytes at a physical address (FakeKernel wires its physical memory in). */
  physicalView: (physical: bigint, length: number) => Uint8Array = () => {
    throw new Error('no physical memory model');
  };

  /** The physical address of a byte of pinned memory (FakeKernel wires its physical memory in). */
  physicalOf: (vaddr: bigint) => bigint = () => {
    throw new Error('no physical memory model');
  };
  /** Whether the process has CAP_SYS_RAWIO (FakeKernel wires its physical memory's flag in). */
  capSysRawio: () => boolean = () => true;

  constructor(private readonly options: ResolvedOptions) {
    this.memory = new FakeAddressSpace(options.pageSize);
    this.iommufd = new IommufdSide({
      options, memory: this.memory, fds: this.fds, groups: this.groups, deviceContext: this.deviceContext,
      containerPinnedBytes: () => this.dmaMappings().reduce((sum, m) => sum + m.size, 0n),
      physicalOf: (vaddr) => this.physicalOf(vaddr),
      capSysRawio: () => this.capSysRawio(),
    });
  }

  addDevice(spec: FakeDeviceSpec): FakeDevice {
    if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(spec.address)) {
      throw new RangeError(`address must look like 0000:00:03.0, got ${spec.address}`);
    }
    if (this.devices.has(spec.address)) throw new Error(`device ${spec.address} already exists`);
    if (!Number.isSafeInteger(spec.group) || spec.group < 0) throw new RangeError(`group must be a non-negative integer, got ${spec.group}`);
    const device = new FakeDevice(spec, this.options.pageSize, this.host);
    let group = this.groups.get(spec.group);
    if (!group) this.groups.set(spec.group, (group = new FakeGroup(spec.group)));
    group.devices.push(device);
    this.devices.set(spec.address, device);
    return device;
  }

  /** open(2) of a VFIO node: `${devRoot}/vfio`, `${devRoot}/N` (`noiommu-N`), `${devRoot}/devices/vfioN` or /dev/iommu. */
  openNode(path: string): number {
    const viaIommufd = this.iommufd.open(path, (device, cdev) => {
      device.openFiles++;
      return { device, group: this.groups.get(device.group)!, refs: 1, cdev };
    });
    if (viaIommufd !== undefined) return viaIommufd;
    const root = this.options.devRoot;
    if (path === `${root}/vfio`) {
      const container = new FakeContainer(this.options, this.memory, () => this.pinnedBytes());
      this.containers.add(container);
      return this.fds.install({ kind: 'container', path, container });
    }
    const m = path.startsWith(`${root}/`) ? (this.options.noiommu ? /^noiommu-(\d+)$/ : /^(\d+)$/).exec(path.slice(root.length + 1)) : null;
    const group = m ? this.groups.get(Number(m[1])) : undefined;
    if (!group) throw new Errno('ENOENT');
    group.open();
    return this.fds.install({ kind: 'group', path, group });
  }

  file(fd: number): OpenFile {
    const file = this.fds.get(fd);
    if (!file) throw new Errno('EBADF');
    return file;
  }

  eventfdOf(fd: number): FakeEventfd {
    const file = this.file(fd);
    if (file.kind !== 'eventfd') throw new Errno('EINVAL');
    return file.eventfd;
  }

  /** close(2): the fd goes away, whatever else still holds its file; the file goes with its last reference. */
  close(fd: number): void {
    const file = this.fds.remove(fd);
    if (!file) throw new Errno('EBADF');
    if (this.fds.refersTo(file)) return; // a dup's fd still holds it
    if (this.holds.has(file)) this.closedWhileHeld.add(file);
    else this.release(file);
  }

  /** F_DUPFD_CLOEXEC: a second fd for the file at `fd`, which lives until its last fd closes (close). */
  dup(fd: number): number {
    const file = this.file(fd);
    if (file.kind !== 'memfd') return this.fds.install(file);
    // A memfd counts its fds itself (fake-memfd.ts: fdClosed), each fd its own entry.
    file.memfd.fds++;
    return this.fds.install({ ...file });
  }

  /** get_file by another kernel object (a KVM VFIO device): the file outlives its fd. */
  hold(file: OpenFile): void {
    this.holds.set(file, (this.holds.get(file) ?? 0) + 1);
  }

  /** fput of a hold: the file is released when its fd is already closed. */
  unhold(file: OpenFile): void {
    const left = (this.holds.get(file) ?? 1) - 1;
    if (left > 0) return void this.holds.set(file, left);
    this.holds.delete(file);
    if (this.closedWhileHeld.delete(file)) this.release(file);
  }

  /** A dropped mapping was collected: release it as munmap would. */
  mappingCollected(base: bigint, file: DeviceFile, region: FakeRegion): void {
    this.memory.forget(base);
    region.sweep();
    this.dropDeviceRef(file);
  }

  /** mmap of a device region succeeded: the mapping holds its file open, as a vma does, until munmap or collection. */
  mapped(buffer: ArrayBuffer, mapping: Mapping, prot: number): void {
    const area = this.memory.add(buffer, 'mmap', prot);
    this.mappings.set(buffer, mapping);
    mapping.file.refs++;
    this.collector.register(buffer, { machine: this, base: area.base, file: mapping.file, region: mapping.region }, buffer);
  }

  /** munmap of a device mapping: drops the mapping's hold on its device file. */
  unmapped(buffer: ArrayBuffer): void {
    const mapping = this.mappings.get(buffer)!;
    this.collector.unregister(buffer);
    this.mappings.delete(buffer);
    this.memory.remove(buffer);
    mapping.region.unmap(buffer);
    this.dropDeviceRef(mapping.file);
  }

  /** IOMMU mappings of one open container, or of every container still alive. */
  dmaMappings(containerFd?: number): FakeDmaMapping[] {
    if (containerFd !== undefined) {
      const file = this.fds.get(containerFd);
      if (file?.kind !== 'container') throw new RangeError(`fd ${containerFd} is not an open container`);
      return file.container.dma?.list() ?? [];
    }
    return [...this.containers].filter((c) => c.alive).flatMap((c) => c.dma?.list() ?? []);
  }

  readonly groupContext: GroupIoctlContext = {
    containerOfFd: (fd) => {
      const file = this.file(fd);
      if (file.kind !== 'container') throw new Errno('EBADFD');
      return file.container;
    },
    openDevice: (device, group) => {
      device.openFiles++;
      return this.fds.install({ kind: 'device', path: `${this.options.devRoot}/${group.id}:${device.address}`, file: { device, group, refs: 1 } });
    },
  };

  readonly deviceContext: DeviceIoctlContext = {
    eventfd: (fd) => this.eventfdOf(fd),
    installMigrationFile: (migration) => this.fds.install({ kind: 'migration', path: 'anon_inode:[fake_mig]', migration }),
    userBytes: (address, length, write) => userBytes(this.memory, address, length, write),
    deviceAt: (address) => this.devices.get(address),
    groupOfFd: (fd) => {
      const file = this.file(fd);
      if (file.kind !== 'group') throw new Errno('EINVAL');
      return file.group.id;
    },
  };

  /** The last reference to an open file went away. */
  private release(file: OpenFile): void {
    switch (file.kind) {
      case 'container':
        file.container.fdOpen = false;
        this.forgetIfDead(file.container);
        break;
      case 'group': {
        const container = file.group.container;
        file.group.closeFd();
        if (container) this.forgetIfDead(container);
        break;
      }
      case 'device':
        this.dropDeviceRef(file.file);
        break;
      case 'eventfd':
        file.eventfd.closed();
        break;
      case 'iommufd':
        this.iommufd.closed(file.iommufd);
        break;
      case 'kvm-vfio':
        file.kvmVfio.closed();
        break;
    }
  }

  private dropDeviceRef(file: DeviceFile): void {
    if (--file.refs > 0) return;
    const { device, group } = file;
    device.openFiles--;
    // vfio-pci's last close turns every interrupt off and drops the eventfds.
    if (device.openFiles === 0) {
      device.irqs.disableAll();
      device.features.closed();
    }
    if (file.cdev) return this.iommufd.cdevReleased(file, file.cdev);
    const container = group.container;
    group.deviceFileClosed();
    if (container) this.forgetIfDead(container);
  }

  private forgetIfDead(container: FakeContainer): void {
    if (!container.alive) this.containers.delete(container);
  }

  /** What the process has pinned, all containers together (RLIMIT_MEMLOCK counts per process). */
  private pinnedBytes(): bigint {
    return this.dmaMappings().reduce((sum, m) => sum + m.size, 0n) + this.iommufd.pinnedBytes();
  }

  /** Resolves a device DMA through its container's IOMMU to the bytes of process memory. */
  private dmaView(device: FakeDevice, iova: bigint, length: number, write: boolean): Uint8Array {
    const where = `${device.address} DMA ${write ? 'write' : 'read'} of ${length} bytes at IOVA 0x${iova.toString(16)}`;
    // Without an IOMMU the device's addresses are physical ones.
    if (this.options.noiommu) return this.physicalView(iova, length);
    const bound = this.iommufd.boundDevice(device);
    if (bound) return this.iommufd.dmaView(bound, iova, length, write, where);
    const dma = this.groups.get(device.group)?.container?.dma;
    if (!dma) throw new Error(`IOMMU fault: ${where}: the group has no IOMMU context`);
    const mapping = dma.lookup(iova, BigInt(length));
    if (!mapping) throw new Error(`IOMMU fault: ${where}: not mapped`);
    if (write ? !mapping.write : !mapping.read) throw new Error(`IOMMU fault: ${where}: mapping does not allow it`);
    const vaddr = mapping.vaddr + (iova - mapping.iova);
    const area = this.memory.find(vaddr, BigInt(length));
    const at = area ? Number(vaddr - area.base) : 0;
    if (!area || at + length > area.buffer.byteLength) throw new Error(`${where}: the memory behind the mapping was freed or unmapped`);
    return new Uint8Array(area.buffer, at, length);
  }
}
