/**
 * `vfio bind` / `vfio unbind`: hand a device (or every device of an IOMMU
 * group) to vfio-pci and back, the way the kernel documents it:
 * driver_override names the driver, the current driver lets go (unbind),
 * and drivers_probe binds the device again. bind records the driver it
 * took the device from (driver-record.ts) and unbind gives it back.
 */
import { existsSync } from 'node:fs';
import { blocksGroup, groupDevices, isVfioDriver, pciDeviceDir, type PciDeviceInfo } from '../discovery/sysfs';
import { CliError, describeError, type Command, type CommandEnv, type OptionSpec } from './command';
import { forgetRecord, loadRecord, saveRecord, type DriverRecord } from './driver-record';
import { json } from './format';
import { hostUses, openers } from './host-use';
import { deviceCdev, deviceJson, groupJson } from './list';
import { bindingSchema } from './schemas/binding';
import { findDevice, groupMembers, oneArgument, pciAddress, requireSysfs } from './target';

/** The sysfs attributes the rebinding writes, for one device. */
export function sysfsPaths(sysfsRoot: string, address: string, driver?: string) {
  return {
    driverOverride: `${pciDeviceDir(sysfsRoot, address)}/driver_override`,
    unbind: driver === undefined ? undefined : `${sysfsRoot}/bus/pci/drivers/${driver}/unbind`,
    driversProbe: `${sysfsRoot}/bus/pci/drivers_probe`,
    vfioDriver: `${sysfsRoot}/bus/pci/drivers/vfio-pci`,
  };
}

/** What bind or unbind did to one device. */
interface Outcome {
  before: PciDeviceInfo;
  after: PciDeviceInfo;
  /** Why nothing was done, or how the driver was chosen (for people). */
  note: string | null;
  /** bind: the driver recorded; unbind: the record given back to (null: none). */
  record: DriverRecord | null;
}

function bind(env: CommandEnv): void {
  const { devices, groupId } = targets(env);
  const outcomes = new Map<string, Outcome>();
  const toTake: PciDeviceInfo[] = [];
  for (const d of devices) {
    if (isVfioDriver(d.driver)) outcomes.set(d.address, unchanged(d, `already bound to ${d.driver}: nothing to do`));
    else if (isBridge(d) && groupId !== undefined) outcomes.set(d.address, unchanged(d, bridgeNote(d)));
    else if (isBridge(d)) throw new CliError(`bind: ${d.address} is a PCI bridge: vfio-pci takes only endpoint devices (bind the devices behind it)`);
    else toTake.push(d);
  }
  if (toTake.length > 0) {
    // Without the driver loaded, drivers_probe would silently leave the device unbound.
    if (!existsSync(sysfsPaths(env.sysfsRoot, '').vfioDriver)) throw new CliError("bind: the vfio-pci driver is not loaded: run 'modprobe vfio-pci'");
    if (env.options.force !== true) refuseInUse(env, toTake.map((d) => [d, hostUses(d.address, env)]));
    const taken: PciDeviceInfo[] = [];
    for (const d of toTake) {
      try {
        outcomes.set(d.address, take(env, d));
      } catch (error) {
        throw new CliError(`${describeError(error)}${rollBack(env, taken)}`);
      }
      taken.push(d);
    }
  }
  report(env, devices.map((d) => outcomes.get(d.address)!), groupAfter(env, devices[0]!, groupId));
}

function unbind(env: CommandEnv): void {
  const { devices, groupId } = targets(env);
  const force = env.options.force === true;
  // A group's bridges stay with the host, as bind leaves them.
  const leftAlone = (d: PciDeviceInfo) => groupId !== undefined && isBridge(d);
  const bound = devices.filter((d) => d.driver !== undefined && !leftAlone(d));
  if (!force) {
    refuseInUse(env, bound.map((d) => [d, isVfioDriver(d.driver) ? openers(vfioNodes(env, d), env.procRoot) : hostUses(d.address, env)]));
  }
  const outcomes: Outcome[] = [];
  for (const d of devices) {
    if (leftAlone(d) || d.driver === undefined) {
      outcomes.push(unchanged(d, leftAlone(d) ? bridgeNote(d) : 'not bound to any driver: nothing to do'));
      continue;
    }
    try {
      outcomes.push(isVfioDriver(d.driver) ? giveBack(env, d) : detach(env, d));
    } catch (error) {
      const done = outcomes.filter((o) => o.before.driver !== o.after.driver).map((o) => o.before.address);
      throw new CliError(`${describeError(error)}${done.length ? ` (given back before it: ${done.join(', ')})` : ''}`);
    }
  }
  report(env, outcomes, groupAfter(env, devices[0]!, undefined));
}

