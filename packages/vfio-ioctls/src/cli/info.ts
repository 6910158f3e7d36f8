/** `vfio info <address>`: what VFIO reports about a device, opened and closed again. */
import * as b from 'vfio-bindings';
import { Container, Group, isVfioDriver, type Device, type Region } from '../index';
import { CliError, findDevice, pciAddress, usageError, type CommandEnv } from './env';
import { flagNames, hex, hex0x, json, pageSizes, size, table } from './format';

export const infoUsage = `vfio info <pci-address> [--json]
  Opens the device through VFIO (container, group, device) and prints its
  flags, regions, IRQs, the IOMMU's page sizes and IOVA ranges, and which
  devices a hot reset would reset. Everything is closed again.`;

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

export function info(env: CommandEnv): void {
  if (env.args.length > 1) throw usageError(`info: unexpected argument '${env.args[1]}'`);
  const address = pciAddress(env.args[0], 'info');
  const pci = findDevice(env, address, 'info');
  if (!isVfioDriver(pci.driver)) {
    const now = pci.driver ? `bound to ${pci.driver}` : 'not bound to any driver';
    throw new CliError(`info: ${address} is ${now}, not vfio-pci: run 'vfio bind ${address}' first`);
  }
  if (pci.iommuGroup === undefined) {
    throw new CliError(`info: ${address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on)`);
  }
  const report = { address, vendorDevice: `${hex(pci.vendor, 4)}:${hex(pci.device, 4)}`, class: pci.class, driver: pci.driver, ...probe(env, address, pci.iommuGroup) };
  env.stdout.write(env.json ? `${json(report)}\n` : `${render(report).join('\n')}\n`);
}

type Report = ReturnType<typeof probe> & { address: string; vendorDevice: string; class: number; driver?: string };

/** Opens container, group and device the explicit way (the container is what answers IOMMU info). */
function probe(env: CommandEnv, address: string, groupId: number) {
  const context = env.context();
  const container = Container.open(context);
  let group: Group | undefined;
  let device: Device | undefined;
  let failed = true;
  try {
    group = Group.open(groupId, context);
    group.assertViable();
    group.attach(container);
    device = group.openDevice(address);
    const result = {
      group: { id: groupId, node: group.path },
      device: { flags: device.info.flags, flagNames: flagNames(device.info.flags, DEVICE_FLAGS), numRegions: device.info.numRegions, numIrqs: device.info.numIrqs },
      regions: [...device.regions.values()].map((r) => regionJson(r, device!.info.pci)),
      irqs: Array.from({ length: device.info.numIrqs }, (_, i) => irqJson(device!, i)).filter((q) => q !== undefined),
      iommu: iommuJson(container),
      hotReset: hotResetJson(device),
    };
    failed = false;
    return result;
  } finally {
    // Close in the kernel's order. When the probe itself failed, its error
    // is the one to report, not a close error it may have caused.
    closeAll([device, group, container], failed);
  }
}

function closeAll(handles: ({ close(): void } | undefined)[], quiet: boolean): void {
  let first: unknown;
  for (const handle of handles) {
    try {
      handle?.close();
    } catch (error) {
      first ??= error;
    }
  }
  if (first !== undefined && !quiet) throw first;
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
 * ERR index of a conventional (non-PCIe) device, as edu on q35's root bus is.
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

function iommuJson(container: Container) {
  const i = container.iommuInfo();
  const type = container.iommuType;
  return {
    apiVersion: container.apiVersion,
    type: type === undefined ? null : (IOMMU_TYPES[type] ?? `type ${type}`),
    flags: i.flags,
    pageSizes: i.pageSizes,
    iovaRanges: i.iovaRanges.map(({ start, end }) => ({ start, end })),
    dmaAvail: i.dmaAvail ?? null,
  };
}

/** Hot reset info is absent on a root bus (ENODEV) and for non-PCI devices: a fact to show, not a failure. */
function hotResetJson(device: Device) {
  try {
    const devices = device.hotResetInfo().devices.map(({ address, groupId }) => ({ address, groupId }));
    return { available: true, devices, reason: null };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) throw error;
    return { available: false, devices: [], reason: code };
  }
}

function render(r: Report): string[] {
  const lines = [
    `${r.address}  ${r.vendorDevice}  class ${hex(r.class, 6)}  driver ${r.driver}  IOMMU group ${r.group.id} (${r.group.node})`,
    `device: ${r.device.flagNames.join(' ') || 'no flags'}${r.device.flagNames.includes('reset') ? '' : ' (no reset)'}, ${r.device.numRegions} region indexes, ${r.device.numIrqs} IRQ indexes`,
    '',
    'regions:',
  ];
  const regionRows = [['index', 'name', 'size', 'access', 'capabilities']];
  for (const g of r.regions) regionRows.push([String(g.index), g.name, size(g.size), g.flagNames.filter((f) => f !== 'caps').join(' '), regionCaps(g)]);
  lines.push(...table(regionRows, '  '), '', 'IRQs:');
  const irqRows = [['index', 'name', 'count', 'flags']];
  for (const q of r.irqs) irqRows.push([String(q.index), q.name, String(q.count), q.flagNames.join(' ')]);
  lines.push(...table(irqRows, '  '), '', `IOMMU: ${r.iommu.type ?? 'none'} (VFIO API ${r.iommu.apiVersion})`);
  const iommuRows = [
    ['page sizes', pageSizes(r.iommu.pageSizes)],
    ['IOVA ranges', r.iommu.iovaRanges.map(({ start, end }) => `${hex0x(start)}-${hex0x(end)}`).join(', ')],
  ];
  if (r.iommu.dmaAvail !== null) iommuRows.push(['dma_avail', String(r.iommu.dmaAvail)]);
  lines.push(...table(iommuRows, '  '), '');
  lines.push(r.hotReset.available
    ? `hot reset: resets ${r.hotReset.devices.map((d) => `${d.address} (group ${d.groupId})`).join(', ')}`
    : `hot reset: not available (${r.hotReset.reason})`);
  return lines;
}

function regionCaps(g: ReturnType<typeof regionJson>): string {
  const parts: string[] = [];
  if (g.sparseMmap) parts.push(`sparse mmap ${g.sparseMmap.map((a) => `${hex0x(a.offset)}+${size(a.size)}`).join(', ') || '(none)'}`);
  if (g.type) parts.push(`type ${hex0x(g.type.type)}:${hex0x(g.type.subtype)}`);
  if (g.msixMappable) parts.push('msix-mappable');
  return parts.join('; ');
}
