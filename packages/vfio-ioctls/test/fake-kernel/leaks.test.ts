import { VFIO_GROUP_GET_DEVICE_FD } from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, GROUP, mapDma, nameArg, openDevice, thrown } from './helpers';

describe('leak accounting', () => {
  test('openFds lists every open fd and drops closed ones; fds are reused lowest-first like Linux', () => {
    const { kernel, container, group, device } = openDevice();
    const efd = kernel.eventfd(0, 0);
    expect(kernel.openFds()).toEqual([container, group, device, efd].sort((a, b) => a - b));
    kernel.close(group);
    expect(kernel.openFds()).not.toContain(group);
    expect(kernel.eventfd(0, 0)).toBe(group);
    expect(thrown(() => kernel.close(99))).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expect(thrown(() => kernel.close(-1))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    kernel.dispose();
  });

  test('liveMmaps and liveDmaBuffers count until munmap and freeDma', () => {
    const { kernel, device } = openDevice();
    const bar = kernel.mmap(device, 4096, 3, 0n);
    const dma = kernel.allocDma(100);
    expect([kernel.liveMmaps(), kernel.liveDmaBuffers()]).toEqual([1, 1]);
    kernel.munmap(bar);
    kernel.freeDma(dma);
    expect([kernel.liveMmaps(), kernel.liveDmaBuffers()]).toEqual([0, 0]);
    expect(dma.byteLength).toBe(0);
    expect(thrown(() => kernel.freeDma(dma))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(thrown(() => kernel.freeDma(kernel.mmap(device, 4096, 3, 0n)))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    kernel.dispose();
  });

  test('allocDma: zeroed whole pages, page-aligned stable unique addresses; size must be positive', () => {
    const kernel = new FakeKernel();
    const a = kernel.allocDma(5000);
    const b = kernel.allocDma(1);
    expect([a.byteLength, b.byteLength]).toEqual([8192, 4096]);
    expect(new Uint8Array(a).every((x) => x === 0)).toBe(true);
    const [pa, pb] = [kernel.addressOf(a), kernel.addressOf(b)];
    expect(pa % 4096n).toBe(0n);
    expect(pb % 4096n).toBe(0n);
    expect(pb).toBeGreaterThanOrEqual(pa + 8192n);
    expect(kernel.addressOf(a)).toBe(pa);
    kernel.freeDma(a);
    expect(thrown(() => kernel.addressOf(a))).toMatchObject({ name: 'TypeError' });
    expect(kernel.addressOf(kernel.allocDma(4096))).not.toBe(pa);
    expect(thrown(() => kernel.allocDma(0))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(thrown(() => kernel.allocDma(-1))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => kernel.addressOf(new ArrayBuffer(8)))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(kernel.pageSize()).toBe(4096);
    kernel.dispose();
  });

  test('dmaMappings per container or across all live containers; a non-container fd is a RangeError', () => {
    const { kernel, container, device } = openDevice();
    const at = kernel.addressOf(kernel.allocDma(4096));
    mapDma(kernel, container, { vaddr: at, iova: 0x2000n, size: 4096n });
    expect(kernel.dmaMappings(container)).toHaveLength(1);
    expect(kernel.dmaMappings()).toHaveLength(1);
    expect(thrown(() => kernel.dmaMappings(device))).toMatchObject({ name: 'RangeError' });
    kernel.dispose();
  });

  test('a live mmap keeps the device file open after its fd is closed, as a vma does', () => {
    const { kernel, group, device } = openDevice();
    const bar = kernel.mmap(device, 4096, 3, 0n);
    kernel.close(device);
    const dev = kernel.device(EDU)!;
    expect(dev.isOpen).toBe(true);
    kernel.close(group);
    // The group file is still held, so it cannot be opened again yet.
    expect(thrown(() => kernel.open(`/dev/vfio/${GROUP}`, 2))).toMatchObject({ code: 'EBUSY' });
    kernel.munmap(bar);
    expect(dev.isOpen).toBe(false);
    expect(kernel.open(`/dev/vfio/${GROUP}`, 2)).toBeGreaterThan(0);
    kernel.dispose();
  });

  test('a clean shutdown in kernel order leaves nothing behind', () => {
    const { kernel, container, group, device } = openDevice();
    const buf = kernel.allocDma(4096);
    mapDma(kernel, container, { vaddr: kernel.addressOf(buf), iova: 0n, size: 4096n });
    const again = kernel.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    for (const fd of [again, device, group, container]) kernel.close(fd);
    kernel.freeDma(buf);
    expect([kernel.openFds(), kernel.liveMmaps(), kernel.liveDmaBuffers(), kernel.dmaMappings()]).toEqual([[], 0, 0, []]);
    kernel.dispose();
  });
});
