/** `vfio info <address>`: what VFIO reports about a device, opened and closed again. */
import * as b from 'vfio-bindings';
import { isVfioDriver } from '../discovery/sysfs';
import { Container } from '../iommu/container/container';
import { Ioas } from '../iommu/iommufd/ioas';
import { Device, type IommuChoice } from '../open';
import type { Region } from '../device/region';
import { CliError, forDevice, usageError, type Command, type CommandEnv } from './command';
import { flagNames, hex, hex0x, json, pageSizes, size, table } from './format';
import { deviceCdev } from './list';
import { infoSchema } from './schemas/info';
import { sriovOf, type SriovRelation } from './sriov';
import { findDevice, oneArgument, pciAddress, requireSysfs } from './target';

const DEVICE_FLAGS = [
  [b.VFIO_DEVICE_FLAGS_RESET, 'reset'], [b.VFIO_DEVICE_FLAGS_PCI, 'pci'], [b.VFIO_DEVICE_FLAGS_PLATFORM, 'platform'],
  [b.VFIO_DEVICE_FLAGS_AMBA, 'amba'], [b.VFIO_DEVICE_FLAGS_CCW, 'ccw'], [b.VFIO_DEVICE_FLAGS_AP, 'ap'],
  [b.VFIO_DEVICE_FLAGS_FSL_MC, 'fsl-mc'], [b.VFIO_DEVICE_FLAGS_CAPS, 'caps'], [b.VFIO_DEVICE_FLAGS_CDX, 'cdx'],
] as const;

const REGION_FLAGS = [
  [b.VFIO_REGION_INFO_FLAG_READ, 'read'], [b.VFIO_REGION_INFO_FLAG_WRITE, 'write'],
  [b.VFIO_REGION_INFO_FLAG_MMAP, 'mmap'], [b.VFIO_REGION_INFO_FLAG_CAPS, 'caps'],
] as const;

const IRQ_FLAGS = [
  [b.VFIO_IRQ_INFO_EVENTFD, 'eventfd'], [b.VFIO_IRQ_INFO_MASKABLE, 'maskable'],
  [b.VFIO_IRQ_INFO_AUTOMASKED, 'automasked'], [b.VFIO_IRQ_INFO_NORESIZE, 'noresize'],
] as const;

const PCI_REGION_NAMES: Record<number, string> = {
  [b.VFIO_PCI_BAR0_REGION_INDEX]: 'BAR0', [b.VFIO_PCI_BAR1_REGION_INDEX]: 'BAR1', [b.VFIO_PCI_BAR2_REGION_INDEX]: 'BAR2',
  [b.VFIO_PCI_BAR3_REGION_INDEX]: 'BAR3', [b.VFIO_PCI_BAR4_REGION_INDEX]: 'BAR4', [b.VFIO_PCI_BAR5_REGION_INDEX]: 'BAR5',
  [b.VFIO_PCI_ROM_REGION_INDEX]: 'ROM', [b.VFIO_PCI_CONFIG_REGION_INDEX]: 'config', [b.VFIO_PCI_VGA_REGION_INDEX]: 'VGA',
};

const PCI_IRQ_NAMES: Record<number, string> = {
  [b.VFIO_PCI_INTX_IRQ_INDEX]: 'INTx', [b.VFIO_PCI_MSI_IRQ_INDEX]: 'MSI', [b.VFIO_PCI_MSIX_IRQ_INDEX]: 'MSI-X',
  [b.VFIO_PCI_ERR_IRQ_INDEX]: 'ERR', [b.VFIO_PCI_REQ_IRQ_INDEX]: 'REQ',
};

const IOMMU_TYPES: Record<number, string> = { [b.VFIO_TYPE1_IOMMU]: 'type1', [b.VFIO_TYPE1v2_IOMMU]: 'type1v2' };

const IOMMU_CHOICES: readonly IommuChoice[] = ['auto', 'iommufd', 'container', 'noiommu'];

