/**
 * iommufd's ioctl argument protocol (iommufd_fops_ioctl in
 * drivers/iommu/iommufd/main.c): the first u32 is the caller's struct size;
 * below the command's minimum it is EINVAL; bytes past what the kernel knows
 * must be zero (copy_struct_from_user: E2BIG); the answer is copied back up
 * to the smaller of the two sizes.
 */
import { scalarCodec, type StructCodec } from 'vfio-bindings';
import { offsetOfEnd, writeBack } from './abi';
import { Errno } from './errno';

export interface Ucmd<T> {
  /** The decoded command; members past the caller's size read as zero. */
  cmd: T;
  /** The caller's `size`. */
  userSize: number;
  bytes: Uint8Array;
}

/** The caller's size, read first (get_user: EFAULT when the buffer cannot hold it). */
export function userSizeOf(bytes: Uint8Array): number {
  if (bytes.length < 4) throw new Errno('EFAULT');
  return Number(scalarCodec('u32').decode(bytes, 0));
}

/** Reads a command whose required members end with `lastField`. */
export function readUcmd<T>(bytes: Uint8Array, codec: StructCodec<T>, lastField: string): Ucmd<T> {
  const userSize = userSizeOf(bytes);
  if (userSize < offsetOfEnd(codec, lastField)) throw new Errno('EINVAL');
  if (bytes.length < userSize) throw new Errno('EFAULT');
  for (let i = codec.size; i < userSize; i++) if (bytes[i] !== 0) throw new Errno('E2BIG');
  const scratch = new Uint8Array(codec.size);
  scratch.set(bytes.subarray(0, Math.min(userSize, codec.size)));
  return { cmd: codec.decode(scratch), userSize, bytes };
}

/** iommufd_ucmd_respond: copies the answer back, no more than the caller's size. */
export function respond<T>(ucmd: Ucmd<T>, codec: StructCodec<T>, value: Parameters<StructCodec<T>['encode']>[0]): void {
  writeBack(codec, value, ucmd.bytes, Math.min(ucmd.userSize, codec.size));
}
