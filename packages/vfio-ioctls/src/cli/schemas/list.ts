/** `vfio list --json`. */
import { groupSchema } from './device';
import { arrayOf, boolean, DRAFT, record, string, type JsonSchema } from './json-schema';

export const listSchema: JsonSchema = {
  $schema: DRAFT,
  $id: 'vfio-ioctls/cli/list.json',
  title: 'vfio list --json',
  ...record({
    iommufd: record({ available: boolean, node: string }, 'whether the kernel has iommufd (/dev/iommu), for devices with a cdev'),
    groups: arrayOf(groupSchema),
  }),
};
