/** The IOMMU: on, remapping interrupts, and the default domain type of its groups. */
import { kernelParams, paramSays } from './cmdline';
import type { DoctorContext } from './context';
import { firmwareTable, iommuUnits, moduleParam, noiommuMode } from './facts';
import { fail, pass, warn, type Check, type Verdict } from './finding';

const VENDOR = { DMAR: 'Intel VT-d', IVRS: 'AMD-Vi' } as const;

function iommuEnabled(ctx: DoctorContext): Verdict {
  const units = iommuUnits(ctx);
  const table = firmwareTable(ctx);
  const details = { units, acpiTable: table ?? null };
  if (units.length > 0) {
    return pass(`IOMMU on: ${units.join(', ')}${table ? ` (${VENDOR[table]}, ACPI ${table})` : ''}`, details);
  }
  if (noiommuMode(ctx)) {
    return warn('no IOMMU: VFIO runs in unsafe no-IOMMU mode instead (see vfio.noiommu)', enableFix(ctx, table), details);
  }
  const why = table
    ? `the firmware describes one (ACPI ${table}) but the kernel did not enable it`
    : 'the firmware describes none (no ACPI DMAR or IVRS table) and the kernel registered none';
  return fail(`no IOMMU is on: ${why}`, enableFix(ctx, table), details);
}

/** How to turn the IOMMU on, given what the firmware and the command line say. */
function enableFix(ctx: DoctorContext, table: 'DMAR' | 'IVRS' | undefined): string {
  if (paramSays(ctx, 'iommu', 'off')) return 'remove iommu=off from the kernel command line and reboot';
  if (table === 'DMAR') {
    return paramSays(ctx, 'intel_iommu', 'off')
      ? 'remove intel_iommu=off from the kernel command line and reboot'
      : 'add intel_iommu=on to the kernel command line and reboot';
  }
  if (table === 'IVRS') {
    return paramSays(ctx, 'amd_iommu', 'off')
      ? 'remove amd_iommu=off from the kernel command line and reboot'
      : 'use a kernel with CONFIG_AMD_IOMMU, and check dmesg for AMD-Vi errors';
  }
  return 'enable VT-d (Intel) or AMD-Vi/IOMMU in the firmware setup, then boot with intel_iommu=on (Intel)';
}

/**
 * Interrupt remapping, as VFIO sees it (iommu_group_has_isolated_msi):
 * without it, VFIO_SET_IOMMU and IOMMU_DEVICE_BIND refuse with EPERM unless
 * allow_unsafe_interrupts is set. No sysfs file says whether the kernel
 * enabled it, but the interrupt chips do: remapped IO-APIC and MSI
 * interrupts are 'IR-IO-APIC', 'IR-PCI-MSI...' in /proc/interrupts (x86),
 * and on arm64 the GIC ITS, which isolates MSIs, names its chips 'ITS-...'.
 */
function interruptRemapping(ctx: DoctorContext): Verdict | undefined {
  if (iommuUnits(ctx).length === 0) return undefined;
  const chips = ctx.read(`${ctx.proc}/interrupts`) ?? '';
  const remapped = /\s(IR|ITS)-[\w-]+/.test(chips) ? true : /\s(IO-APIC|PCI-MSI)/.test(chips) ? false : null;
  const unsafe = ['vfio_iommu_type1', 'iommufd'].filter((m) => moduleParam(ctx, m, 'allow_unsafe_interrupts') === 'Y');
  const details = { remapped, allowUnsafeInterrupts: unsafe };
  if (remapped) return pass(`interrupt remapping on (${/\s((?:IR|ITS)-[\w-]+)/.exec(chips)![1]} in /proc/interrupts)`, details);
  if (unsafe.length > 0) {
    return warn(
      `${remapped === false ? 'no interrupt remapping' : 'interrupt remapping not seen'}; ${unsafe.map((m) => `${m}.allow_unsafe_interrupts`).join(' and ')} lets VFIO run without it: a device can forge interrupts into the host`,
      `${remappingFix(ctx)}, then drop allow_unsafe_interrupts`,
      details,
    );
  }
  if (remapped === null) {
    return warn('cannot tell whether interrupts are remapped: /proc/interrupts shows no IO-APIC or PCI-MSI chip', "look for 'Enabled IRQ remapping' in dmesg", details);
  }
  return fail(
    'no interrupt remapping: VFIO refuses to attach a device (EPERM)',
    `${remappingFix(ctx)}; or, for trusted devices only, set vfio_iommu_type1.allow_unsafe_interrupts=1 (iommufd.allow_unsafe_interrupts=1 for iommufd)`,
    details,
  );
}

/** How to get interrupt remapping, given what the command line and the VT-d units say. */
function remappingFix(ctx: DoctorContext): string {
  if (paramSays(ctx, 'intremap', 'off') || kernelParams(ctx).has('nointremap')) return 'remove intremap=off (nointremap) from the kernel command line';
  const intel = iommuUnits(ctx).filter((u) => u.startsWith('dmar'));
  // VT-d's extended capability register: bit 3 (IR) says whether the unit can remap at all.
  const withoutIr = intel.filter((u) => {
    const ecap = ctx.value(`${ctx.sys}/class/iommu/${u}/intel-iommu/ecap`);
    return ecap !== undefined && (BigInt(`0x${ecap}`) & 0x8n) === 0n;
  });
  if (intel.length > 0 && withoutIr.length === intel.length) return 'the IOMMU cannot remap interrupts (VT-d ecap.IR is 0): enable interrupt remapping in the firmware setup';
  return 'enable interrupt remapping (intremap=on, x2APIC in the firmware setup)';
}

/**
 * The default domain of each IOMMU group (/sys/kernel/iommu_groups/N/type):
 * DMA or DMA-FQ translate host drivers' DMA; identity (iommu=pt) lets it
 * through untranslated. VFIO gives its devices a domain of their own either
 * way, so identity costs the host's protection, not passthrough.
 */
function defaultDomain(ctx: DoctorContext): Verdict | undefined {
  if (iommuUnits(ctx).length === 0) return undefined;
  const dir = `${ctx.sys}/kernel/iommu_groups`;
  const groups = ctx.list(dir).filter((n) => /^\d+$/.test(n));
  if (groups.length === 0) return warn('the IOMMU has no groups: no device sits behind it', 'check dmesg for DMAR/AMD-Vi errors; the IOMMU may not cover the PCI devices');
  const counts: Record<string, number> = {};
  for (const id of groups) {
    const type = ctx.value(`${dir}/${id}/type`) ?? 'unknown';
    counts[type] = (counts[type] ?? 0) + 1;
  }
  const described = Object.entries(counts).map(([type, n]) => `${type} (${n} group${n === 1 ? '' : 's'})`).join(', ');
  if (counts.identity) {
    return warn(
      `default domain ${described}: identity means host drivers' DMA bypasses the IOMMU (VFIO's own devices are still isolated)`,
      paramSays(ctx, 'iommu', 'pt') || paramSays(ctx, 'iommu.passthrough', '1', 'y', 'on')
        ? 'for full host protection drop iommu=pt (iommu.passthrough=1) from the kernel command line'
        : 'for full host protection boot with iommu.passthrough=0',
      { types: counts },
    );
  }
  return pass(`default domain ${described}`, { types: counts });
}

export const iommuChecks: Check[] = [
  { id: 'iommu.enabled', run: iommuEnabled },
  { id: 'iommu.intremap', run: interruptRemapping },
  { id: 'iommu.domain', run: defaultDomain },
];
