import type { Backend } from './backend';
import { closedError, VfioError } from './errors';

interface Leaked {
  backend: Backend;
  fd: number;
}

/**
 * The safety net for handles the program forgot to close. It closes only the
 * raw fd: by the time it runs the handle's dependents may already be gone, so
 * it must not run the ordered close (devices, then group unset, then
 * container); the kernel tolerates fds closed in any order.
 */
const leakedFds = new FinalizationRegistry<Leaked>(({ backend, fd }) => {
  try {
    backend.close(fd);
  } catch {
    // Nothing to report to: the program dropped the handle.
  }
});

/**
 * A handle that owns one fd. After close() the fd number is forgotten, so
 * that no call can reach a number the process may already have reused for
 * another file; every use then throws ERR_VFIO_CLOSED.
 */
export abstract class FdHandle implements Disposable {
  #fd: number;
  #closed = false;
  /** Set during close(), so a dependent that closes its owner re-entrantly is a no-op. */
  #closing = false;
  readonly #what: string;
  protected readonly backend: Backend;

  protected constructor(backend: Backend, fd: number, what: string) {
    this.backend = backend;
    this.#fd = fd;
    this.#what = what;
    leakedFds.register(this, { backend, fd }, this);
  }

  /** True once close() has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True from the start of close() on; new work must not start then. */
  protected get closing(): boolean {
    return this.#closing || this.#closed;
  }

  /** The fd; throws ERR_VFIO_CLOSED after close(). */
  get fd(): number {
    if (this.#closed) throw closedError(this.#what);
    return this.#fd;
  }

  /** Throws ERR_VFIO_CLOSED when closed. */
  protected assertOpen(): void {
    if (this.#closed) throw closedError(this.#what);
  }

  /** What the handle is, for messages: 'container /dev/vfio/vfio'. */
  protected get what(): string {
    return this.#what;
  }

  /**
   * Releases what depends on this handle (subclasses), then closes the fd.
   * Idempotent. The handle counts as closed even if a step fails, because
   * Linux frees the fd number even when close(2) reports an error; the first
   * failure is thrown after every step has run.
   */
  close(): void {
    if (this.#closed || this.#closing) return;
    this.#closing = true;
    const fd = this.#fd;
    const errors: unknown[] = [];
    try {
      this.releaseDependents();
    } catch (error) {
      errors.push(error);
    }
    this.#closed = true;
    this.#fd = -1;
    leakedFds.unregister(this);
    try {
      this.backend.close(fd);
    } catch (error) {
      errors.push(VfioError.annotate(error, { syscall: 'close', ...this.errorContext() }));
    }
    try {
      this.afterClose();
    } catch (error) {
      errors.push(error);
    }
    if (errors.length > 0) throw errors[0];
  }

  /** Runs while the fd is still open: closes children, unmaps, detaches. */
  protected releaseDependents(): void {}

  /** Runs after the fd is closed: tells owners this handle is gone. */
  protected afterClose(): void {}

  /** Operation-independent context for errors: path or device. */
  protected abstract errorContext(): { path?: string; device?: string };

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Runs every step even when some fail, then throws the first failure;
 * release paths use it so that one failed step never leaks the rest.
 */
export function runAll(steps: (() => void)[]): void {
  let first: { error: unknown } | undefined;
  for (const step of steps) {
    try {
      step();
    } catch (error) {
      first ??= { error };
    }
  }
  if (first) throw first.error;
}
