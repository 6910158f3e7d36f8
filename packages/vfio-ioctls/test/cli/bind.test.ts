import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { sysfsPaths } from '../../src/cli/bind';
import { addClassMember, bindingModel, defaultStateDir, deviceDir, put, run, tempFolder, testMachine } from './helpers';

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => kernel.dispose());

const driverOf = (address: string) => kernel.device(address)!.driver;
const recordOf = (address: string, dir = defaultStateDir()) => {
  const path = `${dir}/${address}.json`;
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
};

/** A proc root whose mountinfo has `mounts` ([source, mount point, type, major:minor]) and whose process 412 (qemu) holds `open` files. */
function procWith(mounts: [string, string, string, string][], open: string[] = []): string {
  const proc = tempFolder('vfio-command-proc-');
  const lines = mounts.map(([source, at, type, number], i) => `${20 + i} 1 ${number} / ${at} rw,relatime shared:1 - ${type} ${source} rw`);
  put(`${proc}/self/mountinfo`, `${lines.join('\n')}\n`);
  put(`${proc}/412/comm`, 'qemu\n');
  mkdirSync(`${proc}/412/fd`);
  // /proc/PID/fd links hold absolute paths.
  open.forEach((target, fd) => symlinkSync(target, `${proc}/412/fd/${fd + 3}`));
  return proc;
}

/** nvme0n1 with partition nvme0n1p1 below 0000:01:00.0, as the nvme driver lays them out in sysfs. */
function nvmeDisk(): void {
  const disk = addClassMember(kernel, '0000:01:00.0', 'block', 'nvme/nvme0', 'nvme0n1');
  put(`${disk}/dev`, '259:0\n');
  const partition = addClassMember(kernel, '0000:01:00.0', 'block', 'nvme/nvme0/nvme0n1', 'nvme0n1p1');
  put(`${partition}/dev`, '259:1\n');
}

test('the sysfs attributes under the given root', () => {
  expect(sysfsPaths('/s', '0000:00:04.0', 'e1000e')).toEqual({
    driverOverride: '/s/bus/pci/devices/0000:00:04.0/driver_override',
    unbind: '/s/bus/pci/drivers/e1000e/unbind',
    driversProbe: '/s/bus/pci/drivers_probe',
    vfioDriver: '/s/bus/pci/drivers/vfio-pci',
  });
  expect(sysfsPaths('/s', '0000:00:04.0').unbind).toBeUndefined();
});

