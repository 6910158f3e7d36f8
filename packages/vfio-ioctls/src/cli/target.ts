/** The device (or IOMMU group) a command acts on, read from sysfs. */
import { statSync } from 'node:fs';
import { parsePciAddress } from '../core/validate';
import { groupDevices, pciDevice, type PciDeviceInfo } from '../discovery/sysfs';
import { CliError, usageError, type CommandEnv } from './command';

/**
 * A sysfs root without bus/pci/devices is a wrong --sysfs-root (or sysfs not
 * mounted): said so, rather than listing nothing as if the machine had no devices.
 */
export function requireSysfs(env: CommandEnv): void {
  const dir = `${env.sysfsRoot}/bus/pci/devices`;
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // Missing: reported below.
  }
  if (!isDir) throw new CliError(`${env.command}: ${dir} does not exist: is sysfs mounted at ${env.sysfsRoot}? (--sysfs-root)`);
}

/**
 * The full, lower-case form 'dddd:bb:dd.f' of a PCI address given as
 * 'dddd:bb:dd.f' or 'bb:dd.f' (lspci's short form, domain 0).
 */
export function pciAddress(value: string | undefined, command: string): string {
  if (value === undefined) throw usageError(`${command}: missing PCI address (like 0000:00:03.0)`);
  const address = parsePciAddress(value);
  if (address === undefined) {
    throw usageError(`${command}: '${value}' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0)`);
  }
  return address;
}

/** The device at `address` in sysfs; a missing one is a CliError that says so. */
export function findDevice(env: CommandEnv, address: string): PciDeviceInfo {
  try {
    return pciDevice(address, { sysfsRoot: env.sysfsRoot });
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new CliError(`${env.command}: no PCI device ${address} in ${env.sysfsRoot}/bus/pci/devices (see 'vfio list')`);
    }
    throw error;
  }
}

/** The one positional argument of a command; more is a usage error. */
export function oneArgument(env: CommandEnv, what: string): string {
  if (env.args.length > 1) throw usageError(`${env.command}: unexpected argument '${env.args[1]}'`);
  if (env.args.length === 0) throw usageError(`${env.command}: missing ${what}`);
  return env.args[0]!;
}

/**
 * The devices of an IOMMU group named by its number ('9') or by one of its
 * devices (a PCI address).
 */
export function groupMembers(env: CommandEnv, value: string): { id: number; devices: PciDeviceInfo[] } {
  let id: number;
  if (/^\d+$/.test(value)) {
    id = Number(value);
    if (id > 0x7fff_ffff) throw usageError(`${env.command}: '${value}' is not an IOMMU group number`);
  } else {
    const device = findDevice(env, pciAddress(value, env.command));
    if (device.iommuGroup === undefined) {
      throw new CliError(`${env.command}: ${device.address} has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on)`);
    }
    id = device.iommuGroup;
  }
  try {
    return { id, devices: groupDevices(id, { sysfsRoot: env.sysfsRoot }) };
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new CliError(`${env.command}: no IOMMU group ${id} in ${env.sysfsRoot}/kernel/iommu_groups (see 'vfio list')`);
    }
    throw error;
  }
}
