import {
  vfio_group_status, vfio_iommu_type1_info,
  VFIO_GROUP_FLAGS_CONTAINER_SET, VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_DEVICE_FD, VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER, VFIO_GROUP_UNSET_CONTAINER, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU, VFIO_IOMMU_GET_INFO,
} from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, fdArg, GROUP, nameArg, openDevice, thrown } from './helpers';

function status(kernel: FakeKernel, group: number): number {
  const arg = vfio_group_status.encode({ argsz: vfio_group_status.size });
  kernel.ioctl(group, VFIO_GROUP_GET_STATUS, arg);
  return vfio_group_status.decode(arg).flags;
}

describe('group files and ioctls', () => {
  let kernel: FakeKernel;
  beforeEach(() => {
    kernel = new FakeKernel();
    kernel.addDevice({ address: EDU, group: GROUP });
  });
  afterEach(() => kernel.dispose());

  test('open: unknown group or path is ENOENT; a group open twice is EBUSY', () => {
    expect(thrown(() => kernel.open('/dev/vfio/13', 2))).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect(thrown(() => kernel.open('/dev/vfio/x12', 2))).toMatchObject({ code: 'ENOENT' });
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(thrown(() => kernel.open(`/dev/vfio/${GROUP}`, 2))).toMatchObject({ code: 'EBUSY' });
    kernel.close(g);
    expect(kernel.open(`/dev/vfio/${GROUP}`, 2)).toBe(g);
  });

  test('devRoot moves the nodes', () => {
    const k = new FakeKernel({ devRoot: '/tmp/fake-vfio/' });
    k.addDevice({ address: EDU, group: 3 });
    expect(k.devRoot).toBe('/tmp/fake-vfio');
    expect(k.open('/tmp/fake-vfio/3', 2)).toBeGreaterThanOrEqual(3);
    expect(thrown(() => k.open('/dev/vfio/vfio', 2))).toMatchObject({ code: 'ENOENT' });
    k.dispose();
  });

  test('GET_STATUS: VIABLE when every device is on vfio-pci, CONTAINER_SET once attached; argsz below 8 is EINVAL', () => {
    const c = kernel.open('/dev/vfio/vfio', 2);
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(status(kernel, g)).toBe(VFIO_GROUP_FLAGS_VIABLE);
    kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c));
    expect(status(kernel, g)).toBe(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_GET_STATUS, vfio_group_status.encode({ argsz: 4 })))).toMatchObject({ code: 'EINVAL' });
  });

  test('a device on a kernel driver makes the group not viable and SET_CONTAINER EPERM', () => {
    kernel.addDevice({ address: '0000:00:04.0', group: 20 });
    kernel.addDevice({ address: '0000:00:04.1', group: 20, driver: 'e1000e' });
    const c = kernel.open('/dev/vfio/vfio', 2);
    const g = kernel.open('/dev/vfio/20', 2);
    expect(status(kernel, g)).toBe(0);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c)))).toMatchObject({ code: 'EPERM' });
    kernel.bindDriver('0000:00:04.1', 'pci-stub');
    expect(status(kernel, g)).toBe(VFIO_GROUP_FLAGS_VIABLE);
    expect(kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c))).toBe(0);
  });

  test('SET_CONTAINER: EINVAL when already set, EBADF for no fd, EBADFD for a non-container fd', () => {
    const c = kernel.open('/dev/vfio/vfio', 2);
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(77)))).toMatchObject({ code: 'EBADF' });
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(g)))).toMatchObject({ errno: -77 }); // EBADFD, which libuv has no name for
    kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c));
    const other = kernel.open('/dev/vfio/vfio', 2);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(other)))).toMatchObject({ code: 'EINVAL' });
  });

  test('UNSET_CONTAINER: EINVAL when not set, EBUSY while a device is open, then detaches', () => {
    const c = kernel.open('/dev/vfio/vfio', 2);
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_UNSET_CONTAINER))).toMatchObject({ code: 'EINVAL' });
    kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c));
    kernel.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    const d = kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_UNSET_CONTAINER))).toMatchObject({ code: 'EBUSY' });
    kernel.close(d);
    expect(kernel.ioctl(g, VFIO_GROUP_UNSET_CONTAINER)).toBe(0);
    expect(status(kernel, g)).toBe(VFIO_GROUP_FLAGS_VIABLE);
    // The last group left: the IOMMU is gone, back to the initial state.
    expect(thrown(() => kernel.ioctl(c, VFIO_IOMMU_GET_INFO, new Uint8Array(64)))).toMatchObject({ code: 'EINVAL' });
  });

  test('GET_DEVICE_FD: EINVAL before the container has an IOMMU, ENODEV for an unknown name, EFAULT without a NUL', () => {
    const c = kernel.open('/dev/vfio/vfio', 2);
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU)))).toMatchObject({ code: 'EINVAL' });
    kernel.ioctl(g, VFIO_GROUP_SET_CONTAINER, fdArg(c));
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU)))).toMatchObject({ code: 'EINVAL' });
    kernel.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg('0000:00:09.0')))).toMatchObject({ code: 'ENODEV' });
    expect(thrown(() => kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, new Uint8Array(Buffer.from(EDU))))).toMatchObject({ code: 'EFAULT' });
    const d = kernel.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    expect(kernel.device(EDU)!.isOpen).toBe(true);
    kernel.close(d);
    expect(kernel.device(EDU)!.isOpen).toBe(false);
  });

  test('a device may be opened twice through its group, as Linux allows on the group path', () => {
    const { kernel: k, group, device } = openDevice();
    const again = k.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    expect(again).not.toBe(device);
    k.close(device);
    expect(k.device(EDU)!.isOpen).toBe(true);
    k.close(again);
    expect(k.device(EDU)!.isOpen).toBe(false);
    k.dispose();
  });

  test('closing the group fd with a device open keeps the group attached until the device closes', () => {
    const { kernel: k, container, group, device } = openDevice();
    k.close(group);
    expect(thrown(() => k.open(`/dev/vfio/${GROUP}`, 2))).toMatchObject({ code: 'EBUSY' });
    // The container still has its IOMMU: the group is still attached.
    expect(k.ioctl(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info.encode({ argsz: vfio_iommu_type1_info.size }))).toBe(0);
    k.close(device);
    const g = k.open(`/dev/vfio/${GROUP}`, 2);
    expect(status(k, g)).toBe(VFIO_GROUP_FLAGS_VIABLE);
    expect(thrown(() => k.ioctl(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info.encode({ argsz: 24 })))).toMatchObject({ code: 'EINVAL' });
    k.dispose();
  });

  test('an unknown group ioctl is ENOTTY', () => {
    const g = kernel.open(`/dev/vfio/${GROUP}`, 2);
    expect(thrown(() => kernel.ioctl(g, VFIO_SET_IOMMU, 1))).toMatchObject({ code: 'ENOTTY' });
  });
});
