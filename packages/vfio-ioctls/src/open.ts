/**
 * The top of the library: Device.open, which resolves a device and opens it
 * through the IOMMU backend asked for (or the best one available), and the
 * wiring that lets the device and IOMMU layers meet without importing each
 * other.
 */
import { basename } from 'node:path';
import { VfioContext, vfioOptionKeys, vfioOptionsOf, type VfioOptions } from './core/context';
import { VfioError } from './core/errors';
import { checkInstance, checkOptions, checkString, checkUuid, parsePciAddress, rangeError } from './core/validate';
import { adoptDevice, Device, installCdevAdopter, installDeviceOpener } from './device/device';
import { cdevOf } from './discovery/cdev';
import { groupOf, groupOfSysfsPath, isVfioDriver, pciDevice, pciDeviceDir } from './discovery/sysfs';
import { Container } from './iommu/container/container';
import { Group, installDeviceWrapper } from './iommu/container/group';
import { openSharedDevice } from './iommu/container/shared-groups';
import { bindAndAttach, openBoundCdev } from './iommu/iommufd/cdev';
import type { IommuContext } from './iommu/context';
import { defaultIoas } from './iommu/iommufd/default-ioas';
import { Ioas, ioasPort } from './iommu/iommufd/ioas';
import { NoIommu } from './iommu/noiommu';

/** Which kernel interface Device.open uses for the device's IOMMU. */
export type IommuChoice = 'auto' | 'iommufd' | 'container' | 'noiommu';

/** Options of {@link Device.open}. */
export interface DeviceOpenOptions extends VfioOptions {
  /**
   * 'auto' (the default): iommufd with the device's cdev when the kernel has
   * both (/dev/iommu and /dev/vfio/devices/vfioN), the legacy container
   * otherwise. 'iommufd' and 'container' insist on one. 'noiommu' opens a
   * device of a kernel in no-IOMMU mode (never chosen by 'auto'): through
   * its noiommu-vfioN cdev and iommufd when the kernel has both (Linux >= 7.3,
   * CONFIG_IOMMUFD_NOIOMMU; `device.iommu` is then an Ioas whose
   * physicalSegments() gives the physical addresses of mappings), else
   * through its noiommu-N group (`device.iommu` is a NoIommu).
   * The choice made is `device.iommu.kind`.
   */
  iommu?: IommuChoice;
  /**
   * The container to attach the device's group to (implies 'container').
   * Left out, the devices opened in one context share one container,
   * closed with the last of them.
   */
  container?: Container;
  /**
   * The IOAS to attach the device's cdev to (implies 'iommufd', or goes
   * with 'noiommu' for a no-IOMMU cdev). Left out,
   * the devices opened in one context share one iommufd and IOAS, closed
   * with the last of them.
   */
  ioas?: Ioas;
  /** The VF token (a UUID) of the PF, to open one of its VFs. */
  vfToken?: string;
}

const CHOICES: readonly IommuChoice[] = ['auto', 'iommufd', 'container', 'noiommu'];

