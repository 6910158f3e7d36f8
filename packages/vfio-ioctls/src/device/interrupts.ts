import { EventEmitter } from 'node:events';
import { bindings as b } from '../abi/structs';
import type { EventfdsWake, Poller } from '../core/backend';
import { EventFd, eventFdBackend } from './event-fd';
import { kernelCall, type VfioContext } from '../core/context';
import { abortError, closedError, VfioError } from '../core/errors';
import { runAll } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import type { IrqInfo } from '../abi/irq-info';
import { checkInteger, checkOptions, rangeError, typeError } from '../core/validate';

/** One delivery of an interrupt vector. */
export interface InterruptEvent {
  /** The IRQ index (VFIO_PCI_MSI_IRQ_INDEX, ...). */
  index: number;
  /** The vector within the index. */
  vector: number;
  /** How many times it fired since the last delivery (the eventfd counter). */
  count: number;
}

/**
 * @internal What Interrupts needs from its device. The device hands over an
 * object of its own making (closures over its private state), so none of
 * this is a method anyone holding the Device can call.
 */
export interface IrqPort {
  readonly name: string;
  readonly context: VfioContext;
  /** VFIO_DEVICE_SET_IRQS; throws ERR_VFIO_CLOSED once the device is closed. */
  setIrqs(flags: number, index: number, start: number, count: number, data?: { fds?: number[]; bools?: boolean[] }): void;
  /** True when `irqs` is the only enabled range of its index. */
  soleRange(irqs: Interrupts): boolean;
  /** `irqs` is disabled. */
  interruptsClosed(irqs: Interrupts): void;
}

const NO_EVENTFD = -1;

const eventsOptionKeys: readonly string[] = ['signal'];

/** Only this module holds it: Interrupts' constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('Interrupts');

// Set by Interrupts' static block, which may reach its private parts.
let construct: (...args: InterruptsArgs) => Interrupts;
let deliver: (irqs: Interrupts, error: Error | null, positions: readonly number[], counts: readonly number[]) => void;
let blockFdsOf: (irqs: Interrupts) => number[];

/** The eventfds of one enabled range: the library's own (polled, closed by it) or the caller's (neither). */
interface RangeEventfds {
  /** One fd per vector. */
  fds: number[];
  /** The caller's EventFds, one per vector, when the caller gave them. */
  supplied?: readonly EventFd[];
  /** The resample (unmask) eventfd of an automasked index. */
  resample?: { fd: number; supplied?: EventFd };
  /** Watches `fds` when they are the library's own. */
  poller?: Poller;
}

type InterruptsArgs = [port: IrqPort, info: IrqInfo, start: number, count: number, eventfds: RangeEventfds, target: PollTarget];

/**
 * How a poller callback reaches its Interrupts: weakly while nobody
 * listens (so a dropped, unwatched Interrupts can be collected), strongly
 * while someone does (so an awaited next() or a listener on an otherwise
 * unreferenced Interrupts still gets its event).
 */
interface PollTarget {
  weak?: WeakRef<Interrupts>;
  strong?: Interrupts;
}

/**
 * The safety net for interrupts the program dropped together with their
 * device: stops the pollers (a started one would keep the process alive
 * for nobody) and closes the eventfds. Never the main path.
 */
const leakedInterrupts = new FinalizationRegistry<{ backend: { close(fd: number): void }; poller?: Poller; fds: number[] }>(
  ({ backend, poller, fds }) => {
    try {
      poller?.close();
    } catch {
      // Nothing to report to.
    }
    for (const fd of fds) {
      try {
        backend.close(fd);
      } catch {
        // Nothing to report to.
      }
    }
  },
);

/**
 * The enabled vectors [start, start + count) of one IRQ index, each
 * signalling an eventfd: one the library created, or one the caller gave
 * (`enableIrq(index, { eventfds })`, a KVM irqfd for instance). The
 * library's own are watched by one poller for the whole range and deliver
 * interrupts as 'interrupt' events ({@link InterruptEvent}) and as an async
 * iterator ({@link Interrupts.events}); the caller's are left to the caller
 * (or KVM) to consume. Watching runs only while something listens, and keeps
 * the process alive then unless unref() was called. disable() (or close(),
 * or closing the device) turns the vectors off and closes the library's own
 * eventfds, never the caller's. Events: 'interrupt', 'error' (polling
 * failed), 'close'.
 */