function run(env: CommandEnv): void {
  const address = pciAddress(oneArgument(env, 'PCI address (like 0000:00:03.0)'), 'info');
  const choice = (env.options.iommu ?? 'auto') as IommuChoice;
  if (!IOMMU_CHOICES.includes(choice)) {
    throw usageError(`info: --iommu must be one of ${IOMMU_CHOICES.join(', ')}, got '${String(choice)}'`);
  }
  requireSysfs(env);
  const pci = findDevice(env, address);
  if (!isVfioDriver(pci.driver)) {
    const now = pci.driver ? `bound to ${pci.driver}` : 'not bound to any driver';
    throw new CliError(`info: ${address} is ${now}, not vfio-pci: run 'vfio bind ${address}' first`);
  }
  if (pci.iommuGroup === undefined && choice !== 'noiommu') {
    throw new CliError(`info: ${address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on)`);
  }
  const report = {
    address,
    vendorDevice: `${hex(pci.vendor, 4)}:${hex(pci.device, 4)}`,
    class: pci.class,
    driver: pci.driver!,
    cdev: deviceCdev(address, env.sysfsRoot) ?? null,
    group: { id: pci.iommuGroup ?? null, node: pci.iommuGroup === undefined ? null : `${env.devRoot}/${pci.iommuGroup}` },
    sriov: sriovOf(pci.sysfsPath),
    ...forDevice('info', address, () => probe(env, address, choice)),
  };
  env.stdout.write(env.json ? `${json(report)}\n` : `${render(report, env).join('\n')}\n`);
}

type Report = ReturnType<typeof probe> & {
  address: string; vendorDevice: string; class: number; driver: string; cdev: string | null;
  group: { id: number | null; node: string | null }; sriov: SriovRelation | null;
};

/** Opens the device as Device.open does for a program (the backend `choice` picks), reads it, and closes it. */
function probe(env: CommandEnv, address: string, choice: IommuChoice) {
  const context = env.context();
  const device = Device.open(address, {
    backend: context.backend, devRoot: context.devRoot, sysfsRoot: context.sysfsRoot, iommufdPath: context.iommufdPath, iommu: choice,
  });
  let failed = true;
  try {
    const result = {
      device: { flags: device.info.flags, flagNames: flagNames(device.info.flags, DEVICE_FLAGS), numRegions: device.info.numRegions, numIrqs: device.info.numIrqs },
      regions: [...device.regions.values()].map((r) => regionJson(r, device.info.pci)),
      irqs: Array.from({ length: device.info.numIrqs }, (_, i) => irqJson(device, i)).filter((q) => q !== undefined),
      features: featuresJson(device),
      iommu: iommuJson(device),
      hotReset: hotResetJson(device),
    };
    failed = false;
    return result;
  } finally {
    // Closing the device closes the group and container (or the IOAS) it
    // opened. When the probe failed, its error is the one to report.
    try {
      device.close();
    } catch (error) {
      if (!failed) throw error;
    }
  }
}

function regionJson(r: Region, pci: boolean) {
  return {
    index: r.index,
    name: (pci ? PCI_REGION_NAMES[r.index] : undefined) ?? (r.caps.type ? 'device-specific' : `region ${r.index}`),
    size: r.size,
    offset: r.offset,
    flags: r.flags,
    flagNames: flagNames(r.flags, REGION_FLAGS),
    sparseMmap: r.caps.sparseMmap?.map(({ offset, size }) => ({ offset, size })) ?? null,
    type: r.caps.type ?? null,
    msixMappable: r.caps.msixMappable,
    capabilities: r.caps.all.map((c) => c.name?.replace(/^VFIO_REGION_INFO_CAP_/, '') ?? `id ${c.id}`),
  };
}

/**
 * Undefined for an index the device lacks: vfio-pci answers EINVAL for the
 * ERR index of a conventional (non-PCIe) device on older kernels.
 */
function irqJson(device: Device, index: number) {
  let irq;
  try {
    irq = device.irqInfo(index);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EINVAL') return undefined;
    throw error;
  }
  const name = (device.info.pci ? PCI_IRQ_NAMES[index] : undefined) ?? `irq ${index}`;
  return { index, name, count: irq.count, flags: irq.flags, flagNames: flagNames(irq.flags, IRQ_FLAGS) };
}

