/**
 * VFIO_DEVICE_FEATURE's wire form: struct vfio_device_feature (argsz,
 * flags: the feature index and PROBE/GET/SET) followed by the feature's own
 * struct in `data`, encoded with that struct's vfio-bindings codec.
 */
import { bindings as b, decodeAnswer } from './structs';

/** Bytes before a feature's data. */
export const FEATURE_HEADER = b.vfio_device_feature.size;

/** The header of a feature request with room for `dataSize` bytes of data (zeroed). */
export function featureArg(flags: number, dataSize = 0): Uint8Array {
  const bytes = new Uint8Array(FEATURE_HEADER + dataSize);
  b.vfio_device_feature.encode({ argsz: bytes.length, flags }, bytes, 0);
  return bytes;
}

/** A feature request whose data is `value` in `codec`'s layout. */
export function featureArgWith<T>(flags: number, codec: b.StructCodec<T>, value: b.EncodeInput<T>): Uint8Array {
  const bytes = featureArg(flags, codec.size);
  codec.encode(value, bytes, FEATURE_HEADER);
  return bytes;
}

/** The data the kernel wrote back into a feature request, decoded with `codec`. */
export function featureAnswer<T>(codec: b.StructCodec<T>, arg: Uint8Array, what: string): T {
  return decodeAnswer(codec, arg.subarray(FEATURE_HEADER), what);
}

/** struct vfio_precopy_info with argsz filled, for VFIO_MIG_GET_PRECOPY_INFO on a data fd. */
export function precopyInfoArg(): Uint8Array {
  const bytes = new Uint8Array(b.vfio_precopy_info.size);
  b.vfio_precopy_info.encode({ argsz: bytes.length, flags: 0, initial_bytes: 0n, dirty_bytes: 0n }, bytes, 0);
  return bytes;
}

/** struct vfio_device_ioeventfd: a write of `width` bytes of `data` at device fd offset `offset` on each signal of `fd` (-1: remove). */
export function ioeventfdArg(offset: bigint, data: bigint, width: 1 | 2 | 4 | 8, fd: number): Uint8Array {
  const bytes = new Uint8Array(b.vfio_device_ioeventfd.size);
  const flags = { 1: b.VFIO_DEVICE_IOEVENTFD_8, 2: b.VFIO_DEVICE_IOEVENTFD_16, 4: b.VFIO_DEVICE_IOEVENTFD_32, 8: b.VFIO_DEVICE_IOEVENTFD_64 }[width];
  b.vfio_device_ioeventfd.encode({ argsz: bytes.length, flags, offset, data, fd, reserved: 0 }, bytes, 0);
  return bytes;
}