export class Interrupts extends EventEmitter implements Disposable, AsyncIterable<InterruptEvent> {
  /** The IRQ index. */
  readonly index: number;
  /** First vector. */
  readonly start: number;
  /** Number of vectors. */
  readonly count: number;
  /** The index's info at enable time. */
  readonly info: IrqInfo;
  readonly #host: IrqPort;
  readonly #eventfds: RangeEventfds;
  #enabled = true;
  #watching = false;
  #refed = true;

  readonly #target: PollTarget;

  static {
    construct = (...args) => new Interrupts(constructKey, ...args);
    deliver = (irqs, error, positions, counts) => irqs.#onWake(error, positions, counts);
    blockFdsOf = (irqs) => irqs.#blockFds();
  }

  private constructor(key: symbol, ...[host, info, start, count, eventfds, target]: InterruptsArgs) {
    if (key !== constructKey) throw illegalConstructor();
    super();
    this.#target = target;
    this.#host = host;
    this.info = info;
    this.index = info.index;
    this.start = start;
    this.count = count;
    this.#eventfds = eventfds;
    this.on('newListener', (event) => {
      if (event !== 'interrupt') return;
      if (!this.#eventfds.poller) throw this.#notWatchedError();
      this.#watch(true);
    });
    this.on('removeListener', (event) => {
      if (event === 'interrupt') this.#update();
    });
  }

  /** False once disabled. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** The vector numbers, start to start + count - 1. */
  get vectors(): number[] {
    return Array.from({ length: this.count }, (_, i) => this.start + i);
  }

  /** True when the eventfds are the caller's (`enableIrq(index, { eventfds })`): no 'interrupt' events then. */
  get callerEventfds(): boolean {
    return this.#eventfds.supplied !== undefined;
  }

  /**
   * The fd of the eventfd `vector` signals, to hand to KVM or to poll
   * elsewhere. The library's own eventfd stays the library's: it closes it on
   * disable(), and while 'interrupt' listeners run, it reads (drains) it.
   * @throws RangeError for a vector outside the range; VfioError ERR_VFIO_CLOSED once disabled.
   */
  fd(vector: number = this.start): number {
    this.#checkVector(vector);
    return this.#eventfds.fds[vector - this.start]!;
  }

  /** The fd of the resample (unmask) eventfd of an automasked index (INTx), or undefined when there is none. */
  get resampleFd(): number | undefined {
    if (!this.#enabled) throw closedError(`interrupts of index ${this.index}`);
    return this.#eventfds.resample?.fd;
  }

  /**
   * Fires `vector` from software (VFIO_IRQ_SET_ACTION_TRIGGER with
   * DATA_NONE): the kernel signals its eventfd as the device would. Given a
   * list, fires each of those vectors in one call (DATA_BOOL over the
   * range). For testing the interrupt path end to end.
   */
  trigger(vector: number | readonly number[] = this.start): void {
    if (typeof vector === 'number') {
      this.#checkVector(vector);
      this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, vector, 1);
      return;
    }
    if (!Array.isArray(vector)) throw typeError('vector', 'a vector number or an array of them', vector);
    const bools = new Array<boolean>(this.count).fill(false);
    for (const v of vector) {
      this.#checkVector(v);
      bools[v - this.start] = true;
    }
    this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_BOOL | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, this.start, this.count, { bools });
  }

