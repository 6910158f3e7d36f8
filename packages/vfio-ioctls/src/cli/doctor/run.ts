/** `vfio doctor`: every check in order, one finding each, and the exit status. */
import { accessChecks } from './access';
import { DoctorContext } from './context';
import { deviceChecks } from './device';
import { deviceOpenChecks } from './device-open';
import type { Check, DoctorStatus, Finding } from './finding';
import { iommuChecks } from './iommu';
import { memoryChecks } from './memory';
import { moduleChecks } from './modules';
import { resolveDoctorOptions, type DoctorOptions } from './options';

/** The machine's checks, then the device's (with an address); device.open runs before device.hot-reset, which uses its answer. */
const MACHINE_CHECKS: readonly Check[] = [...iommuChecks, ...moduleChecks, ...accessChecks, ...memoryChecks];
const DEVICE_CHECKS: readonly Check[] = [...deviceChecks, ...deviceOpenChecks];

/** Every id a finding can have, in report order. */
export const DOCTOR_CHECK_IDS: readonly string[] = [...MACHINE_CHECKS, ...DEVICE_CHECKS].map((c) => c.id);

export interface DoctorReport {
  /** The device checked, 'DDDD:BB:DD.F', or null for the machine alone. */
  address: string | null;
  /** One per check that applies, in DOCTOR_CHECK_IDS order. */
  findings: Finding[];
  counts: Record<DoctorStatus, number>;
  /** 1 when any finding failed, else 0. */
  exitCode: 0 | 1;
}

/**
 * Checks the machine (and the device at `options.address`) for VFIO
 * passthrough. Reads sysfs, procfs and the VFIO nodes; with an address it
 * also opens the device unless `tryOpen` is false. A check that cannot
 * read what it needs becomes a warning saying so; the others still run.
 * @throws TypeError or RangeError for bad options, before anything is read.
 */
export function runDoctor(options?: DoctorOptions): DoctorReport {
  const ctx = new DoctorContext(resolveDoctorOptions(options));
  const checks = ctx.options.address === undefined ? MACHINE_CHECKS : [...MACHINE_CHECKS, ...DEVICE_CHECKS];
  const findings: Finding[] = [];
  for (const check of checks) {
    let verdict;
    try {
      verdict = check.run(ctx);
    } catch (error) {
      verdict = {
        status: 'warn' as const,
        summary: `could not check: ${error instanceof Error ? error.message : String(error)}`,
        fix: 'run vfio doctor as root, with sysfs and procfs mounted whole',
      };
    }
    if (verdict) findings.push({ id: check.id, ...verdict });
  }
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const f of findings) counts[f.status]++;
  return { address: ctx.options.address ?? null, findings, counts, exitCode: counts.fail > 0 ? 1 : 0 };
}