describe('bind', () => {
  test('records the driver, then override, unbind the host driver, probe: the device ends on vfio-pci', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    const r = await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0: e1000e -> vfio-pci\nIOMMU group 1: viable (/dev/vfio/1)\n' });
    expect(model.writes).toEqual([
      ['/bus/pci/devices/0000:00:03.0/driver_override', 'vfio-pci'],
      ['/bus/pci/drivers/e1000e/unbind', '0000:00:03.0'],
      ['/bus/pci/drivers_probe', '0000:00:03.0'],
    ]);
    expect(driverOf('0000:00:03.0')).toBe('vfio-pci');
    expect(recordOf('0000:00:03.0')).toEqual({ driver: 'e1000e' });
  });

  test('an unbound device needs no unbind and is recorded as having had none; --json reports before and after', async () => {
    kernel.bindDriver('0000:00:03.0', null);
    const model = bindingModel(kernel);
    const r = await run(['bind', '--json', '0000:00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      devices: [{
        address: '0000:00:03.0', before: null, after: 'vfio-pci', changed: true, note: null, record: { driver: null },
        device: expect.objectContaining({ address: '0000:00:03.0', driver: 'vfio-pci', iommuGroup: 1 }),
      }],
      group: expect.objectContaining({ id: 1, node: '/dev/vfio/1', viable: true }),
    });
    expect(model.writes.map(([path]) => path)).toEqual(['/bus/pci/devices/0000:00:03.0/driver_override', '/bus/pci/drivers_probe']);
    expect(recordOf('0000:00:03.0')).toEqual({ driver: null });
  });

  test('already on vfio-pci: says so, nothing written or recorded, exit 0', async () => {
    const model = bindingModel(kernel);
    expect(await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs }))
      .toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0: already bound to vfio-pci: nothing to do\nIOMMU group 1: viable (/dev/vfio/1)\n' });
    expect(model.writes).toEqual([]);
    expect(recordOf('0000:00:03.0')).toBeUndefined();
  });

  test('a group still held by a host driver gets a note naming it and the --group way', async () => {
    kernel.bindDriver('0000:03:01.0', 'e1000e');
    kernel.bindDriver('0000:03:02.0', 'igb');
    const model = bindingModel(kernel);
    const r = await run(['bind', '03:01.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('0000:03:01.0: e1000e -> vfio-pci\nnote: IOMMU group 9 is not viable yet: also bind 0000:03:02.0 (igb), or all at once: vfio bind --group 9\n');
  });

  test.each([['9'], ['03:02.0']])('--group %s binds every device of the group but the bridge', async (target) => {
    kernel.bindDriver('0000:03:01.0', 'e1000e');
    kernel.bindDriver('0000:03:02.0', null);
    const model = bindingModel(kernel);
    const r = await run(['bind', '--group', target], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout: [
        '0000:02:00.0: a PCI bridge: left to no driver (vfio-pci takes no bridges)',
        '0000:03:01.0: e1000e -> vfio-pci',
        '0000:03:02.0: no driver -> vfio-pci',
        'IOMMU group 9: viable (/dev/vfio/9)',
        '',
      ].join('\n'),
    });
    expect(driverOf('0000:02:00.0')).toBeNull();
    expect([driverOf('0000:03:01.0'), driverOf('0000:03:02.0')]).toEqual(['vfio-pci', 'vfio-pci']);
    expect([recordOf('0000:03:01.0'), recordOf('0000:03:02.0'), recordOf('0000:02:00.0')]).toEqual([{ driver: 'e1000e' }, { driver: null }, undefined]);
  });

  test('a PCI bridge alone is refused', async () => {
    const model = bindingModel(kernel);
    expect(await run(['bind', '02:00.0'], { context, writeSysfs: model.writeSysfs }))
      .toEqual({ code: 1, stdout: '', stderr: 'vfio: bind: 0000:02:00.0 is a PCI bridge: vfio-pci takes only endpoint devices (bind the devices behind it)\n' });
    expect(model.writes).toEqual([]);
  });

  test('vfio-pci not taking the device is an error; the device goes back to its driver and no record stays', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    // A kernel whose vfio-pci refuses the device: the vfio-pci override is ignored.
    const refuse = (path: string, text: string) => model.writeSysfs(path, path.endsWith('driver_override') && text === 'vfio-pci' ? '\n' : text);
    const r = await run(['bind', '00:03.0'], { context, writeSysfs: refuse });
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'vfio: bind: 0000:00:03.0: vfio-pci did not take it (driver now: e1000e); see dmesg; put back on e1000e\n' });
    expect(driverOf('0000:00:03.0')).toBe('e1000e');
    expect(recordOf('0000:00:03.0')).toBeUndefined();
  });

  test('a failure in the middle of a group gives back the devices taken before it', async () => {
    kernel.bindDriver('0000:03:01.0', 'e1000e');
    kernel.bindDriver('0000:03:02.0', 'igb');
    const model = bindingModel(kernel);
    const failSecond = (path: string, text: string) => {
      if (path.endsWith('/drivers/igb/unbind')) throw Object.assign(new Error('EBUSY'), { code: 'EBUSY' });
      model.writeSysfs(path, text);
    };
    const r = await run(['bind', '--group', '9'], { context, writeSysfs: failSecond });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`vfio: bind: 0000:03:02.0: cannot write "0000:03:02.0" to ${kernel.sysfsRoot}/bus/pci/drivers/igb/unbind: EBUSY; put back on igb (0000:03:01.0 given back)\n`);
    expect([driverOf('0000:03:01.0'), driverOf('0000:03:02.0')]).toEqual(['e1000e', 'igb']);
    expect([recordOf('0000:03:01.0'), recordOf('0000:03:02.0')]).toEqual([undefined, undefined]);
    expect(model.overrides.size).toBe(0);
  });

  test('vfio-pci not loaded', async () => {
    for (const address of ['0000:00:03.0', '0000:01:00.0', '0000:03:01.0', '0000:03:02.0']) kernel.bindDriver(address, 'e1000e');
    rmSync(`${kernel.sysfsRoot}/bus/pci/drivers/vfio-pci`, { recursive: true });
    const model = bindingModel(kernel);
    expect(await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).toEqual({ code: 1, stdout: '', stderr: "vfio: bind: the vfio-pci driver is not loaded: run 'modprobe vfio-pci'\n" });
    expect(model.writes).toEqual([]);
  });

  test('a refused write names the device and the file, suggests root for EACCES, and leaves no record', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const denied = () => {
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    };
    const r = await run(['bind', '00:03.0'], { context, writeSysfs: denied });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vfio: bind: 0000:00:03.0: cannot write "vfio-pci" to ${kernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/driver_override: EACCES (run as root)\n` });
    expect(recordOf('0000:00:03.0')).toBeUndefined();
  });

  test('the default writer writes the real files, and fails on a missing one', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const override = `${kernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/driver_override`;
    // The fake tree has driver_override but no unbind or drivers_probe attributes.
    const missing = await run(['bind', '00:03.0'], { context });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(new RegExp(`^vfio: bind: 0000:00:03\\.0: cannot write "0000:00:03\\.0" to ${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind: ENOENT; `));
    // Putting it back cleared the override again (a plain file keeps the rest of the old text: sysfs would not).
    expect(readFileSync(override, 'utf8')).toMatch(/^\n/);
    // With them in place every write lands, but nothing rebinds a plain file tree.
    writeFileSync(`${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind`, '');
    writeFileSync(`${kernel.sysfsRoot}/bus/pci/drivers_probe`, '');
    const r = await run(['bind', '00:03.0'], { context });
    expect(r.stderr).toMatch(/^vfio: bind: 0000:00:03\.0: vfio-pci did not take it \(driver now: e1000e\); see dmesg; /);
    expect(readFileSync(`${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind`, 'utf8')).toBe('0000:00:03.0');
    expect(readFileSync(`${kernel.sysfsRoot}/bus/pci/drivers_probe`, 'utf8')).toBe('0000:00:03.0');
  });

  describe('a device the host is using', () => {
    test('a mounted partition: refused, naming it, nothing written; --force takes it', async () => {
      kernel.bindDriver('0000:01:00.0', 'nvme');
      nvmeDisk();
      const proc = procWith([['/dev/nvme0n1p1', '/mnt', 'ext4', '259:1']]);
      const model = bindingModel(kernel);
      const r = await run(['bind', '--proc-root', proc, '01:00.0'], { context, writeSysfs: model.writeSysfs });
      expect(r).toEqual({ code: 1, stdout: '', stderr: 'vfio: bind: 0000:01:00.0 is in use: /dev/nvme0n1p1 is mounted on /mnt; use --force to take it anyway\n' });
      expect(model.writes).toEqual([]);
      expect(recordOf('0000:01:00.0')).toBeUndefined();
      const forced = await run(['bind', '--force', '--proc-root', proc, '01:00.0'], { context, writeSysfs: model.writeSysfs });
      expect(forced).toMatchObject({ code: 0, stdout: '0000:01:00.0: nvme -> vfio-pci\nIOMMU group 8: viable (/dev/vfio/8)\n' });
    });

    test('--group names every device in use, and changes nothing', async () => {
      kernel.bindDriver('0000:03:01.0', 'e1000e');
      kernel.bindDriver('0000:03:02.0', 'e1000e');
      addClassMember(kernel, '0000:03:01.0', 'net', 'net', 'eth0');
      put(`${kernel.sysfsRoot}/class/net/eth0/operstate`, 'up\n');
      put(`${deviceDir(kernel, '0000:03:02.0')}/boot_vga`, '1\n');
      const interfaces = () => ({ eth0: [{ address: '10.0.2.15', family: 'IPv4' as const, netmask: '255.255.255.0', mac: '52:54:00:12:34:56', internal: false, cidr: '10.0.2.15/24' }] });
      const model = bindingModel(kernel);
      const r = await run(['bind', '--group', '9'], { context, writeSysfs: model.writeSysfs, networkInterfaces: interfaces });
      expect(r).toEqual({
        code: 1,
        stdout: '',
        stderr: 'vfio: bind: 0000:03:01.0 is in use: network interface eth0 is up with address 10.0.2.15; '
          + '0000:03:02.0 is in use: it is the boot VGA device (the firmware console draws on it); use --force to take them anyway\n',
      });
      expect(model.writes).toEqual([]);
    });
  });

  test('--state-dir puts the record elsewhere', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const dir = `${tempFolder('vfio-command-records-')}/nested`;
    const model = bindingModel(kernel);
    expect((await run(['bind', '--state-dir', dir, '00:03.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
    expect(recordOf('0000:00:03.0', dir)).toEqual({ driver: 'e1000e' });
    expect(recordOf('0000:00:03.0')).toBeUndefined();
  });

  test('a record that cannot be written stops the bind before any write', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const file = `${tempFolder('vfio-command-records-')}/file`;
    writeFileSync(file, '');
    const model = bindingModel(kernel);
    const r = await run(['bind', '--state-dir', file, '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vfio: bind: 0000:00:03.0: cannot record its driver in ${file}/0000:00:03.0.json: EEXIST (--state-dir)\n` });
    expect(model.writes).toEqual([]);
  });
});

