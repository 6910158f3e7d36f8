/**
 * The one module that speaks VFIO's wire protocol on top of vfio-bindings:
 * argsz negotiation, capability chains, SET_IRQS data, hot reset fd lists.
 * Struct layouts all come from the bindings' codecs; the other files deal in
 * decoded objects.
 */
import * as b from 'vfio-bindings';
import { VfioError } from '../core/errors';

/** A capability found in an info struct's chain. */
export interface CapabilityRef {
  /** The capability id (its meaning depends on the info struct it came from). */
  id: number;
  /** The capability version. */
  version: number;
  /** Byte offset of its header within the info struct. */
  offset: number;
  /** The constant naming the id, when known ('VFIO_REGION_INFO_CAP_SPARSE_MMAP'). */
  name?: string;
  /** The capability's bytes, header included. */
  bytes: Uint8Array;
}

/** A walked capability with the bindings' decoded value (internal). */
export interface WalkedCapability extends CapabilityRef {
  value?: object;
}

interface InfoHeader {
  argsz: number;
  flags: number;
}

const MAX_INFO_BYTES = 1 << 20;

/**
 * Turns a codec failure on kernel-provided bytes into a VfioError: the
 * caller's arguments were fine, the answer was not.
 */
function protocolError(error: unknown, what: string): unknown {
  if (!b.isBindingsError(error)) return error;
  return new VfioError('ERR_VFIO_PROTOCOL', `${what}: malformed answer: ${(error as Error).message}`);
}

/**
 * Runs an argsz-negotiated query: the kernel raises argsz when the answer
 * (capability chain) does not fit, and the query is asked again with a
 * buffer that large. Returns the decoded header and the bytes.
 */
export function queryInfo<T extends InfoHeader>(
  codec: b.StructCodec<T>,
  request: b.EncodeInput<T>,
  ioctl: (bytes: Uint8Array) => void,
  what: string,
): { info: T; bytes: Uint8Array } {
  let size = codec.size;
  for (let attempt = 0; attempt < 4; attempt++) {
    const bytes = new Uint8Array(size);
    codec.encode({ ...request, argsz: size }, bytes, 0);
    ioctl(bytes);
    const info = codec.decode(bytes, 0);
    if (info.argsz <= size) return { info, bytes };
    if (info.argsz > MAX_INFO_BYTES) break;
    size = info.argsz;
  }
  throw new VfioError('ERR_VFIO_PROTOCOL', `${what}: the kernel kept asking for a larger buffer`);
}

/**
 * Walks a capability chain with the bindings' bounds-checked, loop-proof
 * walker (the offsets come from the kernel, or a fake, and a bad one must
 * become an error rather than a hang).
 */
export function capabilityChain(bytes: Uint8Array, kind: b.CapabilityKind, first: number, what: string): WalkedCapability[] {
  try {
    return b.walkCapabilities(bytes, kind, first).map(({ id, version, offset, name, bytes: capBytes, value }) => {
      const cap: WalkedCapability = { id, version, offset, bytes: capBytes };
      if (name !== undefined) cap.name = name;
      if (value !== undefined) cap.value = value;
      return cap;
    });
  } catch (error) {
    throw protocolError(error, what);
  }
}

/** The public view of a capability (without the internal decoded value). */
export function publicCapability({ id, version, offset, name, bytes }: WalkedCapability): CapabilityRef {
  return name === undefined ? { id, version, offset, bytes } : { id, version, offset, name, bytes };
}

/** Encodes a struct whose first field is argsz, filling argsz. */
export function encodeArg<T extends { argsz: number }>(codec: b.StructCodec<T>, value: b.EncodeInput<T>): Uint8Array {
  const size = codec.encodedSize(value);
  const bytes = new Uint8Array(size);
  codec.encode({ ...value, argsz: size }, bytes, 0);
  return bytes;
}

/** Decodes kernel-written bytes; a malformed answer becomes ERR_VFIO_PROTOCOL. */
export function decodeAnswer<T>(codec: b.StructCodec<T>, bytes: Uint8Array, what: string): T {
  try {
    return codec.decode(bytes, 0);
  } catch (error) {
    throw protocolError(error, what);
  }
}

/** A 4-byte native-endian int, for ioctls that take `int *`. */
export function int32Arg(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return bytes;
}

/** A NUL-terminated string, for VFIO_GROUP_GET_DEVICE_FD. */
export function cString(value: string): Uint8Array {
  const encoded = new TextEncoder().encode(value);
  const bytes = new Uint8Array(encoded.length + 1);
  bytes.set(encoded);
  return bytes;
}

/** struct vfio_irq_set with its data (none, one bool or one eventfd per vector). */
export function irqSet(
  flags: number,
  index: number,
  start: number,
  count: number,
  data?: { fds?: number[]; bools?: boolean[] },
): Uint8Array {
  const args: b.IrqSetArgs = { flags, index, start, count };
  if (data?.fds) args.eventfds = data.fds;
  if (data?.bools) args.bools = data.bools;
  return b.encodeIrqSet(args);
}

/** struct vfio_pci_hot_reset followed by the group fds. */
export function hotResetArg(groupFds: number[]): Uint8Array {
  return encodeArg(b.vfio_pci_hot_reset, { flags: 0, count: groupFds.length, group_fds: groupFds });
}

/** A UUID ('8-4-4-4-12' hex) as the 16 bytes the kernel compares. */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** struct vfio_device_feature with SET | PCI_VF_TOKEN and the token's 16 bytes. */
export function vfTokenFeatureArg(uuid: string): Uint8Array {
  return encodeArg(b.vfio_device_feature, {
    flags: b.VFIO_DEVICE_FEATURE_SET | b.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
    data: [...uuidBytes(uuid)],
  });
}

export { b as bindings };