/** Device.open(): see its documentation in device/device.ts. */
export function openDevice(target: string, options?: DeviceOpenOptions): Device {
  checkString('target', target);
  const opts = checkOptions('options', options, [...vfioOptionKeys, 'iommu', 'container', 'ioas', 'vfToken']);
  const context = VfioContext.from(vfioOptionsOf(opts));
  const choice = pickChoice(opts);
  const vfToken = opts.vfToken === undefined ? undefined : checkUuid('options.vfToken', opts.vfToken);
  let name: string;
  let sysfsPath: string;
  if (target.startsWith('/')) {
    sysfsPath = target.replace(/\/+$/, '');
    name = basename(sysfsPath);
  } else {
    const address = parsePciAddress(target);
    if (!address) throw rangeError('target', `must be a PCI address or a sysfs path, got ${JSON.stringify(target)}`, 'ERR_INVALID_ARG_VALUE');
    name = address;
    sysfsPath = pciDeviceDir(context.sysfsRoot, address);
  }
  // 'container' goes straight to the group; the others look for a cdev first.
  const cdev = choice === 'container' ? undefined : cdevOf(sysfsPath);
  const noiommuCdev = cdev?.startsWith('noiommu-') ?? false;
  if (noiommuCdev && choice === 'iommufd') {
    throw new VfioError('ERR_VFIO_IOMMU_UNAVAILABLE', `${name} is in no-IOMMU mode (${cdev}): no IOMMU isolates its DMA`, {
      device: name,
      hint: "open it with iommu: 'noiommu' if unprotected DMA to physical addresses is what you want",
    });
  }
  // no-IOMMU prefers the cdev (iommufd pins and answers physical addresses, Linux >= 7.3) and falls back to the group.
  const viaCdev = choice === 'iommufd' || (choice === 'auto' && cdev !== undefined && !noiommuCdev) || (choice === 'noiommu' && (noiommuCdev || opts.ioas !== undefined));
  if (viaCdev) {
    const opened = openThroughIommufd(context, name, cdev, opts.ioas, vfToken, (choice === 'auto' || choice === 'noiommu') && opts.ioas === undefined);
    if (opened) return opened;
  }
  try {
    const groupId = target.startsWith('/') ? groupOfSysfsPath(sysfsPath) : groupOf(name, { sysfsRoot: context.sysfsRoot });
    return openSharedDevice(context, name, groupId, { container: opts.container, vfToken, noiommu: choice === 'noiommu' });
  } catch (error) {
    throw explainNotBound(error, context, name);
  }
}

function pickChoice(opts: DeviceOpenOptions): IommuChoice {
  if (opts.container !== undefined) checkInstance('options.container', opts.container, Container);
  if (opts.ioas !== undefined) checkInstance('options.ioas', opts.ioas, Ioas);
  if (opts.container !== undefined && opts.ioas !== undefined) throw rangeError('options', 'cannot have both container and ioas', 'ERR_INVALID_ARG_VALUE');
  const implied: IommuChoice | undefined = opts.container ? 'container' : opts.ioas ? 'iommufd' : undefined;
  if (opts.iommu === undefined) return implied ?? 'auto';
  if (!CHOICES.includes(opts.iommu)) {
    throw rangeError('options.iommu', `must be one of ${CHOICES.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(opts.iommu)}`, 'ERR_INVALID_ARG_VALUE');
  }
  if (opts.iommu === 'noiommu' && opts.container !== undefined) {
    throw rangeError('options.container', "cannot be given with iommu: 'noiommu' (the no-IOMMU group gets a container of its own)", 'ERR_INVALID_ARG_VALUE');
  }
  // An IOAS also serves no-IOMMU cdevs.
  const agrees = opts.iommu === 'auto' || opts.iommu === implied || (opts.iommu === 'noiommu' && implied === 'iommufd');
  if (implied && !agrees) {
    throw rangeError('options.iommu', `is '${opts.iommu}' but options.${implied === 'container' ? 'container' : 'ioas'} asks for '${implied}'`, 'ERR_INVALID_ARG_VALUE');
  }
  return opts.iommu === 'auto' ? (implied ?? 'auto') : opts.iommu;
}

/**
 * Opens the device's cdev, bound to `ioas` (or the shared one) and attached.
 * With `fallBack` (the 'auto' choice), a kernel without /dev/iommu returns
 * undefined so that the caller uses the container instead.
 */
