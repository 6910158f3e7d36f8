import {
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  vfio_irq_set,
} from '../generated/vfio';
import { checkBytes, checkOffset, viewOf } from './bytes';
import { bindingsRangeError, bindingsTypeError } from './errors';
import { checkScalar, describe, LITTLE_ENDIAN, SCALAR_SIZE } from './scalars';

const S = 'vfio_irq_set';

export interface IrqSetArgs {
  flags: number;
  index: number;
  start: number;
  count: number;
  /** One eventfd per IRQ (-1 de-assigns); implies VFIO_IRQ_SET_DATA_EVENTFD. */
  eventfds?: readonly number[];
  /** One bool per IRQ; implies VFIO_IRQ_SET_DATA_BOOL. */
  bools?: readonly boolean[];
}

export interface DecodedIrqSet {
  argsz: number;
  flags: number;
  index: number;
  start: number;
  count: number;
  eventfds?: number[];
  bools?: boolean[];
}

/**
 * Packs a VFIO_DEVICE_SET_IRQS argument: fills argsz, sets the DATA_* flag from
 * what is given (or checks it when the caller set one) and insists on one data
 * element per IRQ, because the kernel reads exactly `count` of them.
 */
export function encodeIrqSet(args: IrqSetArgs): Uint8Array {
  if (typeof args !== 'object' || args === null) throw bindingsTypeError(S, '(value)', `expected an object, got ${describe(args)}`);
  let flags = checkScalar('u32', args.flags, S, 'flags') as number;
  const count = checkScalar('u32', args.count, S, 'count') as number;
  const { eventfds, bools } = args;
  if (eventfds !== undefined && bools !== undefined) throw bindingsTypeError(S, 'data', 'give eventfds or bools, not both');
  const data = eventfds ?? bools;
  if (data !== undefined && !Array.isArray(data)) throw bindingsTypeError(S, 'data', `expected an array, got ${describe(data)}`);
  const want = eventfds ? VFIO_IRQ_SET_DATA_EVENTFD : bools ? VFIO_IRQ_SET_DATA_BOOL : VFIO_IRQ_SET_DATA_NONE;
  const have = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  if (have === 0) flags = (flags | want) >>> 0;
  else if (have !== want) {
    throw bindingsRangeError(S, 'flags', `DATA_* bits 0x${have.toString(16)} do not match the data given (expected 0x${want.toString(16)})`);
  }
  const action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (action === 0 || (action & (action - 1)) !== 0) {
    throw bindingsRangeError(S, 'flags', 'exactly one VFIO_IRQ_SET_ACTION_* bit must be set');
  }
  if (data && data.length !== count) throw bindingsRangeError(S, 'data', `${data.length} elements given for count ${count}`);

  const elem = eventfds ? SCALAR_SIZE.s32 : bools ? 1 : 0;
  const argsz = vfio_irq_set.size + count * elem * (data ? 1 : 0);
  const bytes = new Uint8Array(argsz);
  vfio_irq_set.encode({ argsz, flags, index: args.index, start: args.start, count }, bytes);
  if (eventfds) writeEventfds(bytes, eventfds, count);
  else if (bools) {
    for (let i = 0; i < count; i++) {
      const b = bools[i];
      if (typeof b !== 'boolean') throw bindingsTypeError(S, `data[${i}]`, `expected a boolean, got ${describe(b)}`);
      bytes[DATA + i] = b ? 1 : 0;
    }
  }
  return bytes;
}

// data[] starts 4-byte aligned in a fresh buffer, so the eventfds can go
// through an Int32Array: host byte order, as the kernel reads them.
const DATA = vfio_irq_set.offsetOf('data');
if (DATA % 4 !== 0) throw new Error(`vfio_irq_set.data at ${DATA} is not 4-byte aligned`);

/**
 * One pass: an inline test accepts the valid fds (integers -1..2^31-1); anything
 * else goes to the same checks, labels and messages as before, built only then.
 * Holes in a sparse array are undefined here and rejected, never written as 0.
 */
function writeEventfds(bytes: Uint8Array, eventfds: readonly number[], count: number): void {
  const fds = new Int32Array(bytes.buffer, bytes.byteOffset + DATA, count);
  for (let i = 0; i < count; i++) {
    const fd = eventfds[i];
    fds[i] = typeof fd === 'number' && (fd | 0) === fd && fd >= -1 ? fd : checkEventfd(fd, i);
  }
}

function checkEventfd(fd: unknown, i: number): number {
  const v = checkScalar('s32', fd, S, `data[${i}]`) as number;
  if (v < -1) throw bindingsRangeError(S, `data[${i}]`, `${v} is not an eventfd (use -1 to de-assign)`);
  return v;
}

/** Reads a vfio_irq_set with its data as the DATA_* flag says; argsz must cover the data and the buffer. */
export function decodeIrqSet(bytes: Uint8Array, offset = 0): DecodedIrqSet {
  checkBytes(bytes, S, '(bytes)');
  checkOffset(offset, S, '(bytes)');
  const head = vfio_irq_set.decode(bytes, offset);
  const { argsz, flags, index, start, count } = head;
  const out: DecodedIrqSet = { argsz, flags, index, start, count };
  const type = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  if (type === VFIO_IRQ_SET_DATA_NONE) return out;
  const elem = type === VFIO_IRQ_SET_DATA_EVENTFD ? 4 : type === VFIO_IRQ_SET_DATA_BOOL ? 1 : -1;
  if (elem < 0) throw bindingsRangeError(S, 'flags', `DATA_* bits 0x${type.toString(16)} name more than one data type`);
  const base = offset + DATA;
  const end = base + count * elem;
  if (end > bytes.length) throw bindingsRangeError(S, 'data', `count ${count} needs ${count * elem} bytes of data, buffer has ${Math.max(0, bytes.length - base)}`);
  if (argsz < end - offset) throw bindingsRangeError(S, 'argsz', `${argsz} does not cover the ${count * elem} bytes of data`);
  const view = viewOf(bytes);
  if (elem === 4) {
    const fds = new Array<number>(count);
    for (let i = 0; i < count; i++) fds[i] = view.getInt32(base + 4 * i, LITTLE_ENDIAN);
    out.eventfds = fds;
  } else {
    const bools = new Array<boolean>(count);
    for (let i = 0; i < count; i++) bools[i] = bytes[base + i] !== 0;
    out.bools = bools;
  }
  return out;
}
