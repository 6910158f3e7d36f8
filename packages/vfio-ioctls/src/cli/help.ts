/** The text of `vfio --help` and `vfio help <command>`, made from the command table. */
import { globalOptions } from './args';
import type { Command, OptionSpec } from './command';
import { DEFAULT_STATE_DIR } from './driver-record';

const EXIT_STATUS = `exit status:
  0  done, or nothing to do (bind of a device already on vfio-pci, unbind of
     one without a driver: said on stdout, and not an error)
  1  the command failed (one line on stderr: vfio: <command>: <device>: <what>)
  2  usage error (unknown command or option, missing or malformed argument)`;

const ENVIRONMENT = `environment:
  NO_COLOR        no colour (as --no-color)
  FORCE_COLOR     colour even when the output is not a terminal ('0' turns it off)
  VFIO_STATE_DIR  where bind records drivers for unbind (default ${DEFAULT_STATE_DIR})`;

function optionLines(options: Readonly<Record<string, OptionSpec>>): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.type === 'string' ? ` ${spec.valueName ?? 'VALUE'}` : ''}`;
    return [flag, spec.description] as const;
  });
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, description]) => `  ${flag.padEnd(width)}  ${description}`);
}

/** `vfio --help`: every command in one line, the global options, exit status and environment. */
export function mainHelp(commands: Readonly<Record<string, Command>>): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  return [
    'usage: vfio <command> [options] [arguments]',
    '',
    'Set up and inspect PCI devices for VFIO passthrough.',
    '',
    'commands:',
    ...Object.values(commands).map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'help'.padEnd(width)}  this help, or a command's: vfio help <command> (or vfio <command> --help)`,
    '',
    'options (every command):',
    ...optionLines(globalOptions),
    '',
    EXIT_STATUS,
    '',
    ENVIRONMENT,
  ].join('\n');
}

/** `vfio help <command>`: its synopsis, what it does, its options and the global ones. */
export function commandHelp(command: Command): string {
  return [
    `usage: ${command.usage} [options]`,
    '',
    command.description,
    ...(command.options ? ['', 'options:', ...optionLines(command.options)] : []),
    '',
    'options (every command):',
    ...optionLines(globalOptions),
    '',
    EXIT_STATUS,
  ].join('\n');
}
