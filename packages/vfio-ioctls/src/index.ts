/**
 * vfio-ioctls: safe Linux VFIO for Node.js. Containers, groups, devices,
 * regions, interrupts and DMA, over a thin syscall backend (the native
 * addon, or the fake kernel of `vfio-ioctls/testing`).
 * @packageDocumentation
 */
export type { Backend, EventfdsWake, MemfdFile, Poller } from './core/backend';
export { VfioError, type VfioErrorContext } from './core/errors';
export { vfioErrorCodes, errnoCodes, type VfioErrorCode, type LibraryErrorCode, type ErrnoCode, type ErrorCodeInfo } from './core/codes';
export { VfioContext, type VfioOptions } from './core/context';
export { Container, type IommuInfo } from './iommu/container/container';
// Device and Group come through open.ts, which installs Device.open and group.openDevice.
export { Device, Group, type DeviceOpenOptions, type IommuChoice } from './open';
export { Iommufd, type IommuHwInfo } from './iommu/iommufd/iommufd';
export { Ioas } from './iommu/iommufd/ioas';
export { Hwpt } from './iommu/iommufd/hwpt';
export type { GroupStatus } from './iommu/container/group';
export {
  type DeviceInfo,
  type EnableIrqOptions,
  type HotResetDevice,
  type HotResetInfo,
} from './device/device';
export { Region, type RegionCapabilities, type RegionMapOptions, type SparseMmapArea } from './device/region';
export { RegionMapping, MmioWindow } from './device/region-mapping';
export { deviceFeatureNames, type DeviceFeatureName, type DeviceFeatures, type FeatureSupport, type MigrationFlags } from './device/features';
export { Migration } from './device/migration';
export { migrationStates, type MigrationState } from './device/migration-path';
export { MigrationSession, type MigrationSessionKind, type MigrationStreamOptions, type PrecopyInfo } from './device/migration-stream';
export { Ioeventfd, type IoeventfdOptions } from './device/ioeventfd';
export { KvmVfioFile } from './device/kvm-vfio';
export { LowPowerWakeup } from './device/low-power';
export { DmaLogging, type DmaLoggingOptions, type DmaLogRange, type DmaLogReportOptions } from './device/dma-logging';
export type { IrqInfo } from './abi/irq-info';
export { Interrupts, type InterruptEvent } from './device/interrupts';
export { EventFd, type EventFdOptions } from './device/event-fd';
export { DmaBuffer, type DmaBufferOptions } from './dma/dma-buffer';
export { DmaMapping } from './dma/mapping';
export { physicalAddress, physicalSegments, type PhysicalSegment } from './dma/physical-memory';
export type { DirtyRange } from './dma/dirty-bitmap';
export { NoIommu } from './iommu/noiommu';
export type { IommuContext, IommuKind } from './iommu/context';
export type { DmaMapOptions } from './dma/dma-space';
export type { IovaRange } from './dma/iova-allocator';
export { IovaAllocator, type IovaSpan } from './dma/iova-allocator';
export type { CapabilityRef } from './abi/structs';
export { parsePciAddress } from './core/validate';
export {
  blocksGroup,
  isVfioDriver,
  groupDevices,
  groupOf,
  listIommuGroups,
  pciDevice,
  type IommuGroupInfo,
  type PciDeviceInfo,
  type SysfsOptions,
} from './discovery/sysfs';
