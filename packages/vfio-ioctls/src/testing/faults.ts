import { isErrnoName } from './errno';

/**
 * One planned failure. `syscall` names a Backend method ('open', 'ioctl',
 * 'mmap', 'eventfd', 'eventfdRead', 'allocDma', ...). `request` narrows an
 * ioctl fault to one request number, `path` to calls on that file (the path
 * given to open, or the path the fd was opened from). The first `skip`
 * matching calls succeed; the next one fails with `errno` and the fault is spent.
 */
export interface FaultSpec {
  syscall: string;
  request?: number;
  path?: string;
  errno: string;
  skip?: number;
}

/** What a call looks like to the fault plan. */
export interface CallSite {
  syscall: string;
  request?: number;
  path?: string;
}

/** The pending faults, checked at the start of every fake syscall. */
export class FaultPlan {
  private readonly pending: { spec: FaultSpec; skip: number }[] = [];

  add(spec: FaultSpec): void {
    if (typeof spec?.syscall !== 'string') throw new TypeError('fault.syscall must be a string');
    if (typeof spec.errno !== 'string' || !isErrnoName(spec.errno)) {
      throw new TypeError(`fault.errno must be an errno name such as 'EIO', got ${String(spec.errno)}`);
    }
    const skip = spec.skip ?? 0;
    if (!Number.isSafeInteger(skip) || skip < 0) throw new RangeError('fault.skip must be a non-negative integer');
    this.pending.push({ spec: { ...spec }, skip });
  }

  clear(): void {
    this.pending.length = 0;
  }

  /** Faults not yet spent. */
  get size(): number {
    return this.pending.length;
  }

  /**
   * Counts this call against every matching fault; returns the errno name of
   * the first fault whose skips are used up (and spends it), or undefined.
   */
  check(call: CallSite): string | undefined {
    let firing = -1;
    for (let i = 0; i < this.pending.length; i++) {
      const entry = this.pending[i];
      if (!matches(entry.spec, call)) continue;
      if (entry.skip > 0) entry.skip--;
      else if (firing < 0) firing = i;
    }
    if (firing < 0) return undefined;
    const [spent] = this.pending.splice(firing, 1);
    return spent.spec.errno;
  }
}

function matches(spec: FaultSpec, call: CallSite): boolean {
  if (spec.syscall !== call.syscall) return false;
  // Request numbers may arrive signed or unsigned; compare the 32-bit patterns.
  if (spec.request !== undefined && (spec.request >>> 0) !== ((call.request ?? -1) >>> 0)) return false;
  if (spec.path !== undefined && spec.path !== call.path) return false;
  return true;
}