/**
 * What VFIO_DEVICE_FEATURE offers (device.features() probes each one); a
 * kernel that refuses the probing itself (an errno other than "no such
 * feature") leaves it unknown rather than failing info.
 */
function featuresJson(device: Device) {
  let features;
  try {
    features = device.features();
  } catch (error) {
    if (isErrno(error)) return null;
    throw error;
  }
  const { migration } = features;
  return {
    supported: features.supported.map(({ name, get, set }) => ({ name, get, set })),
    migration: migration ? { stopCopy: migration.stopCopy, p2p: migration.p2p, preCopy: migration.preCopy, flags: migration.bits } : null,
    dmaLogging: features.dmaLogging,
    lowPower: features.lowPower,
    lowPowerWakeup: features.lowPowerWakeup,
    busMaster: features.busMaster,
    vfToken: features.vfToken,
  };
}

function featuresLine(f: Report['features']): string {
  if (f === null) return 'features: unknown (the kernel refused VFIO_DEVICE_FEATURE)';
  const names: string[] = [];
  if (f.migration) {
    const extras = [f.migration.p2p ? 'p2p' : '', f.migration.preCopy ? 'pre-copy' : ''].filter(Boolean);
    names.push(`migration${extras.length ? ` (${extras.join(', ')})` : ''}`);
  }
  if (f.dmaLogging) names.push('DMA logging');
  if (f.lowPower) names.push(f.lowPowerWakeup ? 'low power (with wakeup)' : 'low power');
  if (f.busMaster) names.push('bus master');
  if (f.vfToken) names.push('VF token');
  return `features: ${names.join(', ') || 'none'}`;
}

/** The backend the device was opened through, and what its IOMMU reports. */
function iommuJson(device: Device) {
  const iommu = device.iommu;
  return {
    backend: iommu?.kind ?? null,
    pageSizes: iommu?.pageSizes() ?? 0n,
    iovaRanges: (iommu?.iovaRanges() ?? []).map(({ start, end }) => ({ start, end })),
    container: iommu instanceof Container ? containerJson(iommu) : null,
    hardware: iommu instanceof Ioas ? hardwareJson(iommu, device) : null,
  };
}

function containerJson(container: Container) {
  const info = container.iommuInfo();
  const type = container.iommuType;
  return {
    apiVersion: container.apiVersion,
    type: type === undefined ? null : (IOMMU_TYPES[type] ?? `type ${type}`),
    flags: info.flags,
    dmaAvail: info.dmaAvail ?? null,
  };
}

/** IOMMU_GET_HW_INFO; a kernel that refuses it (errno) leaves the hardware unknown rather than failing info. */
function hardwareJson(ioas: Ioas, device: Device) {
  try {
    const hw = ioas.iommufd.hwInfo(device);
    return { type: hw.type, capabilities: hw.capabilities, dirtyTracking: hw.dirtyTracking, maxPasidLog2: hw.maxPasidLog2 };
  } catch (error) {
    if (isErrno(error)) return null;
    throw error;
  }
}

/** Hot reset info is absent on a root bus (ENODEV) and for non-PCI devices: a fact to show, not a failure. */
function hotResetJson(device: Device) {
  try {
    const devices = device.hotResetInfo().devices.map(({ address, groupId, devId }) => ({ address, groupId, devId: devId ?? null }));
    return { available: true, devices, reason: null };
  } catch (error) {
    if (!isErrno(error)) throw error;
    return { available: false, devices: [], reason: (error as { code: string }).code };
  }
}

