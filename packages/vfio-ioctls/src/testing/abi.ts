/**
 * How the fake reads and writes ioctl arguments: always through the
 * vfio-bindings codecs (sizes and offsets from the C compiler), with the
 * kernel's copy_from_user / copy_to_user discipline: read at most what the
 * caller's buffer holds, write back only the bytes the kernel would.
 */
import { scalarCodec, type ScalarType, type StructCodec } from 'vfio-bindings';
import { Errno } from './errno';

/** The argument of a pointer ioctl; a number where a pointer is due faults, as a bad address would. */
export function pointerArg(arg: number | Uint8Array | undefined): Uint8Array {
  if (!(arg instanceof Uint8Array)) throw new Errno('EFAULT');
  return arg;
}

/** The argument of a by-value ioctl (an extension number, an IOMMU type). */
export function valueArg(arg: number | Uint8Array | undefined): number {
  if (arg === undefined) return 0;
  if (typeof arg !== 'number') throw new Errno('EINVAL');
  return arg;
}

/** offsetofend(struct, field): where the member `field` ends. */
export function offsetOfEnd(codec: StructCodec<any>, field: string): number {
  const info = codec.fields.find((f) => f.name === field);
  if (!info) throw new TypeError(`${codec.name} has no member ${field}`);
  return info.offset + info.size;
}

/**
 * Decodes the fixed members of `codec` from the caller's bytes (missing bytes
 * read as zero). A flexible array is left out: its count is caller input, not
 * something to trust before argsz has been checked.
 */
export function decodeFixed<T>(codec: StructCodec<T>, bytes: Uint8Array): T {
  const scratch = new Uint8Array(codec.size);
  scratch.set(bytes.subarray(0, codec.size));
  const countField = codec.flex?.countField;
  if (!countField) return codec.decode(scratch);
  const info = codec.fields.find((f) => f.name === countField)!;
  const count = scalarCodec(info.element as ScalarType);
  const value = count.decode(scratch, info.offset);
  count.encode(0, scratch, info.offset);
  const out = codec.decode(scratch) as Record<string, unknown>;
  out[countField] = value;
  delete out[codec.flex!.field];
  return out as T;
}

/** The kernel's first checks on an info struct: argsz below minsz is EINVAL; a buffer too short to read minsz faults. */
export function checkArgsz(bytes: Uint8Array, argsz: number, minsz: number): void {
  if (argsz < minsz) throw new Errno('EINVAL');
  if (bytes.length < minsz) throw new Errno('EFAULT');
}

/** copy_to_user of the first `length` bytes of `value` encoded with `codec`. */
export function writeBack<T>(codec: StructCodec<T>, value: Parameters<StructCodec<T>['encode']>[0], target: Uint8Array, length: number): void {
  const scratch = new Uint8Array(Math.max(codec.size, codec.encodedSize(value)));
  codec.encode(value, scratch);
  if (length > target.length) throw new Errno('EFAULT');
  target.set(scratch.subarray(0, length));
}
