import { checkOptions, optionKeys } from '../src/core/validate';

interface Opts {
  backend?: unknown;
  devRoot?: string;
  sysfsRoot?: string;
}
const known = optionKeys<Opts>({ backend: true, devRoot: true, sysfsRoot: true });

describe('checkOptions', () => {
  test('undefined is {}; a non-object is a TypeError naming the argument', () => {
    expect(checkOptions('options', undefined, known)).toEqual({});
    expect(() => checkOptions('options', 5 as never, known)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/^options must be an object/) }));
    expect(() => checkOptions('options', null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  test('known keys pass, with or without a value; the object comes back as it is', () => {
    const value = { devRoot: '/dev/vfio', sysfsRoot: undefined };
    expect(checkOptions('options', value, known)).toBe(value);
  });

  test('an unknown key is a TypeError (ERR_INVALID_ARG_VALUE) listing the known ones', () => {
    expect(() => checkOptions('options', { devroot: '/x' } as Opts, known)).toThrow(expect.objectContaining({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: 'options.devroot is not a known option (did you mean devRoot? backend, devRoot, sysfsRoot)',
    }));
    expect(() => checkOptions('options', { root: '/x' } as Opts, known)).toThrow('options.root is not a known option (backend, devRoot, sysfsRoot)');
    // A key set to undefined is still a misspelling.
    expect(() => checkOptions('options', { sysfs: undefined } as Opts, known)).toThrow(/options\.sysfs is not a known option/);
    expect(() => checkOptions('flags', { a: 1 }, [])).toThrow('flags.a is not a known option (it takes none)');
  });

  test('without a key list any key passes (the caller checks it)', () => {
    expect(checkOptions('options', { anything: 1 })).toEqual({ anything: 1 });
  });

  test('optionKeys lists the keys of the object it is given', () => {
    expect(known).toEqual(['backend', 'devRoot', 'sysfsRoot']);
    expect(Object.isFrozen(known)).toBe(true);
    // @ts-expect-error a key missing from the interface's list is a compile error
    optionKeys<Opts>({ backend: true, devRoot: true });
    // @ts-expect-error and so is a key the interface does not have
    optionKeys<Opts>({ backend: true, devRoot: true, sysfsRoot: true, other: true });
  });
});
