import { readdirSync } from 'node:fs';

/**
 * The VFIO device cdev of a device, from its sysfs directory
 * (/sys/bus/pci/devices/ADDR, or /sys/bus/mdev/devices/UUID for an mdev):
 * the name of the entry in its vfio-dev/ ('vfio3'; 'noiommu-vfio0' in
 * no-IOMMU mode), which is also its node's name under /dev/vfio/devices/.
 * Undefined when the kernel has no cdevs (CONFIG_VFIO_DEVICE_CDEV) or the
 * device is not bound to a VFIO driver.
 */
export function cdevOf(deviceDir: string): string | undefined {
  let entries: string[];
  try {
    entries = readdirSync(`${deviceDir}/vfio-dev`);
  } catch {
    return undefined;
  }
  return entries.find((name) => /^(noiommu-)?vfio\d+$/.test(name));
}
