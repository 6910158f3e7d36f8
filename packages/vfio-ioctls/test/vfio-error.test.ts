import * as b from 'vfio-bindings';
import { Device } from '../src';
import { VfioError } from '../src/core/errors';
import { EDU, GROUP, kernel } from './helpers';

describe('VfioError', () => {
  test('fromErrno uses the names the native addon reports (libuv), not their aliases', () => {
    expect(VfioError.fromErrno(11, { syscall: 'read' })).toMatchObject({ code: 'EAGAIN', errno: -11, syscall: 'read' });
    expect(VfioError.fromErrno(-95, { syscall: 'ioctl' })).toMatchObject({ code: 'ENOTSUP', errno: -95 });
    // EBADFD has no libuv name: the code still says which errno it was.
    expect(VfioError.fromErrno(77, { syscall: 'ioctl' })).toMatchObject({ code: 'E77', errno: -77 });
  });

  test('the message names the operation, the syscall and the device', () => {
    const e = VfioError.fromErrno(16, { syscall: 'ioctl', operation: 'VFIO_GROUP_GET_DEVICE_FD', device: '0000:00:03.0' });
    expect(e.name).toBe('VfioError');
    expect(e.message).toMatch(/^EBUSY: VFIO_GROUP_GET_DEVICE_FD ioctl failed on 0000:00:03\.0/);
    expect(e.device).toBe('0000:00:03.0');
  });

  test.each([
    ['VFIO_SET_IOMMU', 'EPERM', /interrupt remapping/],
    ['VFIO_IOMMU_MAP_DMA', 'ENOMEM', /RLIMIT_MEMLOCK/],
    ['VFIO_GROUP_GET_DEVICE_FD', 'EBUSY', /already open/],
    ['VFIO_GROUP_GET_STATUS', 'EACCES', /permission/],
    ['VFIO_DEVICE_PCI_HOT_RESET', 'ENOTTY', /neither the slot nor the bus can be reset/],
  ])('%s answering %s carries a hint', (operation, code, hint) => {
    const errno = require('node:os').constants.errno[code] as number;
    const e = VfioError.fromErrno(errno, { syscall: 'ioctl', operation });
    expect(e.hint).toMatch(hint);
    expect(e.message).toContain(`(hint: ${e.hint})`);
  });

  test('Device.hotReset answering ENOTTY carries the hot reset hint', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU] }]);
    const device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_PCI_HOT_RESET, errno: 'ENOTTY' });
    expect(() => device.hotReset()).toThrow(expect.objectContaining({
      name: 'VfioError', code: 'ENOTTY', operation: 'VFIO_DEVICE_PCI_HOT_RESET', device: EDU, hint: expect.stringContaining('neither the slot nor the bus'),
    }));
    device.close();
  });

  test('ENOTTY elsewhere has no hint', () => {
    expect(VfioError.fromErrno(25, { syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_REGION_INFO' }).hint).toBeUndefined();
  });

  test('ENOTTY from VFIO_DEVICE_FEATURE says which devices have a VF token; EACCES on a VF open says a token is needed', () => {
    expect(VfioError.fromErrno(25, { syscall: 'ioctl', operation: 'VFIO_DEVICE_FEATURE' }).hint).toContain('SR-IOV PF');
    for (const operation of ['VFIO_GROUP_GET_DEVICE_FD', 'VFIO_DEVICE_BIND_IOMMUFD']) {
      expect(VfioError.fromErrno(13, { syscall: 'ioctl', operation }).hint).toContain('vfToken');
    }
  });

  test('an error without a common cause has no hint', () => {
    expect(VfioError.fromErrno(5, { syscall: 'pread', operation: 'region read' }).hint).toBeUndefined();
  });

  test('library codes carry errno 0 (not -0)', () => {
    expect(Object.is(new VfioError('ERR_VFIO_CLOSED', 'closed').errno, 0)).toBe(true);
  });

  test('an errno code without an explicit errno gets its number, E<n> included', () => {
    expect(new VfioError('EBUSY', 'busy').errno).toBe(-16);
    expect(new VfioError('E77', 'bad fd state').errno).toBe(-77);
    expect(new VfioError('EUNATCH', 'x').errno).toBe(-49); // a libuv name os.constants lacks
  });

  test('annotate adds context to errno errors and passes other errors through', () => {
    const raw = Object.assign(new Error('EBUSY: device or resource busy, ioctl'), { code: 'EBUSY', errno: -16, syscall: 'ioctl' });
    const e = VfioError.annotate(raw, { operation: 'VFIO_GROUP_SET_CONTAINER', path: '/dev/vfio/9' }) as VfioError;
    expect(e).toMatchObject({ name: 'VfioError', code: 'EBUSY', errno: -16, syscall: 'ioctl', path: '/dev/vfio/9' });
    expect(e.hint).toMatch(/another container/);
    const plain = new TypeError('not an errno error');
    expect(VfioError.annotate(plain, { operation: 'X' })).toBe(plain);
  });
});
