/**
 * What a `vfio` command is and what it gets from the dispatcher. A command
 * is one file under src/cli/ exporting a {@link Command}; commands.ts lists
 * them, and main.ts parses the command line, builds the {@link CommandEnv}
 * and runs the command.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import type { VfioContext } from '../core/context';
import type { JsonSchema } from './schemas/json-schema';
import type { Style } from './colour';

/** Where output goes: process.stdout/stderr, or a test's collector. */
export interface Output {
  write(text: string): unknown;
  /** Set on a terminal (process.stdout.isTTY): colour is used only there. */
  isTTY?: boolean;
}

/** Writes `text` to a sysfs attribute (a test may replace it with a model of the kernel). */
export type SysfsWriter = (path: string, text: string) => void;

/** os.networkInterfaces(): the addresses of every interface that is up (tests pass their own). */
export type InterfaceLister = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

/** One option of a command, as node:util parseArgs takes it, plus its help. */
export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** The value's name in the help ('DIR'); string options only. */
  valueName?: string;
  /** One line for the help. */
  description: string;
}

/** A `vfio` command. */
export interface Command {
  name: string;
  /** One line for the command list of `vfio --help`. */
  summary: string;
  /** The synopsis without the global options: 'vfio bind [--group] [--force] <pci-address>'. */
  usage: string;
  /** What it does and what it needs, a few lines for `vfio help <command>`. */
  description: string;
  /** Options of this command besides the global ones (keys are the long names). */
  options?: Readonly<Record<string, OptionSpec>>;
  /** The JSON Schema of its --json document (test/cli/schemas.test.ts holds the output to it). */
  schema: JsonSchema;
  /**
   * Does the work and writes the result to env.stdout. Returns nothing for
   * exit status 0, or the status (a report whose verdict is a failure
   * prints it and returns 1); throws CliError for a failure to explain.
   */
  run(env: CommandEnv): void | number | Promise<void | number>;
}

export interface CommandEnv {
  /** The command's name, for messages. */
  command: string;
  /** Positional arguments after the command name. */
  args: string[];
  /** This command's own options that were given, by long name. */
  options: Readonly<Record<string, string | boolean | undefined>>;
  /** --json: one JSON document on stdout instead of text. */
  json: boolean;
  /** Mount point of sysfs (--sysfs-root; default /sys). */
  sysfsRoot: string;
  /** Folder of the VFIO device nodes (--dev-root; default /dev/vfio). */
  devRoot: string;
  /** Mount point of procfs (--proc-root; default /proc). */
  procRoot: string;
  /** The environment variables the command may read (VFIO_STATE_DIR). */
  environment: Readonly<Record<string, string | undefined>>;
  /**
   * The VFIO context, made on first use: building it loads the native
   * addon, which the commands that only read sysfs never need.
   */
  context(): VfioContext;
  writeSysfs: SysfsWriter;
  networkInterfaces: InterfaceLister;
  stdout: Output;
  /** Colours text for stdout (plain when colour is off). */
  style: Style;
}

/**
 * A failure the CLI explains itself: printed as one line, with `exitCode`
 * (2 for usage errors, as most Unix tools do; 1 otherwise).
 */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(`${message} (see 'vfio help')`, 2);
}

/** One line for any error: the message (VfioError messages carry their code and hint), plus the code when the message lacks it. */
export function describeError(error: unknown): string {
  if (error instanceof CliError) return error.message;
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const message = error.message.replace(/\s*\n\s*/g, ' ');
  return typeof code === 'string' && !message.includes(code) ? `${message} [${code}]` : message;
}

/**
 * Runs `work` for one device; a failure that does not say which device it
 * is about (EBUSY on /dev/vfio/5) gets the command and the device in front.
 */
export function forDevice<T>(command: string, address: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof CliError) throw error;
    const message = describeError(error);
    throw new CliError(`${command}: ${message.includes(address) ? '' : `${address}: `}${message}`);
  }
}
