'use strict';
// The hand-written baseline of issue 6 item 6: what a careful programmer
// writes without vfio-bindings, DataView calls at offsets read off vfio.h.
// Kept deliberately plain; the bindings must be at least this fast.

const IRQ_SET_HEADER = 20; // struct vfio_irq_set without data[]
const REGION_INFO_SIZE = 32; // struct vfio_region_info
const CAP_SPARSE_MMAP = 1;
const CAP_TYPE = 2;

/** struct vfio_irq_set followed by one s32 eventfd per vector. */
function encodeIrqSet(flags, index, start, eventfds) {
  const argsz = IRQ_SET_HEADER + 4 * eventfds.length;
  const bytes = new Uint8Array(argsz);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, argsz, true);
  view.setUint32(4, flags, true);
  view.setUint32(8, index, true);
  view.setUint32(12, start, true);
  view.setUint32(16, eventfds.length, true);
  for (let i = 0; i < eventfds.length; i++) view.setInt32(IRQ_SET_HEADER + 4 * i, eventfds[i], true);
  return bytes;
}

/** struct vfio_region_info and the capabilities its cap_offset chain lists. */
function decodeRegionInfo(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const info = {
    argsz: view.getUint32(0, true),
    flags: view.getUint32(4, true),
    index: view.getUint32(8, true),
    cap_offset: view.getUint32(12, true),
    size: view.getBigUint64(16, true),
    offset: view.getBigUint64(24, true),
    caps: [],
  };
  // Offsets are from the start of the struct; 0 ends the chain. The bound
  // and the step check stop a malformed chain from looping or overrunning.
  for (let at = info.cap_offset; at !== 0; ) {
    if (at < REGION_INFO_SIZE || at + 8 > bytes.byteLength) throw new RangeError(`capability at ${at} out of bounds`);
    const id = view.getUint16(at, true);
    const version = view.getUint16(at + 2, true);
    const next = view.getUint32(at + 4, true);
    if (id === CAP_SPARSE_MMAP) {
      const n = view.getUint32(at + 8, true);
      const areas = [];
      for (let i = 0; i < n; i++) {
        const a = at + 16 + 16 * i;
        areas.push({ offset: view.getBigUint64(a, true), size: view.getBigUint64(a + 8, true) });
      }
      info.caps.push({ id, version, next, nr_areas: n, areas });
    } else if (id === CAP_TYPE) {
      info.caps.push({ id, version, next, type: view.getUint32(at + 8, true), subtype: view.getUint32(at + 12, true) });
    } else {
      info.caps.push({ id, version, next });
    }
    if (next !== 0 && next <= at) throw new RangeError(`capability chain goes backwards at ${at}`);
    at = next;
  }
  return info;
}

/**
 * The decoding input: what the kernel answers for a BAR with a sparse mmap
 * capability (four areas) followed by a type capability; built here with
 * DataView so the fixture does not depend on the codec under test.
 */
function regionInfoFixture() {
  const sparseAt = REGION_INFO_SIZE;
  const sparseLen = 16 + 4 * 16;
  const typeAt = sparseAt + sparseLen;
  const total = typeAt + 16;
  const bytes = new Uint8Array(total);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, total, true);
  v.setUint32(4, 0x1 | 0x2 | 0x4 | 0x8, true); // READ | WRITE | MMAP | CAPS
  v.setUint32(8, 0, true);
  v.setUint32(12, sparseAt, true);
  v.setBigUint64(16, 0x100000n, true);
  v.setBigUint64(24, 0n, true);
  v.setUint16(sparseAt, CAP_SPARSE_MMAP, true);
  v.setUint16(sparseAt + 2, 1, true);
  v.setUint32(sparseAt + 4, typeAt, true);
  v.setUint32(sparseAt + 8, 4, true);
  for (let i = 0; i < 4; i++) {
    v.setBigUint64(sparseAt + 16 + 16 * i, BigInt(i * 0x40000), true);
    v.setBigUint64(sparseAt + 24 + 16 * i, 0x3000n, true);
  }
  v.setUint16(typeAt, CAP_TYPE, true);
  v.setUint16(typeAt + 2, 1, true);
  v.setUint32(typeAt + 4, 0, true);
  v.setUint32(typeAt + 8, 0x80008086, true);
  v.setUint32(typeAt + 12, 1, true);
  return bytes;
}

/**
 * A region with no capabilities (edu's BAR0, the common case): the 32
 * bytes of struct vfio_region_info alone, cap_offset 0.
 */
function plainRegionInfoFixture() {
  const bytes = new Uint8Array(REGION_INFO_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, REGION_INFO_SIZE, true);
  v.setUint32(4, 0x1 | 0x2 | 0x4, true); // READ | WRITE | MMAP
  v.setUint32(8, 0, true);
  v.setBigUint64(16, 0x100000n, true);
  v.setBigUint64(24, 0n, true);
  return bytes;
}

module.exports = { encodeIrqSet, decodeRegionInfo, regionInfoFixture, plainRegionInfoFixture };
