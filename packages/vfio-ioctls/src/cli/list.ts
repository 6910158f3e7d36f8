/** `vfio list`: every IOMMU group, its devices, and whether VFIO can use it. */
import { existsSync } from 'node:fs';
import { cdevOf } from '../discovery/cdev';
import { blocksGroup, isVfioDriver, listIommuGroups, pciDeviceDir, type PciDeviceInfo } from '../discovery/sysfs';
import { usageError, type Command, type CommandEnv } from './command';
import { className, hex, json, table } from './format';
import { listSchema } from './schemas/list';
import { requireSysfs } from './target';

/**
 * The device's VFIO cdev ('vfio3'), when the kernel made a node for it:
 * from Linux 6.2 sysfs lists vfio-dev/vfioN for every device on vfio-pci,
 * but only a kernel with CONFIG_VFIO_DEVICE_CDEV gives it a `dev` number
 * (and /dev/vfio/devices/vfioN).
 */
export function deviceCdev(address: string, sysfsRoot: string): string | undefined {
  const dir = pciDeviceDir(sysfsRoot, address);
  const name = cdevOf(dir);
  return name !== undefined && existsSync(`${dir}/vfio-dev/${name}/dev`) ? name : undefined;
}

/** A device as `list --json`, `bind --json` and `unbind --json` report it. */
export function deviceJson(d: PciDeviceInfo, sysfsRoot: string) {
  return {
    address: d.address,
    vendor: d.vendor,
    device: d.device,
    vendorDevice: `${hex(d.vendor, 4)}:${hex(d.device, 4)}`,
    class: d.class,
    className: className(d.class),
    driver: d.driver ?? null,
    iommuGroup: d.iommuGroup ?? null,
    cdev: deviceCdev(d.address, sysfsRoot) ?? null,
  };
}

/**
 * The kernel registers iommufd as the misc device 'iommu' (/dev/iommu):
 * its sysfs entry says whether this kernel has it, without opening anything.
 */
export function iommufdAvailable(sysfsRoot: string): boolean {
  return existsSync(`${sysfsRoot}/class/misc/iommu`);
}

/** A group as `list --json` reports it: viable when no device in it is bound to a driver that claims DMA. */
export function groupJson(id: number, devices: PciDeviceInfo[], env: CommandEnv) {
  const blocking = devices.filter((d) => blocksGroup(d.driver));
  return {
    id,
    // The kernel makes the group node once a device of the group is bound to vfio-pci.
    node: devices.some((d) => isVfioDriver(d.driver)) ? `${env.devRoot}/${id}` : null,
    viable: blocking.length === 0,
    blocking: blocking.map((d) => d.address),
    devices: devices.map((d) => deviceJson(d, env.sysfsRoot)),
  };
}

function run(env: CommandEnv): void {
  if (env.args.length > 0) throw usageError(`list: unexpected argument '${env.args[0]}'`);
  requireSysfs(env);
  const groups = listIommuGroups({ sysfsRoot: env.sysfsRoot }).map((g) => groupJson(g.id, g.devices, env));
  const iommufd = { available: iommufdAvailable(env.sysfsRoot), node: iommufdNode(env) };
  if (env.json) {
    env.stdout.write(`${json({ iommufd, groups })}\n`);
    return;
  }
  const { style } = env;
  const lines = [iommufd.available
    ? `iommufd: ${style('green', 'available')} (${iommufd.node}): devices with a cdev can use it`
    : `iommufd: ${style('dim', 'not available')} (no ${env.sysfsRoot}/class/misc/iommu): devices go through the container`];
  if (groups.length === 0) {
    // Not an error: a machine with the IOMMU off has no groups, and this is the answer.
    lines.push(`no IOMMU groups in ${env.sysfsRoot}/kernel/iommu_groups: is the IOMMU on (intel_iommu=on or amd_iommu=on)?`);
    env.stdout.write(`${lines.join('\n')}\n`);
    return;
  }
  // One table for every device, so that columns line up across groups.
  const rows = table(groups.flatMap((g) => g.devices.map((d) => [
    d.address, d.vendorDevice, hex(d.class, 6), d.className, d.driver ?? '(no driver)', d.cdev ?? '',
  ])), '  ');
  for (const g of groups) {
    const verdict = g.viable
      ? style('green', 'viable')
      : style('yellow', `not viable: ${g.blocking.length === 1 ? 'bind' : 'bind all of'} ${g.blocking.join(', ')} to vfio-pci`);
    lines.push(`${style('bold', `IOMMU group ${g.id}`)}  ${g.node ?? '(no node)'}  ${verdict}`, ...rows.splice(0, g.devices.length));
  }
  env.stdout.write(`${lines.join('\n')}\n`);
}

/** /dev/iommu beside the VFIO nodes: '/dev/iommu' for the default '/dev/vfio'. */
function iommufdNode(env: CommandEnv): string {
  return `${env.devRoot.replace(/\/[^/]*$/, '') || ''}/iommu`;
}

export const listCommand: Command = {
  name: 'list',
  summary: 'IOMMU groups, their devices, drivers and cdevs, viability; iommufd',
  usage: 'vfio list',
  description: `Lists the IOMMU groups with their devices (address, vendor:device, class,
driver, and the VFIO cdev vfioN of a device on vfio-pci where the kernel has
cdevs), the group's /dev/vfio node (made once a device is on vfio-pci), and
whether the group is viable: none of its devices is bound to a driver that
claims DMA (anything but vfio-pci, pci-stub, pcieport, or no driver). The
first line says whether the kernel has iommufd (/dev/iommu). No IOMMU
groups is an answer, not an error (exit 0); a --sysfs-root without
bus/pci/devices is an error.`,
  schema: listSchema,
  run,
};
