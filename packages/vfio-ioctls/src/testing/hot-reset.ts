import {
  scalarCodec, vfio_pci_dependent_device, vfio_pci_hot_reset, vfio_pci_hot_reset_info,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID, VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd, writeBack } from './abi';
import { Errno } from './errno';
import type { FakeDevice } from './fake-device';

export interface HotResetContext {
  /** The device at a PCI address, if the fake has it. */
  deviceAt(address: string): FakeDevice | undefined;
  /** The group number behind an open group fd (EBADF for no fd, EINVAL for another kind of fd). */
  groupOfFd(fd: number): number;
}

/**
 * For a device opened through its cdev, ownership is proven by the iommufd
 * it is bound to: vfio_iommufd_get_dev_id answers a device id (bound to that
 * iommufd), 'owned' (not bound, but its group is) or 'not-owned'.
 */
export interface CdevOwnership {
  devid(device: FakeDevice | undefined): number | 'owned' | 'not-owned';
}

// VFIO_PCI_DEVID_OWNED (0) and VFIO_PCI_DEVID_NOT_OWNED (-1) as the u32 the kernel writes.
const DEVID_OWNED = 0;
const DEVID_NOT_OWNED = 0xffff_ffff;

/**
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the devices a bus/slot reset would
 * also reset, by group number, or by device id (FLAG_DEV_ID) when asked
 * through a cdev (`cdev` given).
 */
export function hotResetInfo(device: FakeDevice, bytes: Uint8Array, ctx: HotResetContext, cdev?: CdevOwnership): number {
  const minsz = offsetOfEnd(vfio_pci_hot_reset_info, 'count');
  const hdr = decodeFixed(vfio_pci_hot_reset_info, bytes);
  checkArgsz(bytes, hdr.argsz, minsz);
  const dependents = device.spec.hotResetDependents;
  // No reset that reaches beyond the function (a device on the root bus).
  if (!dependents) throw new Errno('ENODEV');
  let flags = 0;
  const devices = dependents.map((address) => {
    if (!cdev) return { group_id: ctx.deviceAt(address)?.group ?? 0, ...splitAddress(address) };
    const id = cdev.devid(ctx.deviceAt(address));
    return { devid: id === 'owned' ? DEVID_OWNED : id === 'not-owned' ? DEVID_NOT_OWNED : id, ...splitAddress(address) };
  });
  if (cdev) {
    flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    if (devices.some((d) => 'devid' in d && d.devid === DEVID_NOT_OWNED)) flags &= ~VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
  }
  const needed = vfio_pci_hot_reset_info.size + devices.length * vfio_pci_dependent_device.size;
  if (hdr.argsz < needed) {
    // Too small: the kernel still reports how many devices there are.
    writeBack(vfio_pci_hot_reset_info, { argsz: hdr.argsz, flags: 0, count: devices.length }, bytes, minsz);
    throw new Errno('ENOSPC');
  }
  writeBack(vfio_pci_hot_reset_info, { argsz: hdr.argsz, flags, count: devices.length, devices }, bytes, needed);
  return 0;
}

/**
 * VFIO_DEVICE_PCI_HOT_RESET: the caller proves ownership of every affected
 * group by passing the group fds, or, for a device opened through its cdev
 * (`cdev` given), by an empty array and the iommufd it is bound to; then
 * every affected device is reset.
 */
export function hotReset(device: FakeDevice, bytes: Uint8Array, ctx: HotResetContext, cdev?: CdevOwnership): number {
  const minsz = offsetOfEnd(vfio_pci_hot_reset, 'count');
  const hdr = decodeFixed(vfio_pci_hot_reset, bytes);
  checkArgsz(bytes, hdr.argsz, minsz);
  // A zero-length array is for cdev-opened devices only, and only it is.
  if (hdr.flags !== 0 || (hdr.count !== 0) === !!cdev) throw new Errno('EINVAL');
  const dependents = device.spec.hotResetDependents;
  if (!dependents) throw new Errno('ENODEV');
  if (cdev) {
    const vfioDevices = dependents.map((a) => ctx.deviceAt(a)).filter((d): d is FakeDevice => d?.driver === 'vfio-pci');
    if (vfioDevices.some((d) => cdev.devid(d) === 'not-owned')) throw new Errno('EINVAL');
    for (const d of vfioDevices) d.didReset();
    return 0;
  }
  const at = vfio_pci_hot_reset.offsetOf('group_fds');
  const fdCodec = scalarCodec('s32');
  if (hdr.argsz - minsz < hdr.count * fdCodec.size) throw new Errno('EINVAL');
  if (bytes.length < at + hdr.count * fdCodec.size) throw new Errno('EFAULT');
  const owned = new Set<number>();
  for (let i = 0; i < hdr.count; i++) owned.add(ctx.groupOfFd(Number(fdCodec.decode(bytes, at + i * fdCodec.size))));
  const affected = dependents.map((a) => ctx.deviceAt(a)).filter((d): d is FakeDevice => d !== undefined);
  if (affected.some((d) => !owned.has(d.group))) throw new Errno('EINVAL');
  for (const d of affected) d.didReset();
  return 0;
}

/** '0000:01:00.2' -> segment 0, bus 1, devfn (slot << 3 | function). */
function splitAddress(address: string): { segment: number; bus: number; devfn: number } {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i.exec(address);
  if (!m) throw new RangeError(`not a PCI address: ${address}`);
  return { segment: parseInt(m[1], 16), bus: parseInt(m[2], 16), devfn: (parseInt(m[3], 16) << 3) | parseInt(m[4], 10) };
}
