import { checkBytes, checkCount, checkOffset } from './bytes';
import { bindingsRangeError, bindingsTypeError } from './errors';
import type { ElementCodec } from './codec';
import { describe } from './scalars';

/**
 * Packs elements back to back, as a flexible array or an out-of-line array
 * (iommufd's allowed_iovas, DMA logging ranges) is laid out.
 */
export function encodeArray<T, In>(element: ElementCodec<T, In>, items: readonly In[], target?: Uint8Array, offset = 0): Uint8Array {
  if (!Array.isArray(items)) throw bindingsTypeError(element.name, '(items)', `expected an array, got ${describe(items)}`);
  const need = items.length * element.size;
  let out: Uint8Array;
  if (target === undefined) {
    out = new Uint8Array(need);
    offset = 0;
  } else {
    checkBytes(target, element.name, '(target)');
    checkOffset(offset, element.name, '(target)');
    if (offset + need > target.length) {
      throw bindingsRangeError(element.name, '(target)', `target too short: ${items.length} elements need ${need} bytes at offset ${offset}, target has ${target.length}`);
    }
    out = target;
  }
  for (let i = 0; i < items.length; i++) element.encode(items[i], out, offset + i * element.size);
  return out;
}

/** Reads `count` elements back to back; throws if they do not all fit in the buffer. */
export function decodeArray<T, In>(element: ElementCodec<T, In>, bytes: Uint8Array, count: number, offset = 0): T[] {
  checkBytes(bytes, element.name, '(bytes)');
  checkOffset(offset, element.name, '(bytes)');
  checkCount(count, element.name, '(count)');
  if (offset + count * element.size > bytes.length) {
    throw bindingsRangeError(element.name, '(count)', `${count} elements need ${count * element.size} bytes at offset ${offset}, buffer has ${bytes.length}`);
  }
  const out = new Array<T>(count);
  for (let i = 0; i < count; i++) out[i] = element.decode(bytes, offset + i * element.size);
  return out;
}
