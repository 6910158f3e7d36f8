/**
 * Machines for the `vfio doctor` tests: the fake kernel's sysfs tree (its
 * devices, groups and drivers) plus what the doctor reads beyond it, in one
 * temp folder: the IOMMU units and ACPI tables, module folders, hugepages,
 * /proc files, and the VFIO nodes under dev/ (plain files with the modes
 * and owners the test wants: the doctor only stats them, the fake kernel
 * serves the opens at the same paths).
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FakeDeviceSpec } from '../../../src/testing';
import type { DoctorOptions } from '../../../src/cli/doctor';
import { kernel, type Kernel } from '../../helpers';

export interface MachineSpec {
  /** Whose IOMMU the firmware describes (ACPI DMAR / IVRS); 'none' for neither. Default 'intel'. */
  vendor?: 'intel' | 'amd' | 'none';
  /** The kernel enabled that IOMMU (its unit in /sys/class/iommu). Default: when there is one. */
  iommuOn?: boolean;
  /** Interrupts remapped (IR-IO-APIC in /proc/interrupts) and, for Intel, ecap.IR set. Default true. */
  intremap?: boolean;
  /** Booted with vfio.enable_unsafe_noiommu_mode=1. */
  noiommu?: boolean;
  /** /dev/iommu and VFIO device cdevs (CONFIG_IOMMUFD, CONFIG_VFIO_DEVICE_CDEV). Default true. */
  iommufd?: boolean;
  /** Default domain of every group. Default 'DMA-FQ'. */
  domain?: string;
  /** /proc/cmdline. */
  cmdline?: string;
  /** 'Max locked memory' of /proc/self/limits. Default 'unlimited'. */
  memlock?: string;
  /** Reserved hugepages of 2 MiB: [total, free]. Default none. */
  hugepages2M?: [number, number];
  /** allow_unsafe_interrupts of vfio_iommu_type1. */
  allowUnsafeInterrupts?: boolean;
  /** The PCI devices. Default: edu at 0000:00:03.0 in group 5 on vfio-pci. */
  devices?: FakeDeviceSpec[];
}

export interface Machine {
  kernel: Kernel;
  /** The temp folder holding proc/ and dev/. */
  root: string;
  sys: string;
  proc: string;
  /** devRoot: `${root}/dev/vfio`. */
  vfio: string;
  iommu: string;
  /** The doctor's options for this machine (root's view; tests add uid, address...). */
  options: DoctorOptions;
  /** Writes a file, making its folders (any path: under sys, proc or the nodes' root). */
  write(path: string, text: string, mode?: number): void;
}

const roots: string[] = [];

afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

export const EDU = '0000:00:03.0';