  /**
   * Masks one vector, or all of them.
   * @throws VfioError ERR_VFIO_UNSUPPORTED when the index cannot be masked (MSI, MSI-X on vfio-pci).
   */
  mask(vector?: number): void {
    const [start, count] = this.#span(vector, 'mask');
    this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_MASK, this.index, start, count);
  }

  /**
   * Unmasks one vector, or all of them. For an automasked index (INTx) this
   * writes the resample eventfd, the way a VMM acknowledges a level interrupt.
   * @throws VfioError ERR_VFIO_UNSUPPORTED when the index cannot be masked.
   */
  unmask(vector?: number): void {
    const [start, count] = this.#span(vector, 'unmask');
    const resample = this.#eventfds.resample;
    if (resample?.supplied) {
      resample.supplied.write(1);
      return;
    }
    if (resample) {
      const { backend } = this.#host.context;
      kernelCall({ syscall: 'write', device: this.#host.name }, () => backend.eventfdWrite(resample.fd, 1n));
      return;
    }
    this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_UNMASK, this.index, start, count);
  }

  /** Lets the process exit while only these interrupts are being watched. */
  unref(): this {
    this.#refed = false;
    this.#eventfds.poller?.unref();
    return this;
  }

  /** Keeps the process alive while watched (the default). */
  ref(): this {
    this.#refed = true;
    this.#eventfds.poller?.ref();
    return this;
  }

  /**
   * The interrupts as an async iterator; ends when the interrupts are
   * disabled, rejects with an AbortError when `signal` aborts, and stops
   * watching when the loop is left.
   */
  events(options?: { signal?: AbortSignal }): AsyncIterableIterator<InterruptEvent> {
    const { signal } = checkOptions('options', options, eventsOptionKeys);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError('options.signal', 'an AbortSignal', signal);
    if (this.#enabled && !this.#eventfds.poller) throw this.#notWatchedError();
    return new EventQueue(this, signal);
  }

  /** Same as events() without a signal: `for await (const event of irqs)`. */
  [Symbol.asyncIterator](): AsyncIterableIterator<InterruptEvent> {
    return this.events();
  }

  /**
   * The next interrupt.
   * @throws AbortError when `signal` aborts; ERR_VFIO_CLOSED when disabled before one arrives.
   */
  async next(options?: { signal?: AbortSignal }): Promise<InterruptEvent> {
    const iterator = this.events(options);
    try {
      const result = await iterator.next();
      if (result.done) throw closedError(`interrupts of index ${this.index}`);
      return result.value;
    } finally {
      await iterator.return?.();
    }
  }

  /**
   * Turns the vectors off (all of the index when these are its only enabled
   * vectors, else each vector's eventfd unset) and closes the library's own
   * eventfds (never the caller's). Idempotent. Iterators end; a 'close'
   * event is emitted.
   */
  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    this.#watching = false;
    this.#target.strong = undefined;
    leakedInterrupts.unregister(this);
    const { backend } = this.#host.context;
    const { poller } = this.#eventfds;
    const fds = ownFds(this.#eventfds);
    try {
      runAll([
        ...(poller ? [() => poller.close()] : []),
        () => {
          if (this.#host.soleRange(this)) {
            this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, 0, 0);
          } else {
            this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, this.start, this.count, {
              fds: this.#eventfds.fds.map(() => NO_EVENTFD),
            });
          }
        },
        ...fds.map((fd) => () => kernelCall({ syscall: 'close', device: this.#host.name }, () => backend.close(fd))),
      ]);
    } finally {
      this.#host.interruptsClosed(this);
      this.emit('close');
    }
  }

  /** Same as disable(). */
  close(): void {
    this.disable();
  }

  /** Same as disable(), for `using`. */
  [Symbol.dispose](): void {
    this.disable();
  }

  #update(): void {
    this.#watch(this.listenerCount('interrupt') > 0);
  }

  #watch(on: boolean): void {
    if (!this.#enabled || on === this.#watching) return;
    this.#watching = on;
    this.#target.strong = on ? this : undefined;
    const { poller } = this.#eventfds;
    if (!poller) return;
    if (on) {
      poller.start();
      if (!this.#refed) poller.unref();
    } else {
      poller.stop();
    }
  }

  /**
   * One wake-up of the poller: it already read (drained) the eventfds that
   * fired, at these positions of the range, these many times each.
   */
  #onWake(error: Error | null, positions: readonly number[], counts: readonly number[]): void {
    for (let i = 0; i < positions.length && this.#enabled; i++) {
      const event: InterruptEvent = { index: this.index, vector: this.start + positions[i]!, count: counts[i]! };
      this.emit('interrupt', event);
    }
    if (error && this.#enabled) this.emit('error', VfioError.annotate(error, { device: this.#host.name }));
  }

  /** Each vector's fd, for re-enabling the whole block; refuses when a caller's eventfd was closed meanwhile. */
  #blockFds(): number[] {
    const closed = this.#eventfds.supplied?.findIndex((eventFd) => eventFd.closed) ?? -1;
    if (closed >= 0) {
      throw new VfioError('ERR_VFIO_CLOSED', `the eventfd given for vector ${this.start + closed} of IRQ index ${this.index} was closed`, {
        operation: 'VFIO_DEVICE_SET_IRQS',
        device: this.#host.name,
        hint: 'growing the block re-enables every enabled vector with its eventfd (VFIO_IRQ_INFO_NORESIZE); disable those vectors first, or keep their eventfds open',
      });
    }
    return this.#eventfds.fds;
  }

  #notWatchedError(): VfioError {
    return new VfioError('ERR_VFIO_UNSUPPORTED', `interrupts of index ${this.index} signal the caller's eventfds, which the library does not watch`, {
      device: this.#host.name,
      hint: "read the EventFds given to enableIrq() yourself, or leave them to KVM; enable without `eventfds` for 'interrupt' events",
    });
  }

  #checkVector(vector: number): void {
    checkInteger('vector', vector, 0, 0xffff_ffff);
    if (!this.#enabled) throw closedError(`interrupts of index ${this.index}`);
    if (vector < this.start || vector >= this.start + this.count) {
      throw rangeError('vector', `must be in [${this.start}, ${this.start + this.count - 1}], got ${vector}`);
    }
  }

  #span(vector: number | undefined, what: string): [number, number] {
    if (vector !== undefined) this.#checkVector(vector);
    else if (!this.#enabled) throw closedError(`interrupts of index ${this.index}`);
    if (!this.info.maskable) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `IRQ index ${this.index} of ${this.#host.name} cannot ${what}`, {
        operation: 'VFIO_DEVICE_SET_IRQS',
        device: this.#host.name,
        hint: 'VFIO_IRQ_INFO_MASKABLE is not set for this index; mask at the device instead',
      });
    }
    return vector === undefined ? [this.start, this.count] : [vector, 1];
  }
}

