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
import { checkScalar, describe, readScalar, SCALAR_SIZE, writeScalar } from './scalars';

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
  const out = vfio_irq_set.encode({ argsz, flags, index: args.index, start: args.start, count });
  const bytes = new Uint8Array(argsz);
  bytes.set(out);
  const view = viewOf(bytes);
  const base = vfio_irq_set.offsetOf('data');
  if (eventfds) {
    eventfds.forEach((fd, i) => {
      const v = checkScalar('s32', fd, S, `data[${i}]`) as number;
      if (v < -1) throw bindingsRangeError(S, `data[${i}]`, `${v} is not an eventfd (use -1 to de-assign)`);
      writeScalar(view, base + i * elem, 's32', v);
    });
  } else if (bools) {
    bools.forEach((b, i) => {
      if (typeof b !== 'boolean') throw bindingsTypeError(S, `data[${i}]`, `expected a boolean, got ${describe(b)}`);
      bytes[base + i] = b ? 1 : 0;
    });
  }
  return bytes;
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
  const base = offset + vfio_irq_set.offsetOf('data');
  const end = base + count * elem;
  if (end > bytes.length) throw bindingsRangeError(S, 'data', `count ${count} needs ${count * elem} bytes of data, buffer has ${Math.max(0, bytes.length - base)}`);
  if (argsz < end - offset) throw bindingsRangeError(S, 'argsz', `${argsz} does not cover the ${count * elem} bytes of data`);
  const view = viewOf(bytes);
  if (elem === 4) out.eventfds = Array.from({ length: count }, (_, i) => readScalar(view, base + 4 * i, 's32') as number);
  else out.bools = Array.from({ length: count }, (_, i) => bytes[base + i] !== 0);
  return out;
}
