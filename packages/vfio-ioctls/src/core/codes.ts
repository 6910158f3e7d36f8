/**
 * The one catalogue of the codes the library puts in an error's `code`:
 * its own (ERR_VFIO_*), the Node codes it uses for argument errors, and the
 * kernel's errno names. README.md lists the same table; test/error-codes.test.ts
 * keeps the two equal and checks that src/ and native/ use no code outside it.
 *
 * To add a code, add one line below. Merge rather than add when a user
 * would not act differently on the new code than on an existing one.
 */

/** What one code means and what to do about it. */
export interface ErrorCodeInfo {
  /** The class thrown with this code. */
  readonly error: 'VfioError' | 'TypeError' | 'RangeError' | 'TypeError or RangeError' | 'AbortError';
  /** When it is thrown. */
  readonly when: string;
  /** What the caller can do about it. */
  readonly action: string;
}

export const vfioErrorCodes = {
  ERR_VFIO_NO_ADDON: { error: 'VfioError', when: 'the native addon could not be loaded: no prebuilt binary for this platform and no source build', action: 'run `pnpm run build:native` (or `npm rebuild vfio-ioctls`) with a C++ compiler and the Node headers, or pass `{ backend }`' },
  ERR_VFIO_API_VERSION: { error: 'VfioError', when: 'the container node speaks another VFIO API version than the one this library was written for', action: 'use a kernel and a library version that agree' },
  ERR_VFIO_PROTOCOL: { error: 'VfioError', when: 'the kernel answered something malformed or inconsistent, or a class was used without the package entry point that wires it up', action: 'import from `vfio-ioctls`; otherwise report it with the kernel version' },
  ERR_VFIO_CLOSED: { error: 'VfioError', when: 'a call on a handle (device, group, container, buffer, mapping, poller) after it, or the handle it belongs to, was closed', action: 'open a new one; close handles only when done with everything opened through them' },
  ERR_VFIO_IOMMU_UNAVAILABLE: { error: 'VfioError', when: 'there is no IOMMU to use: the device has no IOMMU group, the kernel offers no TYPE1 IOMMU, or DMA was mapped in no-IOMMU mode', action: 'enable the IOMMU (intel_iommu=on or amd_iommu=on) and load vfio_iommu_type1; in no-IOMMU mode give the device physical addresses instead' },
  ERR_VFIO_GROUP_NOT_VIABLE: { error: 'VfioError', when: 'a device of the IOMMU group is bound to a host driver (the message lists them)', action: 'bind every listed device to vfio-pci, or unbind it' },
  ERR_VFIO_GROUP_ATTACHED: { error: 'VfioError', when: 'the group is already attached to another container', action: 'detach it first, or open every device of a group with the same container' },
  ERR_VFIO_NOT_ATTACHED: { error: 'VfioError', when: 'a container or group used before its setup: a container with no group attached (so no IOMMU type), or a group in no container', action: 'attach the group to a container first (attaching sets the IOMMU type)' },
  ERR_VFIO_IOMMU_SET: { error: 'VfioError', when: 'setIommu() asked for another IOMMU type than the one the container already has', action: 'leave the type to attach(), or use a new container' },
  ERR_VFIO_DEVICE_OPEN: { error: 'VfioError', when: 'the device is already open in this process', action: 'use the Device already open (group.devices()), or close it first' },
  ERR_VFIO_UNSUPPORTED: { error: 'VfioError', when: 'the device does not offer what was asked (its flags or feature probes say so): no reset, a region not readable, writable or mmappable, an IRQ index without vectors, eventfd signalling or masking, no migration, no migration arcs between two states, a second DMA log, reading a resuming session (or writing a saving one)', action: 'check the flags first (info, region flags, irqInfo, features()) and use the alternative the hint names' },
  ERR_VFIO_SHORT_IO: { error: 'VfioError', when: 'a region read or write moved fewer bytes than asked', action: 'the device or its driver cut the access short: treat it as a device failure' },
  ERR_VFIO_BUFFER_MAPPED: { error: 'VfioError', when: 'closing a DmaBuffer that a DmaMapping still covers, or entering low power while a region of the device is mmapped (the kernel revokes the mapping: an access would be a SIGBUS)', action: 'unmap the mapping (or close its container) first' },
  ERR_VFIO_NO_IOVA_SPACE: { error: 'VfioError', when: 'no free IOVA range of the size asked (below maxIova) is left', action: 'unmap something, map smaller buffers, or raise maxIova' },
  ERR_VFIO_NO_PHYSICAL_ADDRESS: { error: 'VfioError', when: 'the physical address of a DmaBuffer (for no-IOMMU DMA) cannot be read: /proc/self/pagemap hides frame numbers from a process without CAP_SYS_ADMIN', action: 'run as root (CAP_SYS_ADMIN)' },
  ERR_VFIO_NOT_BOUND: { error: 'VfioError', when: 'Device.open of a device bound to another driver (or none): it has no group node and no cdev', action: 'bind it to vfio-pci (`vfio bind ADDR`), as the hint says' },
  ERR_VFIO_NO_CDEV: { error: 'VfioError', when: "iommu: 'iommufd' asked for a device without a VFIO device cdev (kernel without CONFIG_VFIO_DEVICE_CDEV)", action: "use iommu: 'auto' or 'container', or a kernel with device cdevs" },
  ERR_INVALID_ARG_TYPE: { error: 'TypeError', when: 'an argument or option of the wrong type', action: 'pass the type the message names' },
  ERR_INVALID_ARG_VALUE: { error: 'TypeError or RangeError', when: 'an argument of the right type but a value the call cannot take: a malformed PCI address, an unknown option name, memory the backend did not allocate', action: 'fix the argument the message names' },
  ERR_OUT_OF_RANGE: { error: 'RangeError', when: 'a number outside the range the message gives', action: 'pass a value inside it' },
  ERR_VFIO_MISALIGNED: { error: 'RangeError', when: 'an offset, IOVA or buffer not aligned as the access width or the IOMMU page size requires', action: 'align it as the message says' },
  ERR_VFIO_DMA_OVERLAP: { error: 'RangeError', when: 'the IOVA range asked for overlaps an existing mapping', action: 'pick another IOVA, or leave it to the library' },
  ERR_VFIO_DMA_PARTIAL: { error: 'RangeError', when: 'unmapRange() or dirtyPages() over a range that cuts a mapping in two (the kernel refuses to split one)', action: 'give ranges that hold whole mappings' },
  ERR_VFIO_DIRTY_TRACKING_OFF: { error: 'VfioError', when: 'dirtyPages() on a container whose dirty page tracking is not started', action: 'call startDirtyTracking() first' },
  ERR_VFIO_IRQ_BUSY: { error: 'RangeError', when: 'enabling interrupt vectors that are already enabled', action: 'disable them first' },
  ERR_ILLEGAL_CONSTRUCTOR: { error: 'TypeError', when: '`new` on a class only the library makes (Device, Region, Interrupts, DmaMapping)', action: 'use the factory: Device.open, device.region(), map()' },
  ABORT_ERR: { error: 'AbortError', when: 'a wait for an interrupt was cancelled by its AbortSignal', action: 'nothing: it is the answer to your abort' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** A code of the library itself (or a Node code it uses), as listed in {@link vfioErrorCodes}. */
export type LibraryErrorCode = keyof typeof vfioErrorCodes;

/**
 * The errno names a failed syscall can carry: libuv's names (EAGAIN, never
 * its alias EWOULDBLOCK; ENOTSUP, never EOPNOTSUPP) and the other Linux
 * names a newer libuv may add. Errnos without a name are `E<n>` (EBADFD is 'E77').
 */
export const errnoCodes = [
  'EPERM', 'ENOENT', 'ESRCH', 'EINTR', 'EIO', 'ENXIO', 'E2BIG', 'ENOEXEC', 'EBADF', 'ECHILD', 'EAGAIN', 'ENOMEM',
  'EACCES', 'EFAULT', 'EBUSY', 'EEXIST', 'EXDEV', 'ENODEV', 'ENOTDIR', 'EISDIR', 'EINVAL', 'ENFILE', 'EMFILE',
  'ENOTTY', 'ETXTBSY', 'EFBIG', 'ENOSPC', 'ESPIPE', 'EROFS', 'EMLINK', 'EPIPE', 'EDOM', 'ERANGE', 'EDEADLK',
  'ENAMETOOLONG', 'ENOLCK', 'ENOSYS', 'ENOTEMPTY', 'ELOOP', 'ENOMSG', 'EIDRM', 'EUNATCH', 'ENOSTR', 'ENODATA',
  'ETIME', 'ENOSR', 'ENONET', 'ENOLINK', 'EPROTO', 'EMULTIHOP', 'EBADMSG', 'EOVERFLOW', 'EILSEQ', 'ENOTSOCK',
  'EDESTADDRREQ', 'EMSGSIZE', 'EPROTOTYPE', 'ENOPROTOOPT', 'EPROTONOSUPPORT', 'ESOCKTNOSUPPORT', 'ENOTSUP',
  'EAFNOSUPPORT', 'EADDRINUSE', 'EADDRNOTAVAIL', 'ENETDOWN', 'ENETUNREACH', 'ENETRESET', 'ECONNABORTED',
  'ECONNRESET', 'ENOBUFS', 'EISCONN', 'ENOTCONN', 'ESHUTDOWN', 'ETIMEDOUT', 'ECONNREFUSED', 'EHOSTDOWN',
  'EHOSTUNREACH', 'EALREADY', 'EINPROGRESS', 'ESTALE', 'EDQUOT', 'EREMOTEIO', 'ECANCELED',
] as const;

/** The code of a failed syscall: its errno name, or `E<n>` for an errno without one. */
export type ErrnoCode = (typeof errnoCodes)[number] | `E${number}`;

/** Every code an error from this library can carry. */
export type VfioErrorCode = LibraryErrorCode | ErrnoCode;


