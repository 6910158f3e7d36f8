import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blocksGroup, groupDevices, groupOf, isVfioDriver, listIommuGroups, parsePciAddress, pciDevice } from '../src';
import { EDU, EDU2, kernel } from './helpers';

const NIC = '0000:00:02.0';

function machine() {
  return kernel([
    { address: EDU, group: 5 },
    { address: EDU2, group: 5, driver: null, vendor: 0x8086, device: 0x2448, class: 0x060400 },
    { address: NIC, group: 2, driver: 'e1000e', vendor: 0x8086, device: 0x10d3, class: 0x020000 },
  ]);
}

describe('pciDevice', () => {
  test('describes ids, class, driver and group', () => {
    const { fake } = machine();
    const options = { sysfsRoot: fake.sysfsRoot };
    expect(pciDevice(EDU, options)).toEqual({
      address: EDU, vendor: 0x1234, device: 0x11e8, class: 0x00ff00, driver: 'vfio-pci', iommuGroup: 5,
      sysfsPath: `${fake.sysfsRoot}/bus/pci/devices/${EDU}`,
    });
    expect(pciDevice('00:02.0', options)).toMatchObject({ address: NIC, driver: 'e1000e', class: 0x020000, iommuGroup: 2 });
    const bridge = pciDevice(EDU2, options);
    expect(bridge.driver).toBeUndefined();
    expect('driver' in bridge).toBe(false);
  });

  test('malformed addresses are RangeErrors; unknown devices ENOENT with the path', () => {
    const { fake } = machine();
    const options = { sysfsRoot: fake.sysfsRoot };
    expect(() => pciDevice('0000:00:3', options)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('address') }));
    expect(() => pciDevice('0000:00:20.0', options)).toThrow(expect.objectContaining({ name: 'RangeError' })); // slot > 0x1f
    expect(() => pciDevice(42 as never, options)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => pciDevice('0000:00:1f.0', options)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOENT', path: `${fake.sysfsRoot}/bus/pci/devices/0000:00:1f.0` }));
    expect(() => pciDevice(EDU, { sysfsRoot: 5 } as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.sysfsRoot') }));
  });
});

describe('options', () => {
  test('an unknown option name is a TypeError naming it, for every discovery call', () => {
    const { fake } = machine();
    const typo = { sysfsroot: fake.sysfsRoot } as never;
    const expected = expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.sysfsroot is not a known option (did you mean sysfsRoot?') });
    expect(() => pciDevice(EDU, typo)).toThrow(expected);
    expect(() => groupOf(EDU, typo)).toThrow(expected);
    expect(() => groupDevices(5, typo)).toThrow(expected);
    expect(() => listIommuGroups(typo)).toThrow(expected);
    expect(() => listIommuGroups('/sys' as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  test('the VfioOptions of the rest of the library are accepted too (one options object for every call)', () => {
    const { fake, env } = machine();
    expect(groupOf(EDU, env)).toBe(5);
    expect(listIommuGroups({ ...env, sysfsRoot: fake.sysfsRoot })).toHaveLength(2);
  });
});

describe('groupOf', () => {
  test('the group number of a PCI address', () => {
    const { fake } = machine();
    expect(groupOf(EDU, { sysfsRoot: fake.sysfsRoot })).toBe(5);
    expect(groupOf('0000:00:02.0', { sysfsRoot: `${fake.sysfsRoot}/` })).toBe(2);
  });

  test('a device without an IOMMU group, and a missing device, are told apart', () => {
    const root = mkdtempSync(join(tmpdir(), 'vfio-sysfs-'));
    try {
      mkdirSync(join(root, 'bus/pci/devices', EDU), { recursive: true });
      expect(() => groupOf(EDU, { sysfsRoot: root })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_IOMMU_UNAVAILABLE', device: EDU, hint: expect.stringContaining('iommu=on') }));
      expect(() => groupOf(EDU2, { sysfsRoot: root })).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('listIommuGroups / groupDevices', () => {
  test('every group with its devices, sorted', () => {
    const { fake } = machine();
    const groups = listIommuGroups({ sysfsRoot: fake.sysfsRoot });
    expect(groups.map((g) => [g.id, g.devices.map((d) => d.address)])).toEqual([
      [2, [NIC]],
      [5, [EDU, EDU2]],
    ]);
    expect(groups[1]!.devices[0]).toMatchObject({ driver: 'vfio-pci', iommuGroup: 5 });
    expect(groupDevices(2, { sysfsRoot: fake.sysfsRoot })).toEqual([expect.objectContaining({ address: NIC, driver: 'e1000e' })]);
  });

  test('no iommu_groups folder (IOMMU off) is an empty list; an unknown group is ENOENT', () => {
    const root = mkdtempSync(join(tmpdir(), 'vfio-sysfs-'));
    try {
      expect(listIommuGroups({ sysfsRoot: root })).toEqual([]);
      expect(() => groupDevices(7, { sysfsRoot: root })).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOENT', hint: expect.stringContaining('group 7') }));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('a group id is a non-negative integer, checked before sysfs is read', () => {
    const { fake } = machine();
    const options = { sysfsRoot: fake.sysfsRoot };
    for (const bad of ['5', 5n, null, undefined]) {
      expect(() => groupDevices(bad as never, options)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/^id must be an integer/) }));
    }
    for (const bad of [-1, 2 ** 31, 1.5, NaN]) {
      expect(() => groupDevices(bad, options)).toThrow(expect.objectContaining({ code: bad === 1.5 || Number.isNaN(bad) ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE' }));
    }
    // '../5' would otherwise name another folder of sysfs.
    expect(() => groupDevices('../5' as never, options)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });

  test('unreadable device files are reported with their path', () => {
    const root = mkdtempSync(join(tmpdir(), 'vfio-sysfs-'));
    try {
      const dev = join(root, 'kernel/iommu_groups/3/devices', EDU);
      mkdirSync(dev, { recursive: true });
      writeFileSync(join(dev, 'vendor'), '0x1234\n');
      expect(() => listIommuGroups({ sysfsRoot: root })).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOENT', path: dev }));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('the public helpers the vfio command shares', () => {
  test('parsePciAddress: full lower-case form, domain 0 by default, undefined for anything else', () => {
    expect(parsePciAddress('0000:00:03.0')).toBe('0000:00:03.0');
    expect(parsePciAddress('AB:1F.7')).toBe('0000:ab:1f.7');
    for (const bad of ['00:20.0', '00:03.8', '0:00:03.0', '0000:00:03', '/sys/bus/pci/devices/0000:00:03.0', '']) {
      expect(parsePciAddress(bad)).toBeUndefined();
    }
  });

  test('parsePciAddress: a non-string is a TypeError, not "not an address"', () => {
    expect(() => parsePciAddress(3 as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => parsePciAddress(undefined as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });

  test('isVfioDriver / blocksGroup take a driver name or undefined, nothing else', () => {
    for (const f of [isVfioDriver, blocksGroup]) {
      expect(() => f(null as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('driver') }));
      expect(() => f(1 as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    }
  });

  test('isVfioDriver / blocksGroup follow the kernel: vfio-pci and variants, pci-stub and pcieport do not block', () => {
    expect(['vfio-pci', 'mlx5_vfio_pci', 'hisi-acc-vfio-pci'].every(isVfioDriver)).toBe(true);
    expect(['e1000e', 'vfio', 'vfio-pci-ish', undefined].some(isVfioDriver)).toBe(false);
    expect([undefined, 'vfio-pci', 'pci-stub', 'pcieport'].some(blocksGroup)).toBe(false);
    expect(['e1000e', 'nvme', 'uio_pci_generic'].every(blocksGroup)).toBe(true);
  });
});
