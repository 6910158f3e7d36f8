/** The inputs of `vfio doctor`, every one replaceable so that tests can build the machine. */
import type { Backend } from '../../core/backend';
import { checkBoolean, checkInteger, checkOptions, checkString, checkU64, optionKeys, parsePciAddress, rangeError, typeError } from '../../core/validate';

export interface DoctorOptions {
  /** A PCI device to check as well ('0000:01:00.0', or '01:00.0' for domain 0). */
  address?: string;
  /** Bytes the program will map for DMA (`--memory`): checked against RLIMIT_MEMLOCK and the free hugepages. */
  memory?: bigint;
  /** Mount point of sysfs; default '/sys'. */
  sysfsRoot?: string;
  /** Mount point of procfs; default '/proc'. */
  procRoot?: string;
  /** Folder of the VFIO nodes; default '/dev/vfio'. */
  devRoot?: string;
  /** The iommufd node; default '/dev/iommu'. */
  iommufdPath?: string;
  /** The syscall layer for the attempt to open the device; default the native addon. */
  backend?: Backend;
  /** Whose access to the nodes is checked; default this process's uid, gid and supplementary groups. */
  uid?: number;
  gid?: number;
  groups?: readonly number[];
  /** RLIMIT_MEMLOCK in bytes, null for unlimited; default the soft limit in `${procRoot}/self/limits`. */
  memlockLimit?: bigint | null;
  /**
   * Whether to open the device (default true), as a program would: the
   * kernel's own answer on whether it can be opened now, and the devices a
   * bus reset would touch. Opening resets a device that has a reset method.
   */
  tryOpen?: boolean;
}

const KEYS = optionKeys<DoctorOptions>({
  address: true, memory: true, sysfsRoot: true, procRoot: true, devRoot: true, iommufdPath: true,
  backend: true, uid: true, gid: true, groups: true, memlockLimit: true, tryOpen: true,
});

/** The identity whose access to the nodes is checked. */
export interface DoctorUser {
  uid: number;
  gid: number;
  groups: readonly number[];
}

export interface ResolvedDoctorOptions {
  address?: string;
  memory?: bigint;
  sysfsRoot: string;
  procRoot: string;
  devRoot: string;
  iommufdPath: string;
  backend?: Backend;
  user: DoctorUser;
  memlockLimit?: bigint | null;
  tryOpen: boolean;
}

const ID_MAX = 0xffff_ffff;

/**
 * Checks every option before anything is read.
 * @throws TypeError for an unknown option or a value of the wrong type;
 *   RangeError for a malformed address or an out-of-range number.
 */
export function resolveDoctorOptions(options?: DoctorOptions): ResolvedDoctorOptions {
  const opts = checkOptions('options', options, KEYS);
  const root = (name: keyof DoctorOptions, fallback: string) => {
    const value = opts[name] === undefined ? fallback : checkString(`options.${name}`, opts[name]);
    return value.length > 1 ? value.replace(/\/+$/, '') : value;
  };
  const resolved: ResolvedDoctorOptions = {
    sysfsRoot: root('sysfsRoot', '/sys'),
    procRoot: root('procRoot', '/proc'),
    devRoot: root('devRoot', '/dev/vfio'),
    iommufdPath: root('iommufdPath', '/dev/iommu'),
    user: {
      uid: opts.uid === undefined ? process.getuid!() : checkInteger('options.uid', opts.uid, 0, ID_MAX),
      gid: opts.gid === undefined ? process.getgid!() : checkInteger('options.gid', opts.gid, 0, ID_MAX),
      groups: opts.groups === undefined ? process.getgroups!() : checkGroups(opts.groups),
    },
    tryOpen: opts.tryOpen === undefined ? true : checkBoolean('options.tryOpen', opts.tryOpen),
  };
  if (opts.address !== undefined) {
    const address = parsePciAddress(checkString('options.address', opts.address));
    if (!address) throw rangeError('options.address', `must be a PCI address like '0000:01:00.0', got ${JSON.stringify(opts.address)}`, 'ERR_INVALID_ARG_VALUE');
    resolved.address = address;
  }
  if (opts.memory !== undefined) resolved.memory = checkU64('options.memory', opts.memory);
  if (opts.memlockLimit !== undefined) resolved.memlockLimit = opts.memlockLimit === null ? null : checkU64('options.memlockLimit', opts.memlockLimit);
  if (opts.backend !== undefined) resolved.backend = opts.backend;
  return resolved;
}

function checkGroups(groups: unknown): number[] {
  if (!Array.isArray(groups)) throw typeError('options.groups', 'an array of group ids', groups);
  return groups.map((g, i) => checkInteger(`options.groups[${i}]`, g, 0, ID_MAX));
}