export function machine(spec: MachineSpec = {}): Machine {
  const root = mkdtempSync(join(tmpdir(), 'vfio-doctor-'));
  roots.push(root);
  const vendor = spec.vendor ?? 'intel';
  const iommuOn = spec.iommuOn ?? vendor !== 'none';
  const intremap = spec.intremap ?? true;
  const iommufd = spec.iommufd ?? true;
  const vfio = join(root, 'dev/vfio');
  const k = kernel(spec.devices ?? [{ address: EDU, group: 5 }], {
    devRoot: vfio,
    noiommu: spec.noiommu,
    deviceCdevs: iommufd,
    interruptRemapping: intremap,
  });
  const sys = k.fake.sysfsRoot;
  const proc = join(root, 'proc');
  const put = (path: string, text: string, mode?: number) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    if (mode !== undefined) chmodSync(path, mode);
  };

  // Firmware and IOMMU units.
  if (vendor === 'intel') put(`${sys}/firmware/acpi/tables/DMAR`, 'DMAR', 0o400);
  if (vendor === 'amd') put(`${sys}/firmware/acpi/tables/IVRS`, 'IVRS', 0o400);
  mkdirSync(`${sys}/class/iommu`, { recursive: true });
  if (iommuOn && vendor === 'intel') put(`${sys}/devices/virtual/iommu/dmar0/intel-iommu/ecap`, intremap ? 'f0205e\n' : 'f02056\n');
  if (iommuOn && vendor === 'amd') put(`${sys}/devices/virtual/iommu/ivhd0/amd-iommu/features`, '25bf732fa2295afe\n');
  if (iommuOn && vendor !== 'none') {
    const unit = vendor === 'intel' ? 'dmar0' : 'ivhd0';
    symlinkSync(`../../devices/virtual/iommu/${unit}`, `${sys}/class/iommu/${unit}`);
  }
  for (const device of k.devices) {
    const group = `${sys}/kernel/iommu_groups/${device.group}`;
    put(`${group}/type`, spec.noiommu ? 'unknown\n' : `${spec.domain ?? 'DMA-FQ'}\n`);
    if (spec.noiommu) put(`${group}/name`, 'vfio-noiommu\n');
  }

  // Modules: loaded as modules (initstate), with their parameters.
  const module = (name: string, params: Record<string, string> = {}) => {
    put(`${sys}/module/${name}/initstate`, 'live\n');
    for (const [param, value] of Object.entries(params)) put(`${sys}/module/${name}/parameters/${param}`, `${value}\n`);
  };
  module('vfio', { enable_unsafe_noiommu_mode: spec.noiommu ? 'Y' : 'N' });
  module('vfio_pci', { nointxmask: 'N', enable_sriov: 'N' });
  module('vfio_iommu_type1', { allow_unsafe_interrupts: spec.allowUnsafeInterrupts ? 'Y' : 'N' });
  if (iommufd) module('iommufd', { allow_unsafe_interrupts: 'N' });
  mkdirSync(`${sys}/class/vfio`, { recursive: true });
  mkdirSync(`${sys}/bus/pci/drivers/vfio-pci`, { recursive: true });

  // Hugepages.
  const [total, free] = spec.hugepages2M ?? [0, 0];
  put(`${sys}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`, `${total}\n`);
  put(`${sys}/kernel/mm/hugepages/hugepages-2048kB/free_hugepages`, `${free}\n`);
  put(`${sys}/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages`, '0\n');
  put(`${sys}/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages`, '0\n');

  // procfs.
  put(`${proc}/cmdline`, `${spec.cmdline ?? `BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro${vendor === 'intel' && iommuOn ? ' intel_iommu=on' : ''}`}\n`);
  const chip = intremap && iommuOn ? 'IR-IO-APIC' : 'IO-APIC';
  put(`${proc}/interrupts`, [
    '           CPU0       CPU1       ',
    `  0:         41          0   ${chip}    2-edge      timer`,
    `  4:          0        812   ${chip}    4-edge      ttyS0`,
    'NMI:          0          0   Non-maskable interrupts',
    '',
  ].join('\n'));
  put(`${proc}/devices`, [
    'Character devices:',
    '  1 mem',
    ' 10 misc',
    ...(iommufd ? ['235 vfio-dev'] : []),
    '236 vfio',
    '',
    'Block devices:',
    '  8 sd',
    '',
  ].join('\n'));
  put(`${proc}/self/limits`, [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max open files            1024                 524288               files     ',
    `Max locked memory         ${(spec.memlock ?? 'unlimited').padEnd(20)} ${(spec.memlock ?? 'unlimited').padEnd(20)} bytes     `,
    '',
  ].join('\n'));
  put(`${proc}/self/status`, 'Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n');

  // The nodes, with the kernel's default modes.
  put(`${vfio}/vfio`, '', 0o666);
  for (const device of k.devices) {
    if (device.driver !== 'vfio-pci') continue;
    put(`${vfio}/${spec.noiommu ? 'noiommu-' : ''}${device.group}`, '', 0o600);
    const cdev = k.fake.cdevPath(device.address);
    if (cdev) put(cdev, '', 0o600);
  }
  if (iommufd) put(join(root, 'dev/iommu'), '', 0o660);

  return {
    kernel: k,
    root,
    sys,
    proc,
    vfio,
    iommu: join(root, 'dev/iommu'),
    options: { sysfsRoot: sys, procRoot: proc, devRoot: vfio, iommufdPath: join(root, 'dev/iommu'), backend: k.fake, uid: 0, gid: 0, groups: [0] },
    write: put,
  };
}

/** Gives `path` to `uid`:`gid` with `mode` (the tests run as root, so any owner works). */
export function own(path: string, uid: number, gid: number, mode: number): void {
  chownSync(path, uid, gid);
  chmodSync(path, mode);
}

/** The findings of a report by id: status, and summary and fix for the assertions that need them. */
export function byId(report: { findings: { id: string; status: string; summary: string; fix?: string }[] }): Record<string, { status: string; summary: string; fix?: string }> {
  return Object.fromEntries(report.findings.map((f) => [f.id, { status: f.status, summary: f.summary, ...(f.fix ? { fix: f.fix } : {}) }]));
}

/** id -> status, for comparing a whole report at once. */
export function statuses(report: { findings: { id: string; status: string }[] }): Record<string, string> {
  return Object.fromEntries(report.findings.map((f) => [f.id, f.status]));
}