/** The device named, or with --group every device of its IOMMU group. */
function targets(env: CommandEnv): { devices: PciDeviceInfo[]; groupId?: number } {
  if (env.options.group === true) {
    const value = oneArgument(env, 'IOMMU group (its number, or the PCI address of one of its devices)');
    if (!/^\d+$/.test(value)) pciAddress(value, env.command);
    requireSysfs(env);
    const group = groupMembers(env, value);
    return { devices: group.devices, groupId: group.id };
  }
  const address = pciAddress(oneArgument(env, 'PCI address (like 0000:00:03.0)'), env.command);
  requireSysfs(env);
  return { devices: [findDevice(env, address)] };
}

/** vfio-pci refuses bridges (the kernel's vfio_pci_core_register_device wants a normal header). */
function isBridge(d: PciDeviceInfo): boolean {
  const classCode = d.class >>> 8;
  return classCode === 0x0604 || classCode === 0x0607 || classCode === 0x0609;
}

function bridgeNote(d: PciDeviceInfo): string {
  return `a PCI bridge: left to ${d.driver ?? 'no driver'} (vfio-pci takes no bridges)`;
}

/** Throws when any device has a use, naming each device and each use. */
function refuseInUse(env: CommandEnv, checked: [PciDeviceInfo, string[]][]): void {
  const busy = checked.filter(([, uses]) => uses.length > 0);
  if (busy.length === 0) return;
  const what = busy.map(([d, uses]) => `${d.address} is in use: ${uses.join(', ')}`).join('; ');
  throw new CliError(`${env.command}: ${what}; use --force to take ${busy.length > 1 ? 'them' : 'it'} anyway`);
}

/** The nodes a program holds while it uses a device on vfio-pci: its group's, and its cdev. */
function vfioNodes(env: CommandEnv, d: PciDeviceInfo): string[] {
  const cdev = deviceCdev(d.address, env.sysfsRoot);
  return [...(d.iommuGroup === undefined ? [] : [`${env.devRoot}/${d.iommuGroup}`]), ...(cdev ? [`${env.devRoot}/devices/${cdev}`] : [])];
}

/** Moves one device to vfio-pci, recording its driver first; on failure puts it back. */
function take(env: CommandEnv, d: PciDeviceInfo): Outcome {
  const record: DriverRecord = { driver: d.driver ?? null };
  saveRecord(env, d.address, record);
  const paths = sysfsPaths(env.sysfsRoot, d.address, d.driver);
  try {
    write(env, d.address, paths.driverOverride, 'vfio-pci');
  } catch (error) {
    forgetRecord(env, d.address);
    throw error;
  }
  try {
    if (paths.unbind) write(env, d.address, paths.unbind, d.address);
    write(env, d.address, paths.driversProbe, d.address);
    const after = findDevice(env, d.address);
    if (!isVfioDriver(after.driver)) {
      throw new CliError(`bind: ${d.address}: vfio-pci did not take it (driver now: ${after.driver ?? 'none'}); see dmesg`);
    }
    return { before: d, after, note: null, record };
  } catch (error) {
    throw new CliError(`${describeError(error)}${putBack(env, d.address, record)}`);
  }
}

/** After a failed take: the device back on the driver it had; the words to add to the error. */
function putBack(env: CommandEnv, address: string, record: DriverRecord): string {
  try {
    restore(env, address, findDevice(env, address).driver, record);
    forgetRecord(env, address);
    const now = findDevice(env, address).driver;
    return now === (record.driver ?? undefined) ? `; put back on ${now ?? 'no driver'}` : `; putting it back left it on ${now ?? 'no driver'}`;
  } catch (error) {
    return `; putting it back failed too: ${describeError(error)}`;
  }
}

