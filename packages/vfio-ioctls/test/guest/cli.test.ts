// @guest-needs iommu suite
/**
 * The `vfio` command (src/cli, the package's bin) against the real kernel,
 * run as a child process the way a person runs it: every command, its
 * --json documents held to the command's schema, the refusals, and bind/
 * unbind round trips of shared-edu-2 (alone and with its group). Each node
 * start costs seconds under TCG, so the checks are few and each covers
 * much. The files of this suite run one after another, so rebinding a
 * device here disturbs no other file; every device is put back on vfio-pci
 * whatever happens.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { after, test } from 'node:test';
import * as b from 'vfio-bindings';
import { Device, Group } from 'vfio-ioctls';
import { device, trackResources } from './helpers';

// dist-guest/test/guest -> the package; build:guest builds dist/ too.
const packageDir = resolve(__dirname, '../../..');
const cli = resolve(packageDir, 'dist/cli/main.js');
const { commands } = require(resolve(packageDir, 'dist/cli/commands.js')) as { commands: Record<string, { schema: object }> };
const { validate } = require(resolve(packageDir, 'dist/cli/schemas/json-schema.js')) as { validate(schema: object, value: unknown): string[] };
const edu = device('edu');
const nvme = device('nvme');
const shared1 = device('shared-edu-1');
const shared = device('shared-edu-2');
const { keep, assertNoLeaks } = trackResources();
// bind's records of the drivers it took devices from: a folder of this run's (the guest's /tmp is a tmpfs).
const stateDir = mkdtempSync('/tmp/vfio-command-state-');
after(() => rmSync(stateDir, { recursive: true, force: true }));

function vfio(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  assert.ok(existsSync(cli), `${cli} is missing: build it first (pnpm --filter vfio-ioctls build:guest)`);
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', VFIO_STATE_DIR: stateDir } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `vfio <command> ... --json`, expects exit 0, and holds the document to the command's schema. */
function vfioJson(command: string, ...args: string[]) {
  const r = vfio(command, ...args, '--json');
  assert.equal(r.status, 0, r.stderr);
  const document = JSON.parse(r.stdout);
  assert.deepEqual(validate(commands[command]!.schema, document), [], `vfio ${command} ${args.join(' ')} --json against its schema`);
  return document;
}

function driverOf(address: string): string | undefined {
  const link = `/sys/bus/pci/devices/${address}/driver`;
  return existsSync(link) ? basename(readlinkSync(link)) : undefined;
}

/** Puts a device back on vfio-pci by hand, whatever state a failed test left it in. */
function backOnVfio(address: string): void {
  if (driverOf(address) === 'vfio-pci') return;
  writeFileSync(`/sys/bus/pci/devices/${address}/driver_override`, 'vfio-pci');
  const current = driverOf(address);
  if (current !== undefined) writeFileSync(`/sys/bus/pci/drivers/${current}/unbind`, address);
  writeFileSync('/sys/bus/pci/drivers_probe', address);
  assert.equal(driverOf(address), 'vfio-pci', `${address} back on vfio-pci`);
}

/** The kernel's iommufd is there when /dev/iommu is; a device's cdev when the test bed found its node. */
const iommufd = existsSync('/dev/iommu');
const cdevName = (role: string) => {
  const cdev = (device(role) as { cdev?: string | null }).cdev;
  return cdev ? basename(cdev) : null;
};

test('--version, --help, and a usage error', () => {
  const version = vfio('--version');
  assert.equal(version.status, 0, version.stderr);
  assert.equal(version.stdout, `vfio-ioctls ${JSON.parse(readFileSync(resolve(packageDir, 'package.json'), 'utf8')).version}\n`);
  const help = vfio('bind', '--help');
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: vfio bind /);
  assert.match(help.stdout, /^exit status:$/m);
  assert.deepEqual(vfio('frobnicate'), { status: 2, stdout: '', stderr: "vfio: unknown command 'frobnicate' (see 'vfio help')\n" });
});

test('list --json: every test bed device on vfio-pci, in its group, behind its node, with its cdev; iommufd as the kernel has it', () => {
  const { iommufd: reported, groups } = vfioJson('list');
  assert.deepEqual(reported, { available: iommufd, node: '/dev/iommu' });
  for (const role of ['edu', 'e1000e', 'nvme', 'shared-edu-1', 'shared-edu-2']) {
    const want = device(role);
    const group = groups.find((g: { id: number }) => g.id === want.iommuGroup);
    assert.ok(group, `group ${want.iommuGroup} of ${role}`);
    assert.equal(group.node, want.groupPath);
    assert.equal(group.viable, true, role);
    const found = group.devices.find((d: { address: string }) => d.address === want.address);
    assert.ok(found, `${role} in group ${want.iommuGroup}`);
    assert.equal(found.vendorDevice, want.vendorDevice);
    assert.equal(found.driver, 'vfio-pci');
    assert.equal(found.cdev, cdevName(role), `${role}'s cdev`);
  }
});

