/**
 * The iommufd backend of the safe API against the fake kernel's /dev/iommu
 * and device cdevs (the real kernel: test/guest/iommufd.test.ts).
 */
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Ioas, Iommufd, VfioError } from '../src';
import { EDU, expectNothingLeft, kernel, tick } from './helpers';

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

describe('memfd-backed DmaBuffers and Ioas.mapFile', () => {
  /** A device attached to a fresh IOAS of its own iommufd. */
  function attached() {
    const { fake, env } = cdevKernel();
    const iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    const device = Device.open(EDU, { ...env, ioas });
    return { fake, env, iommufd, ioas, device, edu: fake.device(EDU)! };
  }

  function memfdFds(fake: ReturnType<typeof cdevKernel>['fake']): number[] {
    return fake.openFds().filter((fd) => { try { fake.memfdBytes(fd); return true; } catch { return false; } });
  }

  test('alloc({ memfd: true }) maps a memfd of the rounded size shared; close() unmaps it and closes the fd', () => {
    const { fake, env } = cdevKernel();
    const buffer = DmaBuffer.alloc(5000, { ...env, memfd: true });
    expect(buffer.size).toBe(8192);
    const [fd] = memfdFds(fake);
    expect(fake.memfdBytes(fd).length).toBe(8192);
    expect(fake.calls.slice(-2)).toEqual([{ syscall: 'memfd' }, { syscall: 'mmap', fd }]);
    buffer.view.setUint32(4096, 0xdeadbeef, true);
    expect(fake.memfdBytes(fd).subarray(4096, 4100)).toEqual(Uint8Array.of(0xef, 0xbe, 0xad, 0xde));
    expect(fake.liveMmaps()).toBe(1);
    expect(fake.liveDmaBuffers()).toBe(0);
    buffer.close();
    expect(buffer.closed).toBe(true);
    expect(() => buffer.bytes).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    buffer.close();
    expect(fake.calls.slice(-2)).toEqual([{ syscall: 'munmap' }, { syscall: 'close', fd }]);
    expectNothingLeft(fake);
    // memfd: false is the anonymous memory of before.
    DmaBuffer.alloc(4096, { ...env, memfd: false }).close();
    expect(fake.calls.slice(-2)).toEqual([{ syscall: 'allocDma' }, { syscall: 'freeDma' }]);
  });

  test('mapFile maps by fd with FIXED_IOVA at the IOVA the library picks; the device DMAs into the buffer; it unmaps like any mapping', () => {
    const { fake, iommufd, ioas, device, edu, env } = attached();
    const buffer = DmaBuffer.alloc(8192, { ...env, memfd: true });
    const [memfd] = memfdFds(fake);
    const before = fake.calls.length;
    const mapping = ioas.mapFile(buffer, { maxIova: 2n ** 28n - 1n });
    const ioctl = fake.calls.slice(before).find((c) => c.syscall === 'ioctl' && c.request === b.IOMMU_IOAS_MAP_FILE);
    expect(ioctl).toBeDefined();
    expect(fake.calls.slice(before).some((c) => c.request === b.IOMMU_IOAS_MAP)).toBe(false);
    expect(mapping.iova).toBeGreaterThan(0n);
    expect(mapping.size).toBe(8192n);
    expect(fake.ioasMappings(iommufd.fd, ioas.id)).toEqual([{ iova: mapping.iova, length: 8192n, read: true, write: true, pinned: true }]);
    edu.dmaWrite(mapping.iova + 4096n, Uint8Array.of(1, 2, 3));
    expect([...buffer.bytes.subarray(4096, 4099)]).toEqual([1, 2, 3]);
    buffer.bytes.set([9, 8], 10);
    expect([...edu.dmaRead(mapping.iova + 10n, 2)]).toEqual([9, 8]);
    expect(fake.memfdBytes(memfd)[4096]).toBe(1);
    expect(buffer.mapped).toBe(true);
    expect(() => buffer.close()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BUFFER_MAPPED' }));
    // A fixed IOVA and read-only, as map() takes them.
    const fixed = ioas.mapFile(buffer, { iova: 0x100_0000n, write: false });
    expect(fixed.iova).toBe(0x100_0000n);
    expect(() => edu.dmaWrite(0x100_0000n, Uint8Array.of(1))).toThrow(/IOMMU fault/);
    expect(ioas.mappings()).toEqual([mapping, fixed]);
    mapping.unmap();
    expect(ioas.unmapRange(0x100_0000n, 8192n)).toEqual([fixed]);
    expect(fake.ioasMappings(iommufd.fd, ioas.id)).toEqual([]);
    expect(buffer.mapped).toBe(false);
    buffer.close();
    device.close();
    iommufd.close();
    expectNothingLeft(fake);
  });

  test('a memfd-backed buffer still maps by address: Ioas.map and Container.map', () => {
    const { fake, iommufd, ioas, device, edu, env } = attached();
    const buffer = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const byAddress = ioas.map(buffer);
    edu.dmaWrite(byAddress.iova, Uint8Array.of(0x5a));
    expect(buffer.bytes[0]).toBe(0x5a);
    byAddress.unmap();
    device.close();
    iommufd.close();
    buffer.close();
    expectNothingLeft(fake);

    const legacy = kernel();
    const viaGroup = Device.open(EDU, legacy.env);
    const container = viaGroup.iommu as Container;
    const shared = DmaBuffer.alloc(4096, { ...legacy.env, memfd: true });
    const mapping = container.map(shared);
    legacy.devices[0].dmaWrite(mapping.iova + 8n, Uint8Array.of(0xa5));
    expect(shared.bytes[8]).toBe(0xa5);
    viaGroup.close();
    shared.close();
    expectNothingLeft(legacy.fake);
  });

  test('bad input is refused before the kernel: no memfd, not a buffer, closed, bad options', () => {
    const { fake, ioas, env } = attached();
    const anonymous = DmaBuffer.alloc(4096, env);
    const shared = DmaBuffer.alloc(4096, { ...env, memfd: true });
    ioas.iovaRanges(); // the geometry is asked once; the IOVA checks use it
    const calls = fake.calls.length;
    const noMemfd = (() => { try { ioas.mapFile(anonymous); } catch (error) { return error as Error; } })();
    expect(noMemfd).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(noMemfd?.message).toMatch(/^buffer .*memfd: true/);
    expect(() => ioas.mapFile({} as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => ioas.mapFile(shared, { read: false, write: false })).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => ioas.mapFile(shared, { iova: 0x1000_0100n })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => ioas.mapFile(shared, { fd: 3 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(fake.calls.length).toBe(calls);
    anonymous.close();
    shared.close();
    expect(() => ioas.mapFile(shared)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    // alloc's options: checked before any syscall too.
    expect(() => DmaBuffer.alloc(4096, { ...env, memfd: 'yes' as never })).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => DmaBuffer.alloc(4096, { ...env, memFd: true } as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('did you mean memfd') }));
    expect(() => DmaBuffer.alloc(0, { ...env, memfd: true })).toThrow(expect.objectContaining({ name: 'RangeError' }));
    // Only the two closes reached the kernel.
    expect(fake.calls.slice(calls).map((c) => c.syscall)).toEqual(['freeDma', 'munmap', 'close']);
  });

  test('a kernel without IOMMU_IOAS_MAP_FILE (before 6.13: ENOTTY) is a VfioError saying so; nothing stays pinned', () => {
    const { fake, iommufd, ioas, env } = attached();
    const buffer = DmaBuffer.alloc(4096, { ...env, memfd: true });
    for (const errno of ['ENOTTY', 'EOPNOTSUPP'] as const) {
      fake.failNext({ syscall: 'ioctl', request: b.IOMMU_IOAS_MAP_FILE, errno });
      const error = (() => { try { ioas.mapFile(buffer); } catch (e) { return e as VfioError; } })();
      expect(error).toBeInstanceOf(VfioError);
      expect(error).toMatchObject({ code: errno === 'ENOTTY' ? 'ENOTTY' : 'ENOTSUP', syscall: 'ioctl', operation: 'IOMMU_IOAS_MAP_FILE', path: iommufd.path });
      expect(error?.hint).toMatch(/Linux >= 6\.13/);
    }
    // Other refusals keep their own errors, without that hint.
    fake.failNext({ syscall: 'ioctl', request: b.IOMMU_IOAS_MAP_FILE, errno: 'ENOMEM' });
    expect(() => ioas.mapFile(buffer)).toThrow(expect.objectContaining({ code: 'ENOMEM', hint: undefined }));
    expect(buffer.mapped).toBe(false);
    expect(ioas.mappings()).toEqual([]);
    buffer.close();
  });

  test('failures while allocating or closing leave no fd and no mapping behind', () => {
    const { fake, env } = kernel();
    fake.failNext({ syscall: 'memfd', errno: 'EMFILE' });
    expect(() => DmaBuffer.alloc(4096, { ...env, memfd: true })).toThrow(expect.objectContaining({ code: 'EMFILE', syscall: 'memfd_create' }));
    fake.failNext({ syscall: 'mmap', errno: 'ENOMEM' });
    expect(() => DmaBuffer.alloc(4096, { ...env, memfd: true })).toThrow(expect.objectContaining({ code: 'ENOMEM', syscall: 'mmap' }));
    expectNothingLeft(fake);
    // munmap fails: the buffer stays open and can be closed again.
    const buffer = DmaBuffer.alloc(4096, { ...env, memfd: true });
    fake.failNext({ syscall: 'munmap', errno: 'EINVAL' });
    expect(() => buffer.close()).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(buffer.closed).toBe(false);
    buffer.bytes[0] = 1;
    // close(2) fails: the memory is already gone, the buffer is closed and the fd released (as Linux does).
    fake.failNext({ syscall: 'close', errno: 'EIO' });
    expect(() => buffer.close()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'close' }));
    expect(buffer.closed).toBe(true);
    expectNothingLeft(fake);
  });
});
