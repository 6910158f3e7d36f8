/** `vfio bind --json` and `vfio unbind --json`: one entry per device, and its IOMMU group afterwards. */
import { deviceSchema, groupSchema } from './device';
import { arrayOf, boolean, DRAFT, nullable, pciAddress, record, string, type JsonSchema } from './json-schema';

export const bindingSchema: JsonSchema = {
  $schema: DRAFT,
  $id: 'vfio-ioctls/cli/binding.json',
  title: 'vfio bind --json, vfio unbind --json',
  ...record({
    devices: arrayOf(record({
      address: pciAddress,
      before: nullable(string),
      after: nullable(string),
      changed: boolean,
      note: nullable(string),
      record: nullable(record({ driver: nullable(string) }, 'bind: the driver recorded for unbind; unbind: the record it gave the device back by')),
      device: deviceSchema,
    })),
    group: nullable(groupSchema),
  }),
};
