/** The PCI device and IOMMU group objects that list, bind and unbind report (list.ts deviceJson, groupJson). */
import { arrayOf, boolean, integer, nullable, pciAddress, record, string } from './json-schema';

export const deviceSchema = record({
  address: pciAddress,
  vendor: integer,
  device: integer,
  vendorDevice: { type: 'string', pattern: '^[0-9a-f]{4}:[0-9a-f]{4}$' },
  class: integer,
  className: string,
  driver: nullable(string),
  iommuGroup: nullable(integer),
  cdev: nullable({ type: 'string', pattern: '^(noiommu-)?vfio[0-9]+$' }),
}, 'a PCI device as sysfs describes it; cdev is its VFIO device cdev (vfioN) while on a VFIO driver of a kernel with cdevs');

export const groupSchema = record({
  id: integer,
  node: nullable(string),
  viable: boolean,
  blocking: arrayOf(pciAddress),
  devices: arrayOf(deviceSchema),
}, 'an IOMMU group: node is /dev/vfio/N once a device is on vfio-pci; viable when no device is bound to a driver that claims DMA (blocking lists those)');
