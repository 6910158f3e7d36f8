// @guest-needs iommu suite
/**
 * The `vfio` command (src/cli, the package's bin) against the real kernel, run as a
 * child process the way a person runs it: list, info, and an unbind/bind
 * round trip of shared-edu-2. Each node start costs seconds under TCG, so
 * the checks are few and each covers much. The files of this suite run one
 * after another, so rebinding a device here disturbs no other file; it is
 * put back on vfio-pci whatever happens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Device, Group } from 'vfio-ioctls';
import { device, trackResources } from './helpers';

// dist-guest/test/guest -> dist/cli/main.js (build:guest builds dist/ too)
const cli = resolve(__dirname, '../../../dist/cli/main.js');
const edu = device('edu');
const nvme = device('nvme');
const shared = device('shared-edu-2');
const { keep, assertNoLeaks } = trackResources();

function vfio(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  assert.ok(existsSync(cli), `${cli} is missing: build it first (pnpm --filter vfio-ioctls build:guest)`);
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function driverOf(address: string): string | undefined {
  const link = `/sys/bus/pci/devices/${address}/driver`;
  return existsSync(link) ? basename(readlinkSync(link)) : undefined;
}

test('list --json: every test bed device on vfio-pci, in its group, behind its node', () => {
  const r = vfio('list', '--json');
  assert.equal(r.status, 0, r.stderr);
  const groups = JSON.parse(r.stdout).groups as { id: number; node: string | null; viable: boolean; devices: { address: string; vendorDevice: string; driver: string | null }[] }[];
  for (const role of ['edu', 'e1000e', 'nvme', 'shared-edu-1', 'shared-edu-2']) {
    const want = device(role);
    const group = groups.find((g) => g.id === want.iommuGroup);
    assert.ok(group, `group ${want.iommuGroup} of ${role}`);
    assert.equal(group.node, want.groupPath);
    assert.equal(group.viable, true, role);
    const found = group.devices.find((d) => d.address === want.address);
    assert.ok(found, `${role} in group ${want.iommuGroup}`);
    assert.equal(found.vendorDevice, want.vendorDevice);
    assert.equal(found.driver, 'vfio-pci');
  }
});

test('info --json of nvme: regions, MSI-X, reset, IOMMU and hot reset from the kernel', () => {
  const r = vfio('info', nvme.address, '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.deepEqual(info.group, { id: nvme.iommuGroup, node: nvme.groupPath });
  assert.ok(info.device.flagNames.includes('reset') && info.device.flagNames.includes('pci'));
  const config = info.regions.find((g: { name: string }) => g.name === 'config');
  assert.equal(config.size, '0x1000');
  assert.ok(info.regions.some((g: { msixMappable: boolean }) => g.msixMappable));
  assert.equal(info.irqs.find((q: { name: string }) => q.name === 'MSI-X').count, 65);
  assert.equal(info.iommu.type, 'type1v2');
  assert.ok(info.iommu.iovaRanges.length > 0);
  assert.equal(info.hotReset.available, true);
  assert.ok(info.hotReset.devices.some((d: { address: string }) => d.address === nvme.address));
});

test('info of edu as text: BAR0, the ERR index as the kernel counts it, no hot reset on the root bus', () => {
  // 6.1 answers EINVAL for the ERR index of conventional-PCI edu; 7.3
  // answers a count. The row must say what this kernel says.
  const dev = Device.open(edu.address);
  let errCount: number | undefined;
  try {
    errCount = dev.irqInfo(b.VFIO_PCI_ERR_IRQ_INDEX).count;
  } catch (error) {
    assert.equal((error as { code?: string }).code, 'EINVAL', String(error));
  } finally {
    dev.close();
  }
  const r = vfio('info', edu.address);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}0 +BAR0 +1 MiB +read write mmap$/m);
  if (errCount === undefined) assert.doesNotMatch(r.stdout, /^ {2}3 +ERR/m);
  else assert.match(r.stdout, new RegExp(`^ {2}3 +ERR +${errCount} +`, 'm'));
  assert.match(r.stdout, /^hot reset: not available \(ENODEV\)$/m);
});

test('info of a group held by this process: EBUSY as one line, exit 1', () => {
  keep(Group.open(edu.iommuGroup));
  const r = vfio('info', edu.address);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`^vfio: EBUSY: open failed on ${edu.groupPath}[^\\n]*\\n$`));
});

test('unbind shared-edu-2 from vfio-pci, then bind it back', () => {
  try {
    const off = vfio('unbind', shared.address);
    assert.equal(off.status, 0, off.stderr);
    assert.equal(off.stdout, `${shared.address}: vfio-pci -> no driver\n`);
    assert.equal(driverOf(shared.address), undefined);
    const on = vfio('bind', shared.address);
    assert.equal(on.status, 0, on.stderr);
    assert.equal(on.stdout, `${shared.address}: no driver -> vfio-pci (IOMMU group ${shared.iommuGroup}, ${shared.groupPath})\n`);
    assert.equal(driverOf(shared.address), 'vfio-pci');
    keep(Device.open(shared.address)).close();
  } finally {
    // Whatever failed above, the files after this one need the device on vfio-pci.
    if (driverOf(shared.address) !== 'vfio-pci') {
      writeFileSync(`/sys/bus/pci/devices/${shared.address}/driver_override`, 'vfio-pci');
      if (driverOf(shared.address) === undefined) writeFileSync('/sys/bus/pci/drivers_probe', shared.address);
    }
  }
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
