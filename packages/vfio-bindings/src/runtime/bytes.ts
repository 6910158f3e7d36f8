import { bindingsRangeError, bindingsTypeError } from './errors';
import { describe } from './scalars';

// A one-slot cache: creating a DataView costs about 60 ns, as much as
// decoding a small struct, and the common patterns touch one buffer several
// times in a row (encode, ioctl, decode; decode, then walkCapabilities). The
// slot keeps at most one buffer of at most 64 KiB alive.
let lastBytes: Uint8Array | undefined;
let lastView: DataView | undefined;
let lastLength = 0;

/** A DataView over exactly the bytes of a Uint8Array (or Buffer). */
export function viewOf(bytes: Uint8Array): DataView {
  const n = bytes.byteLength;
  // Same object and length means same buffer and range; a detached buffer has length 0.
  if (bytes === lastBytes && n === lastLength && n !== 0) return lastView!;
  const buffer = bytes.buffer;
  const view = new DataView(buffer, bytes.byteOffset, n);
  if (buffer.byteLength <= 65536) {
    lastBytes = bytes;
    lastView = view;
    lastLength = n;
  }
  return view;
}

export function checkBytes(bytes: unknown, struct: string, field: string): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw bindingsTypeError(struct, field, `expected a Uint8Array, got ${describe(bytes)}`);
}

/**
 * An offset, length or count argument. As in Node's own APIs, the wrong type
 * is a TypeError and the right type with a bad value a RangeError, so a caller
 * passing a string by mistake is not told its "value" is out of range. `arg`
 * is the argument's name in the message.
 */
function checkIndex(x: unknown, struct: string, field: string, arg: string): asserts x is number {
  if (typeof x !== 'number') throw bindingsTypeError(struct, field, `${arg} must be a number, got ${describe(x)}`);
  if (!Number.isSafeInteger(x) || x < 0) throw bindingsRangeError(struct, field, `${arg} must be a non-negative integer, got ${describe(x)}`);
}

export function checkOffset(offset: unknown, struct: string, field: string, arg = 'offset'): asserts offset is number {
  checkIndex(offset, struct, field, arg);
}

export function checkCount(count: unknown, struct: string, field: string, arg = 'count'): asserts count is number {
  checkIndex(count, struct, field, arg);
}
