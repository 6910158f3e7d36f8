/**
 * The top of the library: Device.open, which resolves a device to its IOMMU
 * group and opens it through a shared group and container, and the wiring
 * that lets the device and IOMMU layers meet without importing each other.
 */
import { basename } from 'node:path';
import { VfioContext, type VfioOptions } from './core/context';
import { VfioError } from './core/errors';
import { checkInstance, checkOptions, checkString, parsePciAddress, rangeError } from './core/validate';
import { Device, installDeviceOpener } from './device/device';
import { groupOf, groupOfSysfsPath } from './discovery/sysfs';
import { Container } from './iommu/container/container';
import { Group, installDeviceWrapper } from './iommu/container/group';

/** Options of {@link Device.open}. */
export interface DeviceOpenOptions extends VfioOptions {
  /**
   * The container to attach the device's group to. Left out, the devices
   * opened with Device.open in one context share one container, closed with
   * the last of them.
   */
  container?: Container;
}

/** Device.open(): see its documentation in device/device.ts. */
export function openDevice(target: string, options?: DeviceOpenOptions): Device {
  checkString('target', target);
  const opts = checkOptions('options', options);
  const context = VfioContext.from(opts);
  if (opts.container !== undefined) checkInstance('options.container', opts.container, Container);
  let name: string;
  let groupId: number;
  if (target.startsWith('/')) {
    const path = target.replace(/\/+$/, '');
    name = basename(path);
    groupId = groupOfSysfsPath(path);
  } else {
    const address = parsePciAddress(target);
    if (!address) throw rangeError('target', `must be a PCI address or a sysfs path, got ${JSON.stringify(target)}`, 'ERR_INVALID_ARG_VALUE');
    name = address;
    groupId = groupOf(address, { sysfsRoot: context.sysfsRoot });
  }
  return openSharedDevice(context, name, groupId, opts.container);
}

installDeviceOpener(openDevice);
// The public Device and Group are taken from here, so that whoever holds them has the wiring installed.
export { Device, Group };
installDeviceWrapper((fd, name, group) => Device.adopt(fd, { context: group.context, name, owner: group, group }));

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

const sharedByContext = new WeakMap<VfioContext, Shared>();

function sharedOf(context: VfioContext): Shared {
  let shared = sharedByContext.get(context);
  if (!shared) sharedByContext.set(context, (shared = { container: undefined, groups: new Map() }));
  return shared;
}

/** Opens `name` in group `groupId`, opening or reusing the group and a container. */
function openSharedDevice(context: VfioContext, name: string, groupId: number, container?: Container): Device {
  const shared = sharedOf(context);
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
    return group.openDevice(name);
  }
  const created: (Group | Container)[] = [];
  try {
    const newGroup = Group.open(groupId, context);
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
    const device = newGroup.openDevice(name);
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
