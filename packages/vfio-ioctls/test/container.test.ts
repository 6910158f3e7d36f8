import * as b from 'vfio-bindings';
import { Container, DmaBuffer, Group } from '../src';
import { EDU, GROUP, expectNothingLeft, ioctls, kernel } from './helpers';

describe('Container.open', () => {
  test('opens the container node and checks the API version', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    expect(container.apiVersion).toBe(b.VFIO_API_VERSION);
    expect(container.path).toBe(`${fake.devRoot}/vfio`);
    expect(container.closed).toBe(false);
    expect(fake.openFds()).toEqual([container.fd]);
    container.close();
    expectNothingLeft(fake);
  });

  test('open failure is a VfioError with path, code and hint', () => {
    const { fake, env } = kernel();
    fake.failNext({ syscall: 'open', errno: 'EACCES' });
    expect(() => Container.open(env)).toThrow(
      expect.objectContaining({ name: 'VfioError', code: 'EACCES', syscall: 'open', path: `${fake.devRoot}/vfio`, hint: expect.stringContaining('permission') }),
    );
    expectNothingLeft(fake);
  });

  test('a failing API version query closes the fd again', () => {
    const { fake, env } = kernel();
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GET_API_VERSION, errno: 'ENOTTY' });
    expect(() => Container.open(env)).toThrow(expect.objectContaining({ code: 'ENOTTY', operation: 'VFIO_GET_API_VERSION' }));
    expectNothingLeft(fake);
  });

  test('a wrong API version is refused and the fd closed', () => {
    const { fake, env } = kernel();
    const backend = Object.create(fake, {
      ioctl: { value: (fd: number, request: number, arg?: number | Uint8Array) => (request === b.VFIO_GET_API_VERSION ? 1 : fake.ioctl(fd, request, arg)) },
    });
    expect(() => Container.open({ ...env, backend })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_API_VERSION' }));
    expectNothingLeft(fake);
  });

  test('bad options are TypeErrors naming the option', () => {
    expect(() => Container.open({ backend: {} as never })).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.backend') }));
    const { env } = kernel();
    expect(() => Container.open({ ...env, devRoot: 7 as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('options.devRoot') }));
    expect(() => Container.open('x' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });
});

describe('Container.checkExtension', () => {
  test('answers for TYPE1v2 and TYPE1', () => {
    const { env } = kernel();
    using container = Container.open(env);
    expect(container.checkExtension(b.VFIO_TYPE1v2_IOMMU)).toBe(true);
    expect(container.checkExtension(b.VFIO_TYPE1_IOMMU)).toBe(true);
    expect(container.checkExtension(b.VFIO_SPAPR_TCE_IOMMU)).toBe(false);
  });

  test('rejects a non-integer before the kernel', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    const before = fake.calls.length;
    expect(() => container.checkExtension(1.5)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('extension') }));
    expect(() => container.checkExtension(-1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(fake.calls.length).toBe(before);
  });

  test('kernel failure is annotated', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_CHECK_EXTENSION, errno: 'EIO' });
    expect(() => container.checkExtension(b.VFIO_TYPE1_IOMMU)).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_CHECK_EXTENSION', path: container.path }));
  });
});

