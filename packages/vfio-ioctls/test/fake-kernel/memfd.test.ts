/** The fake kernel's memfd (Backend.memfd) and mmap of it, as test/native/memfd.test.ts shows the addon's. */
import * as b from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, thrown } from './helpers';
import { ioasMap, openCdev } from './iommufd-helpers';

const PAGE = 4096;
const RW = 3;

describe('memfd in the fake kernel', () => {
  test('an fd of a file of the size asked; refusals shaped like the addon\'s, before the syscall', () => {
    const kernel = new FakeKernel();
    const fd = kernel.memfd('guest-ram', 3 * PAGE);
    expect(kernel.memfdBytes(fd).length).toBe(3 * PAGE);
    expect(kernel.calls.at(-1)).toEqual({ syscall: 'memfd' });
    kernel.close(kernel.memfd('', 0));
    const calls = kernel.calls.length;
    for (const size of [-1, 1.5, NaN, 2 ** 53]) expect(thrown(() => kernel.memfd('x', size))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    for (const size of ['1', 1n, undefined]) expect(thrown(() => kernel.memfd('x', size as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(thrown(() => kernel.memfd(1 as never, PAGE))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(thrown(() => kernel.memfd('a\0b', PAGE))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(kernel.calls.length).toBe(calls);
    expect(thrown(() => kernel.memfd('n'.repeat(250), PAGE))).toMatchObject({ name: 'VfioError', code: 'EINVAL', syscall: 'memfd_create' });
    kernel.failNext({ syscall: 'memfd', errno: 'EMFILE' });
    expect(thrown(() => kernel.memfd('x', PAGE))).toMatchObject({ code: 'EMFILE', syscall: 'memfd_create' });
    expect(kernel.openFds()).toEqual([fd]);
    kernel.close(fd);
    kernel.dispose();
  });

  test('mmap of the whole file is its memory; a partial mapping copies in and writes back at munmap', () => {
    const kernel = new FakeKernel();
    const fd = kernel.memfd('m', 2 * PAGE);
    const whole = kernel.mmap(fd, 2 * PAGE, RW, 0n);
    new Uint8Array(whole)[PAGE + 1] = 7;
    expect(kernel.memfdBytes(fd)[PAGE + 1]).toBe(7);
    kernel.memfdBytes(fd)[2] = 9;
    expect(new Uint8Array(whole)[2]).toBe(9);
    expect(kernel.addressOf(whole) % BigInt(PAGE)).toBe(0n);
    const part = kernel.mmap(fd, PAGE, RW, BigInt(PAGE));
    expect(new Uint8Array(part)[1]).toBe(7);
    new Uint8Array(part)[3] = 5;
    expect(kernel.liveMmaps()).toBe(2);
    kernel.munmap(part);
    expect(part.byteLength).toBe(0);
    expect(kernel.memfdBytes(fd)[PAGE + 3]).toBe(5);
    // The contents outlive every mapping, and the fd.
    kernel.munmap(whole);
    expect(whole.byteLength).toBe(0);
    expect(kernel.liveMmaps()).toBe(0);
    const again = kernel.mmap(fd, 2 * PAGE, 1, 0n);
    kernel.close(fd);
    expect([...new Uint8Array(again, PAGE + 1, 3)]).toEqual([7, 0, 5]);
    expect(thrown(() => kernel.mmioWrite8(again, 0, 1))).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(kernel.mmioRead8(again, 2)).toBe(9);
    kernel.munmap(again);
    expect(thrown(() => kernel.munmap(again))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    kernel.dispose();
  });

  test('mmap refuses a misaligned offset, pages past the end of the file (SIGBUS in Linux) and bad prot with EINVAL', () => {
    const kernel = new FakeKernel();
    const fd = kernel.memfd('m', PAGE + 1);
    expect(thrown(() => kernel.mmap(fd, PAGE, RW, 1n))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    expect(thrown(() => kernel.mmap(fd, PAGE, RW, BigInt(2 * PAGE)))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(fd, 3 * PAGE, RW, 0n))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(fd, PAGE, 8, 0n))).toMatchObject({ code: 'EINVAL' });
    // The last page, partly past the end of the file, maps (as in Linux).
    kernel.munmap(kernel.mmap(fd, 2 * PAGE, RW, 0n));
    expect(kernel.liveMmaps()).toBe(0);
    kernel.close(fd);
    kernel.dispose();
  });

  test('a mapping of a memfd is ordinary memory: IOAS_MAP by address pins it, and the device DMAs into the file', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const fd = kernel.memfd('m', 2 * PAGE);
    const memory = kernel.mmap(fd, 2 * PAGE, RW, 0n);
    const iova = ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(memory), length: BigInt(2 * PAGE), iova: 0x40000n });
    kernel.device(EDU)!.dmaWrite(iova + 4096n, Uint8Array.of(1, 2));
    expect([...new Uint8Array(memory, PAGE, 2)]).toEqual([1, 2]);
    expect([...kernel.memfdBytes(fd).subarray(PAGE, PAGE + 2)]).toEqual([1, 2]);
    // A read-only mapping of the memfd pins too (pin_user_pages without FOLL_WRITE).
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(memory), length: BigInt(PAGE), iova: 0x80000n, flags: b.IOMMU_IOAS_MAP_READABLE })).toBe(0x80000n);
    kernel.dispose();
  });
});
