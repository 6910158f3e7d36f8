import { bindingsRangeError, bindingsTypeError } from './errors';
import { describe } from './scalars';

/** A DataView over exactly the bytes of a Uint8Array (or Buffer). */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
