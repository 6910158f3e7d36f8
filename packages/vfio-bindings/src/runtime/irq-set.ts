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
  let flags = u32(args.flags, 'flags');
  // The kernel (vfio_set_irqs_validate_and_prepare) fails the whole call with
  // EINVAL on any other bit; say which bits here instead.
  const unknown = (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) >>> 0;
  if (unknown !== 0) {
    throw bindingsRangeError(S, 'flags', `unknown bits 0x${unknown.toString(16)} (only VFIO_IRQ_SET_DATA_* and VFIO_IRQ_SET_ACTION_* are defined)`);
  }
  const count = u32(args.count, 'count');
  const { eventfds, bools } = args;
  if (eventfds !== undefined && bools !== undefined) throw bindingsTypeError(S, 'data', 'give eventfds or bools, not both');
  const data = eventfds ?? bools;
  if (data !== undefined && !Array.isArray(data)) throw bindingsTypeError(S, 'data', `expected an array, got ${describe(data)}`);
  const want = eventfds ? VFIO_IRQ_SET_DATA_EVENTFD : bools ? VFIO_IRQ_SET_DATA_BOOL : VFIO_IRQ_SET_DATA_NONE;
  const have = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  if (have === 0) flags = (flags | want) >>> 0;
  else if ((have & (have - 1)) !== 0) {
    // The kernel takes exactly one data type; the check below would reject
    // this too, but without saying why.
    throw bindingsRangeError(S, 'flags', `DATA_* bits 0x${have.toString(16)}: exactly one VFIO_IRQ_SET_DATA_* bit may be set`);
  } else if (have !== want) {
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
  // One Int32Array over the fresh (so 4-byte aligned) buffer for the header
  // and the eventfds: host byte order, as the kernel reads them, and no
  // DataView to create. index and start get the checks encode would apply.
  const words = new Int32Array(bytes.buffer, bytes.byteOffset, argsz >>> 2);
  words[ARGSZ] = argsz;
  words[FLAGS] = flags;
  words[INDEX] = u32(args.index, 'index');
  words[START] = u32(args.start, 'start');
  words[COUNT] = count;
  if (eventfds) {
    writeEventfds(words, eventfds);
  } else if (bools) {
    for (let i = 0; i < count; i++) {
      const b = bools[i];
      if (typeof b !== 'boolean') throw bindingsTypeError(S, `data[${i}]`, `expected a boolean, got ${describe(b)}`);
      bytes[DATA + i] = b ? 1 : 0;
    }
  }
  return bytes;
}

/** The word index of a u32 member of vfio_irq_set, checked once at load against the codec's layout. */
function word(name: string): number {
  const f = vfio_irq_set.fields.find((x) => x.name === name);
  if (!f || f.element !== 'u32' || f.count !== undefined || f.offset % 4 !== 0) throw new Error(`vfio_irq_set.${name} is not an aligned u32`);
  return f.offset / 4;
}
const ARGSZ = word('argsz');
const FLAGS = word('flags');
const INDEX = word('index');
const START = word('start');
const COUNT = word('count');
const DATA = vfio_irq_set.offsetOf('data');
if (DATA % 4 !== 0 || vfio_irq_set.size !== DATA) throw new Error(`vfio_irq_set.data at ${DATA} is not 4-byte aligned at the end`);
const DATA_WORD = DATA / 4;

/** A u32 member as vfio_irq_set.encode checks it (same error), with the common case inline. */
function u32(x: unknown, field: string): number {
  return typeof x === 'number' && x >>> 0 === x ? x : (checkScalar('u32', x, S, field) as number);
}

/**
 * Valid fds (integers -1..2^31-1) pass an inline test; anything else gets the
 * same checks and messages as before, and its label data[i], only then. Holes
 * in a sparse array read as undefined and are rejected, not written as 0.
 * Bounded by the array's own length (equal to count) so V8 drops the bounds
 * check; two per step, which measured as fast as the unchecked DataView loop.
 */
function writeEventfds(words: Int32Array, eventfds: readonly number[]): void {
  const n = eventfds.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = eventfds[i];
    const b = eventfds[i + 1];
    // typeof first: the bit operators must never call valueOf on an object.
    if (typeof a !== 'number' || typeof b !== 'number' || (a | 0) !== a || (b | 0) !== b || a < -1 || b < -1) break;
    words[DATA_WORD + i] = a;
    words[DATA_WORD + i + 1] = b;
  }
  // The odd last one, or from the pair that failed: the first bad fd throws.
  for (; i < n; i++) {
    const fd = eventfds[i];
    words[DATA_WORD + i] = typeof fd === 'number' && (fd | 0) === fd && fd >= -1 ? fd : checkEventfd(fd, i);
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