describe('unbind', () => {
  test('gives the device back to the driver bind recorded, through driver_override, and forgets the record', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    model.writes.length = 0;
    const r = await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: "0000:00:03.0: vfio-pci -> e1000e (its driver before 'vfio bind')\n" });
    expect(model.writes).toEqual([
      ['/bus/pci/devices/0000:00:03.0/driver_override', 'e1000e'],
      ['/bus/pci/drivers/vfio-pci/unbind', '0000:00:03.0'],
      ['/bus/pci/drivers_probe', '0000:00:03.0'],
      ['/bus/pci/devices/0000:00:03.0/driver_override', '\n'],
    ]);
    expect(driverOf('0000:00:03.0')).toBe('e1000e');
    expect(model.overrides.size).toBe(0);
    expect(recordOf('0000:00:03.0')).toBeUndefined();
  });

  test('a device that had no driver is left without one (no probe); --json names the record', async () => {
    kernel.bindDriver('0000:00:03.0', null);
    // The kernel would give it to e1000e if asked to probe: unbind must not ask.
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    model.writes.length = 0;
    const r = await run(['unbind', '--json', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).devices).toEqual([expect.objectContaining({ address: '0000:00:03.0', before: 'vfio-pci', after: null, changed: true, record: { driver: null } })]);
    expect(model.writes.map(([path]) => path)).toEqual(['/bus/pci/devices/0000:00:03.0/driver_override', '/bus/pci/drivers/vfio-pci/unbind']);
    expect(driverOf('0000:00:03.0')).toBeNull();
  });

  test('without a record: clear the override, unbind vfio-pci, probe: the kernel picks the driver', async () => {
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    const r = await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: "0000:00:03.0: vfio-pci -> e1000e (no record of its driver before 'vfio bind': the kernel's probe chose e1000e)\n" });
    expect(model.writes).toEqual([
      ['/bus/pci/devices/0000:00:03.0/driver_override', '\n'],
      ['/bus/pci/drivers/vfio-pci/unbind', '0000:00:03.0'],
      ['/bus/pci/drivers_probe', '0000:00:03.0'],
    ]);
    const none = await run(['unbind', '03:02.0'], { context, writeSysfs: model.writeSysfs });
    expect(none.stdout).toBe("0000:03:02.0: vfio-pci -> no driver (no record of its driver before 'vfio bind': the kernel's probe found none)\n");
  });

  test('a second unbind says there is nothing to do, writes nothing, and exits 0', async () => {
    const model = bindingModel(kernel);
    expect((await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
    model.writes.length = 0;
    expect(await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs }))
      .toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0: not bound to any driver: nothing to do\n' });
    expect(model.writes).toEqual([]);
  });

  test('the recorded driver not loaded: the kernel probes instead, and the note says how to load it', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    rmSync(`${kernel.sysfsRoot}/bus/pci/drivers/e1000e`, { recursive: true });
    const r = await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({
      code: 0,
      stderr: '',
      stdout: `0000:00:03.0: vfio-pci -> no driver (its driver before 'vfio bind', e1000e, is not loaded: modprobe e1000e, then echo 0000:00:03.0 > ${kernel.sysfsRoot}/bus/pci/drivers_probe)\n`,
    });
  });

  test('the recorded driver not taking the device back is an error naming both', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    const ignoreOverride = (path: string, text: string) => model.writeSysfs(path, path.endsWith('driver_override') ? '\n' : text);
    expect(await run(['unbind', '00:03.0'], { context, writeSysfs: ignoreOverride })).toEqual({
      code: 1, stdout: '', stderr: 'vfio: unbind: 0000:00:03.0: vfio-pci let go, but e1000e did not take it back (driver now: none); see dmesg\n',
    });
  });

  test('bind then unbind round-trips, and info works in between', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    expect((await run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
    expect((await run(['info', '00:03.0'], { context })).code).toBe(0);
    expect((await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
    expect(driverOf('0000:00:03.0')).toBe('e1000e');
  });

  test('--group gives every device back and leaves the bridge alone, even on a driver', async () => {
    kernel.bindDriver('0000:02:00.0', 'shpchp');
    const model = bindingModel(kernel);
    const r = await run(['unbind', '--group', '03:01.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.stdout.split('\n')).toEqual([
      '0000:02:00.0: a PCI bridge: left to shpchp (vfio-pci takes no bridges)',
      "0000:03:01.0: vfio-pci -> no driver (no record of its driver before 'vfio bind': the kernel's probe found none)",
      "0000:03:02.0: vfio-pci -> no driver (no record of its driver before 'vfio bind': the kernel's probe found none)",
      '',
    ]);
    expect(model.writes.filter(([path]) => path.includes('shpchp'))).toEqual([]);
    expect(driverOf('0000:02:00.0')).toBe('shpchp');
  });

  test('a device on a host driver is taken from it and left without one', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    const r = await run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: "0000:00:03.0: e1000e -> no driver (left without a driver; 'vfio bind' takes it to vfio-pci)\n" });
    expect(model.writes).toEqual([['/bus/pci/drivers/e1000e/unbind', '0000:00:03.0']]);
  });

  test('a device on a host driver that the host uses is refused unless --force', async () => {
    kernel.bindDriver('0000:01:00.0', 'nvme');
    nvmeDisk();
    put(`${kernel.sysfsRoot}/class/block/nvme0n1p1/holders/dm-0`, '');
    const model = bindingModel(kernel);
    expect(await run(['unbind', '01:00.0'], { context, writeSysfs: model.writeSysfs })).toEqual({
      code: 1, stdout: '', stderr: 'vfio: unbind: 0000:01:00.0 is in use: /dev/nvme0n1p1 is held by dm-0 (device-mapper or RAID); use --force to take it anyway\n',
    });
    expect(model.writes).toEqual([]);
    expect((await run(['unbind', '--force', '01:00.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
    expect(driverOf('0000:01:00.0')).toBeNull();
  });

  test('a device whose group a process holds open is refused, naming the process; --force goes ahead', async () => {
    const proc = procWith([], ['/dev/vfio/1']);
    const model = bindingModel(kernel);
    expect(await run(['unbind', '--proc-root', proc, '00:03.0'], { context, writeSysfs: model.writeSysfs })).toEqual({
      code: 1, stdout: '', stderr: 'vfio: unbind: 0000:00:03.0 is in use: process 412 (qemu) has /dev/vfio/1 open; use --force to take it anyway\n',
    });
    expect(model.writes).toEqual([]);
    expect((await run(['unbind', '--force', '--proc-root', proc, '00:03.0'], { context, writeSysfs: model.writeSysfs })).code).toBe(0);
  });

  test('vfio-pci keeping the device is an error', async () => {
    const keep = () => {};
    expect(await run(['unbind', '00:03.0'], { context, writeSysfs: keep })).toEqual({ code: 1, stdout: '', stderr: 'vfio: unbind: 0000:00:03.0 is still bound to vfio-pci; see dmesg\n' });
  });
});

describe.each(['bind', 'unbind'])('%s: argument errors', (command) => {
  test.each([
    [[], `vfio: ${command}: missing PCI address (like 0000:00:03.0) (see 'vfio help')`],
    [['0000:00:3.0'], `vfio: ${command}: '0000:00:3.0' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0) (see 'vfio help')`],
    [['00:03.0', 'x'], `vfio: ${command}: unexpected argument 'x' (see 'vfio help')`],
    [['--group'], `vfio: ${command}: missing IOMMU group (its number, or the PCI address of one of its devices) (see 'vfio help')`],
    [['--group', 'nine'], `vfio: ${command}: 'nine' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0) (see 'vfio help')`],
    [['--group', '99999999999'], `vfio: ${command}: '99999999999' is not an IOMMU group number (see 'vfio help')`],
    [['--force=yes', '00:03.0'], "vfio: option --force takes no value (see 'vfio help')"],
    [['00:03.0', '--state-dir'], "vfio: option --state-dir needs a value (DIR) (see 'vfio help')"],
  ])('%j: exit 2', async (args, line) => {
    expect(await run([command, ...args], { context, writeSysfs: bindingModel(kernel).writeSysfs })).toEqual({ code: 2, stdout: '', stderr: `${line}\n` });
  });

  test('no such device, no such group, no sysfs', async () => {
    expect((await run([command, '00:1f.7'], { context })).stderr).toBe(`vfio: ${command}: no PCI device 0000:00:1f.7 in ${kernel.sysfsRoot}/bus/pci/devices (see 'vfio list')\n`);
    expect((await run([command, '--group', '42'], { context })).stderr).toBe(`vfio: ${command}: no IOMMU group 42 in ${kernel.sysfsRoot}/kernel/iommu_groups (see 'vfio list')\n`);
    expect(await run([command, '--sysfs-root', '/nonexistent', '00:03.0'])).toEqual({
      code: 1, stdout: '', stderr: `vfio: ${command}: /nonexistent/bus/pci/devices does not exist: is sysfs mounted at /nonexistent? (--sysfs-root)\n`,
    });
  });
});
