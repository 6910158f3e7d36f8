/**
 * What every check reads through: the resolved options, file readers that
 * tell "absent" from "unreadable", and a memo so that facts several checks
 * share (the IOMMU units, the device's group) are read once.
 */
import { readdirSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { VfioError } from '../../core/errors';
import type { ResolvedDoctorOptions } from './options';

/** Absent, as opposed to unreadable: these the readers answer with undefined. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR']);

function absent(error: unknown): boolean {
  return ABSENT.has((error as { code?: string }).code ?? '');
}

export class DoctorContext {
  readonly #memo = new Map<string, unknown>();

  constructor(readonly options: ResolvedDoctorOptions) {}

  get sys(): string {
    return this.options.sysfsRoot;
  }

  get proc(): string {
    return this.options.procRoot;
  }

  /**
   * The text of a file, undefined when it does not exist.
   * @throws VfioError naming the path when it exists but cannot be read (EACCES, EISDIR).
   */
  read(path: string): string | undefined {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      if (absent(error)) return undefined;
      throw VfioError.annotate(error, { path });
    }
  }

  /** A file's first line without surrounding space, undefined when absent. */
  value(path: string): string | undefined {
    return this.read(path)?.trim();
  }

  /** Whether `path` exists (a dangling symlink does not). */
  exists(path: string): boolean {
    return this.stat(path) !== undefined;
  }

  /** stat(2), following links; undefined when absent. */
  stat(path: string): Stats | undefined {
    try {
      return statSync(path);
    } catch (error) {
      if (absent(error)) return undefined;
      throw VfioError.annotate(error, { path });
    }
  }

  /** The names in a folder, sorted; [] when it does not exist. */
  list(dir: string): string[] {
    try {
      return readdirSync(dir).sort();
    } catch (error) {
      if (absent(error)) return [];
      throw VfioError.annotate(error, { path: dir });
    }
  }

  /** A symlink's target, undefined when there is no link. */
  link(path: string): string | undefined {
    try {
      return readlinkSync(path);
    } catch (error) {
      if (absent(error) || (error as { code?: string }).code === 'EINVAL') return undefined;
      throw VfioError.annotate(error, { path });
    }
  }

  /** `compute()` the first time `key` is asked for, the same answer after (a thrown error is not kept). */
  once<T>(key: string, compute: () => T): T {
    if (!this.#memo.has(key)) this.#memo.set(key, compute());
    return this.#memo.get(key) as T;
  }

  /** Keeps a fact one check learnt for the checks after it. */
  remember(key: string, value: unknown): void {
    this.#memo.set(key, value);
  }

  recall<T>(key: string): T | undefined {
    return this.#memo.get(key) as T | undefined;
  }
}
