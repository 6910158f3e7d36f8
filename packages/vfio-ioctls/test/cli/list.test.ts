import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeKernel } from '../../src/testing';
import type { VfioContext } from '../../src';
import { run, testMachine } from './helpers';

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => kernel.dispose());

test('text: one line per group with its node and verdict, one row per device', () => {
  const r = run(['list'], { context });
  expect(r).toMatchObject({ code: 0, stderr: '' });
  expect(r.stdout.split('\n')).toEqual([
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

test('a device bound to a host driver makes its group not viable and is named', () => {
  kernel.bindDriver('0000:03:02.0', 'e1000e');
  kernel.bindDriver('0000:03:01.0', 'igb');
  const r = run(['list'], { context });
  // No device on vfio-pci: the kernel has made no group node.
  expect(r.stdout).toContain('IOMMU group 9  (no node)  not viable: bind all of 0000:03:01.0, 0000:03:02.0 to vfio-pci\n');
  kernel.bindDriver('0000:03:01.0', 'vfio-pci');
  expect(run(['list'], { context }).stdout).toContain('IOMMU group 9  /dev/vfio/9  not viable: bind 0000:03:02.0 to vfio-pci\n');
});

test('pcieport, pci-stub and vfio-pci variants leave a group viable', () => {
  kernel.bindDriver('0000:02:00.0', 'pcieport');
  kernel.bindDriver('0000:03:01.0', 'pci-stub');
  kernel.bindDriver('0000:03:02.0', 'mlx5_vfio_pci');
  const groups = JSON.parse(run(['list', '--json'], { context }).stdout).groups;
  expect(groups[2]).toMatchObject({ id: 9, viable: true, blocking: [] });
});

test('--json: groups with ids, node, viability and devices', () => {
  kernel.bindDriver('0000:03:02.0', 'e1000e');
  const r = run(['--json', 'list'], { context });
  expect(r.code).toBe(0);
  const { groups } = JSON.parse(r.stdout);
  expect(groups.map((g: { id: number }) => g.id)).toEqual([1, 8, 9]);
  expect(groups[2]).toMatchObject({ id: 9, node: '/dev/vfio/9', viable: false, blocking: ['0000:03:02.0'] });
  expect(groups[1].devices).toEqual([{
    address: '0000:01:00.0', vendor: 0x1b36, device: 0x10, vendorDevice: '1b36:0010',
    class: 0x010802, className: 'Mass storage controller', driver: 'vfio-pci', iommuGroup: 8,
  }]);
  expect(groups[2].devices[0].driver).toBeNull();
  kernel.bindDriver('0000:03:01.0', null);
  expect(JSON.parse(run(['list', '--json'], { context }).stdout).groups[2]).toMatchObject({ node: null, viable: false });
});

test('--sysfs-root and --dev-root without a context, or overriding its roots', () => {
  const own = JSON.parse(run(['list', '--json', `--sysfs-root=${kernel.sysfsRoot}/`, '--dev-root', '/elsewhere/']).stdout);
  expect(own.groups.map((g: { node: string }) => g.node)).toEqual(['/elsewhere/1', '/elsewhere/8', '/elsewhere/9']);
  const other = testMachine();
  try {
    other.kernel.bindDriver('0000:03:02.0', 'e1000e');
    const r = JSON.parse(run(['list', '--json', '--sysfs-root', other.kernel.sysfsRoot], { context }).stdout);
    expect(r.groups[2]).toMatchObject({ node: '/dev/vfio/9', viable: false });
  } finally {
    other.kernel.dispose();
  }
});

test('no IOMMU groups: a hint about the IOMMU, still exit 0; --json gives an empty list', () => {
  const empty = mkdtempSync(join(tmpdir(), 'vfio-cli-sysfs-'));
  try {
    const r = run(['list', '--sysfs-root', empty]);
    expect(r).toEqual({ code: 0, stderr: '', stdout: `no IOMMU groups in ${empty}/kernel/iommu_groups: is the IOMMU on (intel_iommu=on or amd_iommu=on)?\n` });
    expect(JSON.parse(run(['list', '--json', '--sysfs-root', empty]).stdout)).toEqual({ groups: [] });
  } finally {
    rmSync(empty, { recursive: true });
  }
});

test('list takes no arguments', () => {
  expect(run(['list', '9'], { context })).toEqual({ code: 2, stdout: '', stderr: "vfio: list: unexpected argument '9' (see 'vfio help')\n" });
});
