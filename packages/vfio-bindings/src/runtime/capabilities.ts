import { CAPABILITY_TABLE, type CapabilityKind } from '../capability-table';
import { vfio_info_cap_header } from '../generated/vfio';
import { checkBytes, checkOffset, viewOf } from './bytes';
import { internals } from './codec';
import { copyRange } from './copy-pool';
import { bindingsRangeError, bindingsTypeError } from './errors';
import { describe, LITTLE_ENDIAN } from './scalars';

export interface Capability {
  id: number;
  version: number;
  /** Offset of the capability from the start of the info struct (bytes[0]). */
  offset: number;
  /** The header's next pointer as read (0 ends the chain). */
  next: number;
  /** The constant naming the id, when the id is known for this kind. */
  name?: string;
  /** Decoded with the struct for this kind and id (flexible arrays included). */
  value?: object;
  /** The capability's bytes: the decoded struct, or for an unknown id up to the next capability or the end. */
  bytes: Uint8Array;
}

const H = 'vfio_info_cap_header';

/** Offset of a member of vfio_info_cap_header, checked once at load against the codec's layout. */
function member(name: string, type: 'u16' | 'u32'): number {
  const f = vfio_info_cap_header.fields.find((x) => x.name === name);
  if (!f || f.element !== type || f.count !== undefined) throw new Error(`vfio_info_cap_header.${name} is not a ${type}`);
  return f.offset;
}
const EMPTY = new DataView(new ArrayBuffer(0));
// The header is read in place, without building an object for it.
const ID = member('id', 'u16');
const VERSION = member('version', 'u16');
const NEXT = member('next', 'u32');

/** The error for a bad pointer in the chain, naming that pointer; its text is built only here, on failure. */
function chainError(infoName: string, from: number, offset: number, msg: string): RangeError {
  const pointer = from < 0 ? `${infoName}.cap_offset` : `${H}.next at ${from}`;
  return bindingsRangeError(from < 0 ? infoName : H, from < 0 ? 'cap_offset' : 'next', `${msg} (${pointer} = ${offset})`);
}

/**
 * Walks the capability chain of a vfio_region_info, vfio_device_info or
 * vfio_iommu_type1_info returned by the kernel. Everything is checked against
 * min(argsz, bytes.length): offsets must lie past the fixed struct, be
 * aligned, fit whole, and no capability may overlap another, so a loop or a
 * truncated entry is an error rather than a hang or an out-of-bounds read.
 */
export function walkCapabilities(bytes: Uint8Array, kind: CapabilityKind, firstOffset: number, argsz?: number): Capability[] {
  checkBytes(bytes, H, '(bytes)');
  const table = Object.prototype.hasOwnProperty.call(CAPABILITY_TABLE, kind) ? CAPABILITY_TABLE[kind] : undefined;
  if (!table) throw bindingsTypeError(H, '(kind)', `expected 'region', 'device' or 'iommu_type1', got ${describe(kind)}`);
  const infoName = table.info.name;
  checkOffset(firstOffset, infoName, 'cap_offset', 'firstOffset');
  let limit = bytes.length;
  if (argsz !== undefined) {
    checkOffset(argsz, infoName, 'argsz', 'argsz');
    limit = Math.min(limit, argsz);
  }
  // One DataView for the whole walk; every struct's own bounds check is
  // against the limit, min(argsz, bytes.length), not the view's length.
  // (A detached buffer has limit 0: no view, and the checks below reject any offset.)
  const view = limit > 0 ? viewOf(bytes) : EMPTY;
  const caps: Capability[] = [];
  const taken: number[] = []; // start, end pairs
  let offset = firstOffset;
  let from = -1; // where the pointer being followed was read: -1 for cap_offset

  while (offset !== 0) {
    if (offset < table.info.size) throw chainError(infoName, from, offset, `points inside ${infoName}, which is ${table.info.size} bytes`);
    if (offset % vfio_info_cap_header.align !== 0) throw chainError(infoName, from, offset, `is not aligned to ${vfio_info_cap_header.align}`);
    if (offset + vfio_info_cap_header.size > limit) {
      throw chainError(infoName, from, offset, `leaves no room for a capability header before the end (${limit} bytes${argsz !== undefined ? ', argsz included' : ''})`);
    }
    const id = view.getUint16(offset + ID, LITTLE_ENDIAN);
    const version = view.getUint16(offset + VERSION, LITTLE_ENDIAN);
    const next = view.getUint32(offset + NEXT, LITTLE_ENDIAN);
    const entry = table.caps.get(id);
    let value: Record<string, unknown> | undefined;
    let end: number;
    if (entry && entry.codec) {
      // The struct's own decode bounds-checks it and its flexible array.
      const codec = internals(entry.codec);
      const decoded: Record<string, unknown> = codec.decodeView(view, limit, offset);
      value = decoded;
      end = offset + codec.extent(decoded);
    } else {
      end = offset + vfio_info_cap_header.size;
    }
    for (let i = 0; i < taken.length; i += 2) {
      const s = taken[i];
      const e = taken[i + 1];
      if (offset < e && s < end) {
        throw chainError(infoName, from, offset, offset === s ? 'loops back to a capability already read' : `overlaps the capability at ${s}..${e}`);
      }
    }
    taken.push(offset, end);
    // An unknown capability's length is not known: hand back up to the next
    // one (when it follows) or to the end of the data.
    const sliceEnd = value ? end : next > offset ? Math.min(next, limit) : limit;
    const copy = copyRange(bytes, view, offset, sliceEnd);
    // Whole literals (same key order as before): no shape change per added key.
    if (!entry) caps.push({ id, version, offset, next, bytes: copy });
    else if (!value) caps.push({ id, version, offset, next, bytes: copy, name: entry.name });
    else caps.push({ id, version, offset, next, bytes: copy, name: entry.name, value });
    from = offset;
    offset = next;
  }
  return caps;
}
