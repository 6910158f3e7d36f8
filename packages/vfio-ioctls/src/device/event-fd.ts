import type { Backend } from '../core/backend';
import type { VfioOptions } from '../core/context';
import { kernelCall, VfioContext, vfioOptionKeys, vfioOptionsOf } from '../core/context';
import { VfioError } from '../core/errors';
import { FdHandle } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkBoolean, checkInteger, checkOptions, checkU64 } from '../core/validate';

/** Options of {@link EventFd.create}. */
export interface EventFdOptions extends VfioOptions {
  /** The counter's first value (default 0). */
  initval?: number;
  /** EFD_SEMAPHORE: each read takes 1 rather than the whole counter (default false). */
  semaphore?: boolean;
}

const eventFdOptionKeys: readonly string[] = [...vfioOptionKeys, 'initval', 'semaphore'];

// eventfd(2)'s flag; not imported from core/native, which loads the addon and must load only when a call needs it.
const EFD_SEMAPHORE = 1;

/** Only this module holds it: EventFd's constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('EventFd');

// Set by EventFd's static block, which may reach its protected parts.
let backendOf: (eventFd: EventFd) => Backend;

/**
 * An eventfd(2) the caller owns: a counter the kernel and userspace signal
 * each other through. Hand it to {@link Device.enableIrq} (`eventfds`,
 * `resample`) so a device interrupt signals it with no userspace hop, and
 * give its `fd` to KVM (KVM_IRQFD, its resamplefd, KVM_IOEVENTFD) through
 * the unsafe subpath. Always close-on-exec and non-blocking. close() (or
 * `using`) closes it once; the kernel keeps what it registered working
 * until it is unregistered.
 */
export class EventFd extends FdHandle {

  /**
   * A new eventfd.
   * @throws RangeError for an initval outside [0, 2^32 - 1]; VfioError from eventfd(2) (EMFILE, ...).
   */
  static create(options?: EventFdOptions): EventFd {
    const opts = checkOptions('options', options, eventFdOptionKeys);
    const initval = opts.initval === undefined ? 0 : checkInteger('options.initval', opts.initval, 0, 0xffff_ffff);
    const semaphore = opts.semaphore === undefined ? false : checkBoolean('options.semaphore', opts.semaphore);
    const { backend } = VfioContext.from(vfioOptionsOf(opts));
    const fd = kernelCall({ syscall: 'eventfd' }, () => backend.eventfd(initval, semaphore ? EFD_SEMAPHORE : 0));
    return new EventFd(constructKey, backend, fd);
  }

  private constructor(key: symbol, backend: Backend, fd: number) {
    if (key !== constructKey) throw illegalConstructor();
    super(backend, fd, 'eventfd');
  }

  protected errorContext(): Record<string, never> {
    return {};
  }

  /**
   * Adds `value` (default 1) to the counter, waking whoever waits on it.
   * @throws RangeError for a value outside [1, 2^64 - 2]; VfioError EAGAIN when the counter would overflow.
   */
  write(value: number | bigint = 1): void {
    const add = checkU64('value', value, 1n, 0xffff_ffff_ffff_fffen);
    const fd = this.fd;
    kernelCall({ syscall: 'write' }, () => this.backend.eventfdWrite(fd, add));
  }

  /** Takes the counter (or 1 of it, in semaphore mode) and returns it; 0n when it is zero (never blocks). */
  read(): bigint {
    const fd = this.fd;
    try {
      return this.backend.eventfdRead(fd);
    } catch (error) {
      if ((error as { code?: string }).code === 'EAGAIN') return 0n;
      throw VfioError.annotate(error, { syscall: 'read' });
    }
  }

  static {
    backendOf = (eventFd) => eventFd.backend;
  }
}

/** @internal The backend an EventFd was made with: its fd number means nothing to another backend. Not exported from the package. */
export function eventFdBackend(eventFd: EventFd): Backend {
  return backendOf(eventFd);
}
