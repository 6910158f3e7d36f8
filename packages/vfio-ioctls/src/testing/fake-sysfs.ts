import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { FakeDevice } from './fake-device';

/**
 * A real directory tree shaped like the parts of /sys that VFIO discovery
 * reads, with relative symlinks where sysfs has them:
 *
 *   devices/pciDDDD:BB/ADDR/{vendor,device,class,subsystem_vendor,subsystem_device,driver_override}
 *   devices/pciDDDD:BB/ADDR/iommu_group -> kernel/iommu_groups/N
 *   devices/pciDDDD:BB/ADDR/driver      -> bus/pci/drivers/NAME   (absent when unbound)
 *   bus/pci/devices/ADDR                -> the device directory
 *   bus/pci/drivers/NAME/ADDR           -> the device directory
 *   kernel/iommu_groups/N/devices/ADDR  -> the device directory
 *   devices/pciDDDD:BB/ADDR/vfio-dev/vfioN/dev   (while bound to vfio-pci; 'noiommu-vfioN' in no-IOMMU mode)
 *   class/vfio-dev/vfioN                -> that directory
 */
export class FakeSysfs {
  readonly root: string;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), 'vfio-fake-sysfs-'));
    for (const dir of ['bus/pci/devices', 'bus/pci/drivers', 'kernel/iommu_groups', 'devices', 'class/vfio-dev']) {
      mkdirSync(join(this.root, dir), { recursive: true });
    }
  }

  addDevice(device: FakeDevice): void {
    const dir = this.deviceDir(device.address);
    mkdirSync(dir, { recursive: true });
    const spec = device.spec;
    writeFileSync(join(dir, 'vendor'), hex(spec.vendor, 4));
    writeFileSync(join(dir, 'device'), hex(spec.device, 4));
    writeFileSync(join(dir, 'class'), hex(spec.class, 6));
    writeFileSync(join(dir, 'subsystem_vendor'), hex(spec.subsystemVendor ?? 0x1af4, 4));
    writeFileSync(join(dir, 'subsystem_device'), hex(spec.subsystemDevice ?? 0x1100, 4));
    writeFileSync(join(dir, 'driver_override'), '(null)\n');
    const groupDir = join(this.root, 'kernel/iommu_groups', String(device.group));
    mkdirSync(join(groupDir, 'devices'), { recursive: true });
    this.link(join(dir, 'iommu_group'), groupDir);
    this.link(join(groupDir, 'devices', device.address), dir);
    this.link(join(this.root, 'bus/pci/devices', device.address), dir);
    this.bind(device.address, device.driver);
  }

  /** Moves the device's driver link (and the driver's device link) to `driver`. */
  rebind(address: string, from: string | null, to: string | null): void {
    if (from) {
      unlinkSync(join(this.deviceDir(address), 'driver'));
      unlinkSync(join(this.root, 'bus/pci/drivers', from, address));
    }
    this.bind(address, to);
  }

  /** The device's VFIO cdev appeared (`name` is 'vfio3' or 'noiommu-vfio3'); its minor is the index. */
  addCdev(address: string, name: string): void {
    const dir = join(this.deviceDir(address), 'vfio-dev', name);
    mkdirSync(dir, { recursive: true });
    // 'vfio-dev' is a dynamic char major; 511 reads plausibly.
    writeFileSync(join(dir, 'dev'), `511:${/\d+$/.exec(name)![0]}\n`);
    this.link(join(this.root, 'class/vfio-dev', name), dir);
  }

  /** The device left vfio-pci: its cdev is gone. */
  removeCdev(address: string, name: string): void {
    unlinkSync(join(this.root, 'class/vfio-dev', name));
    rmSync(join(this.deviceDir(address), 'vfio-dev'), { recursive: true, force: true });
  }

  /** Removes the whole tree. */
  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private bind(address: string, driver: string | null): void {
    if (!driver) return;
    const driverDir = join(this.root, 'bus/pci/drivers', driver);
    mkdirSync(driverDir, { recursive: true });
    this.link(join(this.deviceDir(address), 'driver'), driverDir);
    this.link(join(driverDir, address), this.deviceDir(address));
  }

  private deviceDir(address: string): string {
    // The host bridge directory is named after the domain and bus: 0000:00:03.0 -> pci0000:00.
    return join(this.root, 'devices', `pci${address.slice(0, 7)}`, address);
  }

  private link(path: string, target: string): void {
    symlinkSync(relative(dirname(path), target), path);
  }
}

function hex(value: number, digits: number): string {
  return `0x${value.toString(16).padStart(digits, '0')}\n`;
}
