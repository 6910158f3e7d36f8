/**
 * `vfio bind` / `vfio unbind`: hand a device to vfio-pci and back, the way
 * the kernel documents it: driver_override names the driver, the current
 * driver lets go (unbind), and drivers_probe binds the device again.
 */
import { existsSync } from 'node:fs';
import { blocksGroup, groupDevices, isVfioDriver, type PciDeviceInfo } from '../index';
import { CliError, findDevice, pciAddress, usageError, type CommandEnv } from './env';
import { json } from './format';
import { deviceJson } from './list';

export const bindUsage = `vfio bind <pci-address> [--json]
  Binds the device to vfio-pci: writes 'vfio-pci' to its driver_override,
  unbinds its current driver and asks the PCI bus to probe it again.
  Needs root and the vfio-pci module (modprobe vfio-pci).`;

export const unbindUsage = `vfio unbind <pci-address> [--json]
  Gives the device back to the host: clears driver_override, unbinds
  vfio-pci and probes it again, so that its usual driver (if any) takes it.
  Close every program using the device first: vfio-pci waits for them.`;

/** The sysfs attributes the rebinding writes, for one device. */
export function sysfsPaths(sysfsRoot: string, address: string, driver?: string) {
  return {
    driverOverride: `${sysfsRoot}/bus/pci/devices/${address}/driver_override`,
    unbind: driver === undefined ? undefined : `${sysfsRoot}/bus/pci/drivers/${driver}/unbind`,
    driversProbe: `${sysfsRoot}/bus/pci/drivers_probe`,
    vfioDriver: `${sysfsRoot}/bus/pci/drivers/vfio-pci`,
  };
}

export function bind(env: CommandEnv): void {
  const { address, before } = target(env, 'bind');
  if (isVfioDriver(before.driver)) return report(env, `${address} is already bound to ${before.driver}`, before, before);
  const paths = sysfsPaths(env.sysfsRoot, address, before.driver);
  // Without the driver loaded, drivers_probe would silently leave the device unbound.
  if (!existsSync(paths.vfioDriver)) throw new CliError("bind: the vfio-pci driver is not loaded: run 'modprobe vfio-pci'");
  write(env, 'bind', paths.driverOverride, 'vfio-pci');
  if (paths.unbind) write(env, 'bind', paths.unbind, address);
  write(env, 'bind', paths.driversProbe, address);
  const after = findDevice(env, address, 'bind');
  if (!isVfioDriver(after.driver)) {
    throw new CliError(`bind: vfio-pci did not take ${address} (driver now: ${after.driver ?? 'none'}); see dmesg`);
  }
  report(env, `${address}: ${before.driver ?? 'no driver'} -> ${after.driver}${viabilityNote(env, after)}`, before, after);
}

export function unbind(env: CommandEnv): void {
  const { address, before } = target(env, 'unbind');
  if (before.driver !== undefined && !isVfioDriver(before.driver)) {
    throw new CliError(`unbind: ${address} is bound to ${before.driver}, not vfio-pci: nothing to give back`);
  }
  const paths = sysfsPaths(env.sysfsRoot, address, before.driver);
  // A newline clears driver_override (an empty write is refused by some kernels).
  write(env, 'unbind', paths.driverOverride, '\n');
  if (paths.unbind) write(env, 'unbind', paths.unbind, address);
  write(env, 'unbind', paths.driversProbe, address);
  const after = findDevice(env, address, 'unbind');
  if (isVfioDriver(after.driver)) throw new CliError(`unbind: ${address} is still bound to ${after.driver}; see dmesg`);
  report(env, `${address}: ${before.driver ?? 'no driver'} -> ${after.driver ?? 'no driver'}`, before, after);
}

function target(env: CommandEnv, command: string): { address: string; before: PciDeviceInfo } {
  if (env.args.length > 1) throw usageError(`${command}: unexpected argument '${env.args[1]}'`);
  const address = pciAddress(env.args[0], command);
  return { address, before: findDevice(env, address, command) };
}

function write(env: CommandEnv, command: string, path: string, text: string): void {
  try {
    env.writeSysfs(path, text);
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'error';
    const hint = code === 'EACCES' || code === 'EPERM' ? ' (run as root)' : '';
    throw new CliError(`${command}: cannot write ${JSON.stringify(text.trim())} to ${path}: ${code}${hint}`);
  }
}

/** After a bind, the other devices of the group may still keep it from being used. */
function viabilityNote(env: CommandEnv, device: PciDeviceInfo): string {
  if (device.iommuGroup === undefined) return ' (no IOMMU group: is the IOMMU on?)';
  const blocking = groupDevices(device.iommuGroup, { sysfsRoot: env.sysfsRoot }).filter((d) => blocksGroup(d.driver));
  if (blocking.length === 0) return ` (IOMMU group ${device.iommuGroup}, ${env.devRoot}/${device.iommuGroup})`;
  return `\nnote: IOMMU group ${device.iommuGroup} is not viable yet: also bind ${blocking.map((d) => `${d.address} (${d.driver})`).join(', ')}`;
}

function report(env: CommandEnv, text: string, before: PciDeviceInfo, after: PciDeviceInfo): void {
  if (env.json) {
    env.stdout.write(`${json({ address: before.address, before: before.driver ?? null, after: after.driver ?? null, device: deviceJson(after) })}\n`);
  } else {
    env.stdout.write(`${text}\n`);
  }
}
