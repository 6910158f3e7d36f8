// Copies of small byte ranges without one ArrayBuffer each. V8 keeps a typed
// array's bytes on its own heap only up to 64 bytes; above that every
// `slice()` mallocs and registers an external backing store, which costs
// about 0.7-1 us, more than decoding a whole capability chain. Like Node's
// Buffer pool, copies are carved out of a shared 8 KiB slab, so each result
// is a real copy (later changes to the source do not show) but its `.buffer`
// is the slab and its byteOffset is usually not 0.
import { LITTLE_ENDIAN } from './scalars';

const SLAB = 8192;
let slab = new ArrayBuffer(SLAB);
let words = new Int32Array(slab);
let used = 0;

/**
 * A copy of bytes[start, end) as a Uint8Array of exactly that length; `view`
 * is a DataView over the same bytes (the caller has one), used to move four
 * bytes at a time in host order.
 */
export function copyRange(bytes: Uint8Array, view: DataView, start: number, end: number): Uint8Array {
  const n = end - start;
  // Larger copies gain nothing from the pool and would waste most of a slab.
  if (n > SLAB / 8) return bytes.slice(start, end);
  if (used + n > SLAB) {
    slab = new ArrayBuffer(SLAB);
    words = new Int32Array(slab);
    used = 0;
  }
  const at = used;
  // Keep the next copy 8-byte aligned, as a fresh ArrayBuffer would be.
  used += (n + 7) & ~7;
  const out = new Uint8Array(slab, at, n);
  const whole = n & ~3;
  for (let i = 0, w = at >> 2; i < whole; i += 4, w++) words[w] = view.getInt32(start + i, LITTLE_ENDIAN);
  for (let i = whole; i < n; i++) out[i] = bytes[start + i];
  return out;
}
