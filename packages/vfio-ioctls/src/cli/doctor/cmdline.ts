/** The kernel command line, for the fixes that depend on what it already says. */
import type { DoctorContext } from './context';

/**
 * The parameters of `${procRoot}/cmdline`: name -> value ('' for a bare
 * flag such as nointremap). The last one wins, as for most kernel
 * parameters. An unreadable command line reads as empty: it only shapes
 * the wording of fixes.
 */
export function kernelParams(ctx: DoctorContext): Map<string, string> {
  return ctx.once('cmdline', () => {
    let text = '';
    try {
      text = ctx.read(`${ctx.proc}/cmdline`) ?? '';
    } catch {
      // See above: no verdict rests on it.
    }
    const params = new Map<string, string>();
    for (const word of text.match(/(?:[^\s"]+|"[^"]*")+/g) ?? []) {
      const eq = word.indexOf('=');
      const name = eq < 0 ? word : word.slice(0, eq);
      params.set(name.replace(/-/g, '_'), eq < 0 ? '' : word.slice(eq + 1).replace(/"/g, ''));
    }
    return params;
  });
}

/** Whether parameter `name` is set to one of `values` (comma lists such as intel_iommu=on,sm_on count). */
export function paramSays(ctx: DoctorContext, name: string, ...values: string[]): boolean {
  const value = kernelParams(ctx).get(name);
  return value !== undefined && value.split(',').some((v) => values.includes(v));
}
