/** Raw iommufd and cdev calls for the fake kernel's own tests: every argument is packed with vfio-bindings codecs. */
import * as b from 'vfio-bindings';
import { FakeKernel, type FakeDeviceSpec, type FakeKernelOptions } from '../../src/testing';
import { EDU, GROUP } from './helpers';

export const RW = b.IOMMU_IOAS_MAP_READABLE | b.IOMMU_IOAS_MAP_WRITEABLE;
export const U64_MAX = (1n << 64n) - 1n;

export function ioasAlloc(k: FakeKernel, iommufd: number): number {
  const arg = b.iommu_ioas_alloc.encode({ size: b.iommu_ioas_alloc.size, flags: 0, out_ioas_id: 0 });
  k.ioctl(iommufd, b.IOMMU_IOAS_ALLOC, arg);
  return b.iommu_ioas_alloc.decode(arg).out_ioas_id;
}

export function destroy(k: FakeKernel, iommufd: number, id: number): void {
  k.ioctl(iommufd, b.IOMMU_DESTROY, b.iommu_destroy.encode({ size: b.iommu_destroy.size, id }));
}

/** IOMMU_IOAS_MAP; without `iova` the kernel picks one. Returns the IOVA. */
export function ioasMap(k: FakeKernel, iommufd: number, ioas: number, m: { va: bigint; length: bigint; iova?: bigint; flags?: number }): bigint {
  const flags = (m.flags ?? RW) | (m.iova !== undefined ? b.IOMMU_IOAS_MAP_FIXED_IOVA : 0);
  const arg = b.iommu_ioas_map.encode({ size: b.iommu_ioas_map.size, flags, ioas_id: ioas, __reserved: 0, user_va: m.va, length: m.length, iova: m.iova ?? 0n });
  k.ioctl(iommufd, b.IOMMU_IOAS_MAP, arg);
  return b.iommu_ioas_map.decode(arg).iova;
}

/** IOMMU_IOAS_UNMAP; returns the length the kernel wrote back. */
export function ioasUnmap(k: FakeKernel, iommufd: number, ioas: number, iova: bigint, length: bigint): bigint {
  const arg = b.iommu_ioas_unmap.encode({ size: b.iommu_ioas_unmap.size, ioas_id: ioas, iova, length });
  k.ioctl(iommufd, b.IOMMU_IOAS_UNMAP, arg);
  return b.iommu_ioas_unmap.decode(arg).length;
}

/** IOMMU_IOAS_IOVA_RANGES into process memory with room for `room` ranges. */
export function iovaRanges(k: FakeKernel, iommufd: number, ioas: number, room = 4): { ranges: { start: bigint; last: bigint }[]; alignment: bigint; num: number } {
  const memory = k.allocDma(4096);
  try {
    const arg = b.iommu_ioas_iova_ranges.encode({
      size: b.iommu_ioas_iova_ranges.size, ioas_id: ioas, num_iovas: room, __reserved: 0, allowed_iovas: k.addressOf(memory), out_iova_alignment: 0n,
    });
    k.ioctl(iommufd, b.IOMMU_IOAS_IOVA_RANGES, arg);
    const out = b.iommu_ioas_iova_ranges.decode(arg);
    const ranges = Array.from({ length: out.num_iovas }, (_, i) => b.iommu_iova_range.decode(new Uint8Array(memory), i * 16));
    return { ranges, alignment: out.out_iova_alignment, num: out.num_iovas };
  } finally {
    k.freeDma(memory);
  }
}

/** VFIO_DEVICE_BIND_IOMMUFD; returns out_devid. */
export function bind(k: FakeKernel, device: number, iommufd: number, flags = 0, token = 0n): number {
  const arg = b.vfio_device_bind_iommufd.encode({ argsz: b.vfio_device_bind_iommufd.size, flags, iommufd, out_devid: 0, token_uuid_ptr: token });
  k.ioctl(device, b.VFIO_DEVICE_BIND_IOMMUFD, arg);
  return b.vfio_device_bind_iommufd.decode(arg).out_devid;
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT; returns the pt_id written back (the HWPT). */
export function attach(k: FakeKernel, device: number, ptId: number, flags = 0): number {
  const arg = b.vfio_device_attach_iommufd_pt.encode({ argsz: b.vfio_device_attach_iommufd_pt.size, flags, pt_id: ptId, pasid: 0 });
  k.ioctl(device, b.VFIO_DEVICE_ATTACH_IOMMUFD_PT, arg);
  return b.vfio_device_attach_iommufd_pt.decode(arg).pt_id;
}

export function detach(k: FakeKernel, device: number): void {
  k.ioctl(device, b.VFIO_DEVICE_DETACH_IOMMUFD_PT, b.vfio_device_detach_iommufd_pt.encode({ argsz: b.vfio_device_detach_iommufd_pt.size, flags: 0, pasid: 0 }));
}

export interface Attached {
  kernel: FakeKernel;
  iommufd: number;
  ioas: number;
  device: number;
  devid: number;
  hwpt: number;
}

/** The cdev sequence: open /dev/iommu, IOAS_ALLOC, open the cdev, BIND, ATTACH to the IOAS. */
export function openCdev(options: FakeKernelOptions = {}, spec: Partial<FakeDeviceSpec> = {}): Attached {
  const kernel = new FakeKernel({ deviceCdevs: true, ...options });
  kernel.addDevice({ address: EDU, group: GROUP, ...spec });
  const iommufd = kernel.open(kernel.iommuPath, 2);
  const ioas = ioasAlloc(kernel, iommufd);
  const device = kernel.open(kernel.cdevPath(spec.address ?? EDU)!, 2);
  const devid = bind(kernel, device, iommufd);
  const hwpt = attach(kernel, device, ioas);
  return { kernel, iommufd, ioas, device, devid, hwpt };
}
