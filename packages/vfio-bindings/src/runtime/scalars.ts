import { bindingsRangeError, bindingsTypeError } from './errors';

/** Scalar kinds of the uapi headers: __u8 .. __s64 (pointers travel as u64). */
export type ScalarType = 'u8' | 's8' | 'u16' | 's16' | 'u32' | 's32' | 'u64' | 's64';

export const SCALAR_SIZE: Readonly<Record<ScalarType, number>> = { u8: 1, s8: 1, u16: 2, s16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

// The kernel reads these structs in the host's byte order.
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function isScalarType(t: unknown): t is ScalarType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(SCALAR_SIZE, t);
}

export function readScalar(view: DataView, at: number, type: ScalarType): number | bigint {
  switch (type) {
    case 'u8': return view.getUint8(at);
    case 's8': return view.getInt8(at);
    case 'u16': return view.getUint16(at, LITTLE_ENDIAN);
    case 's16': return view.getInt16(at, LITTLE_ENDIAN);
    case 'u32': return view.getUint32(at, LITTLE_ENDIAN);
    case 's32': return view.getInt32(at, LITTLE_ENDIAN);
    case 'u64': return view.getBigUint64(at, LITTLE_ENDIAN);
    case 's64': return view.getBigInt64(at, LITTLE_ENDIAN);
  }
}

/**
 * Checks a value against a scalar's type and range and returns it in the form
 * DataView wants. Never wraps or truncates: anything that does not fit throws.
 */
export function checkScalar(type: ScalarType, value: unknown, struct: string, field: string): number | bigint {
  const bits = SCALAR_SIZE[type] * 8;
  const signed = type[0] === 's';
  if (bits === 64) {
    let v: bigint;
    if (typeof value === 'bigint') v = value;
    else if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) {
        throw bindingsRangeError(struct, field, `${value} is not a safe integer; pass a bigint for ${type}`);
      }
      v = BigInt(value);
    } else throw bindingsTypeError(struct, field, `expected a bigint or a safe integer for ${type}, got ${describe(value)}`);
    const min = signed ? -(1n << 63n) : 0n;
    const max = signed ? (1n << 63n) - 1n : (1n << 64n) - 1n;
    if (v < min || v > max) throw rangeProblem(struct, field, type, v < 0n && !signed, String(v));
    return v;
  }
  if (typeof value !== 'number') throw bindingsTypeError(struct, field, `expected a number for ${type}, got ${describe(value)}`);
  if (!Number.isInteger(value)) throw bindingsRangeError(struct, field, `${value} is not an integer`);
  const min = signed ? -(2 ** (bits - 1)) : 0;
  const max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
  if (value < min || value > max) throw rangeProblem(struct, field, type, value < 0 && !signed, String(value));
  return value;
}

function rangeProblem(struct: string, field: string, type: ScalarType, negative: boolean, shown: string): RangeError {
  return negative
    ? bindingsRangeError(struct, field, `${shown} is negative but ${type} is unsigned`)
    : bindingsRangeError(struct, field, `${shown} is out of range for ${type}`);
}

export function writeScalar(view: DataView, at: number, type: ScalarType, v: number | bigint): void {
  switch (type) {
    case 'u8': view.setUint8(at, v as number); break;
    case 's8': view.setInt8(at, v as number); break;
    case 'u16': view.setUint16(at, v as number, LITTLE_ENDIAN); break;
    case 's16': view.setInt16(at, v as number, LITTLE_ENDIAN); break;
    case 'u32': view.setUint32(at, v as number, LITTLE_ENDIAN); break;
    case 's32': view.setInt32(at, v as number, LITTLE_ENDIAN); break;
    case 'u64': view.setBigUint64(at, v as bigint, LITTLE_ENDIAN); break;
    case 's64': view.setBigInt64(at, v as bigint, LITTLE_ENDIAN); break;
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'bigint') return `bigint ${value}`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'string') return `string ${JSON.stringify(value.length > 20 ? value.slice(0, 20) + '...' : value)}`;
  return typeof value;
}