test('list of a sysfs root that is none: exit 1 naming it', () => {
  assert.deepEqual(vfio('--sysfs-root', '/nonexistent', 'list'), {
    status: 1, stdout: '', stderr: 'vfio: list: /nonexistent/bus/pci/devices does not exist: is sysfs mounted at /nonexistent? (--sysfs-root)\n',
  });
});

test('info --json of nvme: the backend auto picks, regions, MSI-X, reset, IOMMU and hot reset from the kernel', () => {
  const info = vfioJson('info', nvme.address);
  assert.deepEqual(info.group, { id: nvme.iommuGroup, node: nvme.groupPath });
  assert.equal(info.cdev, cdevName('nvme'));
  const backend = info.cdev && iommufd ? 'iommufd' : 'container';
  assert.equal(info.iommu.backend, backend);
  if (backend === 'iommufd') assert.equal(info.iommu.hardware?.type, 'intel-vtd');
  else assert.equal(info.iommu.container.type, 'type1v2');
  assert.ok(info.device.flagNames.includes('reset') && info.device.flagNames.includes('pci'));
  const config = info.regions.find((g: { name: string }) => g.name === 'config');
  assert.equal(config.size, '0x1000');
  assert.ok(info.regions.some((g: { msixMappable: boolean }) => g.msixMappable));
  assert.equal(info.irqs.find((q: { name: string }) => q.name === 'MSI-X').count, 65);
  assert.ok(info.iommu.iovaRanges.length > 0);
  assert.equal(info.hotReset.available, true);
  assert.ok(info.hotReset.devices.some((d: { address: string }) => d.address === nvme.address));
  assert.equal(info.sriov, null);
});

test('info --iommu container of nvme: the container answers', () => {
  const info = vfioJson('info', '--iommu', 'container', nvme.address);
  assert.equal(info.iommu.backend, 'container');
  assert.equal(info.iommu.container.type, 'type1v2');
  assert.equal(info.iommu.hardware, null);
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
  assert.match(r.stdout.split('\n')[0]!, new RegExp(`^${edu.address}  ${edu.vendorDevice}  class 00ff00  driver vfio-pci  `));
  assert.match(r.stdout, /^ {2}0 +BAR0 +1 MiB +read write mmap$/m);
  if (errCount === undefined) assert.doesNotMatch(r.stdout, /^ {2}3 +ERR/m);
  else assert.match(r.stdout, new RegExp(`^ {2}3 +ERR +${errCount} +`, 'm'));
  assert.match(r.stdout, /^hot reset: not available \(ENODEV\)$/m);
});

test('info of a device whose group this process holds: EBUSY as one line naming the device, exit 1', () => {
  keep(Group.open(edu.iommuGroup));
  const r = vfio('info', edu.address);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^vfio: info: [^\n]*EBUSY[^\n]*\n$/);
  assert.ok(r.stderr.includes(edu.address), r.stderr);
});

test('unbind of a device whose group this process holds is refused, naming the process; nothing changes', () => {
  keep(Group.open(edu.iommuGroup));
  try {
    const r = vfio('unbind', edu.address);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`^vfio: unbind: ${edu.address} is in use: process ${process.pid} \\([^)]+\\) has ${edu.groupPath} open; use --force to take it anyway\\n$`));
    assert.equal(driverOf(edu.address), 'vfio-pci');
  } finally {
    backOnVfio(edu.address);
  }
});

test('bind of the virtio device that holds the root file system (9p) is refused, naming the mount', () => {
  const shares = readdirSync('/sys/bus/pci/devices').filter((address) => {
    const dir = `/sys/bus/pci/devices/${address}`;
    return readdirSync(dir).some((child) => /^virtio\d+$/.test(child) && existsSync(`${dir}/${child}/mount_tag`)
      && readFileSync(`${dir}/${child}/mount_tag`, 'utf8').replace(/[\0\n]+$/, '') === 'hostroot');
  });
  assert.equal(shares.length, 1, `the PCI device of the 9p share 'hostroot': ${shares.join(', ')}`);
  const address = shares[0]!;
  const before = driverOf(address);
  // Safety net should the check miss it: records go to the read-only host
  // root, so bind would fail there (EROFS) before writing anything to sysfs.
  const r = vfio('bind', '--state-dir', packageDir, address);
  assert.equal(r.status, 1, r.stdout);
  assert.match(r.stderr, new RegExp(`^vfio: bind: ${address} is in use: 9p share 'hostroot' is mounted on /[^\\n]*; use --force to take it anyway\\n$`));
  assert.equal(driverOf(address), before);
});

