import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FakeKernel } from '../../src/testing';

describe('fake sysfs tree', () => {
  let kernel: FakeKernel;
  beforeEach(() => {
    kernel = new FakeKernel();
    kernel.addDevice({ address: '0000:00:03.0', group: 12 });
    kernel.addDevice({ address: '0000:01:00.0', group: 15, vendor: 0x8086, device: 0x10d3, class: 0x020000, driver: 'e1000e' });
    kernel.addDevice({ address: '0000:01:00.1', group: 15, driver: null });
  });
  afterEach(() => kernel.dispose());

  const dev = (address: string, file = '') => join(kernel.sysfsRoot, 'bus/pci/devices', address, file);

  test('device attributes are sysfs-formatted hex', () => {
    expect(readFileSync(dev('0000:00:03.0', 'vendor'), 'utf8')).toBe('0x1234\n');
    expect(readFileSync(dev('0000:00:03.0', 'device'), 'utf8')).toBe('0x11e8\n');
    expect(readFileSync(dev('0000:00:03.0', 'class'), 'utf8')).toBe('0x00ff00\n');
    expect(readFileSync(dev('0000:01:00.0', 'vendor'), 'utf8')).toBe('0x8086\n');
    expect(readFileSync(dev('0000:01:00.0', 'class'), 'utf8')).toBe('0x020000\n');
  });

  test('iommu_group and driver are relative symlinks whose basenames are the group and driver', () => {
    expect(basename(readlinkSync(dev('0000:00:03.0', 'iommu_group')))).toBe('12');
    expect(readlinkSync(dev('0000:00:03.0', 'iommu_group')).startsWith('/')).toBe(false);
    expect(basename(realpathSync(dev('0000:00:03.0', 'driver')))).toBe('vfio-pci');
    expect(basename(realpathSync(dev('0000:01:00.0', 'driver')))).toBe('e1000e');
    expect(existsSync(dev('0000:01:00.1', 'driver'))).toBe(false);
    expect(realpathSync(dev('0000:00:03.0'))).toBe(realpathSync(join(kernel.sysfsRoot, 'devices/pci0000:00/0000:00:03.0')));
  });

  test('kernel/iommu_groups/N/devices lists the group members; drivers list their devices', () => {
    expect(readdirSync(join(kernel.sysfsRoot, 'kernel/iommu_groups')).sort()).toEqual(['12', '15']);
    expect(readdirSync(join(kernel.sysfsRoot, 'kernel/iommu_groups/15/devices')).sort()).toEqual(['0000:01:00.0', '0000:01:00.1']);
    expect(readdirSync(join(kernel.sysfsRoot, 'bus/pci/drivers/vfio-pci'))).toEqual(['0000:00:03.0']);
    expect(realpathSync(join(kernel.sysfsRoot, 'kernel/iommu_groups/12/devices/0000:00:03.0'))).toBe(realpathSync(dev('0000:00:03.0')));
  });

  test('bindDriver moves the links', () => {
    kernel.bindDriver('0000:01:00.0', 'vfio-pci');
    expect(basename(realpathSync(dev('0000:01:00.0', 'driver')))).toBe('vfio-pci');
    expect(readdirSync(join(kernel.sysfsRoot, 'bus/pci/drivers/e1000e'))).toEqual([]);
    kernel.bindDriver('0000:01:00.0', null);
    expect(existsSync(dev('0000:01:00.0', 'driver'))).toBe(false);
  });

  test('addDevice refuses bad or duplicate addresses', () => {
    expect(() => kernel.addDevice({ address: '00:03.0', group: 1 })).toThrow(/address/);
    expect(() => kernel.addDevice({ address: '0000:00:03.0', group: 1 })).toThrow(/already exists/);
  });

  test('dispose removes the temp directory', () => {
    const root = kernel.sysfsRoot;
    expect(existsSync(root)).toBe(true);
    kernel.dispose();
    expect(existsSync(root)).toBe(false);
  });
});
