import type { Backend, Poller } from '../backend';
import { arrayBufferArg, bytesArg, fdArg, functionArg, integerArg, notLive, uint64Arg } from './args';
import { asSyscall, Errno, kernelError } from './errno';
import { FakeContainer } from './fake-container';
import { deviceIoctl, type DeviceIoctlContext } from './device-ioctls';
import { FakeDevice, regionRw, type DeviceHost } from './fake-device';
import { EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, FakeEventfd, FakePoller } from './fake-eventfd';
import { FakeGroup, type GroupIoctlContext } from './fake-group';
import { FakeAddressSpace } from './fake-memory';
import type { FakeRegion } from './fake-region';
import { detach } from './fake-region';
import { FakeSysfs } from './fake-sysfs';
import { FaultPlan, type FaultSpec } from './faults';
import { FdTable, type DeviceFile, type OpenFile } from './fd-table';
import { FakeMmio } from './fake-mmio';
import { VFIO_PCI_OFFSET_MASK, VFIO_PCI_OFFSET_SHIFT } from './offsets';
import { resolveOptions, type ResolvedOptions } from './options';
import type { FakeCall, FakeDeviceSpec, FakeDmaMapping, FakeKernelOptions } from './types';

/** A live mmap of a device region. */
interface Mapping {
  file: DeviceFile;
  region: FakeRegion;
  /** Where the mapping starts inside the region. */
  offset: number;
}

// The real syscall behind each Backend method, for the errors' `syscall`.
const SYSCALL_NAME: Record<string, string> = {
  eventfdRead: 'read', eventfdWrite: 'write', allocDma: 'mmap', freeDma: 'munmap', poll: 'uv_poll_init',
};
const INT32_MAX = 0x7fff_ffff;
const OFF_T_MAX = (1n << 63n) - 1n;
const PROT_READ_WRITE = 3;

/**
 * A Linux VFIO kernel in TypeScript, implementing the same Backend interface
 * as the native addon: containers, groups and devices behind /dev/vfio, a
 * type1 IOMMU with the kernel's DMA mapping rules, regions with mmap and
 * pread/pwrite, IRQs signalled to eventfds that poll on the event loop, and a
 * sysfs tree in a temp directory. Every ioctl argument is decoded and encoded
 * with the vfio-bindings codecs, and every refusal is the errno Linux gives.
 *
 * For tests: `failNext` makes any syscall fail at any step, `calls` records
 * them, and openFds/liveMmaps/liveDmaBuffers/dmaMappings account for leaks.
 * Call `dispose()` (or use `using`) when done.
 *
 * @example
 * const kernel = new FakeKernel();
 * const edu = kernel.addDevice({ address: '0000:00:03.0', group: 12 });
 * edu.onMmioRead(0, (offset) => (offset === 0 ? 0x010000ed : undefined));
 * // ...run the code under test with `kernel` as its backend...
 * expect(kernel.openFds()).toEqual([]);
 * kernel.dispose();
 */
export class FakeKernel implements Backend {
  /** Every syscall made, in order. */
  readonly calls: FakeCall[] = [];
  private readonly options: ResolvedOptions;
  private readonly faults = new FaultPlan();
  private readonly fds = new FdTable();
  private readonly memory: FakeAddressSpace;
  private readonly sysfs = new FakeSysfs();
  private readonly groups = new Map<number, FakeGroup>();
  private readonly devices = new Map<string, FakeDevice>();
  private readonly containers = new Set<FakeContainer>();
  private readonly mappings = new Map<ArrayBuffer, Mapping>();
  private readonly dmaBuffers = new Set<ArrayBuffer>();
  private readonly pollers = new Set<FakePoller>();
  private readonly host: DeviceHost = { dmaView: (device, iova, length, write) => this.dmaView(device, iova, length, write) };
  private readonly mmio: FakeMmio;

  constructor(options?: FakeKernelOptions) {
    this.options = resolveOptions(options);
    this.memory = new FakeAddressSpace(this.options.pageSize);
    this.mmio = new FakeMmio(this.memory, (buffer) => {
      const m = this.mappings.get(buffer);
      return m && { device: m.file.device, region: m.region.index, offset: m.offset };
    });
  }

  /** Root of the fake sysfs (a temp directory): `${sysfsRoot}/bus/pci/devices/ADDR/...`. */
  get sysfsRoot(): string {
    return this.sysfs.root;
  }

  /** The prefix open() understands: `${devRoot}/vfio` is the container node, `${devRoot}/N` group N. */
  get devRoot(): string {
    return this.options.devRoot;
  }

