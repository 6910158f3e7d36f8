import { MAX_MAPPING_LENGTH, type Backend, type EventfdsWake, type MemfdFile, type Poller } from '../core/backend';
import { arrayBufferArg, bytesArg, fdArg, functionArg, integerArg, notLive, uint64Arg } from './args';
import { deviceIoctl } from './device-ioctls';
import { asSyscall, Errno, kernelError } from './errno';
import { regionRw, type FakeDevice } from './fake-device';
import { EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, FakeEventfd, FakeEventfdWatcher, FakePoller } from './fake-eventfd';
import { FakeMachine } from './fake-machine';
import { FakeMmio } from './fake-mmio';
import { FakePhysicalMemory, PAGEMAP_PATH } from './fake-physical-memory';
import { detach } from './fake-region';
import { FakeSysfs } from './fake-sysfs';
import { FaultPlan, type FaultSpec } from './faults';
import { cdevIoctl, checkAccess } from './fake-cdev';
import { FakeHugePages, FakeMemfd, MEMFD_NAME_MAX, MemfdMappings } from './fake-memfd';
import { FakeKvmVfioDevice } from './fake-kvm-vfio';
import { userBytes } from './user-memory';
import type { FakeMigrationFile } from './fake-migration';
import { VFIO_PCI_OFFSET_MASK, VFIO_PCI_OFFSET_SHIFT } from './offsets';
import { resolveOptions, type ResolvedOptions } from './options';
import type { FakeCall, FakeDeviceSpec, FakeDmaMapping, FakeKernelOptions } from './types';

