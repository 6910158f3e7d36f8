import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { sysfsPaths } from '../../src/cli/bind';
import { bindingModel, run, testMachine } from './helpers';

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => kernel.dispose());

const driverOf = (address: string) => kernel.device(address)!.driver;

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
  test('override, unbind the host driver, probe: the device ends on vfio-pci', () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    const r = run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0: e1000e -> vfio-pci (IOMMU group 1, /dev/vfio/1)\n' });
    expect(model.writes).toEqual([
      ['/bus/pci/devices/0000:00:03.0/driver_override', 'vfio-pci'],
      ['/bus/pci/drivers/e1000e/unbind', '0000:00:03.0'],
      ['/bus/pci/drivers_probe', '0000:00:03.0'],
    ]);
    expect(driverOf('0000:00:03.0')).toBe('vfio-pci');
  });

  test('an unbound device needs no unbind; --json reports before and after', () => {
    kernel.bindDriver('0000:00:03.0', null);
    const model = bindingModel(kernel);
    const r = run(['bind', '--json', '0000:00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ address: '0000:00:03.0', before: null, after: 'vfio-pci', device: { iommuGroup: 1, driver: 'vfio-pci' } });
    expect(model.writes.map(([path]) => path)).toEqual(['/bus/pci/devices/0000:00:03.0/driver_override', '/bus/pci/drivers_probe']);
  });

  test('already on vfio-pci: nothing written, exit 0', () => {
    const model = bindingModel(kernel);
    expect(run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0 is already bound to vfio-pci\n' });
    expect(model.writes).toEqual([]);
  });

  test('a group still held by a host driver gets a note naming it', () => {
    kernel.bindDriver('0000:03:01.0', 'e1000e');
    kernel.bindDriver('0000:03:02.0', 'igb');
    const model = bindingModel(kernel);
    const r = run(['bind', '03:01.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('0000:03:01.0: e1000e -> vfio-pci\nnote: IOMMU group 9 is not viable yet: also bind 0000:03:02.0 (igb)\n');
  });

  test('vfio-pci not taking the device is an error', () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    // The model ignores the override here: a kernel whose vfio-pci refuses the device.
    const refuse = (path: string, text: string) => model.writeSysfs(path, path.endsWith('driver_override') ? '\n' : text);
    const r = run(['bind', '00:03.0'], { context, writeSysfs: refuse });
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'vfio: bind: vfio-pci did not take 0000:00:03.0 (driver now: e1000e); see dmesg\n' });
  });

  test('vfio-pci not loaded', () => {
    for (const address of ['0000:00:03.0', '0000:01:00.0', '0000:03:01.0', '0000:03:02.0']) kernel.bindDriver(address, 'e1000e');
    rmSync(`${kernel.sysfsRoot}/bus/pci/drivers/vfio-pci`, { recursive: true });
    const model = bindingModel(kernel);
    expect(run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).toEqual({ code: 1, stdout: '', stderr: "vfio: bind: the vfio-pci driver is not loaded: run 'modprobe vfio-pci'\n" });
    expect(model.writes).toEqual([]);
  });

  test('a refused write names the file and suggests root for EACCES', () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const denied = () => {
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    };
    const r = run(['bind', '00:03.0'], { context, writeSysfs: denied });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vfio: bind: cannot write "vfio-pci" to ${kernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/driver_override: EACCES (run as root)\n` });
  });

  test('the default writer writes the real files, and fails on a missing one', () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const override = `${kernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/driver_override`;
    // The fake tree has driver_override but no unbind or drivers_probe attributes.
    const missing = run(['bind', '00:03.0'], { context });
    expect(missing).toEqual({ code: 1, stdout: '', stderr: `vfio: bind: cannot write "0000:00:03.0" to ${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind: ENOENT\n` });
    expect(readFileSync(override, 'utf8')).toBe('vfio-pci');
    // With them in place every write lands, but nothing rebinds a plain file tree.
    writeFileSync(`${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind`, '');
    writeFileSync(`${kernel.sysfsRoot}/bus/pci/drivers_probe`, '');
    const r = run(['bind', '00:03.0'], { context });
    expect(r.stderr).toBe('vfio: bind: vfio-pci did not take 0000:00:03.0 (driver now: e1000e); see dmesg\n');
    expect(readFileSync(`${kernel.sysfsRoot}/bus/pci/drivers/e1000e/unbind`, 'utf8')).toBe('0000:00:03.0');
    expect(readFileSync(`${kernel.sysfsRoot}/bus/pci/drivers_probe`, 'utf8')).toBe('0000:00:03.0');
  });
});

describe('unbind', () => {
  test('clear the override, unbind vfio-pci, probe: the host driver takes it back', () => {
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    const r = run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r).toEqual({ code: 0, stderr: '', stdout: '0000:00:03.0: vfio-pci -> e1000e\n' });
    expect(model.writes).toEqual([
      ['/bus/pci/devices/0000:00:03.0/driver_override', '\n'],
      ['/bus/pci/drivers/vfio-pci/unbind', '0000:00:03.0'],
      ['/bus/pci/drivers_probe', '0000:00:03.0'],
    ]);
    expect(driverOf('0000:00:03.0')).toBe('e1000e');
  });

  test('no host driver: the device stays unbound; --json', () => {
    const model = bindingModel(kernel);
    const r = run(['unbind', '--json', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ address: '0000:00:03.0', before: 'vfio-pci', after: null });
    expect(driverOf('0000:00:03.0')).toBeNull();
  });

  test('bind then unbind round-trips', () => {
    const model = bindingModel(kernel, { '0000:00:03.0': 'e1000e' });
    run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs });
    expect(run(['bind', '00:03.0'], { context, writeSysfs: model.writeSysfs }).code).toBe(0);
    expect(driverOf('0000:00:03.0')).toBe('vfio-pci');
    expect(run(['info', '00:03.0'], { context }).code).toBe(0);
  });

  test('a device on a host driver is left alone', () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    const model = bindingModel(kernel);
    expect(run(['unbind', '00:03.0'], { context, writeSysfs: model.writeSysfs })).toEqual({ code: 1, stdout: '', stderr: 'vfio: unbind: 0000:00:03.0 is bound to e1000e, not vfio-pci: nothing to give back\n' });
    expect(model.writes).toEqual([]);
  });

  test('vfio-pci keeping the device is an error', () => {
    const keep = () => {};
    expect(run(['unbind', '00:03.0'], { context, writeSysfs: keep })).toEqual({ code: 1, stdout: '', stderr: 'vfio: unbind: 0000:00:03.0 is still bound to vfio-pci; see dmesg\n' });
  });
});

describe.each(['bind', 'unbind'])('%s: argument errors', (command) => {
  test.each([
    [[], 2, `vfio: ${command}: missing PCI address (like 0000:00:03.0) (see 'vfio help')`],
    [['0000:00:3.0'], 2, `vfio: ${command}: '0000:00:3.0' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0) (see 'vfio help')`],
    [['00:03.0', 'x'], 2, `vfio: ${command}: unexpected argument 'x' (see 'vfio help')`],
  ])('%j', (args, code, line) => {
    expect(run([command, ...args], { context, writeSysfs: bindingModel(kernel).writeSysfs })).toEqual({ code, stdout: '', stderr: `${line}\n` });
  });

  test('no such device', () => {
    expect(run([command, '00:1f.7'], { context }).stderr).toBe(`vfio: ${command}: no PCI device 0000:00:1f.7 in ${kernel.sysfsRoot}/bus/pci/devices (see 'vfio list')\n`);
  });
});

