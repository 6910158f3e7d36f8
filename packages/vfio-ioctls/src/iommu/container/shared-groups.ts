import type { VfioContext } from '../../core/context';
import { VfioError } from '../../core/errors';
import type { Device } from '../../device/device';
import { Container } from './container';
import { Group } from './group';

/**
 * The groups and the container that Device.open shares per context. A group
 * node can be open only once, so a second device of a group must reuse the
 * first one's group; and the group must stay attached until its last device
 * closes (rust-vmm's vfio-ioctls detached it with the first).
 *
 * Held weakly: the devices keep their group (and it its container) alive,
 * so when the program drops every device without closing it, the whole set
 * becomes garbage and the safety net closes each fd.
 */
interface Shared {
  container: WeakRef<Container> | undefined;
  groups: Map<number, WeakRef<Group>>;
}

const sharedByContext = new WeakMap<VfioContext, { normal: Shared; noiommu: Shared }>();

function sharedOf(context: VfioContext, noiommu: boolean): Shared {
  let shared = sharedByContext.get(context);
  if (!shared) {
    shared = { normal: { container: undefined, groups: new Map() }, noiommu: { container: undefined, groups: new Map() } };
    sharedByContext.set(context, shared);
  }
  return noiommu ? shared.noiommu : shared.normal;
}

function contextOptions(context: VfioContext) {
  return { backend: context.backend, devRoot: context.devRoot, sysfsRoot: context.sysfsRoot, iommufdPath: context.iommufdPath };
}

/**
 * Device.open through the legacy container: opens `name` in group
 * `groupId`, opening or reusing the group and a container.
 */
export function openSharedDevice(context: VfioContext, name: string, groupId: number, options: { container?: Container; vfToken?: string; noiommu?: boolean } = {}): Device {
  const { container, vfToken, noiommu = false } = options;
  // A no-IOMMU group and a normal one never share a container (their IOMMU types differ).
  const shared = sharedOf(context, noiommu);
  let group = shared.groups.get(groupId)?.deref();
  if (!group || group.closed) {
    shared.groups.delete(groupId);
    group = undefined;
  }
  if (group) {
    if (container && group.container !== container) {
      throw new VfioError('ERR_VFIO_GROUP_ATTACHED', `group ${groupId} is already attached to another container by an open device`, {
        path: group.path,
        device: name,
        hint: 'open every device of a group with the same container',
      });
    }
    return group.openDevice(name, { vfToken });
  }
  const created: (Group | Container)[] = [];
  try {
    const newGroup = Group.open(groupId, { ...contextOptions(context), noiommu });
    created.push(newGroup);
    let target = container;
    if (!target) {
      target = shared.container?.deref();
      if (!target || target.closed) {
        target = Container.open(context);
        created.push(target);
        shared.container = new WeakRef(target);
      }
    }
    newGroup.attach(target);
    const device = newGroup.openDevice(name, { vfToken });
    shared.groups.set(groupId, new WeakRef(newGroup));
    newGroup.whenUnused = () => newGroup.close();
    newGroup.whenClosed = () => groupClosed(shared, groupId, newGroup);
    return device;
  } catch (error) {
    // Undo in the kernel's order: the group (detaching it) before the container.
    for (const handle of created) {
      try {
        handle.close();
      } catch {
        // The open failure is the one worth reporting.
      }
    }
    if (shared.container?.deref()?.closed) shared.container = undefined;
    throw error;
  }
}

function groupClosed(shared: Shared, groupId: number, group: Group): void {
  if (shared.groups.get(groupId)?.deref() === group) shared.groups.delete(groupId);
  const container = shared.container?.deref();
  if (container && !container.closed && container.groups().length === 0) {
    shared.container = undefined;
    container.close();
  }
}