/** After a failed group bind: the devices taken before the failure go back; the words to add to the error. */
function rollBack(env: CommandEnv, taken: PciDeviceInfo[]): string {
  if (taken.length === 0) return '';
  const failed: string[] = [];
  for (const d of taken) {
    try {
      giveBack(env, findDevice(env, d.address));
    } catch (error) {
      failed.push(`${d.address}: ${describeError(error)}`);
    }
  }
  const list = taken.map((d) => d.address).join(', ');
  return failed.length ? ` (giving back ${list} failed: ${failed.join('; ')})` : ` (${list} given back)`;
}

/**
 * From vfio-pci to the driver bind recorded (driver_override names it for
 * the probe, then is cleared), to no driver when it had none, or, with no
 * record (bound by someone else), to whatever the kernel's probe picks.
 */
function giveBack(env: CommandEnv, d: PciDeviceInfo): Outcome {
  const found = loadRecord(env, d.address);
  const notLoaded = found?.driver && !existsSync(`${env.sysfsRoot}/bus/pci/drivers/${found.driver}`) ? found.driver : undefined;
  const record = notLoaded ? undefined : found;
  restore(env, d.address, d.driver, record);
  forgetRecord(env, d.address);
  const after = findDevice(env, d.address);
  if (isVfioDriver(after.driver)) throw new CliError(`unbind: ${d.address} is still bound to ${after.driver}; see dmesg`);
  if (record?.driver && after.driver !== record.driver) {
    throw new CliError(`unbind: ${d.address}: vfio-pci let go, but ${record.driver} did not take it back (driver now: ${after.driver ?? 'none'}); see dmesg`);
  }
  let note = "its driver before 'vfio bind'";
  if (notLoaded) note = `its driver before 'vfio bind', ${notLoaded}, is not loaded: modprobe ${notLoaded}, then echo ${d.address} > ${env.sysfsRoot}/bus/pci/drivers_probe`;
  else if (!found) note = `no record of its driver before 'vfio bind': ${after.driver ? `the kernel's probe chose ${after.driver}` : "the kernel's probe found none"}`;
  return { before: d, after, note, record: found ?? null };
}

/** Takes a device from a host driver and leaves it without one. */
function detach(env: CommandEnv, d: PciDeviceInfo): Outcome {
  write(env, d.address, sysfsPaths(env.sysfsRoot, d.address, d.driver).unbind!, d.address);
  const after = findDevice(env, d.address);
  if (after.driver !== undefined) throw new CliError(`unbind: ${d.address} is still bound to ${after.driver}; see dmesg`);
  return { before: d, after, note: "left without a driver; 'vfio bind' takes it to vfio-pci", record: null };
}

/**
 * Moves the device from `current` to the record's driver (none: left
 * unbound; no record: the kernel's choice), with driver_override cleared
 * in the end so that later probes match as usual.
 */
function restore(env: CommandEnv, address: string, current: string | undefined, record: DriverRecord | undefined): void {
  const paths = sysfsPaths(env.sysfsRoot, address, current);
  if (record !== undefined && current === (record.driver ?? undefined)) {
    // Already there (a bind that failed before the unbind): only the override to undo.
    write(env, address, paths.driverOverride, '\n');
    return;
  }
  // A newline clears driver_override (an empty write is refused by some kernels).
  write(env, address, paths.driverOverride, record?.driver ?? '\n');
  if (paths.unbind) write(env, address, paths.unbind, address);
  if (record?.driver !== null) write(env, address, paths.driversProbe, address);
  if (record?.driver) write(env, address, paths.driverOverride, '\n');
}

function write(env: CommandEnv, address: string, path: string, text: string): void {
  try {
    env.writeSysfs(path, text);
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'error';
    const hint = code === 'EACCES' || code === 'EPERM' ? ' (run as root)' : '';
    throw new CliError(`${env.command}: ${address}: cannot write ${JSON.stringify(text.trim())} to ${path}: ${code}${hint}`);
  }
}

function unchanged(d: PciDeviceInfo, note: string): Outcome {
  return { before: d, after: d, note, record: null };
}

