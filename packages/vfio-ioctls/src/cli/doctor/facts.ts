/** Facts of the machine that several checks rest on. */
import type { DoctorContext } from './context';

/**
 * The iommufd selftest (CONFIG_IOMMUFD_TEST) registers a mock IOMMU in
 * /sys/class/iommu on every boot; it translates for no real device.
 */
const MOCK_UNITS = /^iommufd_/;

/** The IOMMU units the kernel enabled: dmar0 (Intel), ivhd0 (AMD), SMMUs... */
export function iommuUnits(ctx: DoctorContext): string[] {
  return ctx.once('units', () => ctx.list(`${ctx.sys}/class/iommu`).filter((name) => !MOCK_UNITS.test(name)));
}

/** The ACPI table through which the firmware describes an IOMMU: DMAR (Intel VT-d), IVRS (AMD-Vi). */
export function firmwareTable(ctx: DoctorContext): 'DMAR' | 'IVRS' | undefined {
  return ctx.once('acpi', () => (['DMAR', 'IVRS'] as const).find((t) => ctx.exists(`${ctx.sys}/firmware/acpi/tables/${t}`)));
}

/** A module parameter's value ('Y', 'N', '0'...), undefined when the module or parameter is absent. */
export function moduleParam(ctx: DoctorContext, module: string, param: string): string | undefined {
  return ctx.value(`${ctx.sys}/module/${module}/parameters/${param}`);
}

/** vfio.enable_unsafe_noiommu_mode: VFIO hands out devices without an IOMMU. */
export function noiommuMode(ctx: DoctorContext): boolean {
  return ctx.once('noiommu', () => moduleParam(ctx, 'vfio', 'enable_unsafe_noiommu_mode') === 'Y');
}

/**
 * Names of the character device majors in `${procRoot}/devices` ('vfio'
 * for groups, 'vfio-dev' for device cdevs): a driver built in shows there
 * even when it has no /sys/module entry.
 */
export function charMajors(ctx: DoctorContext): Set<string> {
  return ctx.once('majors', () => {
    const text = ctx.read(`${ctx.proc}/devices`) ?? '';
    const section = text.split(/\n\s*\n/).find((s) => s.startsWith('Character devices:')) ?? '';
    return new Set(section.split('\n').slice(1).map((line) => line.trim().split(/\s+/)[1]).filter((n): n is string => !!n));
  });
}
