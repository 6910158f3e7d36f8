import { Container, Device, DmaBuffer, Group, VfioContext, VfioError } from '../src';
import { EDU, GROUP, expectNothingLeft, kernel, tick } from './helpers';

describe('VfioContext', () => {
  test('equal options give the same context; other roots another', () => {
    const { fake, env } = kernel();
    const a = VfioContext.from(env);
    expect(VfioContext.from({ ...env })).toBe(a);
    expect(VfioContext.from(a)).toBe(a);
    expect(VfioContext.from({ ...env, devRoot: `${fake.devRoot}/` })).toBe(a);
    expect(VfioContext.from({ ...env, sysfsRoot: '/elsewhere' })).not.toBe(a);
    expect(a.containerPath).toBe(`${fake.devRoot}/vfio`);
    expect(a.groupPath(3)).toBe(`${fake.devRoot}/3`);
  });

  test('the native backend is loaded only when needed, and a missing addon is a clear error', () => {
    jest.isolateModules(() => {
      jest.doMock('../src/core/native', () => {
        throw new Error('no addon here');
      });
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const lib = require('../src') as typeof import('../src');
      const { fake } = kernel();
      expect(lib.listIommuGroups({ sysfsRoot: fake.sysfsRoot })).toHaveLength(1); // discovery needs no backend
      expect(() => lib.Container.open()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_NO_ADDON', hint: expect.stringContaining('build:native') }));
      jest.dontMock('../src/core/native');
    });
  });

  test('without options the real kernel is used (no /dev/vfio here, or no addon built)', () => {
    let error: unknown;
    try {
      Container.open().close();
    } catch (caught) {
      error = caught;
    }
    // Where the test runs on a VFIO host with the addon, opening succeeds.
    if (error !== undefined) expect(error).toMatchObject({ name: 'VfioError', code: expect.stringMatching(/^(ENOENT|EACCES|ERR_VFIO_NO_ADDON)$/) });
  });
});

describe('VfioError', () => {
  test('fromErrno gives Node’s shape and a hint for the common causes', () => {
    const error = VfioError.fromErrno(1, { syscall: 'ioctl', operation: 'VFIO_SET_IOMMU', path: '/dev/vfio/vfio' });
    expect(error).toMatchObject({ name: 'VfioError', code: 'EPERM', errno: -1, syscall: 'ioctl', operation: 'VFIO_SET_IOMMU', path: '/dev/vfio/vfio' });
    expect(error.hint).toMatch(/interrupt remapping/);
    expect(error.message).toMatch(/^EPERM: VFIO_SET_IOMMU ioctl failed on \/dev\/vfio\/vfio \(hint: /);
    expect(VfioError.fromErrno(-16, { device: EDU }).hint).toMatch(/in use/);
    expect(VfioError.fromErrno(13, { path: '/dev/vfio/5' }).hint).toMatch(/permission/);
    expect(VfioError.fromErrno(12, { operation: 'VFIO_IOMMU_MAP_DMA' }).hint).toMatch(/RLIMIT_MEMLOCK/);
    expect(VfioError.fromErrno(22, { operation: 'VFIO_DEVICE_RESET' }).hint).toMatch(/no reset/);
  });

  test('annotate adds context to errno errors of any realm and passes others through', () => {
    const fsLike = Object.assign(new Error('x'), { errno: -2, code: 'ENOENT', syscall: 'open' });
    expect(VfioError.annotate(fsLike, { path: '/p' })).toMatchObject({ name: 'VfioError', code: 'ENOENT', syscall: 'open', path: '/p' });
    const plain = { errno: -5, code: 'EIO' }; // not an Error instance, as from another realm
    expect(VfioError.annotate(plain, { device: EDU })).toMatchObject({ code: 'EIO', device: EDU });
    const library = new VfioError('ERR_VFIO_CLOSED', 'closed');
    expect(VfioError.annotate(library, { path: '/x' })).toBe(library);
    const type = new TypeError('t');
    expect(VfioError.annotate(type, {})).toBe(type);
  });
});

describe('handles', () => {
  test('the error for a closed handle names it', () => {
    const { env } = kernel();
    const group = Group.open(GROUP, env);
    group.close();
    expect(() => group.status()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_CLOSED', errno: 0, message: expect.stringMatching(/group .*\/5 is closed/), hint: expect.stringContaining('open a new one') }));
  });

  test('using: device, group and container all released at block end', () => {
    const { fake, env } = kernel();
    {
      using device = Device.open(EDU, env);
      using buffer = DmaBuffer.alloc(4096, env);
      using mapping = device.iommu!.map(buffer);
      void mapping;
    }
    expectNothingLeft(fake);
  });
});
