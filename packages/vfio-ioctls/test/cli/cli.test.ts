import { parseArgs } from '../../src/cli/main';
import { run } from './helpers';

describe('argument parsing', () => {
  test('options anywhere, both --opt value and --opt=value, -- ends options', () => {
    expect(parseArgs(['--json', 'info', '00:03.0', '--sysfs-root', '/s', '--dev-root=/d'])).toEqual({
      command: 'info', args: ['00:03.0'], json: true, help: false, sysfsRoot: '/s', devRoot: '/d',
    });
    expect(parseArgs(['info', '--', '--json'])).toMatchObject({ command: 'info', args: ['--json'], json: false });
  });

  test.each([
    [['list', '--bogus'], "vfio: unknown option '--bogus' (see 'vfio help')\n"],
    [['list', '--sysfs-root'], "vfio: option --sysfs-root needs a directory (see 'vfio help')\n"],
    [['list', '--dev-root='], "vfio: option --dev-root needs a directory (see 'vfio help')\n"],
    [['list', '--json=yes'], "vfio: option --json takes no value (see 'vfio help')\n"],
    [['frobnicate'], "vfio: unknown command 'frobnicate' (see 'vfio help')\n"],
    [['help', 'frobnicate'], "vfio: unknown command 'frobnicate' (see 'vfio help')\n"],
  ])('%j is a usage error: one line on stderr, exit 2', (argv, message) => {
    expect(run(argv)).toEqual({ code: 2, stdout: '', stderr: message });
  });
});

describe('help', () => {
  test('vfio help, --help and -h print every command on stdout', () => {
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const r = run(argv);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      for (const command of ['vfio list', 'vfio info <pci-address>', 'vfio bind <pci-address>', 'vfio unbind <pci-address>']) {
        expect(r.stdout).toContain(command);
      }
    }
  });

  test('help for one command, either way round', () => {
    const r = run(['help', 'bind']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: vfio bind <pci-address>/);
    expect(r.stdout).not.toContain('vfio unbind');
    expect(run(['info', '--help']).stdout).toMatch(/^usage: vfio info <pci-address>/);
  });

  test('no command: the help on stderr and exit 2', () => {
    const r = run([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^usage: vfio <command>/);
  });
});
