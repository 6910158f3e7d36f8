import type { ErrnoCode, VfioErrorCode } from './codes';
import { errnoName, errnoNumber } from './errno';

/** What a VfioError knows of the failed call, beyond the errno. */
export interface VfioErrorContext {
  /** The syscall that failed: 'open', 'ioctl', 'mmap', ... */
  syscall?: string;
  /** The VFIO operation, by its ioctl name: 'VFIO_SET_IOMMU', 'VFIO_IOMMU_MAP_DMA', ... */
  operation?: string;
  /** The file the call was about: '/dev/vfio/vfio', '/dev/vfio/12'. */
  path?: string;
  /** The device the call was about, by PCI address or name. */
  device?: string;
  /** A likely cause and what to do; set from the common causes when not given. */
  hint?: string;
}

type Hints = Partial<Record<VfioErrorCode, string>>;

/** The hints for the common causes, keyed by VFIO operation, then by code. */
const hints: Record<string, Hints> = {
  VFIO_SET_IOMMU: {
    EPERM: 'the IOMMU has no interrupt remapping; enable it (intel_iommu=on, intremap) or load vfio_iommu_type1 with allow_unsafe_interrupts=1',
  },
  VFIO_IOMMU_MAP_DMA: {
    ENOMEM: 'pinning the buffer exceeded RLIMIT_MEMLOCK (ulimit -l) or the IOMMU ran out of DMA mappings',
    ENOSPC: 'the container reached its DMA mapping limit (vfio_iommu_type1 dma_entry_limit)',
    EEXIST: 'the IOVA range overlaps an existing mapping',
  },
  VFIO_GROUP_SET_CONTAINER: {
    EBUSY: 'the group is already attached to another container',
  },
  VFIO_GROUP_GET_DEVICE_FD: {
    EBUSY: 'the device is already open, in this process or another',
    ENODEV: 'no device of that name in the group',
    EINVAL: 'the container has no IOMMU set yet',
    EACCES: "a VF of an SR-IOV PF bound to vfio-pci needs the PF's VF token and it is missing or wrong: open it with { vfToken }, the UUID the PF's user set with setVfToken()",
  },
  VFIO_DEVICE_FEATURE: {
    ENOTTY: 'the device does not offer this feature (a VF token: only an SR-IOV PF bound to vfio-pci has one)',
  },
  VFIO_DEVICE_BIND_IOMMUFD: {
    EACCES: "a VF of an SR-IOV PF bound to vfio-pci needs the PF's VF token and it is missing or wrong: open it with { vfToken }, the UUID the PF's user set with setVfToken()",
  },
  VFIO_IOMMU_DIRTY_PAGES: {
    ENOTTY: "this container has no dirty tracking: /dev/vfio/vfio is iommufd's compatibility container (IOMMUFD_VFIO_CONTAINER); track dirty pages through iommufd instead",
    EACCES: 'dirty tracking needs the TYPE1v2 IOMMU (the container has TYPE1)',
  },
  IOMMU_IOAS_NOIOMMU_GET_PA: {
    ENOTTY: 'physical addresses through iommufd need Linux >= 7.3 with CONFIG_IOMMUFD_NOIOMMU; use the no-IOMMU group and physicalSegments(buffer) instead',
    ENOTSUP: 'only mappings of an IOAS with a no-IOMMU device attached (Device.open with iommu: \'noiommu\') have physical addresses',
    EPERM: 'physical addresses need CAP_SYS_RAWIO (run as root)',
    ENOENT: 'nothing is mapped at that IOVA',
  },
  IOMMU_HWPT_ALLOC: {
    // The library asks for no other feature that EOPNOTSUPP could refuse.
    ENOTSUP: "the IOMMU cannot track dirty pages (GET_HW_INFO: no IOMMU_HW_CAP_DIRTY_TRACKING, hwInfo(device).dirtyTracking is false); QEMU's emulated intel-iommu does not; the legacy container's dirtyPages reports every mapped page",
  },
  IOMMU_HWPT_SET_DIRTY_TRACKING: {
    ENOTSUP: 'the HWPT was allocated without dirty tracking: allocate it with allocHwpt(device, { dirtyTracking: true })',
    ENOENT: 'the HWPT no longer exists in the iommufd',
  },
  IOMMU_HWPT_GET_DIRTY_BITMAP: {
    ENOTSUP: 'the HWPT was allocated without dirty tracking: allocate it with allocHwpt(device, { dirtyTracking: true })',
    ENOENT: 'the HWPT no longer exists in the iommufd',
  },
  VFIO_DEVICE_RESET: {
    EINVAL: 'the device has no reset method',
  },
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: {
    ENODEV: 'the device cannot be bus-reset (on the root bus, or no reset-capable bridge above it)',
  },
  VFIO_DEVICE_PCI_HOT_RESET: {
    // Seen for an nvme behind a QEMU pcie-root-port: the group proof passed, then pci_reset_bus() had no way to reset.
    ENOTTY: 'the groups were accepted, but neither the slot nor the bus can be reset (the bridge above cannot, or a device on the bus forbids bus reset); use reset() where the device has a reset of its own',
  },
  VFIO_DEVICE_SET_IRQS: {
    // Enabling gets a hint of its own (interrupts.ts enableError); this one is for trigger, mask, unmask and disable.
    EINVAL: 'the kernel refused this index, range or action for the device: check irqInfo(index) (its count and flags) and that the vectors are enabled',
  },
};
const genericHints: Hints = {
  EACCES: 'no permission on the /dev/vfio node: run as root or give your user the group file (udev rule or chown)',
  EBUSY: 'the device or group is in use by another process or handle',
  ENOENT: 'no such node: is the device bound to vfio-pci and the vfio modules loaded?',
  ERR_VFIO_GROUP_NOT_VIABLE:
    'bind every listed device to vfio-pci (echo vfio-pci > /sys/bus/pci/devices/ADDR/driver_override; echo ADDR > /sys/bus/pci/drivers_probe) or unbind it',
  ERR_VFIO_CLOSED: 'the handle was closed (or its device, group or container was); open a new one',
};

