/**
 * The driver a device had before `vfio bind`, kept so that `vfio unbind`
 * can give it back: the kernel forgets it once vfio-pci has the device.
 * One small JSON file per device, `<dir>/<address>.json` holding
 * `{ "driver": "e1000e" }` (or `null` for a device that had none), in
 * /run/vfio-ioctls by default (a tmpfs: records go with the reboot that
 * undoes the bindings), or $VFIO_STATE_DIR, or --state-dir.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { CliError, type CommandEnv } from './command';

export const DEFAULT_STATE_DIR = '/run/vfio-ioctls';

/** What a record says: the driver's name, or null when the device had no driver. */
export interface DriverRecord {
  driver: string | null;
}

/** The folder of the records: --state-dir, else $VFIO_STATE_DIR, else /run/vfio-ioctls. */
export function stateDir(env: CommandEnv): string {
  const given = env.options['state-dir'];
  return typeof given === 'string' ? given : env.environment.VFIO_STATE_DIR || DEFAULT_STATE_DIR;
}

function recordPath(env: CommandEnv, address: string): string {
  return `${stateDir(env)}/${address}.json`;
}

/** Writes the record (through a temporary file, so a reader never sees half of one). */
export function saveRecord(env: CommandEnv, address: string, record: DriverRecord): void {
  const path = recordPath(env, address);
  try {
    mkdirSync(stateDir(env), { recursive: true });
    writeFileSync(`${path}.tmp`, `${JSON.stringify(record)}\n`);
    renameSync(`${path}.tmp`, path);
  } catch (error) {
    throw new CliError(`${env.command}: ${address}: cannot record its driver in ${path}: ${(error as { code?: string }).code ?? String(error)} (--state-dir)`);
  }
}

/** The record of `address`, or undefined when there is none (or it is not one of ours). */
export function loadRecord(env: CommandEnv, address: string): DriverRecord | undefined {
  let text: string;
  try {
    text = readFileSync(recordPath(env, address), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as { driver?: unknown };
    if (parsed.driver === null || (typeof parsed.driver === 'string' && /^[\w.-]+$/.test(parsed.driver))) return { driver: parsed.driver };
  } catch {
    // A damaged record is as good as none.
  }
  return undefined;
}

export function forgetRecord(env: CommandEnv, address: string): void {
  rmSync(recordPath(env, address), { force: true });
}