/** The group of the devices after the change (null without an IOMMU group). */
function groupAfter(env: CommandEnv, first: PciDeviceInfo, groupId: number | undefined) {
  const id = groupId ?? first.iommuGroup;
  return id === undefined ? null : groupJson(id, groupDevices(id, { sysfsRoot: env.sysfsRoot }), env);
}

function report(env: CommandEnv, outcomes: Outcome[], group: ReturnType<typeof groupAfter>): void {
  if (env.json) {
    env.stdout.write(`${json({
      devices: outcomes.map((o) => ({
        address: o.before.address,
        before: o.before.driver ?? null,
        after: o.after.driver ?? null,
        changed: o.before.driver !== o.after.driver,
        note: o.note,
        record: o.record,
        device: deviceJson(o.after, env.sysfsRoot),
      })),
      group,
    })}\n`);
    return;
  }
  const { style } = env;
  const lines = outcomes.map((o) => {
    if (o.before.driver === o.after.driver) return `${o.before.address}: ${style('dim', o.note ?? 'unchanged')}`;
    const change = `${o.before.driver ?? 'no driver'} -> ${style('bold', o.after.driver ?? 'no driver')}`;
    return `${o.before.address}: ${change}${o.note ? ` (${o.note})` : ''}`;
  });
  if (env.command === 'bind') lines.push(groupLine(env, outcomes[0]!.after, group));
  env.stdout.write(`${lines.join('\n')}\n`);
}

/** After a bind, whether the group can be used, or which devices still keep it from being viable. */
function groupLine(env: CommandEnv, device: PciDeviceInfo, group: ReturnType<typeof groupAfter>): string {
  const { style } = env;
  if (!group) return style('yellow', `note: ${device.address} has no IOMMU group: is the IOMMU on (intel_iommu=on or amd_iommu=on)?`);
  if (group.viable) return `IOMMU group ${group.id}: ${style('green', 'viable')} (${group.node})`;
  const blocking = group.devices.filter((d) => blocksGroup(d.driver ?? undefined)).map((d) => `${d.address} (${d.driver})`);
  return style('yellow', `note: IOMMU group ${group.id} is not viable yet: also bind ${blocking.join(', ')}, or all at once: vfio bind --group ${group.id}`);
}

const sharedOptions: Record<string, OptionSpec> = {
  group: { type: 'boolean', description: 'every device of the IOMMU group (the argument is its number or one of its devices)' },
  force: { type: 'boolean', description: 'take the device even though the host is using it' },
  'state-dir': { type: 'string', valueName: 'DIR', description: 'where bind records the driver it took a device from (default $VFIO_STATE_DIR or /run/vfio-ioctls)' },
};

export const bindCommand: Command = {
  name: 'bind',
  summary: 'hand a device (or a whole IOMMU group) to vfio-pci',
  usage: 'vfio bind [--group] [--force] [--state-dir DIR] <pci-address | group>',
  description: `Binds the device to vfio-pci: records its current driver (for unbind),
writes 'vfio-pci' to its driver_override, unbinds the current driver and
asks the PCI bus to probe it again. With --group, every device of the IOMMU
group (bridges are left alone: vfio-pci takes none). Refuses a device the
host is using (a mounted disk or partition, swap, a 9p share, a network
interface that is up with an address, a framebuffer, an enabled display,
the boot VGA device), naming the use, unless --force. A device already on
vfio-pci is a no-op (exit 0). Needs root and the vfio-pci driver
(modprobe vfio-pci).`,
  options: sharedOptions,
  schema: bindingSchema,
  run: bind,
};

export const unbindCommand: Command = {
  name: 'unbind',
  summary: 'give a device (or a whole IOMMU group) back to the host',
  usage: 'vfio unbind [--group] [--force] [--state-dir DIR] <pci-address | group>',
  description: `Takes the device from its driver. From vfio-pci, it goes back to the driver
bind recorded (or stays without a driver when it had none); without a
record, driver_override is cleared and the kernel's probe picks the driver
(if any). From another driver, it is left without one. With --group, every
device of the IOMMU group but its bridges. Refuses while a process holds
the device's group or cdev open (the kernel would wait for it), or while
the host uses the device (as bind), naming who, unless --force. A device
without a driver is a no-op (exit 0). Needs root.`,
  options: sharedOptions,
  schema: bindingSchema,
  run: unbind,
};
