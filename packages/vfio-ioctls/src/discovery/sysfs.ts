import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { vfioOptionKeys } from '../core/context';
import { VfioError } from '../core/errors';
import { checkInteger, checkOptions, checkString, parsePciAddress, rangeError, typeError } from '../core/validate';

/**
 * Discovery reads sysfs only, so it needs no backend (and never loads the
 * addon). The VfioOptions the rest of the library takes are accepted too,
 * so one options object serves every call; only sysfsRoot is read.
 */
export interface SysfsOptions {
  /** Mount point of sysfs; defaults to '/sys'. */
  sysfsRoot?: string;
}

/** A PCI device as sysfs describes it. */
export interface PciDeviceInfo {
  /** Full PCI address, 'DDDD:BB:DD.F'. */
  address: string;
  /** PCI vendor id. */
  vendor: number;
  /** PCI device id. */
  device: number;
  /** PCI class code (24 bits: class, subclass, programming interface). */
  class: number;
  /** The bound driver ('vfio-pci', 'e1000e', ...), undefined when unbound. */
  driver?: string;
  /** The IOMMU group number, undefined when the device has none (no IOMMU). */
  iommuGroup?: number;
  /** The device's folder in sysfs. */
  sysfsPath: string;
}

/** An IOMMU group and its devices. */
export interface IommuGroupInfo {
  /** The group number (the N of /dev/vfio/N). */
  id: number;
  /** Its devices, sorted by address. */
  devices: PciDeviceInfo[];
}

function sysfsRootOf(options?: SysfsOptions): string {
  const opts = checkOptions('options', options, vfioOptionKeys);
  const root = opts.sysfsRoot === undefined ? '/sys' : checkString('options.sysfsRoot', opts.sysfsRoot);
  return root.length > 1 ? root.replace(/\/+$/, '') : root;
}

/** The sysfs folder of the PCI device at full address `address` under sysfs mount `sysfsRoot`. */
export function pciDeviceDir(sysfsRoot: string, address: string): string {
  return `${sysfsRoot}/bus/pci/devices/${address}`;
}

function checkAddress(address: unknown): string {
  const full = parsePciAddress(checkString('address', address));
  if (!full) throw rangeError('address', `must be a PCI address like '0000:00:03.0', got ${JSON.stringify(address)}`, 'ERR_INVALID_ARG_VALUE');
  return full;
}

function sysfsError(error: unknown, path: string, hint: string): unknown {
  const code = (error as { code?: string }).code;
  return VfioError.annotate(error, { path, hint: code === 'ENOENT' ? hint : undefined });
}

/** The target name of a sysfs link (driver, iommu_group), or undefined when absent. */
function linkName(path: string): string | undefined {
  try {
    return basename(readlinkSync(path));
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw VfioError.annotate(error, { path });
  }
}

function readHex(path: string): number {
  return parseInt(readFileSync(path, 'utf8').trim(), 16);
}

/** Describes the device in sysfs folder `dir` named `address`. */
export function describeSysfsDevice(dir: string, address: string): PciDeviceInfo {
  try {
    const info: PciDeviceInfo = {
      address,
      vendor: readHex(`${dir}/vendor`),
      device: readHex(`${dir}/device`),
      class: readHex(`${dir}/class`),
      sysfsPath: dir,
    };
    const driver = linkName(`${dir}/driver`);
    if (driver !== undefined) info.driver = driver;
    const group = linkName(`${dir}/iommu_group`);
    if (group !== undefined) info.iommuGroup = Number(group);
    return info;
  } catch (error) {
    throw sysfsError(error, dir, `no PCI device ${address} in sysfs`);
  }
}

/**
 * Describes one PCI device: ids, class, driver and IOMMU group.
 * @param address - 'DDDD:BB:DD.F' (or 'BB:DD.F' for domain 0).
 * @throws RangeError for a malformed address; VfioError ENOENT when there is no such device.
 */
export function pciDevice(address: string, options?: SysfsOptions): PciDeviceInfo {
  const full = checkAddress(address);
  return describeSysfsDevice(pciDeviceDir(sysfsRootOf(options), full), full);
}

/**
 * The IOMMU group number of a PCI device.
 * @throws VfioError ERR_VFIO_IOMMU_UNAVAILABLE when the device has none (IOMMU off).
 */
export function groupOf(address: string, options?: SysfsOptions): number {
  const full = checkAddress(address);
  return groupOfSysfsPath(pciDeviceDir(sysfsRootOf(options), full));
}

/** The IOMMU group number of the device in sysfs folder `dir`. */
export function groupOfSysfsPath(dir: string): number {
  let target: string;
  try {
    target = readlinkSync(`${dir}/iommu_group`);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw VfioError.annotate(error, { path: `${dir}/iommu_group` });
    let exists = true;
    try {
      readdirSync(dir);
    } catch {
      exists = false;
    }
    if (!exists) {
      throw new VfioError('ENOENT', `no device at ${dir}`, { path: dir, hint: 'check the PCI address (lspci -D)' });
    }
    throw new VfioError('ERR_VFIO_IOMMU_UNAVAILABLE', `${basename(dir)} has no IOMMU group`, {
      path: dir,
      device: basename(dir),
      hint: 'enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line)',
    });
  }
  return Number(basename(target));
}

/** An IOMMU group number: the kernel's are non-negative ints. */
function checkGroupId(id: unknown): number {
  return checkInteger('id', id, 0, 0x7fff_ffff);
}

function checkDriver(driver: unknown): string | undefined {
  if (driver !== undefined && typeof driver !== 'string') throw typeError('driver', 'a string or undefined', driver);
  return driver;
}

/** The devices of IOMMU group `id`. */
export function groupDevices(id: number, options?: SysfsOptions): PciDeviceInfo[] {
  checkGroupId(id);
  const dir = `${sysfsRootOf(options)}/kernel/iommu_groups/${id}/devices`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw sysfsError(error, dir, `no IOMMU group ${id}`);
  }
  return names.sort().map((name) => describeSysfsDevice(`${dir}/${name}`, name));
}

/** Every IOMMU group with its devices, sorted by group number. */
export function listIommuGroups(options?: SysfsOptions): IommuGroupInfo[] {
  const root = sysfsRootOf(options);
  const dir = `${root}/kernel/iommu_groups`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw VfioError.annotate(error, { path: dir });
  }
  return names
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b)
    .map((id) => ({ id, devices: groupDevices(id, { sysfsRoot: root }) }));
}

/** Whether `driver` is vfio-pci or one of its vendor variants (mlx5_vfio_pci, ...). */
export function isVfioDriver(driver: string | undefined): boolean {
  checkDriver(driver);
  return driver !== undefined && /(^|[-_])vfio[-_]pci$/.test(driver);
}

/**
 * Drivers that do not claim DMA for a group (the kernel's driver_managed_dma:
 * pci-stub, and pcieport on bridges) besides the vfio ones, so they leave it
 * viable; an unbound device does not block either.
 */
const HARMLESS_DRIVERS = new Set(['pci-stub', 'pcieport']);

/** Whether a device bound to `driver` keeps its IOMMU group from being used through VFIO. */
export function blocksGroup(driver: string | undefined): boolean {
  checkDriver(driver);
  return driver !== undefined && !isVfioDriver(driver) && !HARMLESS_DRIVERS.has(driver);
}
