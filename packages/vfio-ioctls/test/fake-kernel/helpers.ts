/** Raw-ioctl helpers for the fake kernel's own tests: arguments are built with vfio-bindings codecs only. */
import {
  scalarCodec, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_irq_set,
  VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU,
} from 'vfio-bindings';
import { FakeKernel, type FakeDeviceSpec, type FakeKernelOptions } from '../../src/testing';

export const EDU = '0000:00:03.0';
export const GROUP = 12;

/** An fd passed by pointer (SET_CONTAINER takes an int *). */
export function fdArg(fd: number): Uint8Array {
  return scalarCodec('s32').encode(fd);
}

/** A NUL-terminated device name, as GET_DEVICE_FD reads it. */
export function nameArg(name: string): Uint8Array {
  return new Uint8Array(Buffer.from(`${name}\0`, 'latin1'));
}

export interface Opened {
  kernel: FakeKernel;
  container: number;
  group: number;
  device: number;
}

/** The usual sequence: container, group, SET_CONTAINER, SET_IOMMU(TYPE1v2), GET_DEVICE_FD. */
export function openDevice(options: FakeKernelOptions = {}, spec: Partial<FakeDeviceSpec> = {}): Opened {
  const kernel = new FakeKernel(options);
  kernel.addDevice({ address: EDU, group: GROUP, ...spec });
  const container = kernel.open('/dev/vfio/vfio', 2);
  const group = kernel.open(`/dev/vfio/${spec.group ?? GROUP}`, 2);
  kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, fdArg(container));
  kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  const device = kernel.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, nameArg(spec.address ?? EDU));
  return { kernel, container, group, device };
}

export function mapDma(kernel: FakeKernel, container: number, m: { vaddr: bigint; iova: bigint; size: bigint; flags?: number }): number {
  const flags = m.flags ?? (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
  const arg = vfio_iommu_type1_dma_map.encode({ argsz: vfio_iommu_type1_dma_map.size, flags, vaddr: m.vaddr, iova: m.iova, size: m.size });
  return kernel.ioctl(container, VFIO_IOMMU_MAP_DMA, arg);
}

/** UNMAP_DMA; returns the size the kernel wrote back. */
export function unmapDma(kernel: FakeKernel, container: number, m: { iova: bigint; size: bigint; flags?: number }): bigint {
  const arg = vfio_iommu_type1_dma_unmap.encode({ argsz: vfio_iommu_type1_dma_unmap.size, flags: m.flags ?? 0, iova: m.iova, size: m.size });
  kernel.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg);
  return vfio_iommu_type1_dma_unmap.decode(arg).size;
}

/** Runs `fn` and returns what it threw, failing the test when it did not throw. */
export function thrown(fn: () => unknown): any {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** A raw VFIO_DEVICE_SET_IRQS argument: header, then `eventfds` as s32 or `bools` as u8; argsz covers them unless given. */
export function irqSetArg(h: { flags: number; index: number; start?: number; count: number; eventfds?: number[]; bools?: number[]; argsz?: number }): Uint8Array {
  const at = vfio_irq_set.offsetOf('data');
  const data = h.eventfds ? h.eventfds.length * 4 : h.bools?.length ?? 0;
  const arg = new Uint8Array(at + data);
  vfio_irq_set.encode({ argsz: h.argsz ?? arg.length, flags: h.flags, index: h.index, start: h.start ?? 0, count: h.count }, arg);
  h.eventfds?.forEach((fd, i) => scalarCodec('s32').encode(fd, arg, at + 4 * i));
  h.bools?.forEach((b, i) => scalarCodec('u8').encode(b, arg, at + i));
  return arg;
}
