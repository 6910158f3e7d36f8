/**
 * Device.fromFd with an IOAS: the cdev fd is bound to the IOAS's iommufd and
 * attached before the device is adopted, as rust-vmm's new_from_fd does.
 */
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, Iommufd } from '../src';
import { EDU, expectNothingLeft, kernel } from './helpers';

function cdevKernel() {
  const k = kernel(undefined, { deviceCdevs: true });
  return { ...k, env: { ...k.env, iommufdPath: k.fake.iommuPath } };
}

describe('Device.fromFd of a cdev fd', () => {
  test('with an IOAS: bound, attached, DMA-capable, and closed before the IOAS is destroyed', () => {
    const { fake, env } = cdevKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const fd = fake.open(fake.cdevPath(EDU)!, 2);
    const device = Device.fromFd(fd, { ...env, name: EDU, iommu: ioas });
    expect(device.iommu).toBe(ioas);
    expect(device.info.pci).toBe(true);
    expect(fake.iommufdObjects().map((o) => o.type).sort()).toEqual(['device', 'hwpt_paging', 'ioas']);
    const buffer = DmaBuffer.alloc(4096, env);
    ioas.map(buffer);
    iommufd.close();
    expect(device.closed).toBe(true);
    buffer.close();
    expectNothingLeft(fake);
  });

  test('a bind the kernel refuses closes the fd and names the operation', () => {
    const { fake, env } = cdevKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const fd = fake.open(fake.cdevPath(EDU)!, 2);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_BIND_IOMMUFD, errno: 'EPERM' });
    expect(() => Device.fromFd(fd, { ...env, name: EDU, iommu: ioas })).toThrow(expect.objectContaining({ code: 'EPERM', operation: 'VFIO_DEVICE_BIND_IOMMUFD' }));
    iommufd.close();
    expectNothingLeft(fake);
  });
});

describe('Iommufd.hwInfo', () => {
  test("the IOMMU behind an attached device (the fake answers as Intel VT-d); a device not attached here is a TypeError", () => {
    const { fake, env } = cdevKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const device = Device.open(EDU, { ...env, ioas });
    const info = iommufd.hwInfo(device);
    expect(info.type).toBe('intel-vtd');
    expect(info.vtd).toBeDefined();
    expect(info.data.length).toBeGreaterThanOrEqual(24);
    const other = Iommufd.open(env);
    expect(() => other.hwInfo(device)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    other.close();
    iommufd.close();
    expectNothingLeft(fake);
  });
});