describe('Container.setIommu', () => {
  test('is set to TYPE1v2 when the first group attaches', () => {
    const { env } = kernel();
    using container = Container.open(env);
    expect(container.iommuType).toBeUndefined();
    using group = Group.open(GROUP, env);
    group.attach(container);
    expect(container.iommuType).toBe(b.VFIO_TYPE1v2_IOMMU);
    expect(container.setIommu()).toBe(b.VFIO_TYPE1v2_IOMMU);
    expect(container.setIommu(b.VFIO_TYPE1v2_IOMMU)).toBe(b.VFIO_TYPE1v2_IOMMU);
  });

  test('falls back to TYPE1 without the TYPE1v2 extension', () => {
    const { env } = kernel(undefined, { type1Only: true });
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    expect(container.iommuType).toBe(b.VFIO_TYPE1_IOMMU);
  });

  test('needs a group first (checked before the kernel)', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    const before = fake.calls.length;
    expect(() => container.setIommu()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED', operation: 'VFIO_SET_IOMMU' }));
    expect(fake.calls.length).toBe(before);
  });

  test('refuses another type once set', () => {
    const { env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    expect(() => container.setIommu(b.VFIO_TYPE1_IOMMU)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_IOMMU_SET' }));
    expect(() => container.setIommu(0)).toThrow(expect.objectContaining({ name: 'RangeError' }));
  });

  test('EPERM without interrupt remapping carries the hint, and the group is detached again', () => {
    const { fake, env } = kernel(undefined, { interruptRemapping: false });
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    expect(() => group.attach(container)).toThrow(
      expect.objectContaining({ name: 'VfioError', code: 'EPERM', errno: expect.any(Number), operation: 'VFIO_SET_IOMMU', hint: expect.stringContaining('interrupt remapping') }),
    );
    expect(group.container).toBeUndefined();
    expect(container.groups()).toEqual([]);
    expect(group.status().containerSet).toBe(false);
    void fake;
  });
});

describe('Container.iommuInfo', () => {
  test('reports page sizes, IOVA ranges and dma_avail', () => {
    const { env } = kernel(undefined, { dmaAvail: 100 });
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const info = container.iommuInfo();
    expect(info.pageSizes).toBe(0x40201000n);
    expect(info.flags & b.VFIO_IOMMU_INFO_PGSIZES).toBeTruthy();
    expect(info.iovaRanges).toEqual([
      { start: 0n, end: 0xfedfffffn },
      { start: 0xfef00000n, end: 0x7fffffffffn },
    ]);
    expect(info.dmaAvail).toBe(100);
    expect(info.migration).toEqual({ flags: 0, pageSizes: 0x1000n, maxDirtyBitmapSize: expect.any(BigInt) });
    expect(info.capabilities.map((c) => c.id)).toEqual(expect.arrayContaining([b.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, b.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL]));
    expect(container.iovaRanges()).toEqual(info.iovaRanges);
    expect(container.pageSizes()).toBe(0x40201000n);
    const buffer = DmaBuffer.alloc(4096, env);
    container.map(buffer);
    expect(container.iommuInfo().dmaAvail).toBe(99); // dma_avail counts down with each mapping
    container.unmapAll();
    buffer.close();
  });

  test('custom IOVA ranges and page sizes come through', () => {
    const { env } = kernel(undefined, { iovaRanges: [{ start: 0x10000n, end: 0xfffffn }], iommuPageSizes: 0x10000n });
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    expect(container.iommuInfo()).toMatchObject({ pageSizes: 0x10000n, iovaRanges: [{ start: 0x10000n, end: 0xfffffn }] });
  });

  test('needs an IOMMU (a group attached)', () => {
    const { env } = kernel();
    using container = Container.open(env);
    expect(() => container.iommuInfo()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED', operation: 'VFIO_IOMMU_GET_INFO' }));
  });

  test('kernel failure is annotated', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_GET_INFO, errno: 'EFAULT' });
    expect(() => container.iommuInfo()).toThrow(expect.objectContaining({ code: 'EFAULT', operation: 'VFIO_IOMMU_GET_INFO' }));
  });

  test('iovaRanges() and pageSizes() need an IOMMU too, and query it once', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    expect(() => container.iovaRanges()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED' }));
    expect(() => container.pageSizes()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED' }));
    using group = Group.open(GROUP, env);
    group.attach(container);
    const infoCalls = () => fake.calls.filter((c) => c.request === b.VFIO_IOMMU_GET_INFO).length;
    container.iovaRanges();
    const first = infoCalls(); // one query (two ioctls when the capabilities need a larger argsz)
    expect(first).toBeGreaterThan(0);
    container.pageSizes();
    container.iovaRanges();
    expect(infoCalls()).toBe(first);
  });
});

describe('Container.close', () => {
  test('closes devices, then unsets groups, then closes the container', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    const group = Group.open(GROUP, env);
    group.attach(container);
    const device = group.openDevice(EDU);
    const deviceFd = device.fd;
    const groupFd = group.fd;
    const containerFd = container.fd;
    const from = fake.calls.length;
    container.close();
    const order = fake.calls.slice(from).map((c) => `${c.syscall}:${c.syscall === 'ioctl' ? c.request! >>> 0 : c.fd}`);
    const deviceClose = order.indexOf(`close:${deviceFd}`);
    const unset = order.indexOf(`ioctl:${b.VFIO_GROUP_UNSET_CONTAINER >>> 0}`);
    const containerClose = order.indexOf(`close:${containerFd}`);
    expect(deviceClose).toBeGreaterThanOrEqual(0);
    expect(unset).toBeGreaterThan(deviceClose);
    expect(containerClose).toBeGreaterThan(unset);
    expect(device.closed).toBe(true);
    expect(group.container).toBeUndefined();
    expect(fake.openFds()).toEqual([groupFd]);
    group.close();
    expectNothingLeft(fake);
  });

  test('is idempotent, and every call afterwards throws ERR_VFIO_CLOSED without a syscall', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    container.close();
    container.close();
    const before = fake.calls.length;
    expect(() => container.fd).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED', message: expect.stringContaining('container') }));
    expect(() => container.checkExtension(1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => container.unmapAll()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => container.iommuInfo()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(fake.calls.length).toBe(before);
  });

  test('a closed container never reaches a reused fd number', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    const fd = container.fd;
    container.close();
    using other = Container.open(env);
    expect(other.fd).toBe(fd); // the number is reused...
    const before = fake.calls.length;
    expect(() => container.checkExtension(b.VFIO_TYPE1_IOMMU)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(fake.calls.length).toBe(before); // ...but the closed handle does not touch it
  });

  test('a failing close(2) still marks the handle closed and reports the error', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    fake.failNext({ syscall: 'close', errno: 'EIO' });
    expect(() => container.close()).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'close', path: container.path }));
    expect(container.closed).toBe(true);
  });

  test('Symbol.dispose closes (using)', () => {
    const { fake, env } = kernel();
    {
      using container = Container.open(env);
      expect(fake.openFds()).toHaveLength(1);
      void container;
    }
    expectNothingLeft(fake);
  });

  test('ioctls on a live container are made on its own fd', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    const from = fake.calls.length;
    container.checkExtension(b.VFIO_TYPE1_IOMMU);
    expect(fake.calls.slice(from)).toEqual([expect.objectContaining({ syscall: 'ioctl', fd: container.fd })]);
    expect(ioctls(fake, from)).toEqual([b.VFIO_CHECK_EXTENSION >>> 0]);
  });
});
