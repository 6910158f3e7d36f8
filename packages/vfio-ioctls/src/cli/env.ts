/** What every command gets from the dispatcher, and the CLI's own error. */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { parsePciAddress, pciDevice, type PciDeviceInfo, type VfioContext } from '../index';

/** Where output goes: process.stdout/stderr, or a test's collector. */
export interface Output {
  write(text: string): unknown;
}

/** Writes `text` to a sysfs attribute (a test may replace it with a model of the kernel). */
export type SysfsWriter = (path: string, text: string) => void;

export interface CommandEnv {
  /** Positional arguments after the command name. */
  args: string[];
  /** --json: one JSON document on stdout instead of text. */
  json: boolean;
  /** Mount point of sysfs (discovery and binding need only this). */
  sysfsRoot: string;
  /** Folder of the VFIO device nodes (for display; opening goes through context()). */
  devRoot: string;
  /**
   * The VFIO context, made on first use: building it loads the native
   * addon, which `list`, `bind` and `unbind` never need.
   */
  context(): VfioContext;
  writeSysfs: SysfsWriter;
  stdout: Output;
}

/**
 * A failure the CLI explains itself: printed as one line, with `exitCode`
 * (2 for usage errors, as most Unix tools do; 1 otherwise).
 */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(`${message} (see 'vfio help')`, 2);
}

/**
 * Opened without O_CREAT or O_TRUNC: a missing attribute must fail with
 * ENOENT rather than create a file (which sysfs refuses with a less clear
 * error), and write-only attributes (bind, unbind) cannot be opened for reading.
 */
export const writeSysfsFile: SysfsWriter = (path, text) => {
  const fd = openSync(path, constants.O_WRONLY);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
};

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
export function findDevice(env: CommandEnv, address: string, command: string): PciDeviceInfo {
  try {
    return pciDevice(address, { sysfsRoot: env.sysfsRoot });
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new CliError(`${command}: no PCI device ${address} in ${env.sysfsRoot}/bus/pci/devices (see 'vfio list')`);
    }
    throw error;
  }
}