/** @internal What Device.enableIrq() asks of enableInterrupts, its arguments checked. */
export interface IrqEnableRequest {
  start: number;
  count: number;
  /** For an automasked index: a resample eventfd of the library's (true), the caller's, or none. */
  resample: boolean | EventFd;
  /** The caller's eventfds, one per vector (checked by checkSuppliedEventFds). */
  eventfds?: readonly EventFd[];
  /** Every range of the device enabled now (any index). */
  enabled: readonly Interrupts[];
  /** A PCI device, whose INTx, MSI and MSI-X exclude each other. */
  pci: boolean;
}

/**
 * @internal For Device.enableIrq(): creates the eventfds (unless the caller
 * gave them), hands them to the kernel (trigger, and for an automasked index
 * a resample eventfd to unmask through), and sets up one poller for the
 * library's own. A range beyond the enabled block of a NORESIZE index grows
 * the block. Undoes every step when a later one fails. Not exported from the
 * package.
 */
export function enableInterrupts(host: IrqPort, info: IrqInfo, request: IrqEnableRequest): Interrupts {
  const { backend } = host.context;
  const { start, count, resample, eventfds: supplied } = request;
  const same = request.enabled.filter((other) => other.index === info.index);
  const created: number[] = [];
  const fds: number[] = supplied ? supplied.map((eventFd) => eventFd.fd) : [];
  const range: RangeEventfds = { fds, supplied };
  let triggerSet = false;
  const target: PollTarget = {};
  try {
    const eventfd = (): number => {
      const fd = kernelCall({ syscall: 'eventfd', device: host.name }, () => backend.eventfd(0, 0));
      created.push(fd);
      return fd;
    };
    if (!supplied) for (let i = 0; i < count; i++) fds.push(eventfd());
    if (resample instanceof EventFd) range.resample = { fd: resample.fd, supplied: resample };
    else if (resample && info.automasked && info.maskable && count === 1) range.resample = { fd: eventfd() };
    setTrigger(host, info, request, same, fds);
    triggerSet = true;
    if (range.resample) {
      host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_UNMASK, info.index, start, 1, { fds: [range.resample.fd] });
    }
    // Started only when someone listens, so nothing fires before `target` is set.
    if (!supplied) range.poller = kernelCall({ syscall: 'epoll_ctl', device: host.name }, () => backend.watchEventfds(fds, wakeCallback(target)));
    const irqs = construct(host, info, start, count, range, target);
    target.weak = new WeakRef(irqs);
    leakedInterrupts.register(irqs, { backend, poller: range.poller, fds: created }, irqs);
    return irqs;
  } catch (error) {
    const steps: (() => void)[] = [];
    if (range.poller) steps.push(() => range.poller!.close());
    if (triggerSet) {
      steps.push(() =>
        same.length === 0
          ? host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, 0, 0)
          : host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, start, count, { fds: fds.map(() => NO_EVENTFD) }),
      );
    }
    for (const fd of created) steps.push(() => backend.close(fd));
    try {
      runAll(steps);
    } catch {
      // The enable failure is the one worth reporting.
    }
    throw error;
  }
}

