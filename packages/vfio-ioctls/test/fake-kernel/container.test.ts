import {
  vfio_iommu_type1_info, walkCapabilities,
  VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU, VFIO_GET_API_VERSION, VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_NOIOMMU_IOMMU, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_UNMAP_ALL,
  VFIO_DEVICE_GET_INFO,
} from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, fdArg, GROUP, mapDma, openDevice, thrown } from './helpers';

function withGroup(options = {}) {
  const kernel = new FakeKernel(options);
  kernel.addDevice({ address: EDU, group: GROUP });
  const container = kernel.open('/dev/vfio/vfio', 2);
  const group = kernel.open(`/dev/vfio/${GROUP}`, 2);
  return { kernel, container, group };
}

describe('container ioctls', () => {
  let kernel: FakeKernel;
  afterEach(() => kernel?.dispose());

  test('GET_API_VERSION answers VFIO_API_VERSION', () => {
    kernel = new FakeKernel();
    const c = kernel.open('/dev/vfio/vfio', 2);
    expect(kernel.ioctl(c, VFIO_GET_API_VERSION)).toBe(VFIO_API_VERSION);
  });

  test('CHECK_EXTENSION answers 1 for type1, type1v2 and unmap-all, 0 otherwise', () => {
    kernel = new FakeKernel();
    const c = kernel.open('/dev/vfio/vfio', 2);
    expect(kernel.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU)).toBe(1);
    expect(kernel.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(1);
    expect(kernel.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL)).toBe(1);
    expect(kernel.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU)).toBe(0);
    expect(kernel.ioctl(c, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU)).toBe(0);
  });

  test('type1Only hides TYPE1v2 and SET_IOMMU(TYPE1v2) is ENODEV', () => {
    let container: number, group: number;
    ({ kernel, container, group } = withGroup({ type1Only: true }));
    kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, fdArg(container));
    expect(kernel.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(thrown(() => kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toMatchObject({ code: 'ENODEV' });
    expect(kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU)).toBe(0);
  });

  test('SET_IOMMU needs a group attached (EINVAL), an IOMMU type it knows (ENODEV), and only once (EINVAL)', () => {
    let container: number, group: number;
    ({ kernel, container, group } = withGroup());
    expect(thrown(() => kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toMatchObject({ code: 'EINVAL', syscall: 'ioctl', errno: -22 });
    kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, fdArg(container));
    expect(thrown(() => kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU))).toMatchObject({ code: 'ENODEV' });
    expect(kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(thrown(() => kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toMatchObject({ code: 'EINVAL' });
    expect(kernel.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU)).toBe(1);
  });

  test('SET_IOMMU is EPERM without interrupt remapping', () => {
    let container: number, group: number;
    ({ kernel, container, group } = withGroup({ interruptRemapping: false }));
    kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, fdArg(container));
    const error = thrown(() => kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
    expect(error).toMatchObject({ name: 'VfioError', code: 'EPERM', errno: -1, syscall: 'ioctl' });
  });

  test('IOMMU ioctls before SET_IOMMU are EINVAL; unknown ones after it ENOTTY', () => {
    let container: number, group: number;
    ({ kernel, container, group } = withGroup());
    expect(thrown(() => kernel.ioctl(container, VFIO_IOMMU_GET_INFO, new Uint8Array(64)))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => mapDma(kernel, container, { vaddr: 0n, iova: 0n, size: 4096n }))).toMatchObject({ code: 'EINVAL' });
    kernel.ioctl(group, VFIO_GROUP_SET_CONTAINER, fdArg(container));
    kernel.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    expect(thrown(() => kernel.ioctl(container, VFIO_DEVICE_GET_INFO, new Uint8Array(16)))).toMatchObject({ code: 'ENOTTY' });
  });

  test('IOMMU_GET_INFO reports page sizes and the IOVA range and DMA-available capabilities', () => {
    let container: number;
    ({ kernel, container } = openDevice({ dmaAvail: 10 }));
    const arg = new Uint8Array(512);
    vfio_iommu_type1_info.encode({ argsz: arg.length }, arg);
    expect(kernel.ioctl(container, VFIO_IOMMU_GET_INFO, arg)).toBe(0);
    const info = vfio_iommu_type1_info.decode(arg);
    expect(info.flags).toBe(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
    expect(info.iova_pgsizes).toBe(0x40201000n);
    expect(info.cap_offset).toBe(vfio_iommu_type1_info.size);
    expect(info.argsz).toBe(arg.length);
    const caps = walkCapabilities(arg, 'iommu_type1', info.cap_offset, info.argsz);
    const ranges = caps.find((c) => c.id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE)!.value as any;
    expect(ranges.iova_ranges).toEqual([{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: 0x7fffffffffn }]);
    expect((caps.find((c) => c.id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)!.value as any).avail).toBe(10);
  });

  test('IOMMU_GET_INFO with a short argsz raises argsz, sets CAPS and leaves cap_offset 0', () => {
    let container: number;
    ({ kernel, container } = openDevice());
    const arg = vfio_iommu_type1_info.encode({ argsz: vfio_iommu_type1_info.size });
    kernel.ioctl(container, VFIO_IOMMU_GET_INFO, arg);
    const info = vfio_iommu_type1_info.decode(arg);
    expect(info.flags & VFIO_IOMMU_INFO_CAPS).toBeTruthy();
    expect(info.cap_offset).toBe(0);
    expect(info.argsz).toBeGreaterThan(vfio_iommu_type1_info.size);
    // Then a buffer of that size gets the chain.
    const big = new Uint8Array(info.argsz);
    vfio_iommu_type1_info.encode({ argsz: info.argsz }, big);
    kernel.ioctl(container, VFIO_IOMMU_GET_INFO, big);
    expect(vfio_iommu_type1_info.decode(big).cap_offset).toBe(vfio_iommu_type1_info.size);
  });

  test('IOMMU_GET_INFO with argsz below the minimum is EINVAL; DMA_AVAIL falls as mappings are made', () => {
    let container: number;
    ({ kernel, container } = openDevice({ dmaAvail: 3 }));
    expect(thrown(() => kernel.ioctl(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info.encode({ argsz: 8 })))).toMatchObject({ code: 'EINVAL' });
    const buf = kernel.allocDma(4096);
    mapDma(kernel, container, { vaddr: kernel.addressOf(buf), iova: 0x1000n, size: 4096n });
    const arg = new Uint8Array(256);
    vfio_iommu_type1_info.encode({ argsz: 256 }, arg);
    kernel.ioctl(container, VFIO_IOMMU_GET_INFO, arg);
    const info = vfio_iommu_type1_info.decode(arg);
    const avail = walkCapabilities(arg, 'iommu_type1', info.cap_offset, info.argsz).find((c) => c.id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)!;
    expect((avail.value as any).avail).toBe(2);
  });

  test('a pointer ioctl given a number faults (EFAULT); an unknown or closed fd is EBADF', () => {
    let container: number;
    ({ kernel, container } = openDevice());
    expect(thrown(() => kernel.ioctl(container, VFIO_IOMMU_MAP_DMA, 0))).toMatchObject({ code: 'EFAULT' });
    expect(thrown(() => kernel.ioctl(99, VFIO_GET_API_VERSION))).toMatchObject({ code: 'EBADF', syscall: 'ioctl' });
    kernel.close(container);
    expect(thrown(() => kernel.ioctl(container, VFIO_GET_API_VERSION))).toMatchObject({ code: 'EBADF' });
  });

  test('closing the container fd leaves attached groups and their mappings in place (groups hold the container)', () => {
    let container: number, group: number, device: number;
    ({ kernel, container, group, device } = openDevice());
    const buf = kernel.allocDma(4096);
    mapDma(kernel, container, { vaddr: kernel.addressOf(buf), iova: 0n, size: 4096n });
    kernel.close(container);
    expect(kernel.dmaMappings()).toHaveLength(1);
    kernel.close(device);
    kernel.close(group);
    // The last group leaving tears the IOMMU down.
    expect(kernel.dmaMappings()).toEqual([]);
  });
});
