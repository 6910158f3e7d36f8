import { existsSync } from 'node:fs';
import * as b from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, GROUP, fdArg, mapDma, nameArg, thrown } from './helpers';
import { attach, bind, ioasAlloc, ioasMap } from './iommufd-helpers';

function noiommu(options = {}) {
  const kernel = new FakeKernel({ noiommu: true, ...options });
  kernel.addDevice({ address: EDU, group: GROUP });
  return kernel;
}

describe('no-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1)', () => {
  test('groups are noiommu-N; the container offers VFIO_NOIOMMU_IOMMU (type1 only until a group joins)', () => {
    const kernel = noiommu();
    expect(thrown(() => kernel.open(`/dev/vfio/${GROUP}`, 2))).toMatchObject({ code: 'ENOENT' });
    const container = kernel.open('/dev/vfio/vfio', 2);
    const check = (ext: number) => kernel.ioctl(container, b.VFIO_CHECK_EXTENSION, ext);
    expect([check(b.VFIO_NOIOMMU_IOMMU), check(b.VFIO_TYPE1v2_IOMMU)]).toEqual([1, 1]);
    const group = kernel.open(`/dev/vfio/noiommu-${GROUP}`, 2);
    kernel.ioctl(group, b.VFIO_GROUP_SET_CONTAINER, fdArg(container));
    expect([check(b.VFIO_NOIOMMU_IOMMU), check(b.VFIO_TYPE1v2_IOMMU), check(b.VFIO_TYPE1_IOMMU)]).toEqual([1, 0, 0]);
    expect(thrown(() => kernel.ioctl(container, b.VFIO_SET_IOMMU, b.VFIO_TYPE1v2_IOMMU))).toMatchObject({ code: 'ENODEV' });
    kernel.ioctl(container, b.VFIO_SET_IOMMU, b.VFIO_NOIOMMU_IOMMU);
    const device = kernel.ioctl(group, b.VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    expect(device).toBeGreaterThan(0);
    kernel.close(device);
    kernel.close(group);
    kernel.close(container);
    expect(kernel.openFds()).toEqual([]);
    kernel.dispose();
  });

  test('the noiommu driver maps nothing: MAP_DMA, UNMAP_DMA and GET_INFO are ENOTTY', () => {
    const kernel = noiommu();
    const container = kernel.open('/dev/vfio/vfio', 2);
    const group = kernel.open(`/dev/vfio/noiommu-${GROUP}`, 2);
    kernel.ioctl(group, b.VFIO_GROUP_SET_CONTAINER, fdArg(container));
    kernel.ioctl(container, b.VFIO_SET_IOMMU, b.VFIO_NOIOMMU_IOMMU);
    const memory = kernel.allocDma(4096);
    expect(thrown(() => mapDma(kernel, container, { vaddr: kernel.addressOf(memory), iova: 0n, size: 4096n }))).toMatchObject({ code: 'ENOTTY' });
    const info = b.vfio_iommu_type1_info.encode({ argsz: b.vfio_iommu_type1_info.size, flags: 0, iova_pgsizes: 0n, cap_offset: 0, pad: 0 } as b.EncodeInput<b.vfio_iommu_type1_info>);
    expect(thrown(() => kernel.ioctl(container, b.VFIO_IOMMU_GET_INFO, info))).toMatchObject({ code: 'ENOTTY' });
    expect(kernel.dmaMappings()).toEqual([]);
    kernel.dispose();
  });

  test('a kernel with an IOMMU has no noiommu driver: the extension is 0 and SET_IOMMU(NOIOMMU) ENODEV', () => {
    const kernel = new FakeKernel();
    kernel.addDevice({ address: EDU, group: GROUP });
    const container = kernel.open('/dev/vfio/vfio', 2);
    expect(kernel.ioctl(container, b.VFIO_CHECK_EXTENSION, b.VFIO_NOIOMMU_IOMMU)).toBe(0);
    const group = kernel.open(`/dev/vfio/${GROUP}`, 2);
    kernel.ioctl(group, b.VFIO_GROUP_SET_CONTAINER, fdArg(container));
    expect(thrown(() => kernel.ioctl(container, b.VFIO_SET_IOMMU, b.VFIO_NOIOMMU_IOMMU))).toMatchObject({ code: 'ENODEV' });
    expect(thrown(() => kernel.open(`/dev/vfio/noiommu-${GROUP}`, 2))).toMatchObject({ code: 'ENOENT' });
    kernel.dispose();
  });

  test('cdevs are noiommu-vfioN; binding needs no interrupt remapping; GET_HW_INFO is EOPNOTSUPP; an IOAS attach works', () => {
    const kernel = noiommu({ deviceCdevs: true, interruptRemapping: false });
    expect(kernel.cdevPath(EDU)).toBe('/dev/vfio/devices/noiommu-vfio0');
    expect(existsSync(`${kernel.sysfsRoot}/bus/pci/devices/${EDU}/vfio-dev/noiommu-vfio0`)).toBe(true);
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const device = kernel.open(kernel.cdevPath(EDU)!, 2);
    const devid = bind(kernel, device, iommufd);
    const arg = b.iommu_hw_info.encode({
      size: 40, flags: 0, dev_id: devid, data_len: 0, data_uptr: 0n, out_data_type: 0, out_max_pasid_log2: 0, __reserved: [0, 0, 0], out_capabilities: 0n,
    } as b.EncodeInput<b.iommu_hw_info>);
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_GET_HW_INFO, arg))).toMatchObject({ errno: -95 }); // EOPNOTSUPP
    const ioas = ioasAlloc(kernel, iommufd);
    expect(attach(kernel, device, ioas)).toBe(3);
    // No aperture or MSI window: a software page table spanning everything.
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(kernel.allocDma(4096)), length: 4096n, iova: 0xfee0_0000n })).toBe(0xfee0_0000n);
    kernel.close(device);
    kernel.close(iommufd);
    expect(kernel.iommufdObjects()).toEqual([]);
    kernel.dispose();
  });

  test('device DMA goes to physical addresses, not through an IOMMU', () => {
    const kernel = noiommu();
    const memory = kernel.allocDma(4096);
    kernel.mlock(memory);
    const fd = kernel.open('/proc/self/pagemap', 0);
    const entry = new Uint8Array(8);
    kernel.pread(fd, entry, (kernel.addressOf(memory) / 4096n) * 8n);
    const frame = new DataView(entry.buffer).getBigUint64(0, true) & ((1n << 55n) - 1n);
    kernel.device(EDU)!.dmaWrite(frame * 4096n + 8n, new Uint8Array([7]));
    expect(new Uint8Array(memory)[8]).toBe(7);
    kernel.close(fd);
    kernel.dispose();
  });
});
