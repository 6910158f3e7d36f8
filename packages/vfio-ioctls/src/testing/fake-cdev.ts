import {
  vfio_device_attach_iommufd_pt, vfio_device_bind_iommufd, vfio_device_detach_iommufd_pt,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_DEVICE_ATTACH_PASID, VFIO_DEVICE_BIND_FLAG_TOKEN, VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_DEVICE_DETACH_PASID, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_PCI_HOT_RESET,
} from 'vfio-bindings';
import { decodeFixed, offsetOfEnd, pointerArg, writeBack } from './abi';
import { deviceIoctl, type DeviceIoctlContext } from './device-ioctls';
import { Errno } from './errno';
import type { FakeDevice } from './fake-device';
import type { FakeBoundDevice, FakeIommufd } from './fake-iommufd';
import type { DeviceFile } from './fd-table';
import { hotReset, hotResetInfo, type CdevOwnership } from './hot-reset';
import { userSizeOf } from './ucmd';
import { userBytes } from './user-memory';
import type { FakeAddressSpace } from './fake-memory';

/** A device file opened through its cdev: no access until bound to an iommufd. */
export interface CdevState {
  bound: FakeBoundDevice | null;
}

export interface CdevContext extends DeviceIoctlContext {
  readonly memory: FakeAddressSpace;
  readonly noiommu: boolean;
  /** MSI isolation (interrupt remapping), which binding a device to iommufd requires. */
  readonly msiIsolated: boolean;
  /** The iommufd behind an fd: EBADF when no such fd, EBADFD for another kind of file. */
  iommufdOf(fd: number): FakeIommufd;
  /** Another iommufd, or a kernel driver, owns DMA of the device's group. */
  groupOwnedElsewhere(device: FakeDevice, ctx: FakeIommufd): boolean;
  /** The device's binding through any cdev file, if bound. */
  boundDevice(device: FakeDevice): FakeBoundDevice | undefined;
}

/**
 * The device cdevs (/dev/vfio/devices/vfioN): the index of each device
 * registered with vfio-pci, lowest free first as the kernel's ida hands
 * them out, and the node names.
 */
export class FakeCdevs {
  private readonly indexes = new Map<FakeDevice, number>();

  constructor(private readonly noiommu: boolean) {}

  register(device: FakeDevice): string {
    let index = 0;
    const taken = new Set(this.indexes.values());
    while (taken.has(index)) index++;
    this.indexes.set(device, index);
    return this.nameOf(device)!;
  }

  unregister(device: FakeDevice): string | undefined {
    const name = this.nameOf(device);
    this.indexes.delete(device);
    return name;
  }

  /** 'vfio3', or 'noiommu-vfio3' in no-IOMMU mode. */
  nameOf(device: FakeDevice): string | undefined {
    const index = this.indexes.get(device);
    return index === undefined ? undefined : `${this.noiommu ? 'noiommu-' : ''}vfio${index}`;
  }

  deviceNamed(name: string): FakeDevice | undefined {
    for (const device of this.indexes.keys()) if (this.nameOf(device) === name) return device;
    return undefined;
  }
}

/** ioctl(2) on a cdev device file (vfio_device_fops_unl_ioctl): everything but BIND_IOMMUFD waits for the bind. */
export function cdevIoctl(file: DeviceFile, cdev: CdevState, request: number, arg: number | Uint8Array | undefined, ctx: CdevContext): number {
  if (request === VFIO_DEVICE_BIND_IOMMUFD) return bind(file, cdev, pointerArg(arg), ctx);
  const bound = cdev.bound;
  if (!bound) throw new Errno('EINVAL');
  switch (request) {
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: return attach(bound, pointerArg(arg));
    case VFIO_DEVICE_DETACH_IOMMUFD_PT: return detach(bound, pointerArg(arg));
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: return hotResetInfo(file.device, pointerArg(arg), ctx, ownership(bound.ctx, ctx));
    case VFIO_DEVICE_PCI_HOT_RESET: return hotReset(file.device, pointerArg(arg), ctx, ownership(bound.ctx, ctx));
    default: return deviceIoctl(file.device, request, arg, ctx);
  }
}

/** read/write/mmap of a cdev file before the bind: EINVAL, as vfio_device_fops_* answer. */
export function checkAccess(cdev: CdevState | undefined): void {
  if (cdev && !cdev.bound) throw new Errno('EINVAL');
}

/** The last reference to a cdev file went: unbind (detaching first), and the group may be opened again. */
export function releaseCdev(file: DeviceFile, cdev: CdevState): FakeIommufd | undefined {
  const bound = cdev.bound;
  if (!bound) return undefined;
  cdev.bound = null;
  bound.ctx.unbind(bound);
  file.group.cdevBound--;
  return bound.ctx;
}

