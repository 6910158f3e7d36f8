/** Public descriptions of the fake hardware, as a test writes them. */
import type { FakeMigrationSpec } from './fake-migration';

/** One region of a fake device (a BAR, the ROM, config space, or a device-specific region). */
export interface FakeRegionSpec {
  /** VFIO_PCI_*_REGION_INDEX, or 9 and above for device-specific regions. */
  index: number;
  /** Bytes. 0 describes an unimplemented BAR: GET_REGION_INFO answers size 0, as vfio-pci does. */
  size: number;
  /** VFIO_REGION_INFO_FLAG_READ | WRITE | MMAP; default READ | WRITE. */
  flags?: number;
  /** mmap-able areas inside the region; adds a SPARSE_MMAP capability and limits mmap to them. */
  sparseAreas?: { offset: number; size: number }[];
  /** Adds a TYPE capability (needed for device-specific regions). */
  type?: { type: number; subtype: number };
  /** Adds the MSIX_MAPPABLE capability (seen on real MSI-X BARs). */
  msixMappable?: boolean;
}

/** One IRQ index of a fake device. */
export interface FakeIrqSpec {
  /** VFIO_PCI_INTX_IRQ_INDEX ... VFIO_PCI_REQ_IRQ_INDEX. */
  index: number;
  /** Vectors; 0 describes an index the device lacks. */
  count: number;
  /** VFIO_IRQ_INFO_* flags; default as vfio-pci: INTx EVENTFD|MASKABLE|AUTOMASKED, others EVENTFD|NORESIZE. */
  flags?: number;
}

/** A fake PCI function bound (by default) to vfio-pci. */
export interface FakeDeviceSpec {
  /** PCI address, '0000:00:03.0'. */
  address: string;
  /** IOMMU group number; the group is created with its first device. */
  group: number;
  /** IDs in sysfs and config space; default edu's 0x1234 / 0x11e8 / class 0x00ff00. */
  vendor?: number;
  device?: number;
  class?: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
  /** Bound driver: 'vfio-pci' (default), another name (the group is then not viable), or null for unbound. */
  driver?: string | null;
  /** Whether VFIO_DEVICE_RESET works (VFIO_DEVICE_FLAGS_RESET); default false, like edu. */
  reset?: boolean;
  /** Default: BAR0 1 MiB read/write/mmap and config space 256 bytes. */
  regions?: FakeRegionSpec[];
  /** Default: INTx 1 and MSI 1. Indexes not listed have count 0. */
  irqs?: FakeIrqSpec[];
  /**
   * Addresses GET_PCI_HOT_RESET_INFO lists (include the device itself), with
   * their group numbers (0 for an address not added to the fake); absent:
   * ENODEV, as on a root bus.
   */
  hotResetDependents?: string[];
  /** The device can migrate (VFIO_DEVICE_FEATURE_MIGRATION and its states); absent: ENOTTY, as plain vfio-pci. */
  migration?: FakeMigrationSpec;
  /** The device logs its DMA writes (VFIO_DEVICE_FEATURE_DMA_LOGGING_*); default false. */
  dmaLogging?: boolean;
  /** vfio-pci's LOW_POWER_ENTRY, LOW_POWER_ENTRY_WITH_WAKEUP and LOW_POWER_EXIT (Linux >= 6.0); default true. */
  lowPower?: boolean;
}

