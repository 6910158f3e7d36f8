import { constants as fsConstants } from 'node:fs';
import { bindings as b, cString, decodeAnswer, encodeArg, int32Arg } from '../../abi/structs';
import { Container } from './container';
import { kernelCall, VfioContext, type VfioOptions } from '../../core/context';
import type { Device } from '../../device/device';
import { blocksGroup, groupDevices, groupOf, groupOfSysfsPath, type PciDeviceInfo } from '../../discovery/sysfs';
import { VfioError } from '../../core/errors';
import { FdHandle, runAll } from '../../core/handle';
import { checkBoolean, checkInstance, checkInteger, checkOptions, checkString, checkUuid, parsePciAddress, rangeError, typeError } from '../../core/validate';

/**
 * Turns a device fd of this group into a Device; installed by open.ts. The
 * IOMMU layer does not import the device layer (DESIGN.md), so the group
 * gets its device factory from the layer above both.
 */
let wrapDevice: ((fd: number, name: string, group: Group) => Device) | undefined;

/** @internal open.ts installs the factory of group.openDevice(). */
export function installDeviceWrapper(wrap: (fd: number, name: string, group: Group) => Device): void {
  wrapDevice = wrap;
}

/** What VFIO_GROUP_GET_STATUS reports. */
export interface GroupStatus {
  /** Every device of the group is bound to vfio-pci (or unbound): the group can be used. */
  viable: boolean;
  /** The group is attached to a container. */
  containerSet: boolean;
  /** The raw VFIO_GROUP_FLAGS_* bits. */
  flags: number;
}

/**
 * An IOMMU group (/dev/vfio/N): the unit the IOMMU isolates, attached to a
 * container before its devices can be opened. Several devices of one group
 * may be open at once; close() closes them first, then detaches the group
 * from its container, then closes the group node.
 */
export class Group extends FdHandle {
  /** Where it was opened. */
  readonly context: VfioContext;
  /** The group number. */
  readonly id: number;
  /** The node it was opened from. */
  readonly path: string;
  #container: Container | undefined;
  /**
   * Held weakly, so that a device the program dropped (while keeping the
   * group) still reaches the FinalizationRegistry safety net.
   */
  readonly #devices = new Set<WeakRef<Device>>();
  /**
   * @internal Set by the Device.open registry: runs when the last device
   * closes, so a shared group lives exactly as long as its devices.
   */
  whenUnused: (() => void) | undefined;
  /** @internal Set by the Device.open registry: runs once the group is closed. */
  whenClosed: (() => void) | undefined;

  /** A no-IOMMU group (/dev/vfio/noiommu-N): its container gets the VFIO_NOIOMMU_IOMMU type and maps nothing. */
  readonly noiommu: boolean;

  private constructor(context: VfioContext, id: number, fd: number, noiommu: boolean) {
    super(context.backend, fd, `group ${noiommu ? noiommuPath(context, id) : context.groupPath(id)}`);
    this.noiommu = noiommu;
    this.context = context;
    this.id = id;
    this.path = noiommu ? noiommuPath(context, id) : context.groupPath(id);
  }

  /**
   * Opens an IOMMU group.
   * @param group - the group number, a PCI address ('0000:00:03.0') or a
   *   device's sysfs path ('/sys/bus/pci/devices/0000:00:03.0') whose group is meant.
   * @param options.noiommu - open the no-IOMMU group node (/dev/vfio/noiommu-N)
   *   of a kernel in no-IOMMU mode instead.
   * @throws VfioError from open(2): ENOENT (no such group or not bound to
   *   vfio-pci), EBUSY (already open), EACCES (permissions).
   */
  static open(group: number | string, options?: VfioOptions & { noiommu?: boolean }): Group {
    const opts = checkOptions('options', options);
    const noiommu = opts.noiommu === undefined ? false : checkBoolean('options.noiommu', opts.noiommu);
    const { noiommu: _ignored, ...vfioOptions } = opts;
    const context = VfioContext.from(vfioOptions);
    const id = resolveGroupId(group, context);
    const path = noiommu ? noiommuPath(context, id) : context.groupPath(id);
    const fd = kernelCall({ syscall: 'open', path }, () => context.backend.open(path, fsConstants.O_RDWR));
    return new Group(context, id, fd, noiommu);
  }

  protected errorContext(): { path: string } {
    return { path: this.path };
  }

