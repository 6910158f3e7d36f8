import * as native from '../../src/core/native';
import { VfioError } from '../../src/core/errors';
import { removeTempDirs, tempDir, thrown } from './helpers';

afterAll(removeTempDirs);

describe('loading the addon', () => {
  it('exports the same constant values as the C headers', () => {
    const { constants } = native.loadAddon();
    const names = Object.keys(constants);
    expect(names.length).toBeGreaterThanOrEqual(13);
    for (const name of names) {
      expect({ name, value: (native as unknown as Record<string, number>)[name] }).toEqual({ name, value: constants[name] });
    }
  });

  it('loads once per call and hands over VfioError each time', () => {
    const addon = native.loadAddon();
    expect(thrown(() => addon.close(2 ** 30))).toBeInstanceOf(VfioError);
  });

  it('nativeBackend calls the addon directly once loaded, every Backend method included', () => {
    native.nativeBackend.pageSize();
    const addon = native.loadAddon() as unknown as Record<string, unknown>;
    const backend = native.nativeBackend as unknown as Record<string, unknown>;
    const methods = Object.keys(backend).filter((name) => name !== 'directMmio');
    expect(methods.length).toBe(31); // every Backend method (dup the 31st)
    for (const name of methods) {
      expect({ name, direct: typeof backend[name] === 'function' && backend[name] === addon[name] }).toEqual({ name, direct: true });
    }
    // Not an addon export: loading must leave it (mappings are then read with typed arrays).
    expect(native.nativeBackend.directMmio).toBe(true);
    expect(native.nativeBackend.pageSize()).toBeGreaterThanOrEqual(4096);
    expect(thrown(() => native.nativeBackend.close(2 ** 30))).toMatchObject({ code: 'EBADF', syscall: 'close' });
  });

  it('a package root without build/ or prebuilds/ gives ERR_VFIO_NO_ADDON with a hint', () => {
    const root = tempDir();
    const error = thrown(() => native.loadAddon(root));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ERR_VFIO_NO_ADDON', errno: 0 });
    expect(error.message).toContain(root);
    expect(error.hint).toMatch(/build:native/);
    expect(error.cause).toBeInstanceOf(Error);
  });
});
