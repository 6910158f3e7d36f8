/**
 * vfio-pci's runtime power management (VFIO_DEVICE_FEATURE
 * LOW_POWER_ENTRY, LOW_POWER_ENTRY_WITH_WAKEUP, LOW_POWER_EXIT, Linux >=
 * 6.0): the device may be put in D3 until it is used again. While low
 * power is entered the kernel revokes mmaps of the device's regions (an
 * access through one would be a SIGBUS), so entry is refused while any
 * region is mapped.
 */
import { featureArg, featureArgWith } from '../abi/feature-args';
import { bindings as b } from '../abi/structs';
import { kernelCall, type VfioContext } from '../core/context';
import { abortError, VfioError } from '../core/errors';
import { FdHandle } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import type { Poller } from '../core/backend';
import { typeError } from '../core/validate';
import { featureFlags, featureIoctl, type FeatureHost } from './features';
import type { Region } from './region';

/** What low power needs of its device. */
export interface LowPowerHost extends FeatureHost {
  /** The device's regions probed so far (their mappings must be gone before entry). */
  mappedRegions(): Region[];
}

/** Only this module holds it: the constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('LowPowerWakeup');

let construct: (context: VfioContext, fd: number, device: string) => LowPowerWakeup;

/**
 * The wake-up eventfd of LOW_POWER_ENTRY_WITH_WAKEUP: the kernel signals
 * it when an access brings the suspended device back (which also ends low
 * power). Closed with exitLowPower() or the device.
 */
export class LowPowerWakeup extends FdHandle {
  /** The device's name. */
  readonly device: string;
  #poller: Poller | undefined;
  readonly #waiters = new Set<() => void>();

  static {
    construct = (context, fd, device) => new LowPowerWakeup(constructKey, context, fd, device);
  }

  private constructor(key: symbol, context: VfioContext, fd: number, device: string) {
    if (key !== constructKey) throw illegalConstructor();
    super(context.backend, fd, `low power wake-up eventfd of ${device}`);
    this.device = device;
  }

  /** Whether the kernel signalled a wake-up since the last check (reads, and so clears, the eventfd). */
  signalled(): boolean {
    const fd = this.fd;
    try {
      return this.backend.eventfdRead(fd) > 0n;
    } catch (error) {
      if ((error as { code?: string }).code === 'EAGAIN') return false;
      throw VfioError.annotate(error, { syscall: 'read', operation: 'eventfd', device: this.device });
    }
  }

  /**
   * Resolves at the next wake-up signal (or one already pending).
   * @throws AbortError when `signal` aborts; ERR_VFIO_CLOSED when closed first.
   */
  wait(options?: { signal?: AbortSignal }): Promise<void> {
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError('options.signal', 'an AbortSignal', signal);
    this.assertOpen();
    if (this.signalled()) return Promise.resolve();
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const done = (error?: unknown) => {
        this.#waiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
        this.#stopIfIdle();
        if (error === undefined) resolve();
        else reject(error);
      };
      const waiter = () => {
        if (this.closed) done(new VfioError('ERR_VFIO_CLOSED', `the low power wake-up eventfd of ${this.device} was closed while waited on`, { device: this.device }));
        else if (this.signalled()) done();
      };
      const onAbort = () => done(abortError(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      this.#startPoller();
    });
  }

  protected errorContext(): { device: string } {
    return { device: this.device };
  }

  protected override releaseDependents(): void {
    this.#poller?.close();
    this.#poller = undefined;
  }

  protected override afterClose(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  #startPoller(): void {
    if (this.#poller) return;
    const fd = this.fd;
    this.#poller = kernelCall({ syscall: 'poll', device: this.device }, () => this.backend.poll(fd, () => {
      for (const waiter of [...this.#waiters]) waiter();
    }));
    this.#poller.start();
  }

  /** Nobody waits: the poller must not keep the process alive. */
  #stopIfIdle(): void {
    if (this.#waiters.size > 0 || !this.#poller) return;
    this.#poller.close();
    this.#poller = undefined;
  }
}

/** Low power is refused while a region is mapped: the kernel would turn each access of the mapping into a SIGBUS. */
function checkNoMappings(host: LowPowerHost): void {
  const mapped = host.mappedRegions().filter((region) => region.mappings().length > 0).map((region) => region.index);
  if (mapped.length > 0) {
    throw new VfioError('ERR_VFIO_BUFFER_MAPPED', `${host.name} has mapped regions (${mapped.join(', ')}): low power revokes their mappings`, {
      device: host.name,
      operation: 'VFIO_DEVICE_FEATURE',
      hint: 'unmap every mapping of the device first (an access to a revoked mapping is a SIGBUS); map again after exitLowPower()',
    });
  }
}

/** LOW_POWER_ENTRY. */
export function enterLowPower(host: LowPowerHost): void {
  checkNoMappings(host);
  featureIoctl(host, 'LOW_POWER_ENTRY', 'set', featureArg(featureFlags('LOW_POWER_ENTRY', 'set')));
}

/** LOW_POWER_ENTRY_WITH_WAKEUP with an eventfd of its own, closed again if the kernel refuses. */
export function enterLowPowerWithWakeup(host: LowPowerHost): LowPowerWakeup {
  checkNoMappings(host);
  const { backend } = host.context;
  const fd = kernelCall({ syscall: 'eventfd', device: host.name }, () => backend.eventfd(0, 0));
  try {
    const arg = featureArgWith(featureFlags('LOW_POWER_ENTRY_WITH_WAKEUP', 'set'), b.vfio_device_low_power_entry_with_wakeup, { wakeup_eventfd: fd, reserved: 0 });
    featureIoctl(host, 'LOW_POWER_ENTRY_WITH_WAKEUP', 'set', arg);
  } catch (error) {
    try {
      backend.close(fd);
    } catch {
      // The refusal is the one worth reporting.
    }
    throw error;
  }
  return construct(host.context, fd, host.name);
}

/** LOW_POWER_EXIT. */
export function exitLowPower(host: FeatureHost): void {
  featureIoctl(host, 'LOW_POWER_EXIT', 'set', featureArg(featureFlags('LOW_POWER_EXIT', 'set')));
}