function isErrno(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

function render(r: Report, env: CommandEnv): string[] {
  const { style } = env;
  const via = r.iommu.backend === 'iommufd' ? `cdev ${r.cdev}` : `IOMMU group ${r.group.id} (${r.group.node})`;
  const lines = [
    `${style('bold', r.address)}  ${r.vendorDevice}  class ${hex(r.class, 6)}  driver ${r.driver}  ${via}`,
    `device: ${r.device.flagNames.join(' ') || 'no flags'}${r.device.flagNames.includes('reset') ? '' : ' (no reset)'}, ${r.device.numRegions} region indexes, ${r.device.numIrqs} IRQ indexes`,
  ];
  lines.push(featuresLine(r.features));
  if (r.sriov?.role === 'pf') lines.push(`SR-IOV: physical function, ${r.sriov.numVfs} of ${r.sriov.totalVfs} VFs enabled${r.sriov.vfs.length ? `: ${r.sriov.vfs.join(', ')}` : ''}`);
  if (r.sriov?.role === 'vf') lines.push(`SR-IOV: virtual function${r.sriov.index === null ? '' : ` ${r.sriov.index}`} of ${r.sriov.pf}`);
  lines.push('', style('bold', 'regions:'));
  const regionRows = [['index', 'name', 'size', 'access', 'capabilities']];
  for (const g of r.regions) regionRows.push([String(g.index), g.name, size(g.size), g.flagNames.filter((f) => f !== 'caps').join(' '), regionCaps(g)]);
  lines.push(...table(regionRows, '  '), '', style('bold', 'IRQs:'));
  const irqRows = [['index', 'name', 'count', 'flags']];
  for (const q of r.irqs) irqRows.push([String(q.index), q.name, String(q.count), q.flagNames.join(' ')]);
  lines.push(...table(irqRows, '  '), '', `${style('bold', 'IOMMU:')} ${iommuTitle(r.iommu)}`);
  const iommuRows = [
    ['page sizes', pageSizes(r.iommu.pageSizes)],
    ['IOVA ranges', r.iommu.iovaRanges.map(({ start, end }) => `${hex0x(start)}-${hex0x(end)}`).join(', ') || 'none'],
  ];
  if (r.iommu.container?.dmaAvail != null) iommuRows.push(['dma_avail', String(r.iommu.container.dmaAvail)]);
  if (r.iommu.hardware) iommuRows.push(['dirty tracking', r.iommu.hardware.dirtyTracking ? 'yes' : 'no']);
  lines.push(...table(iommuRows, '  '), '');
  lines.push(r.hotReset.available
    ? `hot reset: resets ${r.hotReset.devices.map((d) => (d.groupId >= 0 ? `${d.address} (group ${d.groupId})` : d.address)).join(', ')}`
    : `hot reset: not available (${r.hotReset.reason})`);
  return lines;
}

function iommuTitle(iommu: Report['iommu']): string {
  if (iommu.container) return `container, ${iommu.container.type ?? 'no IOMMU type'} (VFIO API ${iommu.container.apiVersion})`;
  if (iommu.backend === 'iommufd') return `iommufd${iommu.hardware ? `, ${iommu.hardware.type}` : ''}`;
  return iommu.backend ?? 'none';
}

function regionCaps(g: ReturnType<typeof regionJson>): string {
  const parts: string[] = [];
  if (g.sparseMmap) parts.push(`sparse mmap ${g.sparseMmap.map((a) => `${hex0x(a.offset)}+${size(a.size)}`).join(', ') || '(none)'}`);
  if (g.type) parts.push(`type ${hex0x(g.type.type)}:${hex0x(g.type.subtype)}`);
  if (g.msixMappable) parts.push('msix-mappable');
  return parts.join('; ');
}

export const infoCommand: Command = {
  name: 'info',
  summary: 'a device as VFIO reports it: backend, features, regions, IRQs, IOMMU, hot reset, SR-IOV',
  usage: 'vfio info [--iommu auto|iommufd|container|noiommu] <pci-address>',
  description: `Opens the device the way a program does (Device.open: iommufd with the
device's cdev where the kernel has both, the container otherwise) and prints
the backend used, the device's flags, its VFIO_DEVICE_FEATUREs (migration,
DMA logging, low power, ...), regions, IRQs, the IOMMU's page sizes and IOVA
ranges (and the container's type, or iommufd's hardware), which devices a
hot reset would reset, and its SR-IOV relations (PF and VFs).
Everything is closed again. Needs the device on vfio-pci and access to
/dev/vfio (and /dev/iommu).`,
  options: {
    iommu: { type: 'string', valueName: 'CHOICE', description: 'the backend to open it through: auto (default), iommufd, container, noiommu' },
  },
  schema: infoSchema,
  run,
};