  /** Adds a PCI function (and its IOMMU group when new) to the fake machine and to sysfs. */
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
    this.sysfs.addDevice(device);
    return device;
  }

  /** The device at `address`, if added. */
  device(address: string): FakeDevice | undefined {
    return this.devices.get(address);
  }

  /** Rebinds a device to another driver (null: unbind), in the model and in sysfs. A non-vfio driver makes the group non-viable. */
  bindDriver(address: string, driver: string | null): void {
    const device = this.devices.get(address);
    if (!device) throw new RangeError(`no device ${address}`);
    if (device.isOpen) throw new Error(`device ${address} is open: close it before rebinding`);
    this.sysfs.rebind(address, device.driver, driver);
    device.driver = driver;
  }

  /** The next call matching `fault` fails with its errno, after `skip` matching calls succeed. */
  failNext(fault: FaultSpec): void {
    this.faults.add(fault);
  }

  /** Drops every planned fault. */
  clearFaults(): void {
    this.faults.clear();
  }

  /** Faults planned and not yet spent. */
  pendingFaults(): number {
    return this.faults.size;
  }

  // ---- leak accounting ----

  /** Fds currently open (containers, groups, devices, eventfds), ascending. */
  openFds(): number[] {
    return this.fds.fds();
  }

  /** mmap buffers not yet unmapped. */
  liveMmaps(): number {
    return this.mappings.size;
  }

  /** allocDma buffers not yet freed. */
  liveDmaBuffers(): number {
    return this.dmaBuffers.size;
  }

  /** Pollers created and not closed. */
  livePollers(): number {
    return this.pollers.size;
  }

  /**
   * IOMMU mappings of the container open at `containerFd`, or of every
   * container still alive (a closed container lives on while groups hold it).
   */
  dmaMappings(containerFd?: number): FakeDmaMapping[] {
    if (containerFd !== undefined) {
      const file = this.fds.get(containerFd);
      if (file?.kind !== 'container') throw new RangeError(`fd ${containerFd} is not an open container`);
      return file.container.dma?.list() ?? [];
    }
    return [...this.containers].filter((c) => c.alive).flatMap((c) => c.dma?.list() ?? []);
  }

  /** Stops every poller and removes the sysfs tree. The kernel is unusable afterwards. */
  dispose(): void {
    for (const poller of this.pollers) poller.close();
    this.pollers.clear();
    this.sysfs.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- Backend: files and ioctls ----

  open(path: string, flags: number): number {
    if (typeof path !== 'string') throw Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
    integerArg(flags, 'flags', 0, INT32_MAX); // the access mode is not modelled: VFIO nodes are opened O_RDWR
    return this.syscall({ syscall: 'open', path }, () => {
      if (path === `${this.devRoot}/vfio`) {
        const container = new FakeContainer(this.options, this.memory, () => this.pinnedBytes());
        this.containers.add(container);
        return this.fds.install({ kind: 'container', path, container });
      }
      const m = path.startsWith(`${this.devRoot}/`) ? /^(\d+)$/.exec(path.slice(this.devRoot.length + 1)) : null;
      const group = m ? this.groups.get(Number(m[1])) : undefined;
      if (!group) throw new Errno('ENOENT');
      group.open();
      return this.fds.install({ kind: 'group', path, group });
    });
  }

  close(fd: number): void {
    fdArg(fd);
    this.syscall({ syscall: 'close', fd }, () => {
      const file = this.fds.remove(fd);
      if (!file) throw new Errno('EBADF');
      this.release(file);
    }, () => {
      // close(2) frees the fd even when it reports an error.
      const file = this.fds.remove(fd);
      if (file) this.release(file);
    });
  }

  ioctl(fd: number, request: number, arg?: number | Uint8Array): number {
    fdArg(fd);
    integerArg(request, 'request', 0, 0xffff_ffff);
    if (typeof arg === 'number') integerArg(arg, 'arg', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    else if (arg !== undefined) bytesArg(arg, 'arg');
    return this.syscall({ syscall: 'ioctl', request, fd }, () => {
      const file = this.file(fd);
      switch (file.kind) {
        case 'container': return file.container.ioctl(request, arg);
        case 'group': return file.group.ioctl(request, arg, this.groupContext);
        case 'device': return deviceIoctl(file.file.device, request, arg, this.deviceContext);
        default: throw new Errno('ENOTTY');
      }
    });
  }

  pread(fd: number, buffer: Uint8Array, offset: bigint): number {
    this.ioArgs(fd, buffer, offset);
    return this.syscall({ syscall: 'pread', fd }, () => this.regionIo(fd, buffer, offset, false));
  }

  pwrite(fd: number, buffer: Uint8Array, offset: bigint): number {
    this.ioArgs(fd, buffer, offset);
    return this.syscall({ syscall: 'pwrite', fd }, () => this.regionIo(fd, buffer, offset, true));
  }

  // ---- Backend: memory ----

  mmap(fd: number, length: number, prot: number, offset: bigint): ArrayBuffer {
    fdArg(fd);
    integerArg(length, 'length', 1, Number.MAX_SAFE_INTEGER);
    integerArg(prot, 'prot', 0, INT32_MAX);
    const at = uint64Arg(offset, 'offset', OFF_T_MAX);
    return this.syscall({ syscall: 'mmap', fd }, () => {
      const file = this.file(fd);
      // Only device files have an mmap method; others answer ENODEV as mmap(2) does.
      if (file.kind !== 'device') throw new Errno('ENODEV');
      if ((prot & ~7) !== 0) throw new Errno('EINVAL');
      const region = file.file.device.regionModel(Number(at >> VFIO_PCI_OFFSET_SHIFT));
      if (!region) throw new Errno('EINVAL');
      const within = Number(at & VFIO_PCI_OFFSET_MASK);
      const buffer = region.mmap(within, length);
      this.mappings.set(buffer, { file: file.file, region, offset: within });
      this.memory.add(buffer, 'mmap', prot);
      file.file.refs++;
      return buffer;
    });
  }

  munmap(buffer: ArrayBuffer): void {
    const mapping = this.mappings.get(arrayBufferArg(buffer, 'buffer'));
    if (!mapping) throw notLive('buffer', 'mmap');
    this.syscall({ syscall: 'munmap' }, () => {
      this.mappings.delete(buffer);
      this.memory.remove(buffer);
      mapping.region.unmap(buffer);
      this.dropDeviceRef(mapping.file);
    });
  }

  /** Zeroed memory whose byteLength is `size` rounded up to whole pages, as the addon's. */
  allocDma(size: number): ArrayBuffer {
    const page = this.options.pageSize;
    integerArg(size, 'size', 1, Number.MAX_SAFE_INTEGER - page);
    return this.syscall({ syscall: 'allocDma' }, () => {
      const buffer = new ArrayBuffer(Math.ceil(size / page) * page);
      this.memory.add(buffer, 'dma', PROT_READ_WRITE);
      this.dmaBuffers.add(buffer);
      return buffer;
    });
  }

  freeDma(buffer: ArrayBuffer): void {
    if (!this.dmaBuffers.has(arrayBufferArg(buffer, 'buffer'))) throw notLive('buffer', 'dma');
    this.syscall({ syscall: 'freeDma' }, () => {
      this.dmaBuffers.delete(buffer);
      this.memory.remove(buffer);
      detach(buffer);
    });
  }

  addressOf(buffer: ArrayBuffer): bigint {
    const area = this.memory.get(arrayBufferArg(buffer, 'buffer'));
    if (!area) throw notLive('buffer', 'any');
    return area.base;
  }

  pageSize(): number {
    return this.options.pageSize;
  }

  mmioRead8(buffer: ArrayBuffer, offset: number): number {
    return Number(this.mmio.read(buffer, offset, 1));
  }

  mmioRead16(buffer: ArrayBuffer, offset: number): number {
    return Number(this.mmio.read(buffer, offset, 2));
  }

  mmioRead32(buffer: ArrayBuffer, offset: number): number {
    return Number(this.mmio.read(buffer, offset, 4));
  }

  mmioRead64(buffer: ArrayBuffer, offset: number): bigint {
    return this.mmio.read(buffer, offset, 8);
  }

  mmioWrite8(buffer: ArrayBuffer, offset: number, value: number): void {
    this.mmio.write(buffer, offset, 1, value);
  }

  mmioWrite16(buffer: ArrayBuffer, offset: number, value: number): void {
    this.mmio.write(buffer, offset, 2, value);
  }

  mmioWrite32(buffer: ArrayBuffer, offset: number, value: number): void {
    this.mmio.write(buffer, offset, 4, value);
  }

  mmioWrite64(buffer: ArrayBuffer, offset: number, value: bigint): void {
    this.mmio.write(buffer, offset, 8, value);
  }

  // ---- Backend: eventfds ----

  eventfd(initval: number, flags: number): number {
    integerArg(initval, 'initval', 0, 0xffff_ffff);
    integerArg(flags, 'flags', 0, INT32_MAX);
    return this.syscall({ syscall: 'eventfd' }, () => {
      if (flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) throw new Errno('EINVAL');
      const eventfd = new FakeEventfd(initval, (flags & EFD_SEMAPHORE) !== 0);
      return this.fds.install({ kind: 'eventfd', path: 'anon_inode:[eventfd]', eventfd });
    });
  }

  eventfdRead(fd: number): bigint {
    fdArg(fd);
    return this.syscall({ syscall: 'eventfdRead', fd }, () => this.eventfdOf(fd).read());
  }

  eventfdWrite(fd: number, value: bigint): void {
    fdArg(fd);
    const v = uint64Arg(value, 'value');
    this.syscall({ syscall: 'eventfdWrite', fd }, () => this.eventfdOf(fd).write(v));
  }

  poll(fd: number, onReadable: (error: Error | null) => void): Poller {
    fdArg(fd);
    functionArg(onReadable, 'onReadable');
    return this.syscall({ syscall: 'poll', fd }, () => {
      const file = this.file(fd);
      // epoll refuses files without a poll method (VFIO fds have none).
      if (file.kind !== 'eventfd') throw new Errno('EPERM');
      const poller = new FakePoller(file.eventfd, onReadable);
      const close = poller.close.bind(poller);
      poller.close = () => {
        close();
        this.pollers.delete(poller);
      };
      this.pollers.add(poller);
      return poller;
    });
  }

  // ---- internals ----

  /** Records the call, applies a planned fault, and maps model refusals to VfioErrors. */
  private syscall<T>(call: FakeCall, body: () => T, onFault?: () => void): T {
    this.calls.push(call);
    const name = SYSCALL_NAME[call.syscall] ?? call.syscall;
    const path = call.path ?? (call.fd !== undefined ? this.fds.get(call.fd)?.path : undefined);
    const errno = this.faults.check({ syscall: call.syscall, request: call.request, path });
    if (errno) {
      onFault?.();
      throw kernelError(errno, name);
    }
    return asSyscall(name, body);
  }

  private file(fd: number): OpenFile {
    const file = this.fds.get(fd);
    if (!file) throw new Errno('EBADF');
    return file;
  }

  private eventfdOf(fd: number): FakeEventfd {
    const file = this.file(fd);
    if (file.kind !== 'eventfd') throw new Errno('EINVAL');
    return file.eventfd;
  }

  private ioArgs(fd: number, buffer: Uint8Array, offset: bigint): void {
    fdArg(fd);
    bytesArg(buffer, 'buffer');
    uint64Arg(offset, 'offset', OFF_T_MAX);
  }

  private regionIo(fd: number, buffer: Uint8Array, offset: bigint | number, write: boolean): number {
    const at = BigInt(offset);
    const file = this.file(fd);
    // An eventfd cannot seek; container and group files have no read/write.
    if (file.kind === 'eventfd') throw new Errno('ESPIPE');
    if (file.kind !== 'device') throw new Errno('EINVAL');
    const index = Number(at >> VFIO_PCI_OFFSET_SHIFT);
    return regionRw(file.file.device, index, Number(at & VFIO_PCI_OFFSET_MASK), buffer, write);
  }

  /** The last reference to an open file went away. */
  private release(file: OpenFile): void {
    switch (file.kind) {
      case 'container':
        file.container.fdOpen = false;
        if (!file.container.alive) this.containers.delete(file.container);
        break;
      case 'group': {
        const container = file.group.container;
        file.group.closeFd();
        if (container && !container.alive) this.containers.delete(container);
        break;
      }
      case 'device':
        this.dropDeviceRef(file.file);
        break;
      case 'eventfd':
        file.eventfd.closed();
        break;
    }
  }

  private dropDeviceRef(file: DeviceFile): void {
    if (--file.refs > 0) return;
    const { device, group } = file;
    device.openFiles--;
    // vfio-pci's last close turns every interrupt off and drops the eventfds.
    if (device.openFiles === 0) device.irqs.disableAll();
    const container = group.container;
    group.deviceFileClosed();
    if (container && !container.alive) this.containers.delete(container);
  }

  private readonly groupContext: GroupIoctlContext = {
    containerOfFd: (fd) => {
      const file = this.file(fd);
      if (file.kind !== 'container') throw new Errno('EBADFD');
      return file.container;
    },
    openDevice: (device, group) => {
      device.openFiles++;
      return this.fds.install({ kind: 'device', path: `${this.devRoot}/${group.id}:${device.address}`, file: { device, group, refs: 1 } });
    },
  };

  private readonly deviceContext: DeviceIoctlContext = {
    eventfd: (fd) => {
      const file = this.file(fd);
      if (file.kind !== 'eventfd') throw new Errno('EINVAL');
      return file.eventfd;
    },
    deviceAt: (address) => this.devices.get(address),
    groupOfFd: (fd) => {
      const file = this.file(fd);
      if (file.kind !== 'group') throw new Errno('EINVAL');
      return file.group.id;
    },
  };

  private pinnedBytes(): bigint {
    return this.dmaMappings().reduce((sum, m) => sum + m.size, 0n);
  }

  /** Resolves a device DMA through its container's IOMMU to the bytes of process memory. */
  private dmaView(device: FakeDevice, iova: bigint, length: number, write: boolean): Uint8Array {
    const where = `${device.address} DMA ${write ? 'write' : 'read'} of ${length} bytes at IOVA 0x${iova.toString(16)}`;
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
