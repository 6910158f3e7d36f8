/**
 * `vfio doctor <address>`: open the device as a program would, for the
 * kernel's own answer (EBUSY, EPERM...), and ask it which devices a bus
 * reset would touch; without an open, estimate those from sysfs.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { VfioError } from '../../core/errors';
import { blocksGroup, isVfioDriver, pciDevice, type PciDeviceInfo } from '../../discovery/sysfs';
import { Device } from '../../open';
import type { DoctorContext } from './context';
import { cdevNode, deviceInfo, groupFacts, withDriver, type GroupFacts } from './device-facts';
import { fail, pass, warn, type Check, type Verdict } from './finding';
import { findHolders } from './holders';

/** What the kernel answered to VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the addresses, or why there is no bus reset. */
type HotReset = { addresses: string[] } | { none: string };

const KIND = { iommufd: 'iommufd', container: 'the legacy container', noiommu: 'the no-IOMMU container' } as const;

/** The group, when the device is ready to be opened: bound to VFIO, in a viable group (the other checks say why not). */
function openable(ctx: DoctorContext): { device: PciDeviceInfo; group: GroupFacts } | undefined {
  const device = deviceInfo(ctx);
  if (!ctx.options.tryOpen || !device || !isVfioDriver(device.driver)) return undefined;
  let group: GroupFacts | undefined;
  try {
    group = groupFacts(ctx);
  } catch {
    return undefined;
  }
  if (!group || group.members.some((d) => d.address !== device.address && blocksGroup(d.driver))) return undefined;
  return { device, group };
}

function open(ctx: DoctorContext): Verdict | undefined {
  const ready = openable(ctx);
  if (!ready) return undefined;
  const { device, group } = ready;
  const { backend, devRoot, sysfsRoot, iommufdPath } = ctx.options;
  let opened: Device;
  try {
    opened = Device.open(device.address, {
      ...(backend ? { backend } : {}), devRoot, sysfsRoot, iommufdPath,
      iommu: group.noiommu ? 'noiommu' : 'auto',
    });
  } catch (error) {
    return openFailure(ctx, error, group);
  }
  try {
    ctx.remember('hotReset', askHotReset(opened));
    const kind = opened.iommu?.kind;
    // A no-IOMMU device opens through its noiommu-vfioN cdev and iommufd where the kernel has both (7.3+).
    const unsafe = group.noiommu && kind !== 'noiommu' ? ' (no-IOMMU)' : '';
    return pass(`opened it through ${kind ? KIND[kind] : 'VFIO'}${unsafe}`, { iommu: kind ?? null });
  } finally {
    opened.close();
  }
}

function askHotReset(device: Device): HotReset {
  try {
    return { addresses: device.hotResetInfo().devices.map((d) => d.address) };
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENODEV') throw error;
    return { none: 'the kernel has no bus or slot reset for it (ENODEV: a root bus device, or no reset-capable bridge above it)' };
  }
}

function openFailure(ctx: DoctorContext, error: unknown, group: GroupFacts): Verdict {
  const code = (error as { code?: string }).code;
  if (code === 'ERR_VFIO_NO_ADDON') {
    return warn('could not try to open it: the native addon is not built', 'pnpm --filter vfio-ioctls build:native');
  }
  if (code === 'EBUSY') {
    // Another process holding the group, this device's cdev or a group mate's cdev makes the open EBUSY.
    const nodes = [group.node, ...group.members.map((d) => cdevNode(ctx, d.address))].filter((p): p is string => p !== undefined);
    const { holders, hidden } = findHolders(ctx, nodes);
    const details = { holders: holders.map((h) => ({ pid: h.pid, comm: h.comm, path: h.path })) };
    if (holders.length > 0) {
      return fail(
        `in use (EBUSY): ${holders.map((h) => `pid ${h.pid} (${h.comm}) holds ${h.path}`).join('; ')}`,
        `stop ${holders.map((h) => `${h.comm} (kill ${h.pid})`).join(', ')} or wait for it to let go`,
        details,
      );
    }
    return fail(
      `in use (EBUSY) by a process this user cannot see${hidden > 0 ? ` (${hidden} processes' fds are unreadable)` : ''}`,
      'run vfio doctor as root to name the process',
      details,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  const hint = error instanceof VfioError ? error.hint : undefined;
  // The kernel's EPERMs on the way in: no MSI isolation (SET_IOMMU, BIND_IOMMUFD), or a no-IOMMU device without CAP_SYS_RAWIO.
  const fallback = code === 'EPERM'
    ? 'VFIO needs interrupt remapping (see iommu.intremap), and no-IOMMU devices CAP_SYS_RAWIO (see access.rawio)'
    : 'see the other findings';
  return fail(
    `cannot open it: ${hint ? message.replace(` (hint: ${hint})`, '') : message}`,
    hint ?? fallback,
    { code: code ?? null },
  );
}

/**
 * The devices a bus reset would reset besides this one. The kernel's
 * answer when the device was opened; otherwise an estimate from sysfs: a
 * device on a root bus has no bridge to reset it, and below a bridge every
 * device under that bridge goes with it.
 */
function hotReset(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device) return undefined;
  const asked = ctx.recall<HotReset>('hotReset');
  const answer = asked ?? estimateHotReset(ctx, device);
  const source = asked ? "the kernel's answer" : 'estimated from sysfs';
  if ('none' in answer) return pass(`no bus reset: ${answer.none} (${source})`, { source, dependents: [] });
  const others = answer.addresses.filter((a) => a !== device.address).map((address) => {
    let driver: string | undefined;
    try {
      driver = pciDevice(address, { sysfsRoot: ctx.sys }).driver;
    } catch {
      // A device sysfs does not show: listed without its driver.
    }
    return { address, driver };
  });
  const details = { source, dependents: others.map((d) => ({ address: d.address, driver: d.driver ?? null })) };
  if (others.length === 0) return pass(`a bus reset resets this device alone (${source})`, details);
  const held = others.filter((d) => d.driver !== undefined && !isVfioDriver(d.driver));
  if (held.length > 0) {
    return warn(
      `a bus reset would also reset ${others.map(withDriver).join(', ')}; the kernel allows it only to a process that owns every one of them (${source})`,
      `bind ${held.map((d) => d.address).join(', ')} to vfio-pci too and open ${held.length === 1 ? 'it' : 'them'} alongside, or do without a bus reset`,
      details,
    );
  }
  return pass(`a bus reset would also reset ${others.map(withDriver).join(', ')}: open their groups too to use it (${source})`, details);
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

function estimateHotReset(ctx: DoctorContext, device: PciDeviceInfo): HotReset {
  const parent = dirname(realpathSync(device.sysfsPath));
  // A host bridge's folder is pciDDDD:BB: no bridge above the device to reset its bus.
  if (basename(parent).startsWith('pci')) return { none: 'the device sits on a root bus, with no bridge above it to reset the bus' };
  const below = (dir: string): string[] =>
    ctx.list(dir).filter((n) => PCI_ADDRESS.test(n)).flatMap((n) => [n, ...below(`${dir}/${n}`)]);
  return { addresses: below(parent) };
}

export const deviceOpenChecks: Check[] = [
  { id: 'device.open', run: open },
  { id: 'device.hot-reset', run: hotReset },
];