/**
 * Points vectors [start, start + count) at `fds`. Beside enabled vectors of
 * the same index, a range past the enabled block needs the block to grow:
 * with VFIO_IRQ_INFO_NORESIZE the kernel allocated the block at enable time,
 * so the whole index is disabled and enabled again at the new size with
 * every enabled vector's eventfd (as QEMU does; an interrupt in between may
 * be lost); without it (dynamic MSI-X, vfio-pci on Linux 6.5 and later) the
 * kernel adds the vectors itself.
 */
function setTrigger(host: IrqPort, info: IrqInfo, request: IrqEnableRequest, same: readonly Interrupts[], fds: number[]): void {
  const { start, count } = request;
  const blockEnd = Math.max(0, ...same.map((other) => other.start + other.count));
  let blockLost = false;
  const set = (first: number, data: number[]): void =>
    host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, first, data.length, { fds: data });
  try {
    if (same.length === 0 || start + count <= blockEnd || !info.noresize) {
      set(start, fds);
      return;
    }
    // Overlaps were refused before, so the new range starts at or past blockEnd.
    const block: number[] = new Array<number>(start + count).fill(NO_EVENTFD);
    for (const other of same) blockFdsOf(other).forEach((fd, i) => (block[other.start + i] = fd));
    const old = block.slice(0, blockEnd);
    fds.forEach((fd, i) => (block[start + i] = fd));
    host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, 0, 0);
    try {
      set(0, block);
    } catch (error) {
      try {
        set(0, old);
      } catch {
        // Neither block: the index stays off, so its enabled ranges are
        // disabled too (their own eventfds closed) rather than left claiming
        // vectors the kernel no longer signals.
        blockLost = true;
        for (const other of [...same]) {
          try {
            other.disable();
          } catch {
            // The index is already off; the growth failure is the one worth reporting.
          }
        }
      }
      throw error;
    }
  } catch (error) {
    throw enableError(error, host, info, request, same, blockEnd, blockLost);
  }
}

/**
 * The kernel answers EINVAL for several causes; the hint names the one
 * that applies: another of INTx, MSI and MSI-X enabled, or a range the
 * enabled block could not take, or the range itself.
 */
function enableError(error: unknown, host: IrqPort, info: IrqInfo, request: IrqEnableRequest, same: readonly Interrupts[], blockEnd: number, blockLost = false): unknown {
  if ((error as { code?: string }).code !== 'EINVAL') return error;
  const { start, count } = request;
  const vectors = `vectors ${start}-${start + count - 1}`;
  const exclusive = (index: number): boolean => request.pci && index <= 2;
  const other = exclusive(info.index) ? request.enabled.find((irqs) => irqs.index !== info.index && exclusive(irqs.index)) : undefined;
  let hint: string;
  if (other) {
    hint = `IRQ index ${other.index} is enabled and INTx, MSI and MSI-X exclude each other; disable it first`;
  } else if (same.length > 0 && start + count > blockEnd) {
    hint = info.noresize
      ? `the block of IRQ index ${info.index} (vectors 0-${blockEnd - 1}) was disabled and enabled again with ${vectors} (VFIO_IRQ_INFO_NORESIZE), and the kernel refused the larger block`
      : `the kernel could not add ${vectors} to the enabled vectors of IRQ index ${info.index} (dynamic MSI-X)`;
    if (blockLost) hint += `; enabling the old block again failed too, so its vectors (0-${blockEnd - 1}) are disabled and their Interrupts closed`;
  } else {
    hint = `the kernel refused ${vectors} of IRQ index ${info.index} (it reports ${info.count} vectors)`;
  }
  return VfioError.fromErrno((error as { errno: number }).errno, { operation: 'VFIO_DEVICE_SET_IRQS', device: host.name, hint });
}

/**
 * @internal Checks Device.enableIrq's `eventfds` and `resample` options:
 * EventFds made with the device's backend, still open, one per vector.
 */
