/**
 * The command line, read with node:util parseArgs: global options, the
 * command, its options and its positional arguments. Options may come
 * anywhere (before or after the command), `--opt value` and `--opt=value`
 * both work, and `--` ends the options.
 */
import { parseArgs } from 'node:util';
import { usageError, type Command, type OptionSpec } from './command';

/** Options every command takes. */
export const globalOptions: Readonly<Record<string, OptionSpec>> = {
  json: { type: 'boolean', description: 'print one JSON document instead of text (schema: see the README)' },
  'sysfs-root': { type: 'string', valueName: 'DIR', description: 'where sysfs is mounted (default /sys)' },
  'dev-root': { type: 'string', valueName: 'DIR', description: 'where the VFIO nodes are (default /dev/vfio)' },
  'proc-root': { type: 'string', valueName: 'DIR', description: 'where procfs is mounted (default /proc)' },
  'no-color': { type: 'boolean', description: 'no colour (also: NO_COLOR=1; colour is used only on a terminal)' },
  help: { type: 'boolean', short: 'h', description: 'this help, or a command\'s with the command' },
  version: { type: 'boolean', description: 'print the version of vfio-ioctls' },
};

export interface CommandLine {
  /** The first positional argument (undefined when none was given). */
  command?: string;
  /** The positional arguments after it. */
  args: string[];
  /** Every option given, by long name. */
  values: Record<string, string | boolean>;
}

/**
 * Parses `argv` against the global options and those of every command in
 * `commands`; then checks that each option given belongs to the global set
 * or to the command named. Every problem is a usage error naming the option.
 */
export function parseCommandLine(argv: readonly string[], commands: Readonly<Record<string, Command>>): CommandLine {
  const known: Record<string, OptionSpec> = { ...globalOptions };
  for (const command of Object.values(commands)) Object.assign(known, command.options);
  // strict: false so that the messages are ours; the tokens say what was given.
  const { positionals, tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(Object.entries(known).map(([name, spec]) => [name, { type: spec.type, ...(spec.short ? { short: spec.short } : {}) }])),
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const [command, ...args] = positionals;
  const allowed = command !== undefined && commands[command] ? { ...globalOptions, ...commands[command]!.options } : globalOptions;
  const values: Record<string, string | boolean> = {};
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const spec = known[token.name];
    if (!spec) throw usageError(`unknown option '${token.rawName}'`);
    if (!(token.name in allowed)) throw usageError(`--${token.name} is not an option of ${command ? `'vfio ${command}'` : "'vfio' without a command"}`);
    if (spec.type === 'boolean') {
      if (token.inlineValue) throw usageError(`option --${token.name} takes no value`);
      values[token.name] = true;
    } else {
      // parseArgs takes the next argument whatever it is: '--sysfs-root --json' lacks a value.
      if (token.value === undefined || token.value === '' || (!token.inlineValue && token.value.startsWith('-'))) {
        throw usageError(`option --${token.name} needs a value (${spec.valueName ?? 'VALUE'})`);
      }
      values[token.name] = token.value;
    }
  }
  return { command, args, values };
}
