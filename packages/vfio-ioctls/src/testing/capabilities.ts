import { vfio_info_cap_header, type StructCodec } from 'vfio-bindings';
import { Errno } from './errno';

/** One capability to put in an info chain: its codec and value (header id and version included). */
export interface CapEntry<T = any> {
  codec: StructCodec<T>;
  value: T;
}

// vfio_info_cap_add() rounds every capability up to 8 bytes so the next header is aligned.
const CAP_ALIGN = 8;

/**
 * Lays out a capability chain the way the kernel does: capabilities follow
 * the fixed info struct (`infoSize` bytes), each rounded up to 8 bytes, and
 * each header's `next` is an offset from the start of the info buffer (0
 * ends the chain). Returns the bytes after the info struct.
 */
export function buildChain(infoSize: number, caps: CapEntry[]): Uint8Array {
  const sizes = caps.map((c) => align(c.codec.encodedSize(c.value)));
  const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  caps.forEach((cap, i) => {
    const next = i + 1 < caps.length ? infoSize + at + sizes[i] : 0;
    const value = cap.codec === vfio_info_cap_header
      ? { ...cap.value, next }
      : { ...cap.value, header: { ...(cap.value as { header: object }).header, next } };
    cap.codec.encode(value, out, at);
    at += sizes[i];
  });
  return out;
}

/**
 * What an INFO ioctl does with a chain, given the caller's argsz: when the
 * buffer is large enough the chain is copied after the struct and its offset
 * returned; otherwise nothing is copied, cap_offset stays 0 and argsz is
 * raised to the size needed (no error, per vfio.h).
 */
export function placeChain(target: Uint8Array, argsz: number, infoSize: number, chain: Uint8Array): { capOffset: number; argsz: number } {
  if (chain.length === 0) return { capOffset: 0, argsz };
  const needed = infoSize + chain.length;
  if (argsz < needed) return { capOffset: 0, argsz: needed };
  if (target.length < needed) throw new Errno('EFAULT');
  target.set(chain, infoSize);
  return { capOffset: infoSize, argsz };
}

/** A header-only capability (MSIX_MAPPABLE has no body). */
export function headerOnly(id: number, version: number): CapEntry {
  return { codec: vfio_info_cap_header, value: { id, version, next: 0 } };
}

function align(n: number): number {
  return Math.ceil(n / CAP_ALIGN) * CAP_ALIGN;
}
