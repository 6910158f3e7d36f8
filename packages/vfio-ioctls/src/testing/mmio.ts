import { outOfRange } from './args';

/** Register widths of the MMIO accessors, in bytes. */
export type Width = 1 | 2 | 4 | 8;

/** `offset` inside the buffer and naturally aligned, with the native accessors' messages. */
export function checkOffset(length: number, offset: number, width: Width): void {
  const last = length - width;
  if (offset > last) throw outOfRange('offset', `>= 0 and <= ${last}`, String(offset));
  if (offset % width !== 0) {
    throw Object.assign(new RangeError(`The value of "offset" must be a multiple of ${width}. Received ${offset}`), { code: 'ERR_OUT_OF_RANGE' });
  }
}

/** Plain little-endian access, for DMA memory (which has no device behind it). */
export function plainRead(buffer: ArrayBuffer, offset: number, width: Width): bigint {
  const view = new DataView(buffer);
  switch (width) {
    case 1: return BigInt(view.getUint8(offset));
    case 2: return BigInt(view.getUint16(offset, true));
    case 4: return BigInt(view.getUint32(offset, true));
    default: return view.getBigUint64(offset, true);
  }
}

export function plainWrite(buffer: ArrayBuffer, offset: number, width: Width, value: bigint): void {
  const view = new DataView(buffer);
  switch (width) {
    case 1: view.setUint8(offset, Number(value)); break;
    case 2: view.setUint16(offset, Number(value), true); break;
    case 4: view.setUint32(offset, Number(value), true); break;
    default: view.setBigUint64(offset, value, true);
  }
}