/**
 * The one error class of the library: a failed syscall or a kernel refusal,
 * with Node's error shape (code, negative errno, syscall) plus the VFIO
 * operation, the path or device, and a hint when the cause is a common one.
 */
export class VfioError extends Error {
  override name = 'VfioError';
  /** 'EBUSY', 'EINVAL', ... or a library code such as 'ERR_VFIO_CLOSED' (see codes.ts, and the README). */
  readonly code: VfioErrorCode;
  /** Negative errno, as Node's own errors carry it; 0 for library codes. */
  readonly errno: number;
  readonly syscall?: string;
  readonly operation?: string;
  readonly path?: string;
  readonly device?: string;
  readonly hint?: string;

  constructor(code: VfioErrorCode, message: string, context: VfioErrorContext & { errno?: number } = {}) {
    const hint = context.hint ?? hintFor(context.operation, code);
    super(hint ? `${message} (hint: ${hint})` : message);
    this.code = code as VfioErrorCode;
    // `|| 0` turns the -0 of library codes (no errno) into a plain 0.
    this.errno = context.errno ?? (-(errnoNumber(code) ?? 0) || 0);
    this.syscall = context.syscall;
    this.operation = context.operation;
    this.path = context.path;
    this.device = context.device;
    this.hint = hint;
  }

  /** Builds the error for a failed syscall from its errno (positive or negative). */
  static fromErrno(errno: number, context: VfioErrorContext): VfioError {
    const code: ErrnoCode = errnoName(errno);
    const what = [context.operation, context.syscall].filter(Boolean).join(' ');
    const about = context.device ?? context.path;
    const message = `${code}: ${what || 'call'} failed${about ? ` on ${about}` : ''}`;
    return new VfioError(code, message, { ...context, errno: -Math.abs(errno) });
  }

  /**
   * Adds what the caller knows (operation, path, device) to an error that
   * came from the backend, keeping its code and errno. Other errors pass through.
   */
  static annotate(error: unknown, context: VfioErrorContext): unknown {
    if (!isErrnoError(error)) return error;
    const errno = (error as { errno: number }).errno;
    const syscall = context.syscall ?? (error as { syscall?: string }).syscall;
    return VfioError.fromErrno(errno, { ...context, syscall });
  }
}

function hintFor(operation: string | undefined, code: string): string | undefined {
  const key = code as VfioErrorCode;
  return (operation ? hints[operation]?.[key] : undefined) ?? genericHints[key];
}

/**
 * A failed syscall by shape, not by class: errors from fs or the addon may
 * come from another realm (worker, vm, jest), where instanceof fails. A
 * library-coded error (errno 0) is not one and passes through unchanged.
 */
function isErrnoError(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return false;
  const { errno, code } = error as { errno?: unknown; code?: unknown };
  return typeof errno === 'number' && errno !== 0 && typeof code === 'string';
}

/** The error for any call on a handle after close(). */
export function closedError(what: string): VfioError {
  return new VfioError('ERR_VFIO_CLOSED', `${what} is closed`);
}

/** A read or write the region's flags do not allow (pread/pwrite or a mapping alike). */
export function regionAccessError(index: number, device: string, what: 'read' | 'write'): VfioError {
  return new VfioError('ERR_VFIO_UNSUPPORTED', `region ${index} of ${device} does not allow ${what}`, { device });
}

/** The error a wait rejects with when its AbortSignal fires: Node's AbortError shape (code ABORT_ERR), the signal's reason as cause. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted') as Error & { code: string; cause: unknown };
  error.name = 'AbortError';
  error.code = 'ABORT_ERR';
  error.cause = signal.reason;
  return error;
}
