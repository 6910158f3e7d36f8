/** `vfio doctor <address>`: the device's driver, IOMMU group, nodes, reset and SR-IOV role, from sysfs. */
import { blocksGroup, isVfioDriver, pciDevice } from '../../discovery/sysfs';
import { deniedNodes, NODE_FIX } from './access';
import type { DoctorContext } from './context';
import { cdevNode, deviceInfo, groupFacts, linkedAddress, withDriver } from './device-facts';
import { moduleParam, noiommuMode } from './facts';
import { fail, pass, warn, type Check, type Verdict } from './finding';

const hex = (value: number, digits: number) => value.toString(16).padStart(digits, '0');

function present(ctx: DoctorContext): Verdict | undefined {
  const address = ctx.options.address;
  if (address === undefined) return undefined;
  const device = deviceInfo(ctx);
  if (!device) return fail(`no PCI device ${address} in ${ctx.sys}/bus/pci/devices`, 'check the address: lspci -D lists the devices');
  return pass(`${address} [${hex(device.vendor, 4)}:${hex(device.device, 4)}], class ${hex(device.class, 6)}`, {
    vendor: device.vendor, device: device.device, class: device.class,
  });
}

function driver(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device) return undefined;
  const details = { driver: device.driver ?? null };
  if (isVfioDriver(device.driver)) return pass(`bound to ${device.driver}`, details);
  const bind = `vfio bind ${device.address}`;
  if (device.driver === undefined) return fail('not bound to any driver, so VFIO cannot hand it out', bind, details);
  return fail(`bound to ${device.driver}, not to vfio-pci`, `${bind} (it unbinds ${device.driver} first)`, details);
}

/** The group is viable when no device of it is bound to a driver that claims DMA (vfio-pci, pci-stub, pcieport do not). */
function group(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device) return undefined;
  if (device.iommuGroup === undefined) {
    return noiommuMode(ctx)
      ? fail('no IOMMU group yet: in no-IOMMU mode VFIO makes one when the device is bound to vfio-pci', `vfio bind ${device.address}`)
      : fail('no IOMMU group: no IOMMU covers the device', 'turn the IOMMU on (see iommu.enabled)');
  }
  let facts;
  try {
    facts = groupFacts(ctx)!;
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw error;
    return fail(
      `its iommu_group link names group ${device.iommuGroup}, which ${ctx.sys}/kernel/iommu_groups lacks`,
      'sysfs is inconsistent: check what is mounted at the sysfs root, or reboot',
      { group: device.iommuGroup },
    );
  }
  const others = facts.members.filter((d) => d.address !== device.address);
  const blocking = others.filter((d) => blocksGroup(d.driver));
  const details = {
    group: facts.id,
    noiommu: facts.noiommu,
    members: facts.members.map((d) => ({ address: d.address, driver: d.driver ?? null })),
    blocking: blocking.map((d) => d.address),
  };
  if (blocking.length > 0) {
    return fail(
      `group ${facts.id} is not viable: ${blocking.map(withDriver).join(', ')} ${blocking.length === 1 ? 'is' : 'are'} bound to a host driver`,
      `bind ${blocking.length === 1 ? 'it' : 'them'} to vfio-pci as well (${blocking.map((d) => `vfio bind ${d.address}`).join('; ')}) or unbind ${blocking.length === 1 ? 'it' : 'them'}`,
      details,
    );
  }
  const kind = facts.noiommu ? 'no-IOMMU group' : 'group';
  return pass(`${kind} ${facts.id}${others.length === 0 ? ', alone in it' : ` with ${others.map(withDriver).join(', ')}`}`, details);
}

/** The group node and the device cdev exist and the user can open them read/write. */
function nodes(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device || !isVfioDriver(device.driver)) return undefined;
  let facts;
  try {
    facts = groupFacts(ctx);
  } catch {
    return undefined; // device.group reports the broken link
  }
  const cdev = cdevNode(ctx, device.address);
  const paths = [facts?.node, cdev].filter((p): p is string => p !== undefined && ctx.exists(p));
  if (paths.length === 0) {
    return fail(
      `no node for it: ${[facts?.node, cdev].filter(Boolean).join(' nor ') || 'no group and no cdev'}`,
      'check that devtmpfs is mounted on /dev (udev makes the nodes when the device binds to vfio-pci)',
    );
  }
  const denied = deniedNodes(ctx, paths);
  const { uid, gid } = ctx.options.user;
  if (denied.length > 0) return fail(`uid ${uid} gid ${gid} cannot open read/write: ${denied.join(', ')}`, NODE_FIX, { nodes: paths });
  return pass(`${paths.join(' and ')}: read/write for uid ${uid}`, { nodes: paths });
}

/** reset_method (Linux 5.15+) lists the methods; it and `reset` exist only when the kernel can reset the device. */
function reset(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device) return undefined;
  const methods = (ctx.value(`${device.sysfsPath}/reset_method`) ?? '').split(/\s+/).filter(Boolean);
  if (methods.length > 0) return pass(`reset methods: ${methods.join(', ')}`, { methods });
  if (ctx.exists(`${device.sysfsPath}/reset`)) return pass('the kernel can reset it', { methods: [] });
  return warn(
    'no reset method: the kernel cannot reset it between users, so its state carries over',
    'reset it in its own driver code, or use a bus reset if device.hot-reset allows one',
    { methods: [] },
  );
}

/** SR-IOV: a VF of a PF on vfio-pci opens only with the PF's VF token. */
function sriov(ctx: DoctorContext): Verdict | undefined {
  const device = deviceInfo(ctx);
  if (!device) return undefined;
  const pf = linkedAddress(ctx, `${device.sysfsPath}/physfn`);
  if (pf !== undefined) {
    const pfDriver = pciDevice(pf, { sysfsRoot: ctx.sys }).driver;
    const details = { role: 'vf', pf, pfDriver: pfDriver ?? null };
    if (isVfioDriver(pfDriver)) {
      return warn(
        `a VF of ${pf}, which is bound to ${pfDriver}: it opens only with the VF token set on the PF`,
        `open it with the PF's token, Device.open('${device.address}', { vfToken }) (the PF's user sets it with setVfToken)`,
        details,
      );
    }
    return pass(`a VF of ${withDriver({ address: pf, driver: pfDriver })}: no VF token needed`, details);
  }
  const total = ctx.value(`${device.sysfsPath}/sriov_totalvfs`);
  if (total === undefined) return undefined;
  const enabled = ctx.value(`${device.sysfsPath}/sriov_numvfs`) ?? '0';
  const details = { role: 'pf', totalVfs: Number(total), numVfs: Number(enabled) };
  let note = '';
  if (isVfioDriver(device.driver)) {
    note = enabled === '0' && moduleParam(ctx, 'vfio_pci', 'enable_sriov') !== 'Y'
      ? '; vfio-pci enables VFs only when loaded with enable_sriov=1'
      : '; on vfio-pci, its VFs open only with a VF token its user sets (setVfToken)';
  }
  return pass(`SR-IOV PF with ${enabled} of ${total} VFs enabled${note}`, details);
}

export const deviceChecks: Check[] = [
  { id: 'device.present', run: present },
  { id: 'device.driver', run: driver },
  { id: 'device.group', run: group },
  { id: 'device.nodes', run: nodes },
  { id: 'device.reset', run: reset },
  { id: 'device.sriov', run: sriov },
];
