import type { VfioContext } from '../../core/context';
import { Iommufd } from './iommufd';
import { ioasPort, type Ioas } from './ioas';

/**
 * The iommufd and IOAS that Device.open shares per context when no IOAS is
 * given, as the container path shares a container: opened with the first
 * device, closed (IOAS destroyed, then /dev/iommu closed) when the last
 * device attached to it closes. Held weakly, like the shared groups.
 * `opened` says this call opened it: if the device it was opened for then
 * fails to open, nothing else can reach it, and the caller closes it again.
 */
const shared = new WeakMap<VfioContext, WeakRef<Ioas>>();

export function defaultIoas(context: VfioContext): { ioas: Ioas; opened: boolean } {
  const existing = shared.get(context)?.deref();
  if (existing && !existing.closed) return { ioas: existing, opened: false };
  const iommufd = Iommufd.open(context);
  let ioas: Ioas;
  try {
    ioas = iommufd.allocIoas();
  } catch (error) {
    try {
      iommufd.close();
    } catch {
      // The allocation failure is the one worth reporting.
    }
    throw error;
  }
  ioasPort(ioas).whenUnused(() => {
    if (shared.get(context)?.deref() === ioas) shared.delete(context);
    iommufd.close();
  });
  shared.set(context, new WeakRef(ioas));
  return { ioas, opened: true };
}
