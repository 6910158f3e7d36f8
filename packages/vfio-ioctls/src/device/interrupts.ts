import { EventEmitter } from 'node:events';
import { bindings as b } from '../abi/structs';
import type { Poller } from '../core/backend';
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
let deliver: (irqs: Interrupts, i: number, error: Error | null) => void;

type InterruptsArgs = [
  port: IrqPort,
  info: IrqInfo,
  start: number,
  count: number,
  fds: number[],
  unmaskFd: number | undefined,
  pollers: Poller[],
  target: PollTarget,
];

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
const leakedInterrupts = new FinalizationRegistry<{ backend: { close(fd: number): void }; pollers: Poller[]; fds: number[] }>(
  ({ backend, pollers, fds }) => {
    for (const poller of pollers) {
      try {
        poller.close();
      } catch {
        // Nothing to report to.
      }
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
 * signalling an eventfd the library created. Delivers interrupts as
 * 'interrupt' events ({@link InterruptEvent}) and as an async iterator
 * ({@link Interrupts.events}). Watching runs only while something listens,
 * and keeps the process alive then unless unref() was called. disable()
 * (or close(), or closing the device) turns the vectors off and frees the
 * eventfds. Events: 'interrupt', 'error' (polling failed), 'close'.
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
  readonly #fds: number[];
  readonly #unmaskFd: number | undefined;
  readonly #pollers: Poller[];
  #enabled = true;
  #watching = false;
  #refed = true;

  readonly #target: PollTarget;

  static {
    construct = (...args) => new Interrupts(constructKey, ...args);
    deliver = (irqs, i, error) => irqs.#onReadable(i, error);
  }

  private constructor(key: symbol, ...[host, info, start, count, fds, unmaskFd, pollers, target]: InterruptsArgs) {
    if (key !== constructKey) throw illegalConstructor();
    super();
    this.#target = target;
    this.#host = host;
    this.info = info;
    this.index = info.index;
    this.start = start;
    this.count = count;
    this.#fds = fds;
    this.#unmaskFd = unmaskFd;
    this.#pollers = pollers;
    this.on('newListener', (event) => {
      if (event === 'interrupt') this.#watch(true);
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

  /**
   * Fires `vector` from software (VFIO_IRQ_SET_ACTION_TRIGGER with
   * DATA_NONE): the kernel signals its eventfd as the device would. For
   * testing the interrupt path end to end.
   */
  trigger(vector: number = this.start): void {
    this.#checkVector(vector);
    this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, vector, 1);
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
    const unmaskFd = this.#unmaskFd;
    if (unmaskFd !== undefined) {
      const { backend } = this.#host.context;
      kernelCall({ syscall: 'write', device: this.#host.name }, () => backend.eventfdWrite(unmaskFd, 1n));
      return;
    }
    this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_UNMASK, this.index, start, count);
  }

  /** Lets the process exit while only these interrupts are being watched. */
  unref(): this {
    this.#refed = false;
    for (const poller of this.#pollers) poller.unref();
    return this;
  }

  /** Keeps the process alive while watched (the default). */
  ref(): this {
    this.#refed = true;
    for (const poller of this.#pollers) poller.ref();
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
   * vectors, else each vector's eventfd unset) and frees the eventfds.
   * Idempotent. Iterators end; a 'close' event is emitted.
   */
  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    this.#watching = false;
    this.#target.strong = undefined;
    leakedInterrupts.unregister(this);
    const { backend } = this.#host.context;
    const fds = this.#unmaskFd === undefined ? this.#fds : [...this.#fds, this.#unmaskFd];
    try {
      runAll([
        ...this.#pollers.map((poller) => () => poller.close()),
        () => {
          if (this.#host.soleRange(this)) {
            this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, 0, 0);
          } else {
            this.#host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, this.start, this.count, {
              fds: this.#fds.map(() => NO_EVENTFD),
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
    for (const poller of this.#pollers) {
      if (on) {
        poller.start();
        if (!this.#refed) poller.unref();
      } else {
        poller.stop();
      }
    }
  }

  /** The poller of vector start + i reported readiness (or an error). */
  #onReadable(i: number, error: Error | null): void {
    if (!this.#enabled) return;
    if (error) {
      this.emit('error', VfioError.annotate(error, { syscall: 'poll', device: this.#host.name }));
      return;
    }
    let count: bigint;
    try {
      count = this.#host.context.backend.eventfdRead(this.#fds[i]!);
    } catch (readError) {
      if ((readError as { code?: string }).code === 'EAGAIN') return;
      this.emit('error', VfioError.annotate(readError, { syscall: 'read', device: this.#host.name }));
      return;
    }
    const event: InterruptEvent = { index: this.index, vector: this.start + i, count: Number(count) };
    this.emit('interrupt', event);
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

/**
 * @internal For Device.enableIrq(): creates the eventfds, hands them to the
 * kernel (trigger, and for an automasked index a resample eventfd to
 * unmask through), and sets up one poller per vector. Undoes every step
 * when a later one fails. Not exported from the package.
 */
export function enableInterrupts(host: IrqPort, info: IrqInfo, start: number, count: number, resample: boolean): Interrupts {
  const { backend } = host.context;
  const fds: number[] = [];
  const pollers: Poller[] = [];
  let unmaskFd: number | undefined;
  let triggerSet = false;
  const target: PollTarget = {};
  try {
    for (let i = 0; i < count; i++) fds.push(kernelCall({ syscall: 'eventfd', device: host.name }, () => backend.eventfd(0, 0)));
    if (resample && info.automasked && info.maskable && count === 1) {
      unmaskFd = kernelCall({ syscall: 'eventfd', device: host.name }, () => backend.eventfd(0, 0));
    }
    host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, start, count, { fds });
    triggerSet = true;
    if (unmaskFd !== undefined) {
      host.setIrqs(b.VFIO_IRQ_SET_DATA_EVENTFD | b.VFIO_IRQ_SET_ACTION_UNMASK, info.index, start, 1, { fds: [unmaskFd] });
    }
    // Pollers start stopped, so none can fire before `target` is set.
    fds.forEach((fd, i) => {
      pollers.push(kernelCall({ syscall: 'poll', device: host.name }, () => backend.poll(fd, pollCallback(target, i))));
    });
    const irqs = construct(host, info, start, count, fds, unmaskFd, pollers, target);
    target.weak = new WeakRef(irqs);
    leakedInterrupts.register(irqs, { backend, pollers, fds: unmaskFd === undefined ? fds : [...fds, unmaskFd] }, irqs);
    return irqs;
  } catch (error) {
    const steps: (() => void)[] = pollers.map((poller) => () => poller.close());
    if (triggerSet) steps.push(() => host.setIrqs(b.VFIO_IRQ_SET_DATA_NONE | b.VFIO_IRQ_SET_ACTION_TRIGGER, info.index, 0, 0));
    for (const fd of unmaskFd === undefined ? fds : [...fds, unmaskFd]) steps.push(() => backend.close(fd));
    try {
      runAll(steps);
    } catch {
      // The enable failure is the one worth reporting.
    }
    throw error;
  }
}

/**
 * Made outside enableInterrupts on purpose: a closure shares its scope's
 * context with the other closures of that scope, and enable's other closures
 * see the device; this one must see nothing but its PollTarget.
 */
function pollCallback(target: PollTarget, i: number): (error: Error | null) => void {
  return (error) => {
    const irqs = target.strong ?? target.weak?.deref();
    if (irqs) deliver(irqs, i, error);
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
