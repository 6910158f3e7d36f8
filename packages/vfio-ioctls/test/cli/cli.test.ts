import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { styleText } from 'node:util';
import { globalOptions, parseCommandLine } from '../../src/cli/args';
import { colourWanted } from '../../src/cli/colour';
import { commands } from '../../src/cli/commands';
import type { VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { run, testMachine } from './helpers';

describe('argument parsing (node:util parseArgs)', () => {
  test('options anywhere, both --opt value and --opt=value, -- ends options', () => {
    expect(parseCommandLine(['--json', 'info', '00:03.0', '--sysfs-root', '/s', '--dev-root=/d', '--iommu', 'container'], commands)).toEqual({
      command: 'info', args: ['00:03.0'], values: { json: true, 'sysfs-root': '/s', 'dev-root': '/d', iommu: 'container' },
    });
    expect(parseCommandLine(['info', '--', '--json'], commands)).toEqual({ command: 'info', args: ['--json'], values: {} });
    expect(parseCommandLine(['-h'], commands)).toEqual({ command: undefined, args: [], values: { help: true } });
  });

  test.each([
    [['list', '--bogus'], "vfio: unknown option '--bogus' (see 'vfio help')\n"],
    [['list', '-x'], "vfio: unknown option '-x' (see 'vfio help')\n"],
    [['list', '--sysfs-root'], "vfio: option --sysfs-root needs a value (DIR) (see 'vfio help')\n"],
    [['list', '--sysfs-root', '--json'], "vfio: option --sysfs-root needs a value (DIR) (see 'vfio help')\n"],
    [['list', '--dev-root='], "vfio: option --dev-root needs a value (DIR) (see 'vfio help')\n"],
    [['list', '--json=yes'], "vfio: option --json takes no value (see 'vfio help')\n"],
    [['list', '--force'], "vfio: --force is not an option of 'vfio list' (see 'vfio help')\n"],
    [['--group'], "vfio: --group is not an option of 'vfio' without a command (see 'vfio help')\n"],
    [['frobnicate'], "vfio: unknown command 'frobnicate' (see 'vfio help')\n"],
    [['help', 'frobnicate'], "vfio: unknown command 'frobnicate' (see 'vfio help')\n"],
    [['help', 'list', 'info'], "vfio: help: unexpected argument 'info' (see 'vfio help')\n"],
  ])('%j is a usage error: one line on stderr, exit 2', async (argv, message) => {
    expect(await run(argv)).toEqual({ code: 2, stdout: '', stderr: message });
  });

  test('an option that two commands share means the same in both (one parse serves all)', () => {
    const seen = new Map<string, string>(Object.entries(globalOptions).map(([name, spec]) => [name, spec.type]));
    for (const command of Object.values(commands)) {
      for (const [name, spec] of Object.entries(command.options ?? {})) {
        expect({ command: command.name, name, type: seen.get(name) ?? spec.type }).toEqual({ command: command.name, name, type: spec.type });
        seen.set(name, spec.type);
      }
    }
  });
});

describe('help', () => {
  test('vfio help, --help and -h list every command, the options, the exit status and the environment on stdout', async () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const r = await run(argv);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      for (const name of Object.keys(commands)) expect(r.stdout).toMatch(new RegExp(`^ {2}${name} +\\S`, 'm'));
      for (const text of ['--json', '--sysfs-root DIR', '--no-color', '--version', 'exit status:', '  2  usage error', 'NO_COLOR', 'VFIO_STATE_DIR']) {
        expect(r.stdout).toContain(text);
      }
    }
  });

  test.each(Object.keys(commands))('vfio help %s and vfio %s --help: its usage, description, options and exit status', async (name) => {
    const r = await run(['help', name]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: vfio ${name}\\b`));
    expect(r.stdout).toContain(commands[name]!.description);
    for (const option of Object.keys(commands[name]!.options ?? {})) expect(r.stdout).toContain(`--${option}`);
    expect(r.stdout).toContain('exit status:');
    expect(await run([name, '--help'])).toEqual(r);
  });

  test('no command: the help on stderr and exit 2', async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^usage: vfio <command>/);
  });
});

test('--version prints the package version, with or without a command', async () => {
  const { version } = JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8'));
  expect(version).toMatch(/^\d+\.\d+\.\d+/);
  expect(await run(['--version'])).toEqual({ code: 0, stdout: `vfio-ioctls ${version}\n`, stderr: '' });
  expect((await run(['list', '--version'])).stdout).toBe(`vfio-ioctls ${version}\n`);
});

describe('colour', () => {
  test('the decision: --no-color, NO_COLOR, FORCE_COLOR, TERM=dumb, then the terminal', () => {
    expect(colourWanted(true, {}, false)).toBe(true);
    expect(colourWanted(false, {}, false)).toBe(false);
    expect(colourWanted(undefined, {}, false)).toBe(false);
    expect(colourWanted(true, {}, true)).toBe(false);
    expect(colourWanted(true, { NO_COLOR: '1' }, false)).toBe(false);
    // An empty NO_COLOR does not count (no-color.org).
    expect(colourWanted(true, { NO_COLOR: '' }, false)).toBe(true);
    expect(colourWanted(false, { FORCE_COLOR: '1' }, false)).toBe(true);
    expect(colourWanted(false, { FORCE_COLOR: '' }, false)).toBe(true);
    expect(colourWanted(true, { FORCE_COLOR: '0' }, false)).toBe(false);
    expect(colourWanted(false, { FORCE_COLOR: '1', NO_COLOR: '1' }, false)).toBe(false);
    expect(colourWanted(false, { FORCE_COLOR: '1' }, true)).toBe(false);
    expect(colourWanted(true, { TERM: 'dumb' }, false)).toBe(false);
  });

  describe('in the output', () => {
    let kernel: FakeKernel;
    let context: VfioContext;
    beforeEach(() => ({ kernel, context } = testMachine()));
    afterEach(() => kernel.dispose());
    const green = styleText('green', 'viable', { validateStream: false });

    test('on a terminal: styleText colours; --no-color, NO_COLOR and a pipe do not', async () => {
      expect(green).not.toBe('viable');
      expect((await run(['list'], { context, tty: true, env: {} })).stdout).toContain(`/dev/vfio/1  ${green}\n`);
      for (const [argv, env, tty] of [[['--no-color'], {}, true], [[], { NO_COLOR: '1' }, true], [[], {}, false]] as const) {
        const r = await run(['list', ...argv], { context, tty, env });
        expect(r.stdout).toContain('/dev/vfio/1  viable\n');
        expect(r.stdout).not.toContain('\u001b[');
      }
    });

    test('FORCE_COLOR colours a pipe too', async () => {
      expect((await run(['list'], { context, tty: false, env: { FORCE_COLOR: '1' } })).stdout).toContain(`/dev/vfio/1  ${green}\n`);
    });

    test('errors: the vfio: prefix in red on a terminal, plain with --no-color', async () => {
      expect((await run(['frobnicate'], { tty: true, env: {} })).stderr).toBe(`${styleText('red', 'vfio:', { validateStream: false })} unknown command 'frobnicate' (see 'vfio help')\n`);
      expect((await run(['frobnicate', '--no-color'], { tty: true, env: {} })).stderr).toBe("vfio: unknown command 'frobnicate' (see 'vfio help')\n");
    });
  });
});