// The real syscall behind each Backend method, for the errors' `syscall`.
const SYSCALL_NAME: Record<string, string> = {
  eventfdRead: 'read', eventfdWrite: 'write', allocDma: 'mmap', freeDma: 'munmap', poll: 'uv_poll_init', watchEventfds: 'epoll_ctl', memfd: 'memfd_create', memfdDup: 'fcntl', dup: 'fcntl',
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
 * with the vfio-bindings codecs, every refusal is the errno Linux gives, and
 * errors (and bad-argument TypeErrors/RangeErrors) look like the addon's.
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
  /** Every syscall made, in order (faulted ones included). */
  readonly calls: FakeCall[] = [];
  private readonly options: ResolvedOptions;
  private readonly faults = new FaultPlan();
  private readonly machine: FakeMachine;
  private readonly sysfs = new FakeSysfs();
  private readonly mmio: FakeMmio;
  private readonly pollers = new Set<FakePoller>();
  private readonly memfdMappings: MemfdMappings;
  private readonly hugePages: FakeHugePages;
  /**
   * Where DMA memory sits physically, mlock and /proc/self/pagemap (no-IOMMU
   * DMA); `capSysAdmin = false` hides frame numbers, `capSysRawio = false`
   * refuses no-IOMMU cdevs and IOMMU_IOAS_NOIOMMU_GET_PA.
   */
  readonly physicalMemory: FakePhysicalMemory;

  constructor(options?: FakeKernelOptions) {
    this.options = resolveOptions(options);
    this.machine = new FakeMachine(this.options);
    this.memfdMappings = new MemfdMappings(this.machine.memory);
    this.hugePages = new FakeHugePages(this.options.hugePages);
    this.machine.physicalView = (physical, length) => this.physicalMemory.view(physical, length);
    this.physicalMemory = new FakePhysicalMemory(this.machine.memory, this.options.pageSize, this.options.memlockLimit);
    this.physicalMemory.pinnedPage = (vpn) => this.machine.iommufd.pinsUserPage(vpn);
    this.machine.physicalOf = (vaddr) => this.physicalMemory.physicalOf(vaddr);
    this.machine.capSysRawio = () => this.physicalMemory.capSysRawio;
    this.mmio = new FakeMmio(this.machine.memory, (buffer) => {
      const m = this.machine.mappings.get(buffer);
      return m && { device: m.file.device, region: m.region.index, offset: m.offset };
    });
  }

  /** Root of the fake sysfs (a temp directory): `${sysfsRoot}/bus/pci/devices/ADDR/...`. */
  get sysfsRoot(): string {
    return this.sysfs.root;
  }

  /** The prefix open() understands: `${devRoot}/vfio` is the container node, `${devRoot}/N` group N. */
  /** Backend.directMmio: off unless asked for (FakeKernelOptions.directMmio). */
  get directMmio(): boolean {
    return this.options.directMmio;
  }

  get devRoot(): string {
    return this.options.devRoot;
  }

  /** Adds a PCI function (and its IOMMU group when new) to the fake machine and to sysfs, with its cdev when bound to vfio-pci. */
  addDevice(spec: FakeDeviceSpec): FakeDevice {
    const device = this.machine.addDevice(spec);
    this.sysfs.addDevice(device);
    if (device.driver === 'vfio-pci') this.registerCdev(device);
    return device;
  }

  /** /dev/iommu as open() understands it: next to devRoot ('/dev/iommu' for '/dev/vfio'). Cdevs are `${devRoot}/devices/vfioN`. */
  get iommuPath(): string {
    return this.machine.iommufd.iommuPath;
  }

  /** The device's cdev node, `${devRoot}/devices/vfioN` (noiommu-vfioN in no-IOMMU mode), while bound to vfio-pci. */
  cdevPath(address: string): string | undefined {
    const device = this.machine.devices.get(address);
    const name = device && this.options.deviceCdevs ? this.machine.iommufd.cdevs.nameOf(device) : undefined;
    return name && `${this.options.devRoot}/devices/${name}`;
  }

  /**
   * A memfd of `size` bytes (Backend.memfd, unrecorded), for tests of
   * IOMMU_IOAS_MAP_FILE. Returns the fd and the file's bytes (a fresh view
   * each time `bytes` is read); close it with close().
   */
  createMemfd(size: number): { fd: number; readonly bytes: Uint8Array } {
    integerArg(size, 'size', 0, Number.MAX_SAFE_INTEGER);
    const memfd = new FakeMemfd(size, this.options.pageSize);
    // Made as other programs make one: no seals.
    memfd.seals = 0;
    const fd = this.machine.fds.install({ kind: 'memfd', path: 'memfd:fake', memfd });
    return { fd, get bytes() { return memfd.bytes; } };
  }

  /** Huge pages of `size` bytes still free in the pool (FakeKernelOptions.hugePages). */
  hugePagesFree(size: number): number {
    return this.hugePages.available(size);
  }

  /**
   * A KVM VFIO device fd, as KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO) on a VM
   * fd returns (no VM is modelled), for tests of Device.addToKvm. `files()`
   * lists the paths of the VFIO files it holds; close it with close().
   */
  createKvmVfioDevice(): { fd: number; files(): string[] } {
    const machine = this.machine;
    const kvmVfio = new FakeKvmVfioDevice({
      file: (fd) => machine.file(fd),
      userBytes: (address, length) => userBytes(machine.memory, address, length, false),
      hold: (file) => machine.hold(file),
      release: (file) => machine.unhold(file),
    });
    const fd = machine.fds.install({ kind: 'kvm-vfio', path: 'anon_inode:kvm-vfio', kvmVfio });
    return { fd, files: () => kvmVfio.paths() };
  }

  /** The contents of the memfd open at `fd` (a fresh view). */
  memfdBytes(fd: number): Uint8Array {
    const file = this.machine.fds.get(fd);
    if (file?.kind !== 'memfd') throw new RangeError(`fd ${fd} is not an open memfd`);
    return file.memfd.bytes;
  }

  /** Objects of every live iommufd (open, or held by a bound device): IOASes, auto HWPTs, bound devices. */
  iommufdObjects(): { id: number; type: 'ioas' | 'hwpt_paging' | 'device' }[] {
    return this.machine.iommufd.live().flatMap((ctx) => ctx.list());
  }

  /** The mappings of IOAS `ioasId` in the iommufd open at `iommufdFd` (IOVA, length, and whether pinned for a domain). */
  ioasMappings(iommufdFd: number, ioasId: number): { iova: bigint; length: bigint; read: boolean; write: boolean; pinned: boolean }[] {
    const file = this.machine.fds.get(iommufdFd);
    if (file?.kind !== 'iommufd') throw new RangeError(`fd ${iommufdFd} is not an open iommufd`);
    const ioas = file.iommufd.ioas(ioasId);
    if (!ioas) throw new RangeError(`no IOAS ${ioasId} in that iommufd`);
    return ioas.iopt.list().map((a) => ({ iova: a.iova, length: a.last - a.iova + 1n, read: a.read, write: a.write, pinned: ioas.iopt.hasDomains }));
  }

  /** The device at `address`, if added. */
  device(address: string): FakeDevice | undefined {
    return this.machine.devices.get(address);
  }

  /** Rebinds a closed device to another driver (null: unbind), in the model and in sysfs; a non-vfio driver makes its group non-viable. */
  bindDriver(address: string, driver: string | null): void {
    const device = this.machine.devices.get(address);
    if (!device) throw new RangeError(`no device ${address}`);
    if (device.isOpen) throw new Error(`device ${address} is open: close it before rebinding`);
    const cdev = this.machine.iommufd.cdevs.unregister(device);
    if (cdev && this.options.deviceCdevs) this.sysfs.removeCdev(address, cdev);
    this.sysfs.rebind(address, device.driver, driver);
    device.driver = driver;
    if (driver === 'vfio-pci') this.registerCdev(device);
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

  /** Fds currently open (containers, groups, devices, eventfds), ascending. */
  openFds(): number[] {
    return this.machine.fds.fds();
  }

  /** mmap buffers (of device regions and memfds) not yet unmapped. */
  liveMmaps(): number {
    return this.machine.memory.count('mmap') + this.machine.memory.count('shmem');
  }

  /** allocDma buffers not yet freed. */
  liveDmaBuffers(): number {
    return this.machine.dmaBuffers.size;
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
    return this.machine.dmaMappings(containerFd);
  }

  /** Stops every poller and removes the sysfs tree. The kernel is unusable afterwards. */
  dispose(): void {
    for (const poller of [...this.pollers]) poller.close();
    this.sysfs.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- Backend: files ----

  open(path: string, flags: number): number {
    if (typeof path !== 'string') throw Object.assign(new TypeError('The "path" argument must be of type string'), { code: 'ERR_INVALID_ARG_TYPE' });
    integerArg(flags, 'flags', 0, INT32_MAX); // the access mode is not modelled: VFIO nodes are opened O_RDWR
    return this.syscall({ syscall: 'open', path }, () =>
      path === PAGEMAP_PATH ? this.machine.fds.install({ kind: 'pagemap', path }) : this.machine.openNode(path));
  }

  dup(fd: number): number {
    fdArg(fd);
    return this.syscall({ syscall: 'dup', fd }, () => this.machine.dup(fd));
  }

  close(fd: number): void {
    fdArg(fd);
    // close(2) frees the fd even when it reports an error, hence the fault path closes too.
    const closeFd = () => {
      const file = this.machine.fds.get(fd);
      this.machine.close(fd);
      if (file?.kind === 'memfd') file.memfd.fdClosed();
    };
    const closeQuietly = () => {
      if (this.machine.fds.get(fd)) closeFd();
    };
    this.syscall({ syscall: 'close', fd }, closeFd, closeQuietly);
  }

  ioctl(fd: number, request: number, arg?: number | Uint8Array): number {
    fdArg(fd);
    integerArg(request, 'request', 0, 0xffff_ffff);
    if (typeof arg === 'number') integerArg(arg, 'arg', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    else if (arg !== undefined) bytesArg(arg, 'arg');
    return this.syscall({ syscall: 'ioctl', request, fd }, () => {
      const file = this.machine.file(fd);
      switch (file.kind) {
        case 'container': return file.container.ioctl(request, arg);
        case 'group': return file.group.ioctl(request, arg, this.machine.groupContext);
        case 'device':
          if (file.file.cdev) return cdevIoctl(file.file, file.file.cdev, request, arg, this.machine.iommufd.cdevContext());
          return deviceIoctl(file.file.device, request, arg, this.machine.deviceContext);
        case 'iommufd': return file.iommufd.ioctl(request, arg);
        case 'migration': return file.migration.ioctl(request, arg);
        case 'kvm-vfio': return file.kvmVfio.ioctl(request, arg);
        default: throw new Errno('ENOTTY');
      }
    });
  }

  pread(fd: number, buffer: Uint8Array, offset: bigint): number {
    const at = this.ioArgs(fd, buffer, offset);
    return this.syscall({ syscall: 'pread', fd }, () =>
      this.machine.file(fd).kind === 'pagemap' ? this.physicalMemory.readPagemap(buffer, at) : this.regionIo(fd, buffer, at, false));
  }

  pwrite(fd: number, buffer: Uint8Array, offset: bigint): number {
    const at = this.ioArgs(fd, buffer, offset);
    return this.syscall({ syscall: 'pwrite', fd }, () => this.regionIo(fd, buffer, at, true));
  }

  /** read(2): migration data fds only (no other fake file is read without an offset). */
  read(fd: number, buffer: Uint8Array): number {
    fdArg(fd);
    bytesArg(buffer, 'buffer');
    return this.syscall({ syscall: 'read', fd }, () => this.streamFile(fd).read(buffer));
  }

  /** write(2): migration data fds only. */
  write(fd: number, buffer: Uint8Array): number {
    fdArg(fd);
    bytesArg(buffer, 'buffer');
    return this.syscall({ syscall: 'write', fd }, () => this.streamFile(fd).write(buffer));
  }

  // ---- Backend: memory ----

  mmap(fd: number, length: number, prot: number, offset: bigint): ArrayBuffer {
    fdArg(fd);
    integerArg(length, 'length', 1, MAX_MAPPING_LENGTH);
    integerArg(prot, 'prot', 0, INT32_MAX);
    const at = uint64Arg(offset, 'offset', OFF_T_MAX);
    return this.syscall({ syscall: 'mmap', fd }, () => {
      const file = this.machine.file(fd);
      if (file.kind === 'memfd') {
        if ((prot & ~7) !== 0) throw new Errno('EINVAL');
        return this.memfdMappings.map(file.memfd, Number(at), length, prot);
      }
      // Only device files and memfds have an mmap method; others answer ENODEV as mmap(2) does.
      if (file.kind !== 'device') throw new Errno('ENODEV');
      checkAccess(file.file.cdev);
      if ((prot & ~7) !== 0) throw new Errno('EINVAL');
      const region = file.file.device.regionModel(Number(at >> VFIO_PCI_OFFSET_SHIFT));
      if (!region) throw new Errno('EINVAL');
      const within = Number(at & VFIO_PCI_OFFSET_MASK);
      const buffer = region.mmap(within, length);
      this.machine.mapped(buffer, { file: file.file, region, offset: within }, prot);
      return buffer;
    });
  }

  munmap(buffer: ArrayBuffer): void {
    arrayBufferArg(buffer, 'buffer');
    if (this.memfdMappings.has(buffer)) return this.syscall({ syscall: 'munmap' }, () => this.memfdMappings.unmap(buffer));
    if (!this.machine.mappings.has(buffer)) throw notLive('buffer', 'mmap');
    this.syscall({ syscall: 'munmap' }, () => this.machine.unmapped(buffer));
  }

  /** Zeroed memory whose byteLength is `size` rounded up to whole pages, as the addon's. */
  allocDma(size: number): ArrayBuffer {
    const page = this.options.pageSize;
    integerArg(size, 'size', 1, Math.min(Math.floor(MAX_MAPPING_LENGTH / page) * page, Number.MAX_SAFE_INTEGER - page));
    return this.syscall({ syscall: 'allocDma' }, () => {
      const buffer = new ArrayBuffer(Math.ceil(size / page) * page);
      this.machine.memory.add(buffer, 'dma', PROT_READ_WRITE);
      this.machine.dmaBuffers.add(buffer);
      return buffer;
    });
  }

  freeDma(buffer: ArrayBuffer): void {
    if (!this.machine.dmaBuffers.has(arrayBufferArg(buffer, 'buffer'))) throw notLive('buffer', 'dma');
    this.syscall({ syscall: 'freeDma' }, () => {
      this.machine.dmaBuffers.delete(buffer);
      this.machine.memory.remove(buffer);
      detach(buffer);
    });
  }

  addressOf(buffer: ArrayBuffer): bigint {
    const area = this.machine.memory.get(arrayBufferArg(buffer, 'buffer'));
    if (!area) throw notLive('buffer', 'any');
    return area.base;
  }

  pageSize(): number {
    return this.options.pageSize;
  }

  mlock(buffer: ArrayBuffer): void {
    if (!this.machine.dmaBuffers.has(arrayBufferArg(buffer, 'buffer'))) throw notLive('buffer', 'dma');
    this.syscall({ syscall: 'mlock' }, () => this.physicalMemory.lock(buffer));
  }

  munlock(buffer: ArrayBuffer): void {
    if (!this.machine.dmaBuffers.has(arrayBufferArg(buffer, 'buffer'))) throw notLive('buffer', 'dma');
    this.syscall({ syscall: 'munlock' }, () => this.physicalMemory.unlock(buffer));
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

  // ---- Backend: memfds ----

  memfd(name: string, size: number, hugePageSize?: number): number {
    if (typeof name !== 'string') throw Object.assign(new TypeError(`The "name" argument must be of type string. Received type ${name === null ? 'null' : typeof name}`), { code: 'ERR_INVALID_ARG_TYPE' });
    if (name.includes('\0')) throw Object.assign(new TypeError('The "name" argument must be a string without null bytes'), { code: 'ERR_INVALID_ARG_VALUE' });
    integerArg(size, 'size', 0, Number.MAX_SAFE_INTEGER);
    const huge = hugePageSize === undefined ? 0 : integerArg(hugePageSize, 'hugePageSize', 0, 2 ** 40);
    if (huge !== 0 && (huge < 2 || (huge & (huge - 1)) !== 0)) throw new RangeError('hugePageSize must be 0 or a power of two');
    return this.syscall({ syscall: 'memfd' }, () => {
      if (Buffer.byteLength(name) > MEMFD_NAME_MAX) throw new Errno('EINVAL');
      // No hstate (so no hugetlbfs mount) for that page size: hugetlb_file_setup answers ENODEV.
      if (huge !== 0 && !this.hugePages.has(huge)) throw new Errno('ENODEV');
      // hugetlbfs_setattr: ftruncate to a size that is not whole huge pages is EINVAL (the fd is closed again).
      if (huge !== 0 && size % huge !== 0) throw kernelError('EINVAL', 'ftruncate');
      const memfd = huge === 0 ? new FakeMemfd(size, this.options.pageSize) : new FakeMemfd(size, huge, this.hugePages);
      return this.machine.fds.install({ kind: 'memfd', path: `memfd:${name}`, memfd });
    });
  }

  memfdDup(fd: number): MemfdFile {
    fdArg(fd);
    return this.syscall({ syscall: 'memfdDup', fd }, () => {
      const file = this.machine.file(fd);
      // F_GET_SEALS on a file that is not shmem or hugetlbfs.
      if (file.kind !== 'memfd') throw new Errno('EINVAL');
      const { memfd } = file;
      return { fd: this.machine.dup(fd), size: memfd.size, pageSize: memfd.pageSize, seals: memfd.seals };
    });
  }

  // ---- Backend: eventfds ----

  eventfd(initval: number, flags: number): number {
    integerArg(initval, 'initval', 0, 0xffff_ffff);
    integerArg(flags, 'flags', 0, INT32_MAX);
    return this.syscall({ syscall: 'eventfd' }, () => {
      if (flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC)) throw new Errno('EINVAL');
      const eventfd = new FakeEventfd(initval, (flags & EFD_SEMAPHORE) !== 0);
      return this.machine.fds.install({ kind: 'eventfd', path: 'anon_inode:[eventfd]', eventfd });
    });
  }

  eventfdRead(fd: number): bigint {
    fdArg(fd);
    return this.syscall({ syscall: 'eventfdRead', fd }, () => this.machine.eventfdOf(fd).read());
  }

  eventfdWrite(fd: number, value: bigint): void {
    fdArg(fd);
    const v = uint64Arg(value, 'value');
    this.syscall({ syscall: 'eventfdWrite', fd }, () => this.machine.eventfdOf(fd).write(v));
  }

  poll(fd: number, onReadable: (error: Error | null) => void): Poller {
    fdArg(fd);
    functionArg(onReadable, 'onReadable');
    return this.syscall({ syscall: 'poll', fd }, () => {
      const file = this.machine.file(fd);
      // epoll refuses files without a poll method (VFIO fds have none).
      if (file.kind !== 'eventfd') throw new Errno('EPERM');
      const poller = new FakePoller(file.eventfd, onReadable, () => this.pollers.delete(poller));
      this.pollers.add(poller);
      return poller;
    });
  }

  watchEventfds(fds: readonly number[], onWake: EventfdsWake): Poller {
    if (!Array.isArray(fds)) throw Object.assign(new TypeError('The "fds" argument must be an array'), { code: 'ERR_INVALID_ARG_TYPE' });
    fds.forEach((fd, i) => integerArg(fd, `fds[${i}]`, 0, INT32_MAX));
    functionArg(onWake, 'onWake');
    return this.syscall({ syscall: 'watchEventfds' }, () => {
      const eventfds: FakeEventfd[] = [];
      for (const fd of fds) {
        const file = this.machine.file(fd);
        // epoll_ctl: EPERM for files without a poll method, EEXIST for an fd added twice.
        if (file.kind !== 'eventfd') throw new Errno('EPERM');
        if (eventfds.includes(file.eventfd)) throw new Errno('EEXIST');
        eventfds.push(file.eventfd);
      }
      const read = (i: number): bigint => this.syscall({ syscall: 'eventfdRead', fd: fds[i] }, () => eventfds[i]!.read());
      const watcher = new FakeEventfdWatcher(eventfds, onWake, read, () => this.pollers.delete(watcher));
      this.pollers.add(watcher);
      return watcher;
    });
  }

  // ---- internals ----

  /** vfio-pci registered the device: it gets a cdev index, and a node when the kernel has cdevs. */
  private registerCdev(device: FakeDevice): void {
    const name = this.machine.iommufd.cdevs.register(device);
    if (this.options.deviceCdevs) this.sysfs.addCdev(device.address, name);
  }

  /** Records the call, applies a planned fault, and maps model refusals to VfioErrors. */
  private syscall<T>(call: FakeCall, body: () => T, onFault?: () => void): T {
    this.calls.push(call);
    const name = SYSCALL_NAME[call.syscall] ?? call.syscall;
    const path = call.path ?? (call.fd !== undefined ? this.machine.fds.get(call.fd)?.path : undefined);
    const errno = this.faults.check({ syscall: call.syscall, request: call.request, path });
    if (errno) {
      onFault?.();
      throw kernelError(errno, name);
    }
    return asSyscall(name, body);
  }

  /** The data session behind `fd`; other files are not modelled for read/write (EINVAL). */
  private streamFile(fd: number): FakeMigrationFile {
    const file = this.machine.file(fd);
    if (file.kind !== 'migration') throw new Errno('EINVAL');
    return file.migration;
  }

  private ioArgs(fd: number, buffer: Uint8Array, offset: bigint): bigint {
    fdArg(fd);
    bytesArg(buffer, 'buffer');
    return uint64Arg(offset, 'offset', OFF_T_MAX);
  }

  private regionIo(fd: number, buffer: Uint8Array, at: bigint, write: boolean): number {
    const file = this.machine.file(fd);
    // An eventfd cannot seek; container and group files have no read/write.
    if (file.kind === 'eventfd') throw new Errno('ESPIPE');
    if (file.kind !== 'device') throw new Errno('EINVAL');
    checkAccess(file.file.cdev);
    return regionRw(file.file.device, Number(at >> VFIO_PCI_OFFSET_SHIFT), Number(at & VFIO_PCI_OFFSET_MASK), buffer, write);
  }
}