/** vfio_df_ioctl_bind_iommufd. */
function bind(file: DeviceFile, cdev: CdevState, bytes: Uint8Array, ctx: CdevContext): number {
  const argsz = userSizeOf(bytes);
  if (argsz < offsetOfEnd(vfio_device_bind_iommufd, 'out_devid')) throw new Errno('EINVAL');
  if (bytes.length < argsz) throw new Errno('EFAULT');
  for (let i = vfio_device_bind_iommufd.size; i < argsz; i++) if (bytes[i] !== 0) throw new Errno('E2BIG');
  const scratch = new Uint8Array(vfio_device_bind_iommufd.size);
  scratch.set(bytes.subarray(0, Math.min(argsz, scratch.length)));
  const cmd = vfio_device_bind_iommufd.decode(scratch);
  if (cmd.iommufd < 0 || cmd.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) throw new Errno('EINVAL');
  const group = file.group;
  // vfio_device_block_group: the group file and bound cdevs exclude each other.
  if (group.opened) throw new Errno('EBUSY');
  group.cdevBound++;
  try {
    if (cdev.bound) throw new Errno('EINVAL');
    if (cmd.flags & VFIO_DEVICE_BIND_FLAG_TOKEN) {
      userBytes(ctx.memory, cmd.token_uuid_ptr, 16, false);
      // vfio-pci accepts a VF token only for a PF or VF with SR-IOV set up, which no fake device is.
      throw new Errno('EINVAL');
    }
    const iommufd = ctx.iommufdOf(cmd.iommufd);
    // The cdev path cannot open a device twice.
    if (ctx.boundDevice(file.device)) throw new Errno('EINVAL');
    const bound = iommufd.bind(file.device, ctx.noiommu, ctx.groupOwnedElsewhere(file.device, iommufd), ctx.msiIsolated);
    try {
      writeBack(vfio_device_bind_iommufd, { ...cmd, out_devid: bound.id }, bytes, offsetOfEnd(vfio_device_bind_iommufd, 'out_devid'));
    } catch (error) {
      iommufd.unbind(bound);
      throw error;
    }
    cdev.bound = bound;
    return 0;
  } catch (error) {
    group.cdevBound--;
    throw error;
  }
}

/** vfio_df_ioctl_attach_pt: pt_id in, the HWPT id out. */
function attach(bound: FakeBoundDevice, bytes: Uint8Array): number {
  const minsz = offsetOfEnd(vfio_device_attach_iommufd_pt, 'pt_id');
  if (bytes.length < minsz) throw new Errno('EFAULT');
  const cmd = decodeFixed(vfio_device_attach_iommufd_pt, bytes);
  if (cmd.argsz < minsz) throw new Errno('EINVAL');
  if (cmd.flags & ~VFIO_DEVICE_ATTACH_PASID) throw new Errno('EINVAL');
  if (cmd.flags & VFIO_DEVICE_ATTACH_PASID) {
    if (cmd.argsz < vfio_device_attach_iommufd_pt.size) throw new Errno('EINVAL');
    if (bytes.length < vfio_device_attach_iommufd_pt.size) throw new Errno('EFAULT');
    // Auto domains are not PASID-compatible: iommufd refuses any existing page table with EINVAL.
    throw new Errno(bound.ctx.has(cmd.pt_id) ? 'EINVAL' : 'ENOENT');
  }
  // A no-IOMMU device is bound without a domain of its own on older kernels; 7.x attaches it to a software one.
  const ptId = bound.ctx.attach(bound, cmd.pt_id);
  try {
    writeBack(vfio_device_attach_iommufd_pt, { ...cmd, pt_id: ptId }, bytes, minsz);
  } catch (error) {
    bound.ctx.detach(bound);
    throw error;
  }
  return 0;
}

/** vfio_df_ioctl_detach_pt: detaching a device that is not attached succeeds. */
function detach(bound: FakeBoundDevice, bytes: Uint8Array): number {
  const minsz = offsetOfEnd(vfio_device_detach_iommufd_pt, 'flags');
  if (bytes.length < minsz) throw new Errno('EFAULT');
  const cmd = decodeFixed(vfio_device_detach_iommufd_pt, bytes);
  if (cmd.argsz < minsz) throw new Errno('EINVAL');
  if (cmd.flags & ~VFIO_DEVICE_DETACH_PASID) throw new Errno('EINVAL');
  if (cmd.flags & VFIO_DEVICE_DETACH_PASID) {
    if (cmd.argsz < vfio_device_detach_iommufd_pt.size) throw new Errno('EINVAL');
    if (bytes.length < vfio_device_detach_iommufd_pt.size) throw new Errno('EFAULT');
    return 0; // no PASID was attached
  }
  bound.ctx.detach(bound);
  return 0;
}

/** vfio_iommufd_get_dev_id against the caller's iommufd, for hot reset from a cdev. */
function ownership(iommufd: FakeIommufd, ctx: CdevContext): CdevOwnership {
  return {
    devid(device) {
      if (!device || device.driver !== 'vfio-pci') return 'not-owned';
      const bound = ctx.boundDevice(device);
      if (bound?.ctx === iommufd) return bound.id;
      return iommufd.devices().some((d) => d.device.group === device.group) ? 'owned' : 'not-owned';
    },
  };
}
