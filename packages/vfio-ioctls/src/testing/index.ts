/**
 * `vfio-ioctls/testing`: a fake Linux VFIO kernel implementing the same
 * Backend as the native addon, for testing code that drives VFIO devices
 * without hardware, root, or an IOMMU.
 */
export { FakeKernel } from './fake-kernel';
export { FakeDevice } from './fake-device';
export type { FakePoller } from './fake-eventfd';
export type { FaultSpec } from './faults';
export type { FakeMigration, FakeMigrationFile, FakeMigrationSpec } from './fake-migration';
export type { FakeDeviceFeatures } from './fake-features';
export type { FakeDmaLog } from './fake-dma-log';
export type { FakeLowPower } from './fake-low-power';
export type { FakeIoeventfds, FakeIoeventfdState } from './fake-ioeventfd';
export type {
  FakeCall, FakeDeviceSpec, FakeDmaMapping, FakeIrqSpec, FakeIrqState, FakeKernelOptions, FakeRegionSpec,
  MmioReadHook, MmioWriteHook,
} from './types';
export { emulateEdu, EDU_DMA_BUFFER, EDU_DMA_BUFFER_SIZE, EDU_ID, EDU_REG, type EduModel } from './edu-model';
