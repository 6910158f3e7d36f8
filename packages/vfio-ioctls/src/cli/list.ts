/** `vfio list`: every IOMMU group, its devices, and whether VFIO can use it. */
import { blocksGroup, isVfioDriver, listIommuGroups, type PciDeviceInfo } from '../index';
import { usageError, type CommandEnv } from './env';
import { className, hex, json, table } from './format';

export const listUsage = `vfio list [--json]
  Lists the IOMMU groups with their devices (address, vendor:device, class,
  driver), the group's /dev/vfio node (made once a device is on vfio-pci),
  and whether the group is viable: none of its devices is bound to a driver
  that claims DMA (anything but vfio-pci, pci-stub, pcieport, or no driver).`;

/** A device as `list --json` and `bind --json` report it. */
export function deviceJson(d: PciDeviceInfo) {
  return {
    address: d.address,
    vendor: d.vendor,
    device: d.device,
    vendorDevice: `${hex(d.vendor, 4)}:${hex(d.device, 4)}`,
    class: d.class,
    className: className(d.class),
    driver: d.driver ?? null,
    iommuGroup: d.iommuGroup ?? null,
  };
}

export function list(env: CommandEnv): void {
  if (env.args.length > 0) throw usageError(`list: unexpected argument '${env.args[0]}'`);
  const groups = listIommuGroups({ sysfsRoot: env.sysfsRoot }).map((g) => {
    const blocking = g.devices.filter((d) => blocksGroup(d.driver));
    return {
      id: g.id,
      // The kernel makes the group node once a device of the group is bound to vfio-pci.
      node: g.devices.some((d) => isVfioDriver(d.driver)) ? `${env.devRoot}/${g.id}` : null,
      viable: blocking.length === 0,
      blocking: blocking.map((d) => d.address),
      devices: g.devices.map(deviceJson),
    };
  });
  if (env.json) {
    env.stdout.write(`${json({ groups })}\n`);
    return;
  }
  if (groups.length === 0) {
    env.stdout.write(`no IOMMU groups in ${env.sysfsRoot}/kernel/iommu_groups: is the IOMMU on (intel_iommu=on or amd_iommu=on)?\n`);
    return;
  }
  // One table for every device, so that columns line up across groups.
  const rows = table(groups.flatMap((g) => g.devices.map((d) => [d.address, d.vendorDevice, hex(d.class, 6), d.className, d.driver ?? '(no driver)'])), '  ');
  const lines: string[] = [];
  for (const g of groups) {
    const verdict = g.viable ? 'viable' : `not viable: ${g.blocking.length === 1 ? 'bind' : 'bind all of'} ${g.blocking.join(', ')} to vfio-pci`;
    lines.push(`IOMMU group ${g.id}  ${g.node ?? '(no node)'}  ${verdict}`, ...rows.splice(0, g.devices.length));
  }
  env.stdout.write(`${lines.join('\n')}\n`);
}
