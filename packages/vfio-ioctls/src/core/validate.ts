/**
 * Argument checks that run before any syscall, so that a bad argument is
 * reported as the caller's mistake (TypeError/RangeError naming it) and the
 * kernel never sees it. Codes follow Node's own (ERR_INVALID_ARG_TYPE,
 * ERR_OUT_OF_RANGE) so that callers can match `.code` across realms.
 */

import type { LibraryErrorCode } from './codes';

type ArgError = (TypeError | RangeError) & { code: LibraryErrorCode };

/** A TypeError with Node's ERR_INVALID_ARG_TYPE code. */
export function typeError(name: string, expected: string, value: unknown): ArgError {
  const error = new TypeError(`${name} must be ${expected}, got ${describe(value)}`) as ArgError;
  error.code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

/** A RangeError naming the argument; `code` (one of codes.ts) defaults to Node's ERR_OUT_OF_RANGE. */
export function rangeError(name: string, problem: string, code: LibraryErrorCode = 'ERR_OUT_OF_RANGE'): ArgError {
  const error = new RangeError(`${name} ${problem}`) as ArgError;
  error.code = code;
  return error;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'object';
  return `${typeof value} ${String(value)}`;
}

/** An integer number in [min, max]. */
export function checkInteger(name: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw typeError(name, 'an integer', value);
  if (value < min || value > max) throw rangeError(name, `must be in [${min}, ${max}], got ${value}`);
  return value;
}

/**
 * A 64-bit unsigned quantity given as a bigint or a safe-integer number
 * (the library's convention for IOVAs, sizes and offsets); returns a bigint.
 */
export function checkU64(name: string, value: unknown, min = 0n, max = 0xffff_ffff_ffff_ffffn): bigint {
  let big: bigint;
  if (typeof value === 'bigint') big = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
  else throw typeError(name, 'a bigint or a safe integer', value);
  if (big < min || big > max) throw rangeError(name, `must be in [${hex(min)}, ${hex(max)}], got ${hex(big)}`);
  return big;
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * A 64-bit unsigned bigint, for APIs that take and give bigints throughout
 * (IovaAllocator): a number is a TypeError rather than converted.
 */
export function checkBigU64(name: string, value: unknown): bigint {
  if (typeof value !== 'bigint') throw typeError(name, 'a bigint', value);
  if (value < 0n || value > U64_MAX) throw rangeError(name, `must be in [0x0, ${hex(U64_MAX)}], got ${value < 0n ? `-${hex(-value)}` : hex(value)}`);
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw typeError(name, 'a boolean', value);
  return value;
}

export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw typeError(name, 'a non-empty string', value);
  return value;
}

export function checkBytes(name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw typeError(name, 'a Uint8Array', value);
  return value;
}

/**
 * An options bag: undefined becomes {}, anything but an object is a
 * TypeError. With `known`, a key outside it is a TypeError too
 * (ERR_INVALID_ARG_VALUE): a misspelt option would otherwise be ignored
 * and its default used without a word.
 */
export function checkOptions<T extends object>(name: string, value: T | undefined, known?: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw typeError(name, 'an object', value);
  if (known) {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) throw unknownOptionError(name, key, known);
    }
  }
  return value;
}

function unknownOptionError(name: string, key: string, known: readonly string[]): ArgError {
  const sameButCase = known.find((k) => k.toLowerCase() === key.toLowerCase());
  const list = known.length === 0 ? 'it takes none' : known.join(', ');
  const error = new TypeError(
    `${name}.${key} is not a known option (${sameButCase ? `did you mean ${sameButCase}? ` : ''}${list})`,
  ) as ArgError;
  error.code = 'ERR_INVALID_ARG_VALUE';
  return error;
}

/**
 * The keys of an options interface as a list for checkOptions. Written as
 * an object so that the compiler demands every key of `T` and no other:
 * adding an option to the interface without listing it is a compile error.
 */
export function optionKeys<T extends object>(keys: { [K in keyof Required<T>]: true }): readonly (keyof T & string)[] {
  return Object.freeze(Object.keys(keys)) as readonly (keyof T & string)[];
}

/** An instance of `type` (by prototype chain, so it works for the library's own classes). */
export function checkInstance<T>(name: string, value: unknown, type: { prototype: T; name: string }): T {
  if (!(value instanceof (type as unknown as new () => T))) throw typeError(name, `a ${type.name}`, value);
  return value as T;
}

/** Checks that `value` is a multiple of `alignment` (a power of two). */
export function checkAligned(name: string, value: bigint, alignment: bigint): void {
  if (value % alignment !== 0n) {
    throw rangeError(name, `must be aligned to ${hex(alignment)}, got ${hex(value)}`, 'ERR_VFIO_MISALIGNED');
  }
}

const pciAddressPattern = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;

/**
 * A PCI address as the kernel names devices in sysfs, 'DDDD:BB:DD.F'
 * (the domain may be left out: '00:03.0' means '0000:00:03.0'). Returns the
 * full lower-case form, or undefined when `value` is not a PCI address.
 * @throws TypeError when `value` is not a string.
 */
export function parsePciAddress(value: string): string | undefined {
  if (typeof value !== 'string') throw typeError('value', 'a string', value);
  const match = pciAddressPattern.exec(value);
  if (!match) return undefined;
  const [, domain = '0000', bus, slot, fn] = match;
  if (parseInt(slot!, 16) > 0x1f) return undefined;
  return `${domain}:${bus}:${slot}.${fn}`.toLowerCase();
}

export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/** A UUID in its 8-4-4-4-12 hex form (a VF token), returned lower-case. */
export function checkUuid(name: string, value: unknown): string {
  if (typeof value !== 'string') throw typeError(name, "a UUID string ('8-4-4-4-12' hex)", value);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
    throw rangeError(name, `must be a UUID like '2ab74924-c335-45f4-9b16-8569e5b08258', got ${JSON.stringify(value)}`, 'ERR_INVALID_ARG_VALUE');
  }
  return value.toLowerCase();
}
