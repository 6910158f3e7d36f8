/** The device `vfio doctor <address>` looks at, and its IOMMU group, read once. */
import { basename } from 'node:path';
import { cdevOf } from '../../discovery/cdev';
import { groupDevices, pciDevice, pciDeviceDir, type PciDeviceInfo } from '../../discovery/sysfs';
import type { DoctorContext } from './context';
import { noiommuMode } from './facts';

/** The device, or undefined when sysfs has no such address (or none was asked for). */
export function deviceInfo(ctx: DoctorContext): PciDeviceInfo | undefined {
  const address = ctx.options.address;
  if (address === undefined) return undefined;
  return ctx.once('device', () => {
    try {
      return pciDevice(address, { sysfsRoot: ctx.sys });
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT' && !ctx.exists(pciDeviceDir(ctx.sys, address))) return undefined;
      throw error;
    }
  });
}

export interface GroupFacts {
  id: number;
  /** 'vfio-noiommu' for a group VFIO made in no-IOMMU mode. */
  noiommu: boolean;
  /** Every device of the group, this one included. */
  members: PciDeviceInfo[];
  /** Its node: `${devRoot}/N`, or `${devRoot}/noiommu-N`. */
  node: string;
}

/**
 * The device's IOMMU group with its devices; undefined when it has none.
 * @throws VfioError ENOENT when its iommu_group link names a group sysfs lacks.
 */
export function groupFacts(ctx: DoctorContext): GroupFacts | undefined {
  const device = deviceInfo(ctx);
  if (device?.iommuGroup === undefined) return undefined;
  const id = device.iommuGroup;
  return ctx.once('group', () => {
    const members = groupDevices(id, { sysfsRoot: ctx.sys });
    const name = ctx.value(`${ctx.sys}/kernel/iommu_groups/${id}/name`);
    // The group's name says it; trees without one: no-IOMMU mode and no IOMMU behind the device.
    const noiommu = name === 'vfio-noiommu' || (name === undefined && noiommuMode(ctx) && !ctx.exists(`${device.sysfsPath}/iommu`));
    return { id, noiommu, members, node: `${ctx.options.devRoot}/${noiommu ? 'noiommu-' : ''}${id}` };
  });
}

/** The node of a device's cdev ('/dev/vfio/devices/vfio0'), undefined when it has none. */
export function cdevNode(ctx: DoctorContext, address: string): string | undefined {
  const name = cdevOf(pciDeviceDir(ctx.sys, address));
  return name && `${ctx.options.devRoot}/devices/${name}`;
}

/** The PCI address a sysfs link points to (physfn, a bus's device links). */
export function linkedAddress(ctx: DoctorContext, path: string): string | undefined {
  const target = ctx.link(path);
  return target && basename(target);
}

/** '0000:00:04.0 (e1000e)', '0000:00:1c.0 (no driver)'. */
export function withDriver(device: Pick<PciDeviceInfo, 'address' | 'driver'>): string {
  return `${device.address} (${device.driver ?? 'no driver'})`;
}
