/**
 * `vfio doctor` as a command (doctorCommand.run with the CommandEnv the
 * dispatcher builds): arguments, --memory, --no-open, --json, colour, and
 * the exit status.
 */
import { VfioContext } from '../../src';
import type { CommandEnv } from '../../src/cli/command';
import { doctorCommand } from '../../src/cli/doctor';
import { EDU, machine, type Machine } from './doctor-fixtures/machine';

function env(m: Machine, args: string[], options: CommandEnv['options'] = {}, json = false): { env: CommandEnv; out: () => string } {
  let out = '';
  const { backend, iommufdPath } = m.options;
  return {
    out: () => out,
    env: {
      command: 'doctor', args, options, json,
      sysfsRoot: m.sys, devRoot: m.vfio, procRoot: m.proc, environment: {},
      context: () => VfioContext.from({ backend, devRoot: m.vfio, sysfsRoot: m.sys, iommufdPath }),
      writeSysfs: () => { throw new Error('doctor writes nothing'); },
      networkInterfaces: () => ({}),
      stdout: { write: (text: string) => (out += text) },
      style: (format, text) => `[${format}]${text}`,
    },
  };
}

test('text through the CLI style; exit status 0 with warnings only, 1 with a failure', () => {
  const m = machine();
  const ok = env(m, [EDU]);
  expect(doctorCommand.run(ok.env)).toBe(0);
  expect(ok.out()).toMatch(/^\[green\]PASS  iommu\.enabled /);
  expect(ok.out()).toContain('[green]PASS  device.open');
  expect(ok.out()).toContain('opened it through iommufd');
  expect(ok.out()).toContain('[yellow]WARN  memory.hugepages');

  const tight = machine({ memlock: '65536' });
  const failing = env(tight, [], { memory: '1G' });
  expect(doctorCommand.run(failing.env)).toBe(1);
  expect(failing.out()).toMatch(/\n\[red\]FAIL  memory\.memlock +RLIMIT_MEMLOCK is 64 KiB, but mapping 1 GiB/);
  expect(failing.out()).toMatch(/\n\[green\]PASS  access\.iommufd +/); // the context's iommufd node, not the host's /dev/iommu
  expect(failing.out()).toMatch(/\n\[bold\]12 passed, 1 warning, 1 failed\n$/);
});

test('--json: one document; --no-open leaves the device closed', () => {
  const m = machine();
  const r = env(m, ['00:03.0'], { 'no-open': true }, true);
  expect(doctorCommand.run(r.env)).toBe(0);
  const doc = JSON.parse(r.out()) as { address: string; ok: boolean; findings: { id: string; details?: Record<string, unknown> }[] };
  expect(doc).toMatchObject({ address: EDU, ok: true });
  expect(doc.findings.map((f) => f.id)).not.toContain('device.open');
  expect(doc.findings.find((f) => f.id === 'device.hot-reset')!.details).toMatchObject({ source: 'estimated from sysfs' });
  expect(m.kernel.fake.calls).toEqual([]);
});

test('usage errors (exit status 2): a second argument, a malformed address or size', () => {
  const m = machine();
  const usage = (args: string[], options: CommandEnv['options'] = {}) => {
    try {
      doctorCommand.run(env(m, args, options).env);
    } catch (error) {
      return { message: (error as Error).message, exitCode: (error as { exitCode?: number }).exitCode };
    }
    return undefined;
  };
  expect(usage([EDU, 'x'])).toEqual({ message: "doctor: unexpected argument 'x' (see 'vfio help')", exitCode: 2 });
  expect(usage(['00:3'])).toEqual({ message: "doctor: '00:3' is not a PCI address (like 0000:01:00.0) (see 'vfio help')", exitCode: 2 });
  expect(usage([], { memory: '1.5G' })).toEqual({ message: 'doctor: --memory must be a size like 4096, 512M or 2G, got "1.5G" (see \'vfio help\')', exitCode: 2 });
});

test('the command describes itself for vfio help', () => {
  expect(doctorCommand).toMatchObject({ name: 'doctor', usage: 'vfio doctor [--memory SIZE] [--no-open] [<pci-address>]' });
  expect(Object.keys(doctorCommand.options!)).toEqual(['memory', 'no-open']);
});