/** Knobs of the fake IOMMU and platform. */
export interface FakeKernelOptions {
  /** The system page size; default 4096. */
  pageSize?: number;
  /** IOMMU page-size bitmap; default 0x40201000 (4K, 2M, 1G). The smallest sets MAP_DMA's alignment. */
  iommuPageSizes?: bigint;
  /** Usable IOVA ranges (inclusive ends); default [0, 0xfedfffff] and [0xfef00000, 0x7fffffffff]. */
  iovaRanges?: { start: bigint; end: bigint }[];
  /** Concurrent DMA mappings allowed per container; default 65535. */
  dmaAvail?: number;
  /** Interrupt remapping present; default true. false: SET_IOMMU answers EPERM. */
  interruptRemapping?: boolean;
  /** Only the TYPE1 IOMMU (no TYPE1v2 extension); default false. */
  type1Only?: boolean;
  /** RLIMIT_MEMLOCK in bytes: MAP_DMA past it (all containers together) is ENOMEM; default unlimited. */
  memlockLimit?: bigint;
  /** Virtual prefix of the device nodes open() understands; default '/dev/vfio'. */
  devRoot?: string;
  /**
   * A kernel booted with vfio.enable_unsafe_noiommu_mode=1 on a machine
   * without an IOMMU: groups are `${devRoot}/noiommu-N`, cdevs
   * `${devRoot}/devices/noiommu-vfioN`, the container offers only
   * VFIO_NOIOMMU_IOMMU (which maps nothing), and devices DMA to physical
   * addresses (`physicalMemory`). Default false.
   */
  noiommu?: boolean;
  /**
   * The kernel has VFIO device cdevs (CONFIG_VFIO_DEVICE_CDEV, as 6.6+
   * distribution kernels): `vfio-dev/vfioN` in sysfs and
   * `${devRoot}/devices/vfioN` nodes. Default false, a kernel with groups
   * only (so code choosing cdevs when present keeps to groups unless a
   * test asks for them). /dev/iommu is there either way.
   */
  deviceCdevs?: boolean;
  /** What IOMMU_GET_HW_INFO reports: an Intel VT-d unit (default) or a driver without hw_info ('none'). */
  iommuHwInfo?: 'intel-vtd' | 'none';
  /**
   * The IOMMU can track dirty pages (IOMMU_CAP_DIRTY_TRACKING: VT-d in
   * scalable mode with second-stage A/D bits, AMD with HD): GET_HW_INFO
   * reports IOMMU_HW_CAP_DIRTY_TRACKING and IOMMU_HWPT_ALLOC takes
   * IOMMU_HWPT_ALLOC_DIRTY_TRACKING. Default false, as QEMU's intel-iommu
   * (EOPNOTSUPP).
   */
  iommuDirtyTracking?: boolean;
  /**
   * The type1 IOMMU offers VFIO_UPDATE_VADDR (VFIO_DMA_MAP_FLAG_VADDR and
   * VFIO_DMA_UNMAP_FLAG_VADDR, Linux >= 5.12 with no mdev in the container).
   * Default true; false answers the extension 0 and the flags EINVAL, as
   * iommufd's compat container does.
   */
  updateVaddr?: boolean;
  /**
   * The hugetlb pools (/sys/kernel/mm/hugepages/hugepages-NkB): each huge
   * page size the kernel has and how many pages of it are reserved. A
   * hugetlbfs memfd (memfd's hugePageSize) of another size is ENODEV; its
   * mmap takes the file's pages from the pool, ENOMEM when too few are free.
   * Default 2 MiB and 1 GiB, none reserved (a stock boot).
   */
  hugePages?: { size: number; count: number }[];
  /**
   * Mappings behave as the real kernel's do for the library: plain memory
   * that it reads and writes through typed arrays (Backend.directMmio).
   * Register hooks of device models (edu) then do not run. Default false:
   * every MMIO access goes through the fake's accessors.
   */
  directMmio?: boolean;
}

/** One live IOMMU mapping. */
export interface FakeDmaMapping {
  iova: bigint;
  size: bigint;
  vaddr: bigint;
  read: boolean;
  write: boolean;
}

/** One fake syscall, as recorded in FakeKernel.calls. */
export interface FakeCall {
  /** The Backend method: 'open', 'ioctl', 'mmap', 'eventfdRead', ... */
  syscall: string;
  request?: number;
  fd?: number;
  path?: string;
}

/** The state of one IRQ index, for assertions. */
export interface FakeIrqState {
  /** Whether this index is the device's enabled interrupt type (INTx, MSI or MSI-X), or has a trigger (ERR, REQ). */
  enabled: boolean;
  /** Per vector: the eventfd number given to SET_IRQS, or null. */
  eventfds: (number | null)[];
  /** Per vector: masked (INTx only can be masked). */
  masked: boolean[];
  /** Per vector: an interrupt arrived while masked and waits for unmask. */
  pending: boolean[];
  /** INTx: the eventfd registered with ACTION_UNMASK | DATA_EVENTFD (a write to it unmasks), or null. */
  unmaskEventfd: number | null;
}

/** Reads a register: return the value, or undefined to read the region's backing bytes. */
export type MmioReadHook = (offset: number, width: 1 | 2 | 4 | 8) => number | bigint | undefined;
/** Observes a register write (value: number up to 4 bytes, bigint for 8): return true when the hook consumed it (the backing bytes are then left alone). */
export type MmioWriteHook = (offset: number, value: number | bigint, width: 1 | 2 | 4 | 8) => boolean | void;
