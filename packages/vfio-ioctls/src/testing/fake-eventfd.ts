import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { EventfdsWake, Poller } from '../core/backend';
import { closedError } from '../core/errors';
import { Errno, kernelError } from './errno';

/** eventfd(2) flag bits (from <sys/eventfd.h>: EFD_SEMAPHORE, EFD_NONBLOCK = O_NONBLOCK, EFD_CLOEXEC = O_CLOEXEC). */
export const EFD_SEMAPHORE = 0o1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

/**
 * An in-kernel listener on an eventfd's wait queue, as vfio's virqfd: woken
 * (EPOLLIN) by every write or signal, and told (EPOLLHUP) when the last fd
 * on the eventfd is closed.
 */
export interface EventfdWaiter {
  wake(): void;
  hangup(): void;
}

// The counter saturates one below 2^64 - 1; writing 2^64 - 1 itself is EINVAL.
const COUNTER_MAX = 0xffff_ffff_ffff_fffen;

/** An eventfd counter with the kernel's read/write rules and level-triggered pollers. */
export class FakeEventfd {
  private value: bigint;
  private readonly pollers = new Set<FakePoller>();
  private readonly waiters = new Set<EventfdWaiter>();

  constructor(initval: number, readonly semaphore: boolean) {
    this.value = BigInt(initval);
  }

  get counter(): bigint {
    return this.value;
  }

  get readable(): boolean {
    return this.value > 0n;
  }

  /** read(2): the whole counter, or 1 in semaphore mode; EAGAIN when zero (the fd is non-blocking). */
  read(): bigint {
    if (this.value === 0n) throw new Errno('EAGAIN');
    const taken = this.semaphore ? 1n : this.value;
    this.value -= taken;
    return taken;
  }

  /** write(2): adds `value`; EAGAIN where a blocking write would wait for room. */
  write(value: bigint): void {
    if (value < 0n || value > COUNTER_MAX) throw new Errno('EINVAL');
    if (this.value + value > COUNTER_MAX) throw new Errno('EAGAIN');
    this.add(value);
  }

  /** eventfd_signal() from inside the kernel: never fails, saturates. */
  signal(): void {
    this.add(this.value < COUNTER_MAX ? 1n : 0n);
  }

  /** eventfd_ctx_do_read(): what an in-kernel waiter takes, never failing on zero. */
  drain(): bigint {
    const taken = this.semaphore && this.value > 0n ? 1n : this.value;
    this.value -= taken;
    return taken;
  }

  addWaiter(waiter: EventfdWaiter): void {
    this.waiters.add(waiter);
  }

  removeWaiter(waiter: EventfdWaiter): void {
    this.waiters.delete(waiter);
  }

  attach(poller: FakePoller): void {
    this.pollers.add(poller);
  }

  detach(poller: FakePoller): void {
    this.pollers.delete(poller);
  }

  /** The last fd on it was closed: in-kernel waiters hang up, and epoll drops the file from every poller. */
  closed(): void {
    for (const waiter of [...this.waiters]) waiter.hangup();
    for (const poller of [...this.pollers]) poller.eventfdClosed(this);
  }

  private add(value: bigint): void {
    const wasZero = this.value === 0n;
    this.value += value;
    // The kernel wakes its waiters on every write, even of 0; a virqfd drains
    // the counter there, so pollers see only what the waiters left.
    for (const waiter of [...this.waiters]) waiter.wake();
    if (wasZero && this.value > 0n) for (const poller of this.pollers) poller.kick();
  }
}

/**
 * A uv_poll stand-in: level-triggered (it calls back again on the next loop
 * turn while the counter stays non-zero), always asynchronous (setImmediate),
 * and keeps the event loop alive only while started and ref'd. The keep-alive
 * is an idle MessagePort, so no timer ever fires. The base class watches one
 * eventfd and leaves reading it to the callback, as Backend.poll does.
 */
export class FakePoller implements Poller {
  private started = false;
  private refed = true;
  private closed = false;
  private scheduled: NodeJS.Immediate | null = null;
  private keepAlive: MessagePort | null = null;
  protected readonly eventfds: FakeEventfd[];

