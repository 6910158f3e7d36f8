/**
 * Reusable argument buffers for the fixed-size structs of the hot ioctls
 * (GET_IRQ_INFO, MAP_DMA, UNMAP_DMA). The layout still comes from the
 * vfio-bindings codec, checked once at load; what is skipped per call is the
 * generic encode (a fresh buffer, an object spread, a field table walk with
 * per-field validation). Callers write only values they have already
 * checked, so nothing the codec would refuse can reach the kernel.
 *
 * Reuse is safe per handle: ioctls are synchronous, and every caller reads
 * the answer before its next ioctl on the same buffer.
 */
import type * as b from 'vfio-bindings';

/** A struct's bytes with a little-endian view over them. */
export class ArgBuffer {
  readonly bytes: Uint8Array;
  readonly view: DataView;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
}

/**
 * The offset of `field` in `codec`, asserting its width: a bindings change
 * that moved or widened a field fails at load, not as a bad ioctl.
 */
export function fieldAt(codec: b.StructCodec<unknown>, field: string, width: number): number {
  const info = codec.fields.find((f) => f.name === field);
  if (!info || info.size !== width || info.count !== undefined) {
    throw new Error(`vfio-ioctls: ${codec.name}.${field} is not a ${width}-byte scalar in vfio-bindings`);
  }
  return info.offset;
}
