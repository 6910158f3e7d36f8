/**
 * vfio-ioctls: safe Linux VFIO for Node.js. Containers, groups, devices,
 * regions, interrupts and DMA, over a thin syscall backend (the native
 * addon, or the fake kernel of `vfio-ioctls/testing`).
 * @packageDocumentation
 */
export type { Backend, Poller } from './backend';
export { VfioError, type VfioErrorContext } from './errors';
export { VfioContext, type VfioOptions } from './context';
export { Container, type IommuInfo } from './container';
export { Group, type GroupStatus } from './group';
export {
  Device,
  type DeviceInfo,
  type DeviceOpenOptions,
  type EnableIrqOptions,
  type HotResetDevice,
  type HotResetInfo,
} from './device';
export { Region, type RegionCapabilities, type SparseMmapArea } from './region';
export { RegionMapping, MmioWindow } from './region-mapping';
export type { IrqInfo } from './irq';
export { Interrupts, type InterruptEvent } from './interrupts';
export { DmaBuffer } from './dma-buffer';
export { DmaMapping } from './dma-mapping';
export type { DmaMapOptions, IommuContext, IovaRange } from './iommu-context';
export { IovaAllocator, type IovaSpan } from './iova-allocator';
export type { CapabilityRef } from './abi';
export { parsePciAddress } from './validate';
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
} from './discovery';
