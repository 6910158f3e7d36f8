#!/usr/bin/env node
/**
 * The `vfio` command: argument parsing and dispatch. Commands live one per
 * file; main() takes its context and streams as arguments so tests can run
 * it in-process over the fake kernel.
 */
import { VfioContext } from '../index';
import { bind, bindUsage, unbind, unbindUsage } from './bind';
import { CliError, usageError, writeSysfsFile, type CommandEnv, type Output, type SysfsWriter } from './env';
import { info, infoUsage } from './info';
import { list, listUsage } from './list';

export { CliError, type Output, type SysfsWriter } from './env';

const commands: Record<string, { run: (env: CommandEnv) => void; usage: string }> = {
  list: { run: list, usage: listUsage },
  info: { run: info, usage: infoUsage },
  bind: { run: bind, usage: bindUsage },
  unbind: { run: unbind, usage: unbindUsage },
};

const HELP = `usage: vfio <command> [arguments] [--json]

Set up and inspect PCI devices for VFIO passthrough.

commands:
${Object.values(commands).map((c) => `  ${c.usage.replace(/\n/g, '\n  ')}`).join('\n\n')}

  vfio help [command]
    Prints this help, or one command's.

options:
  --json              print one JSON document instead of text
  --sysfs-root DIR    where sysfs is mounted (default /sys)
  --dev-root DIR      where the VFIO nodes are (default /dev/vfio)
  -h, --help          help

Exit status: 0 on success, 1 when the command failed, 2 for a usage error.`;

/** What main() needs besides argv; everything defaults to the real system. */
export interface MainOptions {
  /** The VFIO context (backend, devRoot, sysfsRoot); --sysfs-root and --dev-root override its roots. */
  context?: VfioContext;
  stdout?: Output;
  stderr?: Output;
  /** Writes a sysfs attribute; tests pass a model of the kernel's driver binding. */
  writeSysfs?: SysfsWriter;
}

interface ParsedArgs {
  command?: string;
  args: string[];
  json: boolean;
  help: boolean;
  sysfsRoot?: string;
  devRoot?: string;
}

/** Options may come anywhere; `--` ends them. Both `--opt value` and `--opt=value` work. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { args: [], json: false, help: false };
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (name === '--json' || name === '-h' || name === '--help') {
      if (inline !== undefined) throw usageError(`option ${name} takes no value`);
      if (name === '--json') parsed.json = true;
      else parsed.help = true;
    } else if (name === '--sysfs-root' || name === '--dev-root') {
      const value = inline ?? argv[++i];
      if (value === undefined || value === '') throw usageError(`option ${name} needs a directory`);
      if (name === '--sysfs-root') parsed.sysfsRoot = value;
      else parsed.devRoot = value;
    } else {
      throw usageError(`unknown option '${name}'`);
    }
  }
  [parsed.command, ...parsed.args] = positional;
  return parsed;
}

/**
 * Runs the CLI and returns its exit status. Errors become one line on
 * stderr: `vfio: <message>`.
 */
export function main(argv: readonly string[], options: MainOptions = {}): number {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  try {
    const parsed = parseArgs(argv);
    const helpFor = parsed.command === 'help' ? parsed.args[0] : parsed.help ? parsed.command : undefined;
    if (parsed.command === 'help' || parsed.help || parsed.command === undefined) {
      if (parsed.command === undefined && !parsed.help) {
        stderr.write(`${HELP}\n`);
        return 2;
      }
      if (helpFor !== undefined && !commands[helpFor]) throw usageError(`unknown command '${helpFor}'`);
      stdout.write(`${helpFor ? `usage: ${commands[helpFor]!.usage}` : HELP}\n`);
      return 0;
    }
    const command = commands[parsed.command];
    if (!command) throw usageError(`unknown command '${parsed.command}'`);
    command.run(commandEnv(parsed, options, stdout));
    return 0;
  } catch (error) {
    stderr.write(`vfio: ${describe(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}

function commandEnv(parsed: ParsedArgs, options: MainOptions, stdout: Output): CommandEnv {
  const given = options.context;
  const sysfsRoot = trim(parsed.sysfsRoot ?? given?.sysfsRoot ?? '/sys');
  const devRoot = trim(parsed.devRoot ?? given?.devRoot ?? '/dev/vfio');
  let context: VfioContext | undefined;
  return {
    args: parsed.args,
    json: parsed.json,
    sysfsRoot,
    devRoot,
    context: () => (context ??= VfioContext.from({ backend: given?.backend, devRoot, sysfsRoot })),
    writeSysfs: options.writeSysfs ?? writeSysfsFile,
    stdout,
  };
}

function trim(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/** One line: the message (VfioError messages carry their code and hint), plus the code when the message lacks it. */
function describe(error: unknown): string {
  if (error instanceof CliError) return error.message;
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const message = error.message.replace(/\s*\n\s*/g, ' ');
  return typeof code === 'string' && !message.includes(code) ? `${message} [${code}]` : message;
}

if (require.main === module) {
  // `vfio list | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  process.exitCode = main(process.argv.slice(2));
}
