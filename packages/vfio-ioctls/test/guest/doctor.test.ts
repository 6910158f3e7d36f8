// @guest-needs suite
/**
 * `vfio doctor` against the real kernel of each matrix entry. What it must
 * find follows from the entry's capabilities ($VFIO_VM_CAPS) and boot
 * ($VFIO_VM_BOOT), not from the kernel's name: an IOMMU with interrupt
 * remapping (iommu), a no-IOMMU boot (noiommu, a loud WARN), the IOMMU
 * without remapping (the nointremap boot: a FAIL, and the device's open
 * refused with EPERM), iommufd and device cdevs where promised (WARNs
 * where not). The device checks run on the suite's edu, nvme (behind a
 * root port, FLR) and shared-edu-1 (a group with a bridge and another edu),
 * and on edu while this process holds its group: EBUSY, naming this pid.
 * runDoctor is called from dist/ (the command's wiring comes separately).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { Group } from 'vfio-ioctls';
import type * as DoctorModule from '../../dist/cli/doctor';
import { device, GUEST_CAPS, trackResources } from './helpers';

// dist-guest/test/guest -> dist/cli/doctor
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { runDoctor, renderDoctorText } = require(resolve(__dirname, '../../../dist/cli/doctor')) as typeof DoctorModule;

const caps = GUEST_CAPS;
const boot = process.env.VFIO_VM_BOOT ?? 'iommu';
const where = `${process.env.VFIO_VM_KERNEL} boot ${boot} (caps ${caps.join(',')})`;
/** The test bed's IOMMU is there in every boot but the no-IOMMU one; 'iommu' promises it usable (remapping on). */
const noiommu = caps.includes('noiommu');
const remapping = caps.includes('iommu');
const { keep, assertNoLeaks } = trackResources();

type Report = ReturnType<typeof runDoctor>;

function finding(report: Report, id: string) {
  const found = report.findings.find((f) => f.id === id);
  assert.ok(found, `${where}: no ${id} finding in ${JSON.stringify(report.findings.map((f) => f.id))}`);
  return found;
}

function status(report: Report, id: string, expected: string): void {
  const f = finding(report, id);
  assert.equal(f.status, expected, `${where}: ${id} is ${f.status} (${f.summary}${f.fix ? `; fix: ${f.fix}` : ''})`);
}

