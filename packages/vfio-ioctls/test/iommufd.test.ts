/**
 * The iommufd backend of the safe API against the fake kernel's /dev/iommu
 * and device cdevs (the real kernel: test/guest/iommufd.test.ts).
 */
import { Device, DmaBuffer, Ioas, Iommufd } from '../src';
import { EDU, expectNothingLeft, kernel } from './helpers';

function cdevKernel() {
  const k = kernel(undefined, { deviceCdevs: true });
  return { ...k, env: { ...k.env, iommufdPath: k.fake.iommuPath } };
}

describe('iommufd through the safe API', () => {
  test("'auto' picks the cdev and an IOAS; closing the device closes the shared IOAS and iommufd", () => {
    const { fake, env } = cdevKernel();
    const device = Device.open(EDU, env);
    expect(device.iommu?.kind).toBe('iommufd');
    expect(device.group).toBeUndefined();
    const ioas = device.iommu as Ioas;
    expect(ioas.iovaRanges().length).toBeGreaterThan(0);
    const buffer = DmaBuffer.alloc(4096, env);
    const mapping = ioas.map(buffer, { iova: 0x10_0000n });
    expect(fake.ioasMappings(ioas.iommufd.fd, ioas.id)).toEqual([
      { iova: 0x10_0000n, length: 4096n, read: true, write: true, pinned: true },
    ]);
    expect(() => buffer.close()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BUFFER_MAPPED' }));
    device.close();
    expect(mapping.mapped).toBe(false);
    expect(ioas.closed).toBe(true);
    expect(ioas.iommufd.closed).toBe(true);
    buffer.close();
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });

  test("'container' and the cdev exclude each other, as in the kernel", () => {
    const { env } = cdevKernel();
    const device = Device.open(EDU, { ...env, iommu: 'iommufd' });
    expect(() => Device.open(EDU, { ...env, iommu: 'container' })).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    device.close();
    const viaGroup = Device.open(EDU, { ...env, iommu: 'container' });
    expect(viaGroup.iommu?.kind).toBe('container');
    viaGroup.close();
  });

  test('unmapRange takes whole mappings and refuses to cut one, before the kernel', () => {
    const { fake, env } = cdevKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const device = Device.open(EDU, { ...env, ioas });
    const buffer = DmaBuffer.alloc(8192, env);
    const mapping = ioas.map(buffer, { iova: 0x20_0000n });
    const calls = fake.calls.length;
    expect(() => ioas.unmapRange(0x20_0000n, 4096n)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_DMA_PARTIAL' }));
    expect(fake.calls.length).toBe(calls);
    expect(ioas.unmapRange(0x20_0000n, 0x10_0000n)).toEqual([mapping]);
    expect(fake.ioasMappings(iommufd.fd, ioas.id)).toEqual([]);
    iommufd.close();
    expect(device.closed).toBe(true);
    buffer.close();
    expectNothingLeft(fake);
  });

  test('bad options are refused before any syscall', () => {
    const { fake, env } = cdevKernel();
    const calls = fake.calls.length;
    expect(() => Device.open(EDU, { ...env, iommu: 'fd' as never })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => Device.open(EDU, { ...env, vfToken: 'x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => Device.open(EDU, { ...env, ioass: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(fake.calls.length).toBe(calls);
  });
});
