import { VFIO_GET_API_VERSION, VFIO_GROUP_GET_DEVICE_FD, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU } from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, GROUP, nameArg, openDevice, thrown } from './helpers';

describe('fault injection', () => {
  let kernel: FakeKernel;
  let device: number;
  let container: number;
  beforeEach(() => {
    ({ kernel, device, container } = openDevice());
  });
  afterEach(() => kernel.dispose());

  // Each Backend syscall with a call that would otherwise succeed, and the syscall its error names.
  const cases: [string, string, () => unknown][] = [
    ['open', 'open', () => kernel.open('/dev/vfio/vfio', 2)],
    ['close', 'close', () => kernel.close(kernel.eventfd(0, 0))],
    ['ioctl', 'ioctl', () => kernel.ioctl(container, VFIO_GET_API_VERSION)],
    ['pread', 'pread', () => kernel.pread(device, new Uint8Array(4), 7n << 40n)],
    ['pwrite', 'pwrite', () => kernel.pwrite(device, new Uint8Array(4), 7n << 40n)],
    ['mmap', 'mmap', () => kernel.mmap(device, 4096, 3, 0n)],
    ['munmap', 'munmap', () => kernel.munmap(kernel.mmap(device, 4096, 3, 0n))],
    ['eventfd', 'eventfd', () => kernel.eventfd(0, 0)],
    ['eventfdRead', 'read', () => kernel.eventfdRead(kernel.eventfd(1, 0))],
    ['eventfdWrite', 'write', () => kernel.eventfdWrite(kernel.eventfd(0, 0), 1n)],
    ['poll', 'uv_poll_init', () => kernel.poll(kernel.eventfd(0, 0), () => {}).close()],
    ['watchEventfds', 'epoll_ctl', () => kernel.watchEventfds([kernel.eventfd(0, 0)], () => {}).close()],
    ['allocDma', 'mmap', () => kernel.allocDma(4096)],
    ['freeDma', 'munmap', () => kernel.freeDma(kernel.allocDma(4096))],
  ];

  test.each(cases)('%s fails once with the planned errno, shaped like a native error', (syscall, name, call) => {
    kernel.failNext({ syscall, errno: 'EIO' });
    expect(thrown(call)).toMatchObject({ name: 'VfioError', code: 'EIO', errno: -5, syscall: name });
    expect(kernel.pendingFaults()).toBe(0);
    expect(call).not.toThrow();
  });

  test('errors have the native shape: libuv code, negative errno, syscall, "CODE: strerror, syscall"', () => {
    kernel.failNext({ syscall: 'ioctl', errno: 'EAGAIN' });
    const error = thrown(() => kernel.ioctl(container, VFIO_GET_API_VERSION));
    expect(error).toMatchObject({ name: 'VfioError', code: 'EAGAIN', errno: -11, syscall: 'ioctl' });
    expect(error.message).toBe('EAGAIN: resource temporarily unavailable, ioctl');
  });

  test('skip lets that many matching calls succeed first', () => {
    kernel.failNext({ syscall: 'eventfd', errno: 'EMFILE', skip: 2 });
    kernel.eventfd(0, 0);
    kernel.eventfd(0, 0);
    expect(thrown(() => kernel.eventfd(0, 0))).toMatchObject({ code: 'EMFILE' });
    expect(kernel.eventfd(0, 0)).toBeGreaterThan(0);
  });

  test('request narrows an ioctl fault to one request number; other ioctls do not count', () => {
    const k = new FakeKernel();
    k.addDevice({ address: EDU, group: GROUP });
    const c = k.open('/dev/vfio/vfio', 2);
    k.failNext({ syscall: 'ioctl', request: VFIO_SET_IOMMU, errno: 'ENOMEM' });
    expect(k.ioctl(c, VFIO_GET_API_VERSION)).toBe(0);
    expect(thrown(() => k.ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))).toMatchObject({ code: 'ENOMEM' });
    k.dispose();
  });

  test('path narrows a fault to calls on one file (open path, or the path an fd was opened from)', () => {
    const k = new FakeKernel();
    k.addDevice({ address: EDU, group: GROUP });
    k.failNext({ syscall: 'open', path: `/dev/vfio/${GROUP}`, errno: 'EACCES' });
    k.open('/dev/vfio/vfio', 2);
    const error = thrown(() => k.open(`/dev/vfio/${GROUP}`, 2));
    expect(error).toMatchObject({ code: 'EACCES', syscall: 'open' });
    expect(error.hint).toMatch(/permission/);
    const g = k.open(`/dev/vfio/${GROUP}`, 2);
    k.failNext({ syscall: 'ioctl', path: `/dev/vfio/${GROUP}`, errno: 'EIO' });
    expect(k.ioctl(3, VFIO_GET_API_VERSION)).toBe(0);
    expect(thrown(() => k.ioctl(g, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU)))).toMatchObject({ code: 'EIO' });
    k.dispose();
  });

  test('a failed call has no effect, except close, which frees the fd as Linux does', () => {
    const before = kernel.openFds();
    kernel.failNext({ syscall: 'open', errno: 'EIO' });
    thrown(() => kernel.open('/dev/vfio/vfio', 2));
    expect(kernel.openFds()).toEqual(before);
    const bar = kernel.mmap(device, 4096, 3, 0n);
    kernel.failNext({ syscall: 'munmap', errno: 'EINVAL' });
    thrown(() => kernel.munmap(bar));
    expect(bar.byteLength).toBe(4096);
    expect(kernel.liveMmaps()).toBe(1);
    const efd = kernel.eventfd(0, 0);
    kernel.failNext({ syscall: 'close', errno: 'EINTR' });
    expect(thrown(() => kernel.close(efd))).toMatchObject({ code: 'EINTR' });
    expect(kernel.openFds()).not.toContain(efd);
  });

  test('clearFaults drops planned faults; an unknown errno name is a TypeError', () => {
    kernel.failNext({ syscall: 'open', errno: 'EIO' });
    kernel.clearFaults();
    expect(kernel.pendingFaults()).toBe(0);
    expect(() => kernel.open('/dev/vfio/vfio', 2)).not.toThrow();
    expect(thrown(() => kernel.failNext({ syscall: 'open', errno: 'ENOPE' }))).toMatchObject({ name: 'TypeError' });
    expect(thrown(() => kernel.failNext({ syscall: 'open', errno: 'EIO', skip: -1 }))).toMatchObject({ name: 'RangeError' });
  });

  test('calls records every syscall in order, faulted ones included', () => {
    const k = new FakeKernel();
    k.addDevice({ address: EDU, group: GROUP });
    const c = k.open('/dev/vfio/vfio', 2);
    k.failNext({ syscall: 'ioctl', errno: 'EIO' });
    thrown(() => k.ioctl(c, VFIO_GET_API_VERSION));
    k.close(c);
    expect(k.calls).toEqual([
      { syscall: 'open', path: '/dev/vfio/vfio' },
      { syscall: 'ioctl', request: VFIO_GET_API_VERSION, fd: c },
      { syscall: 'close', fd: c },
    ]);
    k.dispose();
  });
});
