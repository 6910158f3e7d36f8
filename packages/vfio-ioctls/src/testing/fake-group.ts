import {
  scalarCodec, vfio_group_status,
  VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd, pointerArg, writeBack } from './abi';
import { Errno } from './errno';
import type { FakeContainer } from './fake-container';
import type { FakeDevice } from './fake-device';

/** Drivers that leave a group viable: vfio-pci itself, and those the kernel trusts not to DMA (pci-stub, pcieport). */
const VIABLE_DRIVERS = new Set(['vfio-pci', 'pci-stub', 'pcieport']);

export interface GroupIoctlContext {
  /** The container behind an fd (EBADF when no such fd, EBADFD when it is not a container). */
  containerOfFd(fd: number): FakeContainer;
  /** Opens a device file and returns its new fd. */
  openDevice(device: FakeDevice, group: FakeGroup): number;
}

/**
 * /dev/vfio/N. Linux lets the group file be open once at a time, and each
 * device fd holds a reference to it: closing the group fd while devices are
 * open defers the release (and the container detach) until they close.
 */
export class FakeGroup {
  readonly devices: FakeDevice[] = [];
  container: FakeContainer | null = null;
  /** The group file exists (opened and not yet released). */
  opened = false;
  /** The group's own fd is open. */
  fdOpen = false;
  /** Device files holding the group file. */
  deviceFiles = 0;
  /** Devices of the group bound to an iommufd through their cdevs (vfio_device_block_group). */
  cdevBound = 0;

  constructor(readonly id: number) {}

  /** Every device is bound to vfio-pci, a harmless driver, or nothing. */
  get viable(): boolean {
    return this.devices.every((d) => d.driver === null || VIABLE_DRIVERS.has(d.driver));
  }

  open(): void {
    if (this.cdevBound > 0 || this.opened) throw new Errno('EBUSY');
    this.opened = true;
    this.fdOpen = true;
  }

  closeFd(): void {
    this.fdOpen = false;
    this.releaseIfUnused();
  }

  deviceFileClosed(): void {
    this.deviceFiles--;
    this.releaseIfUnused();
  }

  ioctl(request: number, arg: number | Uint8Array | undefined, ctx: GroupIoctlContext): number {
    switch (request) {
      case VFIO_GROUP_GET_STATUS: return this.getStatus(pointerArg(arg));
      case VFIO_GROUP_SET_CONTAINER: return this.setContainer(pointerArg(arg), ctx);
      case VFIO_GROUP_UNSET_CONTAINER: return this.unsetContainer();
      case VFIO_GROUP_GET_DEVICE_FD: return this.getDeviceFd(pointerArg(arg), ctx);
      default: throw new Errno('ENOTTY');
    }
  }

  private getStatus(bytes: Uint8Array): number {
    const minsz = offsetOfEnd(vfio_group_status, 'flags');
    const status = decodeFixed(vfio_group_status, bytes);
    checkArgsz(bytes, status.argsz, minsz);
    let flags = 0;
    if (this.container) flags = VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    else if (this.viable) flags = VFIO_GROUP_FLAGS_VIABLE;
    writeBack(vfio_group_status, { argsz: status.argsz, flags }, bytes, minsz);
    return 0;
  }

  private setContainer(bytes: Uint8Array, ctx: GroupIoctlContext): number {
    const fdCodec = scalarCodec('s32');
    if (bytes.length < fdCodec.size) throw new Errno('EFAULT');
    const container = ctx.containerOfFd(Number(fdCodec.decode(bytes, 0)));
    if (this.container) throw new Errno('EINVAL');
    // Claiming DMA ownership fails while a device is bound to a DMA-capable kernel driver.
    if (!this.viable) throw new Errno('EPERM');
    container.attach(this);
    this.container = container;
    return 0;
  }

  private unsetContainer(): number {
    if (!this.container) throw new Errno('EINVAL');
    if (this.deviceFiles > 0) throw new Errno('EBUSY');
    this.detach();
    return 0;
  }

  private getDeviceFd(bytes: Uint8Array, ctx: GroupIoctlContext): number {
    const end = bytes.indexOf(0);
    if (end < 0) throw new Errno('EFAULT');
    const name = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
    // Only devices bound to vfio-pci are VFIO devices of the group.
    const device = this.devices.find((d) => d.address === name && d.driver === 'vfio-pci');
    if (!device) throw new Errno('ENODEV');
    if (!this.container || this.container.iommuType === 0) throw new Errno('EINVAL');
    const fd = ctx.openDevice(device, this);
    this.deviceFiles++;
    return fd;
  }

  private releaseIfUnused(): void {
    if (this.fdOpen || this.deviceFiles > 0 || !this.opened) return;
    this.opened = false;
    if (this.container) this.detach();
  }

  private detach(): void {
    this.container!.detach(this);
    this.container = null;
  }
}
