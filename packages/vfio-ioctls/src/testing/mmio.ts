/**
 * Argument checks of the MMIO accessors, matching the native ones: a
 * detached (unmapped) buffer throws, `offset` must be an integer inside the
 * buffer and naturally aligned, `value` must fit the width.
 */
export type Width = 1 | 2 | 4 | 8;

export function checkLive(buffer: ArrayBuffer): void {
  if (!(buffer instanceof ArrayBuffer) && Object.prototype.toString.call(buffer) !== '[object ArrayBuffer]') {
    throw codeError(new TypeError('The "buffer" argument must be an ArrayBuffer'), 'ERR_INVALID_ARG_TYPE');
  }
  try {
    // Constructing a view is the portable detached test (ArrayBuffer#detached needs Node 22).
    new Uint8Array(buffer);
  } catch {
    throw codeError(new TypeError('The "buffer" is detached: the mapping was unmapped or freed'), 'ERR_VFIO_DETACHED');
  }
}

export function checkOffset(buffer: ArrayBuffer, offset: number, width: Width): void {
  if (typeof offset !== 'number' || !Number.isInteger(offset)) {
    throw codeError(new TypeError(`The "offset" argument must be an integer, got ${String(offset)}`), 'ERR_INVALID_ARG_TYPE');
  }
  if (offset < 0 || offset + width > buffer.byteLength) {
    throw codeError(new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${buffer.byteLength - width}. Received ${offset}`), 'ERR_OUT_OF_RANGE');
  }
  if (offset % width !== 0) {
    throw codeError(new RangeError(`The value of "offset" must be a multiple of ${width} for a ${width * 8}-bit access. Received ${offset}`), 'ERR_OUT_OF_RANGE');
  }
}

export function checkValue(value: number | bigint, width: Width): bigint {
  if (width === 8) {
    if (typeof value !== 'bigint') throw codeError(new TypeError('The "value" argument must be a bigint'), 'ERR_INVALID_ARG_TYPE');
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw codeError(new RangeError(`The value of "value" is out of range for 64 bits. Received ${value}`), 'ERR_OUT_OF_RANGE');
    return value;
  }
  const max = 2 ** (width * 8) - 1;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw codeError(new TypeError('The "value" argument must be an integer'), 'ERR_INVALID_ARG_TYPE');
  }
  if (value < 0 || value > max) {
    throw codeError(new RangeError(`The value of "value" is out of range. It must be >= 0 and <= ${max}. Received ${value}`), 'ERR_OUT_OF_RANGE');
  }
  return BigInt(value);
}

/** Plain little-endian access, for buffers that are not fake device mappings (DMA memory). */
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

function codeError<E extends Error>(error: E, code: string): E {
  return Object.assign(error, { code });
}
