/** A fake machine for the CLI tests, and main() run against it with its output captured. */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { VfioContext } from '../../src';
import { FakeKernel } from '../../src/testing';
import { main, type MainOptions } from '../../src/cli/main';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions extends MainOptions {
  /** Whether stdout and stderr claim to be terminals. */
  tty?: boolean;
}

/** A fresh folder under the system's temp dir, removed by {@link cleanUp}. */
const folders: string[] = [];
export function tempFolder(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  folders.push(dir);
  return dir;
}
export function cleanUp(): void {
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
}
afterEach(cleanUp);

/** The state dir the runs share unless a test passes its own env (bind records land there, never in /run). */
let stateDir: string | undefined;
afterEach(() => {
  stateDir = undefined;
});
export function defaultStateDir(): string {
  return (stateDir ??= tempFolder('vfio-command-state-'));
}

/**
 * Runs main() with stdout and stderr collected, an empty proc root and no
 * network interfaces unless given, and bind records in a temp folder.
 */
export async function run(argv: string[], options: RunOptions = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const { tty, ...rest } = options;
  const procRoot = argv.some((a) => a.startsWith('--proc-root')) ? [] : ['--proc-root', emptyProc()];
  const code = await main([...procRoot, ...argv], {
    env: { VFIO_STATE_DIR: defaultStateDir() },
    networkInterfaces: () => ({}),
    ...rest,
    stdout: { write: (text: string) => (stdout += text), isTTY: tty },
    stderr: { write: (text: string) => (stderr += text), isTTY: tty },
  });
  return { code, stdout, stderr };
}

let emptyProcDir: string | undefined;
afterEach(() => {
  emptyProcDir = undefined;
});
function emptyProc(): string {
  return (emptyProcDir ??= tempFolder('vfio-command-proc-'));
}

/**
 * The suite profile's shapes: edu alone (group 1), an nvme-like device with
 * sparse mmap, MSI-X and a hot reset dependent (group 8), and a group of
 * two edu behind a bridge (group 9).
 */
export function testMachine(options: { deviceCdevs?: boolean } = {}): { kernel: FakeKernel; context: VfioContext } {
  const kernel = new FakeKernel(options);
  kernel.addDevice({ address: '0000:00:03.0', group: 1 });
  kernel.addDevice({
    address: '0000:01:00.0', group: 8, vendor: 0x1b36, device: 0x0010, class: 0x010802, reset: true,
    regions: [
      { index: 0, size: 0x4000, flags: 7, sparseAreas: [{ offset: 0, size: 0x1000 }, { offset: 0x3000, size: 0x1000 }], msixMappable: true },
      { index: 7, size: 4096 },
      { index: 9, size: 0x100, flags: 1, type: { type: 0x8086_0000, subtype: 3 } },
    ],
    irqs: [{ index: 0, count: 1 }, { index: 2, count: 65 }],
    hotResetDependents: ['0000:01:00.0'],
  });
  kernel.addDevice({ address: '0000:02:00.0', group: 9, vendor: 0x1b36, device: 0x000e, class: 0x060400, driver: null });
  kernel.addDevice({ address: '0000:03:01.0', group: 9 });
  kernel.addDevice({ address: '0000:03:02.0', group: 9 });
  const context = VfioContext.from({ backend: kernel, devRoot: kernel.devRoot, sysfsRoot: kernel.sysfsRoot });
  return { kernel, context };
}

/**
 * A model of the kernel's side of driver binding, in place of sysfs writes:
 * driver_override names the driver drivers_probe picks; without one the
 * device's `native` driver takes it. Records every write.
 */
export function bindingModel(kernel: FakeKernel, native: Record<string, string | null> = {}) {
  const writes: [string, string][] = [];
  const overrides = new Map<string, string>();
  const writeSysfs = (path: string, text: string) => {
    const rel = path.slice(kernel.sysfsRoot.length);
    writes.push([rel, text]);
    const value = text.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\/bus\/pci\/devices\/([^/]+)\/driver_override$/.exec(rel))) {
      if (value) overrides.set(m[1]!, value);
      else overrides.delete(m[1]!);
    } else if (/^\/bus\/pci\/drivers\/[^/]+\/unbind$/.test(rel)) {
      kernel.bindDriver(value, null);
    } else if (rel === '/bus/pci/drivers_probe') {
      kernel.bindDriver(value, overrides.get(value) ?? native[value] ?? null);
    } else {
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    }
  };
  return { writes, writeSysfs, overrides };
}

/** Makes a symlink at `path` to `target`, relative as sysfs's are, creating folders. */
export function link(path: string, target: string): void {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(relative(dirname(path), target), path);
}

/** Writes `text` to `path`, creating folders. */
export function put(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** The real sysfs folder of a fake device. */
export function deviceDir(kernel: FakeKernel, address: string): string {
  return realpathSync(`${kernel.sysfsRoot}/bus/pci/devices/${address}`);
}

/**
 * Adds a sysfs class member below a device, as the kernel lays them out:
 * `devices/.../ADDR/<below>/<name>` and `class/<cls>/<name>` linking to it;
 * returns the member's folder.
 */
export function addClassMember(kernel: FakeKernel, address: string, cls: string, below: string, name: string): string {
  const dir = join(deviceDir(kernel, address), below, name);
  mkdirSync(dir, { recursive: true });
  link(`${kernel.sysfsRoot}/class/${cls}/${name}`, dir);
  return dir;
}
