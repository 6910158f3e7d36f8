/**
 * no-IOMMU mode through a device cdev (noiommu-vfioN) and iommufd, Linux
 * 7.3's IOMMUFD_NOIOMMU, against the fake kernel (the real one:
 * test/guest/noiommu-cdev.test.ts): Device.open with iommu 'noiommu' binds
 * the cdev to an IOAS, map() pins, and the IOAS answers the physical
 * addresses of its mappings (IOMMU_IOAS_NOIOMMU_GET_PA).
 */
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, Ioas, Iommufd, NoIommu, physicalSegments, VfioError } from '../src';
import { EDU, expectNothingLeft, kernel, thrown } from './helpers';

const PAGE = 4096;

function noiommuKernel(options: { deviceCdevs?: boolean } = {}) {
  const k = kernel(undefined, { noiommu: true, deviceCdevs: options.deviceCdevs ?? true });
  return { ...k, env: { ...k.env, iommufdPath: k.fake.iommuPath } };
}


const getPaCalls = (fake: ReturnType<typeof kernel>['fake']) =>
  fake.calls.filter((c) => c.syscall === 'ioctl' && c.request! >>> 0 === b.IOMMU_IOAS_NOIOMMU_GET_PA >>> 0).length;

describe("iommu: 'noiommu' through the cdev and iommufd", () => {
  test('opens the noiommu-vfioN cdev bound to an IOAS: the device has no group, its iommu is the Ioas', () => {
    const { fake, env } = noiommuKernel();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    expect(device.iommu).toBeInstanceOf(Ioas);
    expect(device.iommu?.kind).toBe('iommufd');
    expect(device.group).toBeUndefined();
    expect(fake.calls.find((c) => c.syscall === 'open' && c.path?.includes('/devices/'))?.path).toMatch(/\/devices\/noiommu-vfio\d+$/);
    expect(fake.iommufdObjects().map((o) => o.type).sort()).toEqual(['device', 'hwpt_paging', 'ioas']);
    device.close();
    expectNothingLeft(fake);
    expect(fake.iommufdObjects()).toEqual([]);
  });

  test('physicalSegments of a mapping: the pinned pages in runs, no mlock and no pagemap, the same frames pagemap shows', () => {
    const { fake, env } = noiommuKernel();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    const ioas = device.iommu as Ioas;
    const buffer = DmaBuffer.alloc(10 * PAGE, env);
    const mapping = ioas.map(buffer);
    const segments = ioas.physicalSegments(mapping);
    // The fake hands out frames in runs of 4 pages with a gap after each: 10 pages are 4 + 4 + 2.
    expect(segments.map((s) => [s.offset, s.size])).toEqual([[0, 4 * PAGE], [4 * PAGE, 4 * PAGE], [8 * PAGE, 2 * PAGE]]);
    expect(segments[1].physical).not.toBe(segments[0].physical + BigInt(4 * PAGE));
    expect(getPaCalls(fake)).toBe(3);
    expect(fake.calls.some((c) => c.syscall === 'mlock' || c.path === '/proc/self/pagemap')).toBe(false);
    expect(fake.physicalMemory.lockedBytes).toBe(0n);
    // Pinned pages keep their frames: pagemap (which locks on its own) reads the same ones.
    expect(physicalSegments(buffer)).toEqual(segments);
    device.close();
    buffer.close();
    expectNothingLeft(fake);
  });

  test('physicalAddress is the run plus the offset, within a page too', () => {
    const { env } = noiommuKernel();
    using device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    const ioas = device.iommu as Ioas;
    using buffer = DmaBuffer.alloc(6 * PAGE, env);
    const mapping = ioas.map(buffer);
    const segments = ioas.physicalSegments(mapping);
    for (const offset of [0, 1, PAGE - 1, PAGE, 4 * PAGE + 123, 6 * PAGE - 1]) {
      const segment = segments.find((s) => offset >= s.offset && offset < s.offset + s.size)!;
      expect(ioas.physicalAddress(mapping, offset)).toBe(segment.physical + BigInt(offset - segment.offset));
    }
    expect(ioas.physicalAddress(mapping)).toBe(segments[0].physical);
    mapping.unmap();
  });

  test('a device reaches the buffer at its physical address while mapped, and no longer once unmapped', () => {
    const { fake, env } = noiommuKernel();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    const ioas = device.iommu as Ioas;
    const buffer = DmaBuffer.alloc(2 * PAGE, env);
    const mapping = ioas.map(buffer);
    buffer.bytes.set([1, 2, 3], PAGE + 10);
    const at = ioas.physicalAddress(mapping, PAGE + 10);
    expect([...fake.physicalMemory.view(at, 3)]).toEqual([1, 2, 3]);
    fake.physicalMemory.view(at, 3).fill(7);
    expect([...buffer.bytes.subarray(PAGE + 10, PAGE + 13)]).toEqual([7, 7, 7]);
    mapping.unmap();
    expect(() => fake.physicalMemory.view(at, 3)).toThrow(/not locked or pinned/);
    device.close();
    buffer.close();
    expectNothingLeft(fake);
  });

  test("an IOAS given with iommu 'noiommu' is the one the device attaches to", () => {
    const { fake, env } = noiommuKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu', ioas });
    expect(device.iommu).toBe(ioas);
    device.close();
    iommufd.close();
    expectNothingLeft(fake);
  });

  test("iommu 'iommufd' refuses a no-IOMMU cdev and names the choice that opens it; nothing is left open", () => {
    const { fake, env } = noiommuKernel();
    const error = thrown(() => Device.open(EDU, { ...env, iommu: 'iommufd' }));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ERR_VFIO_IOMMU_UNAVAILABLE', device: EDU });
    expect(error.message).toMatch(/no-IOMMU mode \(noiommu-vfio\d+\)/);
    expect(error.hint).toMatch(/iommu: 'noiommu'/);
    expectNothingLeft(fake);
  });

  test('without CAP_SYS_RAWIO the cdev open is EPERM with a hint, and the IOAS opened for it is closed again', () => {
    const { fake, env } = noiommuKernel();
    fake.physicalMemory.capSysRawio = false;
    const error = thrown(() => Device.open(EDU, { ...env, iommu: 'noiommu' }));
    expect(error).toMatchObject({ code: 'EPERM', syscall: 'open' });
    expect(error.hint).toMatch(/CAP_SYS_RAWIO/);
    expectNothingLeft(fake);
    expect(fake.iommufdObjects()).toEqual([]);
  });

  test('physical addresses without CAP_SYS_RAWIO, or of an IOAS with no no-IOMMU device, are refused with the reason', () => {
    const { fake, env } = noiommuKernel();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    const ioas = device.iommu as Ioas;
    const buffer = DmaBuffer.alloc(PAGE, env);
    const mapping = ioas.map(buffer);
    fake.physicalMemory.capSysRawio = false;
    expect(thrown(() => ioas.physicalSegments(mapping))).toMatchObject({ code: 'EPERM', operation: 'IOMMU_IOAS_NOIOMMU_GET_PA', hint: expect.stringMatching(/CAP_SYS_RAWIO/) });
    fake.physicalMemory.capSysRawio = true;
    // A second IOAS of the same iommufd has no device attached, so no no-IOMMU domain stores its pages.
    const other = ioas.iommufd.allocIoas();
    const unattached = other.map(buffer);
    const error = thrown(() => other.physicalAddress(unattached));
    expect(error).toMatchObject({ code: 'ENOTSUP', operation: 'IOMMU_IOAS_NOIOMMU_GET_PA' });
    expect(error.hint).toMatch(/no-IOMMU device attached/);
    other.close();
    device.close();
    buffer.close();
    expectNothingLeft(fake);
  });

  test('arguments are checked before any GET_PA: a mapping of another IOAS, an unmapped one, bad offsets, a closed IOAS', () => {
    const { fake, env } = noiommuKernel();
    const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
    const ioas = device.iommu as Ioas;
    const buffer = DmaBuffer.alloc(2 * PAGE, env);
    const mapping = ioas.map(buffer);
    const other = ioas.iommufd.allocIoas();
    const elsewhere = other.map(DmaBuffer.alloc(PAGE, env));
    const before = getPaCalls(fake);
    for (const bad of [undefined, {}, elsewhere]) {
      for (const call of [() => ioas.physicalSegments(bad as never), () => ioas.physicalAddress(bad as never, 0)]) {
        const error = thrown(call);
        expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        expect(error.message).toContain('mapping');
      }
    }
    for (const offset of [-1, 2 * PAGE, 1.5]) {
      const error = thrown(() => ioas.physicalAddress(mapping, offset));
      expect(error.code).toMatch(/ERR_OUT_OF_RANGE|ERR_INVALID_ARG_TYPE/);
      expect(error.message).toContain('offset');
    }
    mapping.unmap();
    expect(thrown(() => ioas.physicalSegments(mapping))).toMatchObject({ name: 'TypeError' });
    expect(getPaCalls(fake)).toBe(before);
    elsewhere.unmap();
    elsewhere.buffer.close();
    other.close();
    device.close();
    expect(thrown(() => ioas.physicalSegments(mapping))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    buffer.close();
    expectNothingLeft(fake);
  });

  test('a no-IOMMU kernel without cdevs (or without iommufd) still opens through the noiommu group', () => {
    const withCdevs = noiommuKernel();
    for (const env of [noiommuKernel({ deviceCdevs: false }).env, { ...withCdevs.env, iommufdPath: `${withCdevs.env.devRoot}/no-iommu-node` }]) {
      const device = Device.open(EDU, { ...env, iommu: 'noiommu' });
      expect(device.iommu).toBeInstanceOf(NoIommu);
      expect(device.group?.noiommu).toBe(true);
      device.close();
    }
  });
});