test('the machine: IOMMU, remapping, no-IOMMU mode, modules, iommufd, cdevs, access and memory as the entry promises', (t) => {
  const report = runDoctor({ memory: 64n << 20n });
  t.diagnostic(renderDoctorText(report));
  status(report, 'iommu.enabled', noiommu ? 'warn' : 'pass');
  if (noiommu) {
    assert.equal(report.findings.some((f) => f.id === 'iommu.intremap'), false, 'no remapping check without an IOMMU');
    status(report, 'vfio.noiommu', 'warn');
    assert.match(finding(report, 'vfio.noiommu').summary, /^UNSAFE no-IOMMU mode is on/);
    status(report, 'access.rawio', 'pass');
  } else {
    assert.match(finding(report, 'iommu.enabled').summary, /^IOMMU on: dmar0 \(Intel VT-d, ACPI DMAR\)$/);
    status(report, 'iommu.intremap', remapping ? 'pass' : 'fail');
    if (remapping) assert.match(finding(report, 'iommu.intremap').summary, /IR-[\w-]+ in \/proc\/interrupts/);
    status(report, 'vfio.noiommu', 'pass');
    status(report, 'iommu.domain', 'pass');
    assert.match(finding(report, 'iommu.domain').summary, /^default domain (DMA|DMA-FQ) /);
  }
  for (const id of ['modules.vfio', 'modules.vfio_pci', 'access.container', 'access.devices', 'memory.memlock']) status(report, id, 'pass');
  // compat kernels serve the container from iommufd, without type1: sysfs cannot tell, hence a WARN.
  status(report, 'modules.vfio_iommu_type1', caps.includes('compat') ? 'warn' : 'pass');
  status(report, 'iommufd.available', caps.includes('iommufd') ? 'pass' : 'warn');
  status(report, 'vfio.cdev', caps.includes('cdev') ? 'pass' : 'warn');
  assert.match(finding(report, 'memory.memlock').summary, /^RLIMIT_MEMLOCK unlimited covers mapping 64 MiB$/);
  // The doctor reads /sys/kernel/mm/hugepages; /proc/meminfo says the same another way.
  const reserved = Number(/^HugePages_Total:\s+(\d+)$/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
  status(report, 'memory.hugepages', reserved === 0 ? 'warn' : finding(report, 'memory.hugepages').status);
  if (reserved > 0) assert.notEqual(finding(report, 'memory.hugepages').status, 'fail');
  assert.equal(report.exitCode, remapping || noiommu ? 0 : 1, `${where}: exit status`);
});

/** How the doctor opens a device here: iommufd through a cdev where both exist, else the container. */
function openedThrough(): string {
  const viaCdev = caps.includes('iommufd') && caps.includes('cdev');
  if (noiommu) return viaCdev ? 'opened it through iommufd (no-IOMMU)' : 'opened it through the no-IOMMU container';
  return viaCdev ? 'opened it through iommufd' : 'opened it through the legacy container';
}

test('vfio doctor <edu>: on vfio-pci, alone in its group, no reset method, no bus reset on the root bus; opens unless remapping is off', (t) => {
  const edu = device('edu');
  const report = runDoctor({ address: edu.address });
  t.diagnostic(renderDoctorText({ ...report, findings: report.findings.filter((f) => f.id.startsWith('device.')) }));
  assert.equal(report.address, edu.address);
  assert.equal(finding(report, 'device.present').summary, `${edu.address} [${edu.vendorDevice}], class 00ff00`);
  assert.equal(finding(report, 'device.driver').summary, 'bound to vfio-pci');
  assert.equal(finding(report, 'device.group').summary, `${noiommu ? 'no-IOMMU group' : 'group'} ${edu.iommuGroup}, alone in it`);
  status(report, 'device.nodes', 'pass');
  assert.ok(finding(report, 'device.nodes').summary.startsWith(edu.groupPath), finding(report, 'device.nodes').summary);
  const cdev = (edu as { cdev?: string | null }).cdev;
  if (cdev) assert.ok(finding(report, 'device.nodes').summary.includes(cdev), `${cdev} in ${finding(report, 'device.nodes').summary}`);
  status(report, 'device.reset', 'warn'); // QEMU's edu has neither FLR nor PM reset
  assert.equal(report.findings.some((f) => f.id === 'device.sriov'), false);
  if (remapping || noiommu) {
    status(report, 'device.open', 'pass');
    assert.equal(finding(report, 'device.open').summary, openedThrough());
    assert.match(finding(report, 'device.hot-reset').summary, /^no bus reset: .*\(the kernel's answer\)$/);
  } else {
    status(report, 'device.open', 'fail');
    assert.match(finding(report, 'device.open').summary, /^cannot open it: EPERM/);
    assert.match(finding(report, 'device.hot-reset').summary, /^no bus reset: the device sits on a root bus.*\(estimated from sysfs\)$/);
  }
});

test('vfio doctor <nvme>: FLR, and a bus reset (below its root port) that resets it alone, by the kernel or sysfs', () => {
  const report = runDoctor({ address: device('nvme').address });
  status(report, 'device.reset', 'pass');
  assert.match(finding(report, 'device.reset').summary, /^reset methods: .*\bflr\b/);
  // Without remapping the open fails (EPERM) and the doctor estimates from sysfs; both must agree.
  status(report, 'device.open', remapping || noiommu ? 'pass' : 'fail');
  const source = remapping || noiommu ? "the kernel's answer" : 'estimated from sysfs';
  assert.equal(finding(report, 'device.hot-reset').summary, `a bus reset resets this device alone (${source})`);
  const estimated = runDoctor({ address: device('nvme').address, tryOpen: false });
  assert.equal(finding(estimated, 'device.hot-reset').summary, 'a bus reset resets this device alone (estimated from sysfs)');
});

test('vfio doctor <shared-edu-1>: its group mate on vfio-pci and the bridge without a driver do not block it', () => {
  const shared = device('shared-edu-1');
  const mate = device('shared-edu-2');
  const report = runDoctor({ address: shared.address, tryOpen: false });
  status(report, 'device.group', 'pass');
  const summary = finding(report, 'device.group').summary;
  if (mate.iommuGroup === shared.iommuGroup) {
    assert.ok(summary.includes(`${mate.address} (vfio-pci)`), summary);
    assert.match(summary, /\(no driver\)/, `the PCIe-to-PCI bridge is in the group: ${summary}`);
  } else {
    // No-IOMMU mode makes a group per device.
    assert.equal(noiommu, true, `${where}: shared-edu-1 and -2 in groups ${shared.iommuGroup} and ${mate.iommuGroup}`);
    assert.equal(summary, `no-IOMMU group ${shared.iommuGroup}, alone in it`);
  }
});

test('vfio doctor <edu> while this process holds its group: EBUSY, naming this pid', () => {
  const edu = device('edu');
  keep(Group.open(edu.iommuGroup, { noiommu }));
  const report = runDoctor({ address: edu.address });
  status(report, 'device.open', 'fail');
  const summary = finding(report, 'device.open').summary;
  assert.ok(summary.startsWith(`in use (EBUSY): pid ${process.pid} (`) && summary.endsWith(`) holds ${edu.groupPath}`), summary);
  assert.equal(report.exitCode, 1);
});

test('no fd left open', () => assertNoLeaks());