test('shared-edu-2 alone: unbind without a record, a second unbind is a no-op, bind records "none", unbind restores it', () => {
  try {
    const off = vfio('unbind', shared.address);
    assert.equal(off.status, 0, off.stderr);
    // The test bed bound it at boot: no record, and no other driver claims edu.
    assert.equal(off.stdout, `${shared.address}: vfio-pci -> no driver (no record of its driver before 'vfio bind': the kernel's probe found none)\n`);
    assert.equal(driverOf(shared.address), undefined);

    assert.deepEqual(vfio('unbind', shared.address), { status: 0, stdout: `${shared.address}: not bound to any driver: nothing to do\n`, stderr: '' });

    const on = vfioJson('bind', shared.address);
    assert.deepEqual(on.devices.map((d: object) => ({ ...d, device: undefined })), [{
      address: shared.address, before: null, after: 'vfio-pci', changed: true, note: null, record: { driver: null }, device: undefined,
    }]);
    assert.equal(on.group.viable, true);
    assert.equal(driverOf(shared.address), 'vfio-pci');
    assert.deepEqual(JSON.parse(readFileSync(`${stateDir}/${shared.address}.json`, 'utf8')), { driver: null });
    keep(Device.open(shared.address)).close();

    const back = vfio('unbind', shared.address);
    assert.equal(back.status, 0, back.stderr);
    assert.equal(back.stdout, `${shared.address}: vfio-pci -> no driver (its driver before 'vfio bind')\n`);
    assert.equal(existsSync(`${stateDir}/${shared.address}.json`), false);

    const again = vfio('bind', shared.address);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, `${shared.address}: no driver -> vfio-pci\nIOMMU group ${shared.iommuGroup}: viable (${shared.groupPath})\n`);
  } finally {
    backOnVfio(shared.address);
  }
});

test('shared-edu-2 from a host driver: bind records it, unbind gives the device back to it', () => {
  // A host driver every kernel of the matrix has for edu: uio_pci_generic
  // where it is built in (the purpose-built kernel); elsewhere none, and the
  // round trip is from and back to no driver.
  const host = existsSync('/sys/bus/pci/drivers/uio_pci_generic') ? 'uio_pci_generic' : undefined;
  try {
    const path = `/sys/bus/pci/devices/${shared.address}`;
    writeFileSync(`${path}/driver_override`, host ?? '\n');
    writeFileSync(`/sys/bus/pci/drivers/vfio-pci/unbind`, shared.address);
    if (host) writeFileSync('/sys/bus/pci/drivers_probe', shared.address);
    writeFileSync(`${path}/driver_override`, '\n');
    assert.equal(driverOf(shared.address), host);

    const on = vfio('bind', shared.address);
    assert.equal(on.status, 0, on.stderr);
    assert.equal(on.stdout.split('\n')[0], `${shared.address}: ${host ?? 'no driver'} -> vfio-pci`);
    assert.deepEqual(JSON.parse(readFileSync(`${stateDir}/${shared.address}.json`, 'utf8')), { driver: host ?? null });

    const off = vfioJson('unbind', shared.address);
    assert.deepEqual(off.devices.map((d: { before: string; after: string | null; record: object }) => [d.before, d.after, d.record]), [['vfio-pci', host ?? null, { driver: host ?? null }]]);
    assert.equal(driverOf(shared.address), host);
    // driver_override is cleared again: later probes match as usual.
    assert.equal(readFileSync(`${path}/driver_override`, 'utf8'), '(null)\n');
  } finally {
    backOnVfio(shared.address);
  }
});

test('--group: unbind and bind every device of the shared group, the bridge left alone', () => {
  try {
    const off = vfioJson('unbind', '--group', shared.address);
    const changed = off.devices.filter((d: { changed: boolean }) => d.changed).map((d: { address: string }) => d.address).sort();
    assert.deepEqual(changed, [shared1.address, shared.address].sort());
    assert.equal(driverOf(shared1.address), undefined);
    assert.equal(driverOf(shared.address), undefined);

    const on = vfioJson('bind', '--group', String(shared.iommuGroup));
    const taken = on.devices.filter((d: { changed: boolean }) => d.changed).map((d: { address: string; after: string }) => [d.address, d.after]);
    assert.deepEqual(taken.sort(), [[shared1.address, 'vfio-pci'], [shared.address, 'vfio-pci']].sort());
    const bridge = on.devices.filter((d: { changed: boolean }) => !d.changed);
    assert.ok(bridge.every((d: { note: string }) => /a PCI bridge/.test(d.note)), JSON.stringify(bridge));
    assert.deepEqual({ id: on.group.id, viable: on.group.viable, node: on.group.node }, { id: shared.iommuGroup, viable: true, node: shared.groupPath });
    keep(Device.open(shared1.address)).close();
  } finally {
    backOnVfio(shared1.address);
    backOnVfio(shared.address);
  }
});

test('errors name the device: no such device', () => {
  assert.deepEqual(vfio('info', '0000:00:1f.7'), {
    status: 1, stdout: '', stderr: "vfio: info: no PCI device 0000:00:1f.7 in /sys/bus/pci/devices (see 'vfio list')\n",
  });
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
