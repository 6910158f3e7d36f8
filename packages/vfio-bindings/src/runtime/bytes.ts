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

export function checkOffset(offset: unknown, struct: string, field: string): asserts offset is number {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw bindingsRangeError(struct, field, `offset must be a non-negative integer, got ${describe(offset)}`);
  }
}

export function checkCount(count: unknown, struct: string, field: string): asserts count is number {
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
    throw bindingsRangeError(struct, field, `element count must be a non-negative integer, got ${describe(count)}`);
  }
}