  constructor(
    eventfds: FakeEventfd | FakeEventfd[],
    private readonly onReadable: (error: Error | null) => void,
    private readonly onClose: () => void = () => {},
  ) {
    this.eventfds = Array.isArray(eventfds) ? [...eventfds] : [eventfds];
    for (const eventfd of this.eventfds) eventfd.attach(this);
  }

  start(): void {
    if (this.closed) throw closedError('poller');
    this.started = true;
    this.updateKeepAlive();
    this.kick();
  }

  stop(): void {
    this.started = false;
    this.cancel();
    this.updateKeepAlive();
  }

  close(): void {
    if (this.closed) return;
    this.stop();
    this.closed = true;
    for (const eventfd of this.eventfds) eventfd.detach(this);
    this.onClose();
  }

  ref(): void {
    this.refed = true;
    this.scheduled?.ref();
    this.updateKeepAlive();
  }

  unref(): void {
    this.refed = false;
    this.scheduled?.unref();
    this.updateKeepAlive();
  }

  /** Whether the poller currently holds the event loop open (for tests of ref/unref). */
  get holdsLoop(): boolean {
    return this.keepAlive !== null;
  }

  /** Schedules a callback when started and readable; one at a time. */
  kick(): void {
    if (!this.started || this.scheduled || !this.readable) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      if (!this.started || !this.readable) return;
      this.fire();
      this.kick();
    });
    if (!this.refed) this.scheduled.unref();
  }

  /** A watched eventfd's last fd was closed: uv_poll on that fd hears EBADF once and stops. */
  eventfdClosed(_eventfd: FakeEventfd): void {
    this.fail(kernelError('EBADF', 'poll'));
  }

  /** Delivers a polling error on the loop and stops. */
  fail(error: Error): void {
    if (!this.started) return;
    this.stop();
    const pending = setImmediate(() => this.onReadable(error));
    if (!this.refed) pending.unref();
  }

  protected get readable(): boolean {
    return this.eventfds.some((eventfd) => eventfd.readable);
  }

  /** One wake-up while readable. */
  protected fire(): void {
    this.onReadable(null);
  }

  private cancel(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = null;
  }

  private updateKeepAlive(): void {
    const want = this.started && this.refed && !this.closed;
    if (want && !this.keepAlive) {
      const { port1 } = new MessageChannel();
      // A port with a listener is an active, ref'd handle; it never receives anything.
      port1.on('message', () => {});
      this.keepAlive = port1;
    } else if (!want && this.keepAlive) {
      this.keepAlive.close(); // closes both ends of the pair
      this.keepAlive = null;
    }
  }
}

/**
 * Backend.watchEventfds' stand-in (one epoll fd under one uv_poll): each
 * wake-up reads every ready eventfd, which resets its counter, and calls back
 * once with the positions and counts. A closed eventfd leaves the set
 * silently, as epoll drops a file whose last fd is closed.
 */
export class FakeEventfdWatcher extends FakePoller {
  private readonly positions = new Map<FakeEventfd, number>();

  /** `read` reads the eventfd at a position as read(2) would (the kernel's fault plan applies). */
  constructor(
    eventfds: FakeEventfd[],
    private readonly onWake: EventfdsWake,
    private readonly read: (position: number) => bigint,
    onClose: () => void,
  ) {
    super(eventfds, (error) => onWake(error, [], []), onClose);
    eventfds.forEach((eventfd, i) => this.positions.set(eventfd, i));
  }

  override eventfdClosed(eventfd: FakeEventfd): void {
    this.positions.delete(eventfd);
    eventfd.detach(this);
  }

  protected override get readable(): boolean {
    for (const eventfd of this.positions.keys()) if (eventfd.readable) return true;
    return false;
  }

  protected override fire(): void {
    const positions: number[] = [];
    const counts: number[] = [];
    let failure: Error | null = null;
    for (const [eventfd, position] of this.positions) {
      if (!eventfd.readable) continue;
      try {
        counts.push(Number(this.read(position)));
        positions.push(position);
      } catch (error) {
        // Reported once per wake-up, after what was read; the fd stays readable.
        if ((error as { code?: string }).code !== 'EAGAIN') failure ??= error as Error;
      }
    }
    if (positions.length > 0 || failure) this.onWake(failure, positions, counts);
  }
}
