/** `vfio doctor`'s output: text for people, one JSON document for programs. */
import type { DoctorStatus, Finding } from './finding';
import type { DoctorReport } from './run';

/** Colours text; the CLI's Style fits (colour is the CLI's business: plain when off). */
export type DoctorStyle = (format: 'bold' | 'green' | 'yellow' | 'red' | 'cyan', text: string) => string;

const COLOUR = { pass: 'green', warn: 'yellow', fail: 'red' } as const;
const plain: DoctorStyle = (_format, text) => text;

/**
 * One line per finding, `PASS  iommu.enabled  IOMMU on: dmar0`, a warning or
 * failure followed by its fix on the next line, then the counts.
 */
export function renderDoctorText(report: DoctorReport, style: DoctorStyle = plain): string {
  const width = Math.max(0, ...report.findings.map((f) => f.id.length));
  const lines: string[] = [];
  for (const finding of report.findings) {
    lines.push(`${style(COLOUR[finding.status], finding.status.toUpperCase())}  ${finding.id.padEnd(width)}  ${finding.summary}`);
    if (finding.fix) lines.push(`${' '.repeat(6 + width + 2)}${style('cyan', 'fix:')} ${finding.fix}`);
  }
  const { pass, warn, fail } = report.counts;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('', style('bold', `${report.address ? `${report.address}: ` : ''}${pass} passed, ${plural(warn, 'warning')}, ${fail} failed`));
  return `${lines.join('\n')}\n`;
}

/** The --json document (see doctorSchema). */
export interface DoctorDocument {
  address: string | null;
  /** No finding failed (the exit status is 0). */
  ok: boolean;
  counts: Record<DoctorStatus, number>;
  findings: Finding[];
}

export function doctorDocument(report: DoctorReport): DoctorDocument {
  return { address: report.address, ok: report.exitCode === 0, counts: report.counts, findings: report.findings };
}