function openThroughIommufd(context: VfioContext, name: string, cdev: string | undefined, given: Ioas | undefined, vfToken: string | undefined, fallBack: boolean): Device | undefined {
  if (cdev === undefined) {
    throw explainNotBound(
      new VfioError('ERR_VFIO_NO_CDEV', `${name} has no VFIO device cdev (no vfio-dev/ entry in sysfs)`, {
        device: name,
        hint: 'bind it to vfio-pci; cdevs need a kernel with CONFIG_VFIO_DEVICE_CDEV (or use iommu: \'container\')',
      }),
      context,
      name,
    );
  }
  let ioas = given;
  let opened = false;
  if (!ioas) {
    try {
      ({ ioas, opened } = defaultIoas(context));
    } catch (error) {
      if (fallBack && (error as { code?: string }).code === 'ENOENT') return undefined;
      throw error;
    }
  }
  try {
    const bound = openBoundCdev(ioas, context.cdevPath(cdev), name, vfToken);
    return adoptAttached(context, bound.fd, name, ioas, bound.devId);
  } catch (caught) {
    const error = cdev.startsWith('noiommu-') ? withRawioHint(caught) : caught;
    // The shared IOAS opened for this device has no other user and nobody can reach it: close it again.
    if (opened) {
      try {
        ioas.iommufd.close();
      } catch {
        // The open failure is the one worth reporting.
      }
    }
    throw error;
  }
}

/** Linux opens a no-IOMMU cdev for CAP_SYS_RAWIO only, and its EPERM says nothing of it. */
function withRawioHint(error: unknown): unknown {
  if (!(error instanceof VfioError) || error.code !== 'EPERM' || error.syscall !== 'open') return error;
  return VfioError.fromErrno(error.errno, {
    syscall: error.syscall, path: error.path, device: error.device,
    hint: 'a no-IOMMU device cdev (noiommu-vfioN) opens only with CAP_SYS_RAWIO: run as root',
  });
}

/** A Device for a cdev fd attached to `ioas`, which closes it before the IOAS is destroyed. */
function adoptAttached(context: VfioContext, fd: number, name: string, ioas: Ioas, devId: number): Device {
  const port = ioasPort(ioas);
  const device = adoptDevice(fd, {
    context,
    name,
    iommu: ioas,
    owner: { deviceClosed: (closed) => port.removeMember(closed) },
  });
  port.addMember(device, devId, fd);
  return device;
}

/** Device.fromFd with an IOAS: bind and attach the cdev fd (closed if that fails), then adopt it. */
function adoptCdevFd(fd: number, context: VfioContext, name: string, iommu: IommuContext): Device {
  const ioas = checkInstance('options.iommu', iommu, Ioas);
  let devId: number;
  try {
    devId = bindAndAttach(ioas, fd, name);
  } catch (error) {
    try {
      context.backend.close(fd);
    } catch {
      // The bind failure is the one worth reporting.
    }
    throw error;
  }
  return adoptAttached(context, fd, name, ioas, devId);
}

/**
 * A device that is not bound to vfio-pci has no group node and no cdev, and
 * the kernel's answer (ENOENT on /dev/vfio/N) names neither the device nor
 * the cause: say which driver has it and how to hand it over.
 */
function explainNotBound(error: unknown, context: VfioContext, name: string): unknown {
  const code = (error as { code?: string }).code;
  if (code !== 'ENOENT' && code !== 'ERR_VFIO_NO_CDEV' && code !== 'ERR_VFIO_IOMMU_UNAVAILABLE') return error;
  let driver: string | undefined;
  try {
    driver = pciDevice(name, { sysfsRoot: context.sysfsRoot }).driver;
  } catch {
    return error;
  }
  if (isVfioDriver(driver)) return error;
  const explained = new VfioError(
    'ERR_VFIO_NOT_BOUND',
    `${name} is ${driver ? `bound to ${driver}` : 'not bound to any driver'}, not to vfio-pci`,
    { device: name, hint: `bind it first: vfio bind ${name} (or echo vfio-pci > /sys/bus/pci/devices/${name}/driver_override; echo ${name} > /sys/bus/pci/drivers_probe)` },
  );
  (explained as { cause?: unknown }).cause = error;
  return explained;
}

installDeviceOpener(openDevice);
installCdevAdopter(adoptCdevFd);
installDeviceWrapper((fd, name, group) => adoptDevice(fd, {
  context: group.context,
  name,
  owner: group,
  group,
  // A no-IOMMU group's container has no DMA to map: the device says so through NoIommu.
  iommu: group.noiommu ? new NoIommu(group.path) : undefined,
}));
// The public Device and Group are taken from here, so that whoever holds them has the wiring installed.
export { Device, Group };
