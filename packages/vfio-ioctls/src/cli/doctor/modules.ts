/**
 * The kernel's VFIO pieces: modules (loaded or built in), iommufd, device
 * cdevs, and no-IOMMU mode. A built-in driver has a /sys/module entry only
 * when it has parameters, so each piece is also recognised by what it
 * registers: a PCI driver, a device class, a char major.
 */
import type { DoctorContext } from './context';
import { charMajors, iommuUnits, noiommuMode } from './facts';
import { fail, pass, warn, type Check, type Verdict } from './finding';

/** 'module' or 'built in' when the piece is there (a loaded module has an initstate file). */
function presence(ctx: DoctorContext, module: string, ...evidence: (() => boolean)[]): 'module' | 'built in' | undefined {
  const dir = `${ctx.sys}/module/${module}`;
  if (ctx.exists(`${dir}/initstate`)) return 'module';
  return ctx.exists(dir) || evidence.some((seen) => seen()) ? 'built in' : undefined;
}

function vfioCore(ctx: DoctorContext): Verdict {
  const how = presence(ctx, 'vfio', () => ctx.exists(`${ctx.sys}/class/vfio`), () => charMajors(ctx).has('vfio'));
  return how ? pass(`vfio is there (${how})`) : fail('vfio is not loaded', 'modprobe vfio');
}

function vfioPci(ctx: DoctorContext): Verdict {
  const how = presence(ctx, 'vfio_pci', () => ctx.exists(`${ctx.sys}/bus/pci/drivers/vfio-pci`));
  return how ? pass(`vfio-pci is there (${how})`) : fail('vfio-pci is not loaded: no driver to hand PCI devices to VFIO', 'modprobe vfio-pci');
}

/** The legacy container's IOMMU driver; iommufd can replace the container (and its TYPE1 emulation) altogether. */
function vfioIommuType1(ctx: DoctorContext): Verdict | undefined {
  const how = presence(ctx, 'vfio_iommu_type1');
  if (how) return pass(`vfio_iommu_type1 is there (${how})`);
  // In no-IOMMU mode the container needs no IOMMU driver (VFIO_NOIOMMU_IOMMU is vfio's own).
  if (noiommuMode(ctx) && iommuUnits(ctx).length === 0) return undefined;
  if (ctx.exists(ctx.options.iommufdPath)) {
    // iommufd serves either way; the legacy container works only where it is iommufd's emulation (CONFIG_IOMMUFD_VFIO_CONTAINER), which sysfs does not tell apart.
    return warn(
      `vfio_iommu_type1 is not loaded: iommufd (${ctx.options.iommufdPath}) serves, the legacy container (${ctx.options.devRoot}/vfio) only if it is iommufd's emulation`,
      "modprobe vfio_iommu_type1 (not needed on a kernel whose container is iommufd's, CONFIG_IOMMUFD_VFIO_CONTAINER)",
    );
  }
  return fail('vfio_iommu_type1 is not loaded, and there is no iommufd: nothing can set up the IOMMU for VFIO', 'modprobe vfio_iommu_type1');
}

function noiommu(ctx: DoctorContext): Verdict {
  if (!noiommuMode(ctx)) return pass('no-IOMMU mode is off');
  return warn(
    'UNSAFE no-IOMMU mode is on (vfio.enable_unsafe_noiommu_mode=Y): devices can DMA anywhere in memory, nothing isolates them, and using one taints the kernel',
    'for anything but trusted devices on a dedicated machine, enable an IOMMU and boot without vfio.enable_unsafe_noiommu_mode=1',
    { enableUnsafeNoiommuMode: true },
  );
}

function iommufd(ctx: DoctorContext): Verdict {
  const path = ctx.options.iommufdPath;
  if (ctx.exists(path)) return pass(`iommufd is there (${path})`);
  return warn(`no ${path}: the iommufd backend is unavailable, devices open through the legacy container`, 'modprobe iommufd (Linux 6.2 or later built with CONFIG_IOMMUFD)');
}

/** Device cdevs register the 'vfio-dev' char major (CONFIG_VFIO_DEVICE_CDEV); their nodes exist only for bound devices. */
function deviceCdevs(ctx: DoctorContext): Verdict {
  if (charMajors(ctx).has('vfio-dev')) return pass(`VFIO device cdevs are there (${ctx.options.devRoot}/devices)`);
  return warn('no VFIO device cdevs: devices open through their group only, never bound to iommufd', 'use a kernel built with CONFIG_VFIO_DEVICE_CDEV=y (Linux 6.6 or later) to open devices through iommufd');
}

export const moduleChecks: Check[] = [
  { id: 'modules.vfio', run: vfioCore },
  { id: 'modules.vfio_pci', run: vfioPci },
  { id: 'modules.vfio_iommu_type1', run: vfioIommuType1 },
  { id: 'vfio.noiommu', run: noiommu },
  { id: 'iommufd.available', run: iommufd },
  { id: 'vfio.cdev', run: deviceCdevs },
];
