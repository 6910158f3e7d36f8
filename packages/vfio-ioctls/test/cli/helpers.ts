/** A fake machine for the CLI tests, and main() run against it with its output captured. */
import { VfioContext } from '../../src';
import { FakeKernel } from '../../src/testing';
import { main, type MainOptions } from '../../src/cli/main';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs main() with stdout and stderr collected. */
export function run(argv: string[], options: MainOptions = {}): Run {
  let stdout = '';
  let stderr = '';
  const code = main(argv, {
    ...options,
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

/**
 * The suite profile's shapes: edu alone (group 1), an nvme-like device with
 * sparse mmap, MSI-X and a hot reset dependent (group 8), and a group of
 * two edu behind a bridge (group 9).
 */
export function testMachine(): { kernel: FakeKernel; context: VfioContext } {
  const kernel = new FakeKernel();
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
    writes.push([path.slice(kernel.sysfsRoot.length), text]);
    const address = text.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\/bus\/pci\/devices\/([^/]+)\/driver_override$/.exec(path.slice(kernel.sysfsRoot.length)))) {
      if (address) overrides.set(m[1]!, address);
      else overrides.delete(m[1]!);
    } else if (/^\/bus\/pci\/drivers\/[^/]+\/unbind$/.test(path.slice(kernel.sysfsRoot.length))) {
      kernel.bindDriver(address, null);
    } else if (path === `${kernel.sysfsRoot}/bus/pci/drivers_probe`) {
      kernel.bindDriver(address, overrides.get(address) ?? native[address] ?? null);
    } else {
      throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    }
  };
  return { writes, writeSysfs };
}
