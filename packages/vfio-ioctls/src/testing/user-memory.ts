import { Errno } from './errno';
import type { FakeAddressSpace } from './fake-memory';

const PROT_WRITE = 2;

/**
 * copy_from_user / copy_to_user through a pointer inside an ioctl struct
 * (an array of IOVA ranges, a hardware-info buffer, a VF token): the bytes
 * of process memory at `address`, which must be one live allocDma area (the
 * only memory whose address the program can take), writable when the kernel
 * writes. Anything else faults: EFAULT.
 */
export function userBytes(memory: FakeAddressSpace, address: bigint, length: number, write: boolean): Uint8Array {
  if (length === 0) return new Uint8Array(0);
  const area = memory.find(address, BigInt(length));
  if (!area || area.kind !== 'dma' || (write && !(area.prot & PROT_WRITE))) throw new Errno('EFAULT');
  const at = Number(address - area.base);
  if (at + length > area.buffer.byteLength) throw new Errno('EFAULT');
  return new Uint8Array(area.buffer, at, length);
}
