#!/usr/bin/env node
/**
 * The `vfio` command (the package's bin; `npx vfio-ioctls` runs it too):
 * reads the command line, runs the command and turns errors into one line
 * on stderr and an exit status. main() takes its context, streams and
 * environment as arguments so that tests run it in-process over the fake
 * kernel.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { VfioContext } from '../core/context';
import { parseCommandLine, type CommandLine } from './args';
import { styleFor } from './colour';
import { CliError, describeError, usageError, type CommandEnv, type InterfaceLister, type Output, type SysfsWriter } from './command';
import { commands } from './commands';
import { commandHelp, mainHelp } from './help';
import { writeSysfsFile } from './sysfs-writer';

/** What main() needs besides argv; everything defaults to the real system. */
export interface MainOptions {
  /** The VFIO context (backend, devRoot, sysfsRoot); --sysfs-root and --dev-root override its roots. */
  context?: VfioContext;
  stdout?: Output;
  stderr?: Output;
  /** The environment (NO_COLOR, FORCE_COLOR, TERM, VFIO_STATE_DIR); default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Writes a sysfs attribute; tests pass a model of the kernel's driver binding. */
  writeSysfs?: SysfsWriter;
  /** The addresses of the interfaces that are up; default os.networkInterfaces. */
  networkInterfaces?: InterfaceLister;
}

/** The version of the package the command came with (dist/cli/main.js and src/cli/main.ts are both two folders down). */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/**
 * Runs the CLI and returns its exit status: 0 done (or nothing to do), 1
 * the command failed, 2 usage error. Errors become one line on stderr,
 * `vfio: <message>`.
 */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const environment = options.env ?? process.env;
  const noColor = argv.includes('--no-color');
  const errorStyle = styleFor(stderr.isTTY, environment, noColor);
  try {
    const line = parseCommandLine(argv, commands);
    if (line.values.version) {
      stdout.write(`vfio-ioctls ${packageVersion()}\n`);
      return 0;
    }
    if (line.command === undefined) {
      // Bare `vfio` is a usage error: the help goes where errors go.
      (line.values.help ? stdout : stderr).write(`${mainHelp(commands)}\n`);
      return line.values.help ? 0 : 2;
    }
    if (line.command === 'help') {
      if (line.args.length > 1) throw usageError(`help: unexpected argument '${line.args[1]}'`);
      stdout.write(`${line.args[0] === undefined ? mainHelp(commands) : commandHelp(known(line.args[0]))}\n`);
      return 0;
    }
    const command = known(line.command);
    if (line.values.help) {
      stdout.write(`${commandHelp(command)}\n`);
      return 0;
    }
    const status = await command.run(commandEnv(line, options, stdout, environment));
    return typeof status === 'number' ? status : 0;
  } catch (error) {
    stderr.write(`${errorStyle('red', 'vfio:')} ${describeError(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}

function known(name: string) {
  const command = commands[name];
  if (!command) throw usageError(`unknown command '${name}'`);
  return command;
}

function commandEnv(line: CommandLine, options: MainOptions, stdout: Output, environment: Readonly<Record<string, string | undefined>>): CommandEnv {
  const given = options.context;
  const sysfsRoot = trim(stringValue(line, 'sysfs-root') ?? given?.sysfsRoot ?? '/sys');
  const devRoot = trim(stringValue(line, 'dev-root') ?? given?.devRoot ?? '/dev/vfio');
  const command = line.command!;
  const own = Object.keys(commands[command]!.options ?? {});
  let context: VfioContext | undefined;
  return {
    command,
    args: line.args,
    options: Object.fromEntries(own.filter((name) => name in line.values).map((name) => [name, line.values[name]])),
    json: line.values.json === true,
    sysfsRoot,
    devRoot,
    procRoot: trim(stringValue(line, 'proc-root') ?? '/proc'),
    environment,
    context: () => (context ??= VfioContext.from({ backend: given?.backend, devRoot, sysfsRoot, iommufdPath: given?.iommufdPath })),
    writeSysfs: options.writeSysfs ?? writeSysfsFile,
    networkInterfaces: options.networkInterfaces ?? networkInterfaces,
    stdout,
    style: styleFor(stdout.isTTY, environment, line.values['no-color'] === true),
  };
}

function stringValue(line: CommandLine, name: string): string | undefined {
  const value = line.values[name];
  return typeof value === 'string' ? value : undefined;
}

function trim(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

if (require.main === module) {
  // `vfio list | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  void main(process.argv.slice(2)).then((status) => {
    process.exitCode = status;
  });
}