export function checkSuppliedEventFds(eventfds: unknown, resample: unknown, count: number | undefined, backend: unknown): { eventfds?: EventFd[]; resample: boolean | EventFd } {
  const check = (name: string, value: unknown): EventFd => {
    if (!(value instanceof EventFd)) throw typeError(name, 'an EventFd', value);
    if (value.closed) throw new VfioError('ERR_VFIO_CLOSED', `${name} is a closed EventFd`);
    if (eventFdBackend(value) !== backend) throw rangeError(name, 'is an EventFd of another backend than the device\'s', 'ERR_INVALID_ARG_VALUE');
    return value;
  };
  let list: EventFd[] | undefined;
  if (eventfds !== undefined) {
    if (!Array.isArray(eventfds)) throw typeError('options.eventfds', 'an array of EventFd', eventfds);
    list = eventfds.map((value, i) => check(`options.eventfds[${i}]`, value));
    if (list.length === 0 || (count !== undefined && list.length !== count)) {
      throw rangeError('options.eventfds', `must hold one EventFd per vector (${count ?? 'at least 1'}), got ${list.length}`);
    }
  }
  if (resample === undefined) return { eventfds: list, resample: true };
  if (typeof resample === 'boolean') return { eventfds: list, resample };
  return { eventfds: list, resample: check('options.resample', resample) };
}

/** The fds the library created for a range (its own eventfds and resample eventfd), which it closes. */
function ownFds(range: RangeEventfds): number[] {
  const fds = range.supplied ? [] : [...range.fds];
  if (range.resample && !range.resample.supplied) fds.push(range.resample.fd);
  return fds;
}

/**
 * Made outside enableInterrupts on purpose: a closure shares its scope's
 * context with the other closures of that scope, and enable's other closures
 * see the device; this one must see nothing but its PollTarget.
 */
function wakeCallback(target: PollTarget): EventfdsWake {
  return (error, positions = [], counts = []) => {
    const irqs = target.strong ?? target.weak?.deref();
    if (irqs) deliver(irqs, error, positions, counts);
  };
}

/** The async iterator behind Interrupts.events(): a queue fed by the emitter. */
class EventQueue implements AsyncIterableIterator<InterruptEvent> {
  readonly #irqs: Interrupts;
  readonly #signal: AbortSignal | undefined;
  readonly #queue: InterruptEvent[] = [];
  readonly #waiters: { resolve: (r: IteratorResult<InterruptEvent>) => void; reject: (e: unknown) => void }[] = [];
  #failure: unknown;
  #done = false;
  readonly #onEvent = (event: InterruptEvent): void => {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve({ value: event, done: false });
    else this.#queue.push(event);
  };
  readonly #onError = (error: unknown): void => this.#finish(error);
  readonly #onClose = (): void => this.#finish();
  readonly #onAbort = (): void => this.#finish(abortError(this.#signal!));

  constructor(irqs: Interrupts, signal: AbortSignal | undefined) {
    this.#irqs = irqs;
    this.#signal = signal;
    if (signal?.aborted) {
      this.#done = true;
      this.#failure = abortError(signal);
      return;
    }
    if (!irqs.enabled) {
      this.#done = true;
      return;
    }
    // An iterator is an 'interrupt' listener like any other, so it starts
    // the watching (and keeps the process alive) while it is open.
    irqs.on('interrupt', this.#onEvent);
    irqs.on('error', this.#onError);
    irqs.on('close', this.#onClose);
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  next(): Promise<IteratorResult<InterruptEvent>> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve({ value: queued, done: false });
    if (this.#failure !== undefined) {
      const failure = this.#failure;
      this.#failure = undefined;
      return Promise.reject(failure);
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  return(): Promise<IteratorResult<InterruptEvent>> {
    this.#queue.length = 0;
    this.#finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<InterruptEvent> {
    return this;
  }

  #finish(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#irqs.off('interrupt', this.#onEvent);
    this.#irqs.off('error', this.#onError);
    this.#irqs.off('close', this.#onClose);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    const waiters = this.#waiters.splice(0);
    if (error !== undefined && waiters.length === 0) this.#failure = error;
    for (const waiter of waiters) {
      if (error !== undefined) waiter.reject(error);
      else waiter.resolve({ value: undefined, done: true });
    }
  }
}
