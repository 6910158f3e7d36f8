import { readdirSync } from 'node:fs';

/**
 * The VFIO device cdev of a PCI device, from sysfs: the name of the entry
 * in /sys/bus/pci/devices/ADDR/vfio-dev/ ('vfio3'; 'noiommu-vfio0' in
 * no-IOMMU mode), which is also its node's name under /dev/vfio/devices/.
 * Undefined when the kernel has no cdevs (CONFIG_VFIO_DEVICE_CDEV) or the
 * device is not bound to a VFIO driver.
 */
export function cdevOf(address: string, sysfsRoot: string): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(`${sysfsRoot}/bus/pci/devices/${address}/vfio-dev`);
  } catch {
    return undefined;
  }
  return entries.find((name) => /^(noiommu-)?vfio\d+$/.test(name));
}
