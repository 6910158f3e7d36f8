/**
 * Argument checks shaped exactly like the native addon's (native/args.cc):
 * a TypeError with code ERR_INVALID_ARG_TYPE for a wrong type, a RangeError
 * with code ERR_OUT_OF_RANGE for a bad number. They run before the fake
 * syscall, as the addon's run before the real one.
 */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export function integerArg(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw argType(value, name, 'of type number');
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer >= ${min} and <= ${max}`, String(value));
  }
  return value;
}

export function fdArg(value: unknown, name = 'fd'): number {
  return integerArg(value, name, 0, 0x7fff_ffff);
}

export function uint64Arg(value: unknown, name: string, max = 0xffff_ffff_ffff_ffffn): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > max) throw outOfRange(name, `>= 0n and <= ${max}n`, `${value}n`);
    return value;
  }
  if (typeof value === 'number') return BigInt(integerArg(value, name, 0, Number(max < BigInt(MAX_SAFE) ? max : MAX_SAFE)));
  throw argType(value, name, 'of type number or bigint');
}

export function bytesArg(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array) && Object.prototype.toString.call(value) !== '[object Uint8Array]') {
    throw argType(value, name, 'an instance of Uint8Array');
  }
  return value as Uint8Array;
}

export function arrayBufferArg(value: unknown, name: string): ArrayBuffer {
  if (!(value instanceof ArrayBuffer) && Object.prototype.toString.call(value) !== '[object ArrayBuffer]') {
    throw argType(value, name, 'an instance of ArrayBuffer');
  }
  return value as ArrayBuffer;
}

export function functionArg(value: unknown, name: string): void {
  if (typeof value !== 'function') throw argType(value, name, 'of type function');
}

export type LiveKind = 'mmap' | 'dma' | 'any';

const KIND_NAME: Record<LiveKind, string> = {
  mmap: 'a live mapping from mmap()',
  dma: 'live memory from allocDma()',
  any: 'a live mapping from mmap() or allocDma()',
};

/** The addon's refusal of a buffer it does not know as live memory (detached buffers included). */
export function notLive(name: string, kind: LiveKind): TypeError {
  return withCode(new TypeError(`The "${name}" argument must be ${KIND_NAME[kind]} (it was never mapped, or already unmapped or freed)`), 'ERR_INVALID_ARG_VALUE');
}

export function protRefused(prot: 'PROT_READ' | 'PROT_WRITE'): TypeError {
  return withCode(new TypeError(`The "buffer" argument is mapped without ${prot}`), 'ERR_INVALID_ARG_VALUE');
}

export function outOfRange(name: string, bounds: string, received: string): RangeError {
  return withCode(new RangeError(`The value of "${name}" is out of range. It must be ${bounds}. Received ${received}`), 'ERR_OUT_OF_RANGE');
}

function argType(value: unknown, name: string, expected: string): TypeError {
  const type = value === null ? 'null' : typeof value;
  return withCode(new TypeError(`The "${name}" argument must be ${expected}. Received type ${type}`), 'ERR_INVALID_ARG_TYPE');
}

function withCode<E extends Error>(error: E, code: string): E {
  return Object.assign(error, { code });
}
