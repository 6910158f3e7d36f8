/**
 * Whether the host is using a PCI device, so that `vfio bind` and `vfio
 * unbind` do not pull a disk, a network link or the console from under it.
 * Read from sysfs and procfs only: what sits below the device in sysfs
 * (block devices, 9p shares, network interfaces, framebuffers, displays),
 * matched against the mounts and swaps in procfs and the interfaces'
 * addresses; and which processes hold its VFIO nodes open.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import type { InterfaceLister } from './command';
import { pciDeviceDir } from '../discovery/sysfs';

export interface HostView {
  sysfsRoot: string;
  procRoot: string;
  networkInterfaces: InterfaceLister;
}

/**
 * Why the host is using the device at `address`, one reason per use
 * ('/dev/nvme0n1p1 is mounted on /mnt'); empty when it is free to take.
 */
export function hostUses(address: string, view: HostView): string[] {
  const device = realpathSync(pciDeviceDir(view.sysfsRoot, address));
  return [...blockUses(device, view), ...shareUses(device, view), ...networkUses(device, view), ...displayUses(device, view)];
}

/**
 * The processes that hold one of `nodes` (a group node, a cdev) open:
 * 'process 412 (qemu) has /dev/vfio/9 open'. Other users' processes are
 * visible to root only; bind and unbind run as root.
 */
export function openers(nodes: readonly string[], procRoot: string): string[] {
  const found: string[] = [];
  for (const pid of entries(procRoot).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(a) - Number(b))) {
    const fdDir = `${procRoot}/${pid}/fd`;
    const held = new Set<string>();
    for (const fd of entries(fdDir)) {
      const target = link(`${fdDir}/${fd}`);
      if (target !== undefined && nodes.includes(target)) held.add(target);
    }
    if (held.size > 0) found.push(`process ${pid} (${read(`${procRoot}/${pid}/comm`) ?? '?'}) has ${nodes.filter((n) => held.has(n)).join(', ')} open`);
  }
  return found;
}

/** Names in the sysfs class `name` whose device lies below the PCI device at real path `device`. */
function classMembers(sysfsRoot: string, name: string, device: string): string[] {
  const dir = `${sysfsRoot}/class/${name}`;
  return entries(dir).filter((member) => {
    try {
      return realpathSync(`${dir}/${member}`).startsWith(`${device}/`);
    } catch {
      return false;
    }
  });
}

/** Disks and partitions: mounted, swapped on, or part of a device-mapper or md device. */
function blockUses(device: string, view: HostView): string[] {
  const reasons: string[] = [];
  const mounts = mountTable(view.procRoot);
  const swaps = swapFiles(view.procRoot);
  for (const name of classMembers(view.sysfsRoot, 'block', device).sort()) {
    const node = `/dev/${name}`;
    const number = read(`${view.sysfsRoot}/class/block/${name}/dev`);
    for (const mount of mounts) {
      if (mount.source === node || (number !== undefined && mount.number === number)) reasons.push(`${node} is mounted on ${mount.mountPoint}`);
    }
    if (swaps.includes(node)) reasons.push(`${node} is in use as swap`);
    const holders = entries(`${view.sysfsRoot}/class/block/${name}/holders`);
    if (holders.length > 0) reasons.push(`${node} is held by ${holders.sort().join(', ')} (device-mapper or RAID)`);
  }
  return reasons;
}

/** 9p shares over virtio (a QEMU guest's host folders) that are mounted. */
function shareUses(device: string, view: HostView): string[] {
  const reasons: string[] = [];
  const mounts = mountTable(view.procRoot).filter((m) => m.type === '9p');
  for (const child of entries(device).filter((name) => /^virtio\d+$/.test(name)).sort()) {
    const tag = read(`${device}/${child}/mount_tag`)?.replace(/[\0\n]+$/, '');
    if (tag === undefined) continue;
    for (const mount of mounts.filter((m) => m.source === tag)) reasons.push(`9p share '${tag}' is mounted on ${mount.mountPoint}`);
  }
  return reasons;
}

/** Network interfaces that are up with an address (an IPv6 link-local one alone does not count). */
function networkUses(device: string, view: HostView): string[] {
  const reasons: string[] = [];
  const up = view.networkInterfaces();
  for (const name of classMembers(view.sysfsRoot, 'net', device).sort()) {
    const state = read(`${view.sysfsRoot}/class/net/${name}/operstate`);
    // 'unknown': drivers that do not report carrier; such a link still carries traffic.
    if (state !== 'up' && state !== 'unknown') continue;
    const addresses = (up[name] ?? []).filter((a) => !(a.family === 'IPv6' && /^fe[89ab]/i.test(a.address))).map((a) => a.address);
    if (addresses.length > 0) reasons.push(`network interface ${name} is up with address ${addresses.join(', ')}`);
  }
  return reasons;
}

/** The console's framebuffer, an enabled display, or the boot VGA device that firmware's console draws on. */
function displayUses(device: string, view: HostView): string[] {
  const reasons: string[] = [];
  for (const fb of classMembers(view.sysfsRoot, 'graphics', device).filter((n) => /^fb\d+$/.test(n)).sort()) {
    reasons.push(`framebuffer /dev/${fb} is on it (the console may be)`);
  }
  for (const connector of classMembers(view.sysfsRoot, 'drm', device).filter((n) => /^card\d+-/.test(n)).sort()) {
    if (read(`${view.sysfsRoot}/class/drm/${connector}/enabled`) === 'enabled') reasons.push(`display ${connector} is enabled`);
  }
  if (read(`${device}/boot_vga`) === '1') reasons.push('it is the boot VGA device (the firmware console draws on it)');
  return reasons;
}

interface Mount {
  /** major:minor of the mounted device, as in /sys/class/block/X/dev. */
  number: string;
  mountPoint: string;
  type: string;
  source: string;
}

/**
 * /proc/self/mountinfo: 'ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS
 * [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS' (proc(5)); paths escape space,
 * tab, newline and backslash as octal.
 */
function mountTable(procRoot: string): Mount[] {
  const text = read(`${procRoot}/self/mountinfo`) ?? '';
  return text.split('\n').filter(Boolean).flatMap((line) => {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) return [];
    return [{ number: fields[2]!, mountPoint: unescapeOctal(fields[4]!), type: fields[dash + 1]!, source: unescapeOctal(fields[dash + 2]!) }];
  });
}

/** The files and devices of /proc/swaps (after its header line). */
function swapFiles(procRoot: string): string[] {
  const lines = (read(`${procRoot}/swaps`) ?? '').split('\n').slice(1).filter(Boolean);
  return lines.map((line) => unescapeOctal(line.split(/\s+/)[0]!));
}

function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_match, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** A file's text without its trailing newline, or undefined when it cannot be read. */
function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').replace(/\n$/, '');
  } catch {
    return undefined;
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function link(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
