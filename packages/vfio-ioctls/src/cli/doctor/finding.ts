/** What `vfio doctor` reports: one finding per check. */

/**
 * pass: fine. warn: passthrough works, but unsafely or slower than it
 * could. fail: passthrough will not work until it is fixed.
 */
export type DoctorStatus = 'pass' | 'warn' | 'fail';

/** A value in a finding's details: plain JSON. */
export type DetailValue = string | number | boolean | null | readonly DetailValue[] | { readonly [key: string]: DetailValue };

/** The outcome of one check. */
export interface Finding {
  /** Stable id of the check: 'iommu.enabled', 'device.group', ... (see DOCTOR_CHECK_IDS). */
  id: string;
  status: DoctorStatus;
  /** What was found, in one line. */
  summary: string;
  /** What to do about it, in one line (warn and fail only). */
  fix?: string;
  /** The facts behind the verdict, for --json readers. */
  details?: Record<string, DetailValue>;
}

/** A check's verdict; the check table adds the id. */
export type Verdict = Omit<Finding, 'id'>;

export function pass(summary: string, details?: Record<string, DetailValue>): Verdict {
  return details ? { status: 'pass', summary, details } : { status: 'pass', summary };
}

export function warn(summary: string, fix: string, details?: Record<string, DetailValue>): Verdict {
  return details ? { status: 'warn', summary, fix, details } : { status: 'warn', summary, fix };
}

export function fail(summary: string, fix: string, details?: Record<string, DetailValue>): Verdict {
  return details ? { status: 'fail', summary, fix, details } : { status: 'fail', summary, fix };
}

/** One check: its stable id, and what it concludes (undefined when it does not apply to this machine). */
export interface Check {
  id: string;
  run: (ctx: import('./context').DoctorContext) => Verdict | undefined;
}