  /** Queries VFIO_GROUP_GET_STATUS. */
  status(): GroupStatus {
    const fd = this.fd;
    const arg = encodeArg(b.vfio_group_status, {});
    this.ioctl('VFIO_GROUP_GET_STATUS', () => this.backend.ioctl(fd, b.VFIO_GROUP_GET_STATUS, arg));
    const { flags } = decodeAnswer(b.vfio_group_status, arg, 'VFIO_GROUP_GET_STATUS');
    return {
      viable: (flags & b.VFIO_GROUP_FLAGS_VIABLE) !== 0,
      containerSet: (flags & b.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
      flags,
    };
  }

  /** Whether the group can be used (see {@link GroupStatus.viable}). */
  get viable(): boolean {
    return this.status().viable;
  }

  /**
   * The devices of the group that are bound to a driver other than vfio-pci
   * (from sysfs). Unbound devices do not block: the kernel calls a group
   * viable when no driver has claimed DMA for it, and a PCI bridge without
   * a driver (the usual companion of devices behind it) claims nothing.
   */
  blockingDevices(): PciDeviceInfo[] {
    return groupDevices(this.id, { sysfsRoot: this.context.sysfsRoot }).filter((d) => blocksGroup(d.driver));
  }

  /**
   * Throws ERR_VFIO_GROUP_NOT_VIABLE, naming the devices to rebind, unless
   * the group is viable.
   */
  assertViable(): void {
    if (this.status().viable) return;
    let culprits = '';
    try {
      culprits = this.blockingDevices()
        .map((d) => `${d.address} (${d.driver ?? 'no driver'})`)
        .join(', ');
    } catch {
      // sysfs unreadable: the kernel's verdict alone still stands.
    }
    throw new VfioError(
      'ERR_VFIO_GROUP_NOT_VIABLE',
      `IOMMU group ${this.id} is not viable${culprits ? `: not bound to vfio-pci: ${culprits}` : ''}`,
      { operation: 'VFIO_GROUP_GET_STATUS', path: this.path },
    );
  }

  /** The container the group is attached to, if any. */
  get container(): Container | undefined {
    return this.#container;
  }

  /**
   * Attaches the group to `container` (VFIO_GROUP_SET_CONTAINER); the first
   * group also sets the container's IOMMU type. Attaching to the container
   * it is already attached to does nothing.
   * @throws VfioError ERR_VFIO_GROUP_NOT_VIABLE (lists the devices to rebind),
   *   ERR_VFIO_GROUP_ATTACHED when attached to another container, EPERM from
   *   VFIO_SET_IOMMU without interrupt remapping.
   */
  attach(container: Container): void {
    checkInstance('container', container, Container);
    if (container.context.backend !== this.backend) throw typeError('container', 'a Container of the same backend as the group', container);
    const fd = this.fd;
    const containerFd = container.fd;
    if (this.#container === container) return;
    if (this.#container) {
      throw new VfioError('ERR_VFIO_GROUP_ATTACHED', `group ${this.id} is already attached to another container`, {
        operation: 'VFIO_GROUP_SET_CONTAINER',
        path: this.path,
        hint: 'detach() it first',
      });
    }
    this.assertViable();
    this.ioctl('VFIO_GROUP_SET_CONTAINER', () => this.backend.ioctl(fd, b.VFIO_GROUP_SET_CONTAINER, int32Arg(containerFd)));
    this.#container = container;
    container.addGroup(this);
    if (container.iommuType !== undefined) return;
    try {
      container.setIommu(this.noiommu ? b.VFIO_NOIOMMU_IOMMU : undefined);
    } catch (error) {
      // Leave the group as it was: a group in a container without an IOMMU is of no use.
      try {
        this.detach();
      } catch {
        // The setIommu failure is the one worth reporting.
      }
      throw error;
    }
  }

  /**
   * Closes the group's devices, then detaches it from its container
   * (VFIO_GROUP_UNSET_CONTAINER). Does nothing when not attached.
   */
  detach(): void {
    this.assertOpen();
    const container = this.#container;
    if (!container) return;
    this.closeDevices();
    // The last group out unmaps everything first. VFIO's own container drops
    // the mappings with the IOMMU at UNSET_CONTAINER; iommufd's compatibility
    // container (IOMMUFD_VFIO_CONTAINER) keeps them in its IOAS, where a
    // device opened later would still reach memory the library had freed.
    if (container.groups().length === 1) container.unmapAll();
    const fd = this.fd;
    this.ioctl('VFIO_GROUP_UNSET_CONTAINER', () => this.backend.ioctl(fd, b.VFIO_GROUP_UNSET_CONTAINER));
    this.#container = undefined;
    container.removeGroup(this);
  }

  /**
   * @internal The detach of a close path: the group counts as detached even
   * if the ioctl fails, because closing the group fd (which follows) detaches
   * it in the kernel anyway.
   */
  detachForClose(): void {
    const container = this.#container;
    if (!container) return;
    try {
      this.detach();
    } finally {
      this.#container = undefined;
      container.removeGroup(this);
    }
  }

  /**
   * Opens a device of the group (VFIO_GROUP_GET_DEVICE_FD).
   * @param name - the device name, a PCI address for vfio-pci ('0000:00:03.0').
   * @throws VfioError ERR_VFIO_NOT_ATTACHED before attach(); ENODEV
   *   (no such device in the group); EBUSY (already open).
   */
  openDevice(name: string, options?: { vfToken?: string }): Device {
    checkString('name', name);
    const opts = checkOptions('options', options);
    const vfToken = opts.vfToken === undefined ? undefined : checkUuid('options.vfToken', opts.vfToken);
    const fd = this.fd;
    const deviceName = parsePciAddress(name) ?? name;
    if (!this.#container) {
      throw new VfioError('ERR_VFIO_NOT_ATTACHED', `group ${this.id} is not attached to a container`, {
        operation: 'VFIO_GROUP_GET_DEVICE_FD',
        path: this.path,
        device: deviceName,
        hint: 'attach(container) first',
      });
    }
    // Two handles on one device would each believe they own its interrupt
    // and region state; the kernel would allow it, the library does not.
    const open = this.devices().find((d) => d.name === deviceName);
    if (open) {
      throw new VfioError('ERR_VFIO_DEVICE_OPEN', `${deviceName} is already open in this process`, {
        operation: 'VFIO_GROUP_GET_DEVICE_FD',
        path: this.path,
        device: deviceName,
        hint: 'use the Device already open (group.devices()), or close it first',
      });
    }
    const deviceFd = kernelCall({ syscall: 'ioctl', operation: 'VFIO_GROUP_GET_DEVICE_FD', path: this.path, device: deviceName }, () =>
      // A VF of a PF that has a VF token is opened as 'ADDR vf_token=UUID'.
      this.backend.ioctl(fd, b.VFIO_GROUP_GET_DEVICE_FD, cString(vfToken === undefined ? deviceName : `${deviceName} vf_token=${vfToken}`)),
    );
    if (!wrapDevice) {
      this.backend.close(deviceFd);
      throw new VfioError('ERR_VFIO_PROTOCOL', 'Group.openDevice is not available: import the package entry point (vfio-ioctls), which installs it');
    }
    const device = wrapDevice(deviceFd, deviceName, this);
    this.#devices.add(new WeakRef(device));
    // iommufd's compatibility container adds a device's reserved regions (its MSI window) when the device opens, not when its group attaches.
    this.#container.devicesChanged();
    return device;
  }

  /** The open devices of the group. */
  devices(): readonly Device[] {
    const live: Device[] = [];
    for (const ref of this.#devices) {
      const device = ref.deref();
      if (device) live.push(device);
      else this.#devices.delete(ref);
    }
    return live;
  }

  /** @internal The IOMMU context devices of this group map DMA through. */
  get iommu(): Container | undefined {
    return this.#container;
  }

  /** @internal A device of this group closed. */
  deviceClosed(device: Device): void {
    const ref = [...this.#devices].find((r) => r.deref() === device);
    if (!ref) return;
    this.#devices.delete(ref);
    if (this.devices().length === 0) this.whenUnused?.();
  }

  /** @internal Closes every open device of the group (the first step of every teardown). */
  closeDevices(): void {
    runAll(this.devices().map((device) => () => device.close()));
  }

  protected override releaseDependents(): void {
    runAll([() => this.closeDevices(), () => this.detachForClose()]);
  }

  protected override afterClose(): void {
    this.whenClosed?.();
  }

  private ioctl<T>(operation: string, call: () => T): T {
    return kernelCall({ syscall: 'ioctl', operation, path: this.path }, call);
  }
}

function noiommuPath(context: VfioContext, id: number): string {
  return `${context.devRoot}/noiommu-${id}`;
}

function resolveGroupId(group: unknown, context: VfioContext): number {
  if (typeof group === 'number') return checkInteger('group', group, 0, 0x7fff_ffff);
  if (typeof group !== 'string') throw typeError('group', 'a group number, a PCI address or a sysfs device path', group);
  if (group.startsWith('/')) return groupOfSysfsPath(group.replace(/\/+$/, ''));
  if (parsePciAddress(group)) return groupOf(group, { sysfsRoot: context.sysfsRoot });
  if (/^\d+$/.test(group)) return checkInteger('group', Number(group), 0, 0x7fff_ffff);
  throw rangeError('group', `must be a group number, a PCI address or a sysfs device path, got ${JSON.stringify(group)}`, 'ERR_INVALID_ARG_VALUE');
}
