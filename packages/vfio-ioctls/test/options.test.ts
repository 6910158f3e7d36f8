import { Container, DmaBuffer, Group, VfioContext } from '../src';
import { vfioOptionKeys, vfioOptionsOf } from '../src/core/context';
import { kernel } from './helpers';

const unknownOption = (key: string, suggestion?: string, known = 'backend, devRoot, sysfsRoot, iommufdPath') =>
  expect.objectContaining({
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_VALUE',
    message: expect.stringContaining(`options.${key} is not a known option (${suggestion ? `did you mean ${suggestion}? ` : ''}${known})`),
  });

describe('VfioOptions: an unknown option name is an error, not a silent default', () => {
  test('VfioContext.from', () => {
    const { env } = kernel();
    expect(() => VfioContext.from({ ...env, devroot: '/dev/vfio' } as never)).toThrow(unknownOption('devroot', 'devRoot'));
    expect(() => VfioContext.from({ ...env, root: '/' } as never)).toThrow(unknownOption('root'));
    expect(VfioContext.from(env).devRoot).toBe(env.devRoot);
    // A context passes as it is.
    const context = VfioContext.from(env);
    expect(VfioContext.from(context)).toBe(context);
  });

  test('DmaBuffer.alloc, Container.open and Group.open, before anything is allocated or opened', () => {
    const { fake, env } = kernel();
    const typo = { ...env, sysfsroot: '/sys' } as never;
    expect(() => DmaBuffer.alloc(4096, typo)).toThrow(unknownOption('sysfsroot', 'sysfsRoot', 'backend, devRoot, sysfsRoot, iommufdPath, memfd, hugePageSize'));
    expect(() => Container.open(typo)).toThrow(unknownOption('sysfsroot', 'sysfsRoot'));
    expect(() => Group.open(5, typo)).toThrow(unknownOption('sysfsroot', 'sysfsRoot'));
    expect(fake.openFds()).toEqual([]);
  });

  test('vfioOptionsOf picks the VfioOptions of a wider options bag, for callers that check their own keys', () => {
    const { env } = kernel();
    const wider = { ...env, container: 'x', iommu: 'auto', iommufdPath: undefined };
    expect(vfioOptionsOf(wider)).toEqual(env);
    expect(Object.keys(vfioOptionsOf(wider)).every((key) => (vfioOptionKeys as readonly string[]).includes(key))).toBe(true);
    expect(VfioContext.from(vfioOptionsOf(wider))).toBe(VfioContext.from(env));
  });
});
