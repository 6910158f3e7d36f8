/**
 * Guards the constructors of classes only the library may make (Device,
 * Region, Interrupts, mappings). A TypeScript `private constructor` is a
 * compile-time rule: at run time `new (instance.constructor)(...)` reaches
 * it. So such a constructor takes, first, a key that only its own module
 * holds, and throws this error for anything else, as the platform does
 * for `new AbortSignal()`.
 */
export function illegalConstructor(): TypeError & { code: string } {
  const error = new TypeError('Illegal constructor') as TypeError & { code: string };
  error.code = 'ERR_ILLEGAL_CONSTRUCTOR';
  return error;
}
