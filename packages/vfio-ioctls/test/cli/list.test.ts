import { mkdirSync, unlinkSync } from 'node:fs';
import type { VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { run, tempFolder, testMachine } from './helpers';

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => kernel.dispose());

test('text: iommufd first, then one line per group with its node and verdict, one row per device', async () => {
  const r = await run(['list'], { context });
  expect(r).toMatchObject({ code: 0, stderr: '' });
  expect(r.stdout.split('\n')).toEqual([
    `iommufd: not available (no ${kernel.sysfsRoot}/class/misc/iommu): devices go through the container`,
    'IOMMU group 1  /dev/vfio/1  viable',
    '  0000:00:03.0  1234:11e8  00ff00  Unclassified device      vfio-pci',
    'IOMMU group 8  /dev/vfio/8  viable',
    '  0000:01:00.0  1b36:0010  010802  Mass storage controller  vfio-pci',
    'IOMMU group 9  /dev/vfio/9  viable',
    '  0000:02:00.0  1b36:000e  060400  Bridge                   (no driver)',
    '  0000:03:01.0  1234:11e8  00ff00  Unclassified device      vfio-pci',
    '  0000:03:02.0  1234:11e8  00ff00  Unclassified device      vfio-pci',
    '',
  ]);
});

describe('a kernel with iommufd and device cdevs', () => {
  let cdevKernel: FakeKernel;
  beforeEach(() => {
    cdevKernel = testMachine({ deviceCdevs: true }).kernel;
    // The kernel registers iommufd as the misc device 'iommu'.
    mkdirSync(`${cdevKernel.sysfsRoot}/class/misc/iommu`, { recursive: true });
  });
  afterEach(() => cdevKernel.dispose());

  test('text: iommufd available, each device on vfio-pci with its cdev', async () => {
    cdevKernel.bindDriver('0000:03:02.0', 'e1000e');
    const r = await run(['list', '--sysfs-root', cdevKernel.sysfsRoot]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('iommufd: available (/dev/iommu): devices with a cdev can use it');
    expect(lines).toContain('  0000:00:03.0  1234:11e8  00ff00  Unclassified device      vfio-pci     vfio0');
    // A device off vfio-pci has no cdev.
    expect(lines).toContain('  0000:03:02.0  1234:11e8  00ff00  Unclassified device      e1000e');
  });

  test('--json: iommufd and each cdev', async () => {
    const { iommufd, groups } = JSON.parse((await run(['list', '--json', '--sysfs-root', cdevKernel.sysfsRoot])).stdout);
    expect(iommufd).toEqual({ available: true, node: '/dev/iommu' });
    const cdevs = groups.flatMap((g: { devices: { address: string; cdev: string | null }[] }) => g.devices.map((d) => [d.address, d.cdev]));
    expect(cdevs).toEqual([
      ['0000:00:03.0', 'vfio0'], ['0000:01:00.0', 'vfio1'], ['0000:02:00.0', null], ['0000:03:01.0', 'vfio2'], ['0000:03:02.0', 'vfio3'],
    ]);
  });

  test('a vfio-dev entry without a dev number (a kernel without CONFIG_VFIO_DEVICE_CDEV) is no cdev', async () => {
    unlinkSync(`${cdevKernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/vfio-dev/vfio0/dev`);
    const { groups } = JSON.parse((await run(['list', '--json', '--sysfs-root', cdevKernel.sysfsRoot])).stdout);
    expect(groups[0].devices[0]).toMatchObject({ address: '0000:00:03.0', cdev: null });
  });
});

test('a device bound to a host driver makes its group not viable and is named', async () => {
  kernel.bindDriver('0000:03:02.0', 'e1000e');
  kernel.bindDriver('0000:03:01.0', 'igb');
  const r = await run(['list'], { context });
  // No device on vfio-pci: the kernel has made no group node.
  expect(r.stdout).toContain('IOMMU group 9  (no node)  not viable: bind all of 0000:03:01.0, 0000:03:02.0 to vfio-pci\n');
  kernel.bindDriver('0000:03:01.0', 'vfio-pci');
  expect((await run(['list'], { context })).stdout).toContain('IOMMU group 9  /dev/vfio/9  not viable: bind 0000:03:02.0 to vfio-pci\n');
});

test('pcieport, pci-stub and vfio-pci variants leave a group viable', async () => {
  kernel.bindDriver('0000:02:00.0', 'pcieport');
  kernel.bindDriver('0000:03:01.0', 'pci-stub');
  kernel.bindDriver('0000:03:02.0', 'mlx5_vfio_pci');
  const groups = JSON.parse((await run(['list', '--json'], { context })).stdout).groups;
  expect(groups[2]).toMatchObject({ id: 9, viable: true, blocking: [] });
});

test('--json: iommufd, groups with ids, node, viability and devices', async () => {
  kernel.bindDriver('0000:03:02.0', 'e1000e');
  const r = await run(['--json', 'list'], { context });
  expect(r.code).toBe(0);
  const { iommufd, groups } = JSON.parse(r.stdout);
  expect(iommufd).toEqual({ available: false, node: '/dev/iommu' });
  expect(groups.map((g: { id: number }) => g.id)).toEqual([1, 8, 9]);
  expect(groups[2]).toMatchObject({ id: 9, node: '/dev/vfio/9', viable: false, blocking: ['0000:03:02.0'] });
  expect(groups[1].devices).toEqual([{
    address: '0000:01:00.0', vendor: 0x1b36, device: 0x10, vendorDevice: '1b36:0010',
    class: 0x010802, className: 'Mass storage controller', driver: 'vfio-pci', iommuGroup: 8, cdev: null,
  }]);
  expect(groups[2].devices[0].driver).toBeNull();
  kernel.bindDriver('0000:03:01.0', null);
  expect(JSON.parse((await run(['list', '--json'], { context })).stdout).groups[2]).toMatchObject({ node: null, viable: false });
});

test('--sysfs-root and --dev-root without a context, or overriding its roots', async () => {
  const own = JSON.parse((await run(['list', '--json', `--sysfs-root=${kernel.sysfsRoot}/`, '--dev-root', '/elsewhere/vfio/'])).stdout);
  expect(own.groups.map((g: { node: string }) => g.node)).toEqual(['/elsewhere/vfio/1', '/elsewhere/vfio/8', '/elsewhere/vfio/9']);
  expect(own.iommufd.node).toBe('/elsewhere/iommu');
  const other = testMachine();
  try {
    other.kernel.bindDriver('0000:03:02.0', 'e1000e');
    const r = JSON.parse((await run(['list', '--json', '--sysfs-root', other.kernel.sysfsRoot], { context })).stdout);
    expect(r.groups[2]).toMatchObject({ node: '/dev/vfio/9', viable: false });
  } finally {
    other.kernel.dispose();
  }
});

test('no IOMMU groups in a real sysfs: a hint about the IOMMU, still exit 0; --json gives an empty list', async () => {
  const sysfs = tempFolder('vfio-command-sysfs-');
  mkdirSync(`${sysfs}/bus/pci/devices`, { recursive: true });
  const r = await run(['list', '--sysfs-root', sysfs]);
  expect(r).toEqual({
    code: 0,
    stderr: '',
    stdout: `iommufd: not available (no ${sysfs}/class/misc/iommu): devices go through the container\n`
      + `no IOMMU groups in ${sysfs}/kernel/iommu_groups: is the IOMMU on (intel_iommu=on or amd_iommu=on)?\n`,
  });
  expect(JSON.parse((await run(['list', '--json', '--sysfs-root', sysfs])).stdout)).toEqual({ iommufd: { available: false, node: '/dev/iommu' }, groups: [] });
});

test('a sysfs root that is not one is an error, exit 1, nothing on stdout', async () => {
  for (const root of ['/nonexistent', tempFolder('vfio-command-empty-')]) {
    expect(await run(['list', '--sysfs-root', root])).toEqual({
      code: 1, stdout: '', stderr: `vfio: list: ${root}/bus/pci/devices does not exist: is sysfs mounted at ${root}? (--sysfs-root)\n`,
    });
  }
});

test('list takes no arguments', async () => {
  expect(await run(['list', '9'], { context })).toEqual({ code: 2, stdout: '', stderr: "vfio: list: unexpected argument '9' (see 'vfio help')\n" });
});
