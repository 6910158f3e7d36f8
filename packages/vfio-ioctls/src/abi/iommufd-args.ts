/**
 * iommufd's wire protocol: its structs start with `size` (not VFIO's
 * argsz), and some carry pointers to arrays in process memory. Layouts come
 * from vfio-bindings; the iommu/iommufd classes deal in decoded values.
 */
import type { Backend } from '../core/backend';
import { kernelCall } from '../core/context';
import { bindings as b, decodeAnswer } from './structs';

/** Encodes a struct whose first field is `size`, filling it. */
export function encodeSized<T extends { size: number }>(codec: b.StructCodec<T>, value: b.EncodeInput<T>): Uint8Array {
  const bytes = new Uint8Array(codec.size);
  codec.encode({ ...value, size: codec.size } as b.EncodeInput<T>, bytes, 0);
  return bytes;
}

export { decodeAnswer };

/**
 * Runs `use` with page-aligned scratch memory the library owns and its
 * process address, for ioctls that take a pointer to an array (IOVA
 * ranges, hardware info, a VF token). Freed afterwards, even on failure.
 */
export function withUserMemory<T>(backend: Backend, size: number, use: (bytes: Uint8Array, address: bigint) => T): T {
  const page = backend.pageSize();
  const memory = kernelCall({ syscall: 'allocDma' }, () => backend.allocDma(Math.max(page, Math.ceil(size / page) * page)));
  try {
    const address = kernelCall({ syscall: 'addressOf' }, () => backend.addressOf(memory));
    return use(new Uint8Array(memory, 0, size), address);
  } finally {
    kernelCall({ syscall: 'freeDma' }, () => backend.freeDma(memory));
  }
}
