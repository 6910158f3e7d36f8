/** `vfio info --json`. */
import { arrayOf, boolean, DRAFT, hex64, integer, nullable, pciAddress, record, string, type JsonSchema } from './json-schema';

const names = arrayOf(string);

const sriov = nullable({
  anyOf: [
    record({ role: { enum: ['pf'] }, totalVfs: integer, numVfs: integer, vfs: arrayOf(pciAddress) }, 'a physical function and its enabled VFs'),
    record({ role: { enum: ['vf'] }, pf: pciAddress, index: nullable(integer) }, 'a virtual function, the index-th of its PF'),
  ],
});

export const infoSchema: JsonSchema = {
  $schema: DRAFT,
  $id: 'vfio-ioctls/cli/info.json',
  title: 'vfio info --json',
  ...record({
    address: pciAddress,
    vendorDevice: { type: 'string', pattern: '^[0-9a-f]{4}:[0-9a-f]{4}$' },
    class: integer,
    driver: string,
    cdev: nullable(string),
    group: record({ id: nullable(integer), node: nullable(string) }),
    sriov,
    device: record({ flags: integer, flagNames: names, numRegions: integer, numIrqs: integer }),
    features: nullable(record({
      supported: arrayOf(record({ name: string, get: boolean, set: boolean })),
      migration: nullable(record({ stopCopy: boolean, p2p: boolean, preCopy: boolean, flags: hex64 })),
      dmaLogging: boolean,
      lowPower: boolean,
      lowPowerWakeup: boolean,
      busMaster: boolean,
      vfToken: boolean,
    }, 'what VFIO_DEVICE_FEATURE offers (names are the uAPI\'s VFIO_DEVICE_FEATURE_<name>); null when the kernel refused to be asked')),
    regions: arrayOf(record({
      index: integer,
      name: string,
      size: hex64,
      offset: hex64,
      flags: integer,
      flagNames: names,
      sparseMmap: nullable(arrayOf(record({ offset: hex64, size: hex64 }))),
      type: nullable(record({ type: integer, subtype: integer })),
      msixMappable: boolean,
      capabilities: names,
    })),
    irqs: arrayOf(record({ index: integer, name: string, count: integer, flags: integer, flagNames: names })),
    iommu: record({
      backend: nullable({ enum: ['container', 'iommufd', 'noiommu'] }),
      pageSizes: hex64,
      iovaRanges: arrayOf(record({ start: hex64, end: hex64 })),
      container: nullable(record({ apiVersion: integer, type: nullable(string), flags: integer, dmaAvail: nullable(integer) })),
      hardware: nullable(record({ type: string, capabilities: hex64, dirtyTracking: boolean, maxPasidLog2: integer })),
    }),
    hotReset: record({
      available: boolean,
      devices: arrayOf(record({ address: pciAddress, groupId: integer, devId: nullable(integer) })),
      reason: nullable(string),
    }),
  }),
};
