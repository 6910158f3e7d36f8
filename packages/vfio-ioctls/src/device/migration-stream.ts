/**
 * A migration data session: the fd an arc into PRE_COPY, PRE_COPY_P2P,
 * STOP_COPY or RESUMING returns, read to its end while saving and written
 * while resuming, as a Node Readable (and async iterator) or Writable with
 * the streams' own backpressure. The fd has no file offsets (the kernel
 * opens it with stream_open), so it is read and written with read(2) and
 * write(2); each call moves data the driver already holds, so the calls are
 * synchronous, made only when the stream asks for more.
 */
import { Readable, Writable } from 'node:stream';
import { bindings as b, decodeAnswer } from '../abi/structs';
import { precopyInfoArg } from '../abi/feature-args';
import { kernelCall, type VfioContext } from '../core/context';
import { VfioError } from '../core/errors';
import { FdHandle } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkBytes, checkInteger, checkOptions, optionKeys } from '../core/validate';
import type { MigrationState } from './migration-path';

/** Which way a session's data flows. */
export type MigrationSessionKind = 'saving' | 'resuming';

/** VFIO_MIG_GET_PRECOPY_INFO: estimates of what PRE_COPY still has to send. */
export interface PrecopyInfo {
  /** Initial data not yet read (leave PRE_COPY for STOP_COPY once it is 0). */
  initialBytes: bigint;
  /** Data the device changed since it was read. */
  dirtyBytes: bigint;
}

/** Options of {@link MigrationSession.createReadStream} and {@link MigrationSession.createWriteStream}. */
export interface MigrationStreamOptions {
  /** The stream's buffer limit in bytes (default 64 KiB): the backpressure threshold. */
  highWaterMark?: number;
}

const streamOptionKeys = optionKeys<MigrationStreamOptions>({ highWaterMark: true });
const DEFAULT_CHUNK = 64 * 1024;
/** Linux's ENOMSG (the same on every architecture VFIO runs on): PRE_COPY's "no data for now". */
const ENOMSG = 42;
const MAX_CHUNK = 16 * 1024 * 1024;

/** Only this module holds it: the constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('MigrationSession');

/** @internal What the Migration that opened a session tells it, and hears from it. */
export interface SessionPort {
  /** The device moved to `state` (the session's fd still belongs to it). */
  stateChanged(state: MigrationState): void;
  /** The kernel ended the session (its state was left, the device was reset or closed): close the fd. */
  end(reason: string): void;
}

let construct: (context: VfioContext, fd: number, device: string, kind: MigrationSessionKind, state: MigrationState, closed: () => void) => { session: MigrationSession; port: SessionPort };

/**
 * The fd of one migration data session. Saving: read it to its end (read(),
 * the async iterator, or createReadStream()); in PRE_COPY the end is only
 * for now (the stream waits, and goes on once the device moves to
 * STOP_COPY or precopyInfo() reports more). Resuming: write the saved
 * stream into it (write() or createWriteStream()). The Migration closes it
 * when the device leaves the session's states; a save not read to its end
 * then fails its stream.
 */
export class MigrationSession extends FdHandle {
  /** 'saving' (PRE_COPY, PRE_COPY_P2P, STOP_COPY) or 'resuming' (RESUMING). */
  readonly kind: MigrationSessionKind;
  /** The device's name. */
  readonly device: string;
  #state: MigrationState;
  #transferred = 0;
  #complete = false;
  #readable: Readable | undefined;
  #writable: Writable | undefined;
  /** A stream read that found no data in PRE_COPY, waiting to be tried again. */
  #waiting: number | undefined;
  /** Where reads land before the bytes read are copied out to the stream. */
  #scratch: Uint8Array | undefined;
  readonly #onClosed: () => void;

  static {
    construct = (context, fd, device, kind, state, closed) => {
      const session = new MigrationSession(constructKey, context, fd, device, kind, state, closed);
      return {
        session,
        port: {
          stateChanged: (next) => session.#stateChanged(next),
          end: (reason) => session.#end(reason),
        },
      };
    };
  }

  private constructor(key: symbol, context: VfioContext, fd: number, device: string, kind: MigrationSessionKind, state: MigrationState, closed: () => void) {
    if (key !== constructKey) throw illegalConstructor();
    super(context.backend, fd, `migration ${kind} session of ${device}`);
    this.kind = kind;
    this.device = device;
    this.#state = state;
    this.#onClosed = closed;
  }

  /** Bytes read (saving) or written (resuming) so far. */
  get transferred(): number {
    return this.#transferred;
  }

  /** Saving: the end of the stream was read in STOP_COPY (the whole device state is out). */
  get complete(): boolean {
    return this.#complete;
  }

  /**
   * One read(2) of up to `buffer.length` bytes. Returns the byte count; 0
   * at the end of the stream, or in PRE_COPY when no data is there for now
   * (the kernel's ENOMSG, or 0 from drivers that answer so).
   * @throws VfioError from the kernel (ENODEV once the session has ended).
   */
  read(buffer: Uint8Array): number {
    checkBytes('buffer', buffer);
    this.#checkKind('saving', 'read');
    const fd = this.fd;
    let count: number;
    try {
      count = this.backend.read(fd, buffer);
    } catch (error) {
      // ENOMSG has no libuv name (its code is 'E42'): compare the errno.
      if ((error as { errno?: number }).errno === -ENOMSG && this.#inPreCopy) return 0;
      throw VfioError.annotate(error, { syscall: 'read', operation: 'migration data', device: this.device });
    }
    this.#transferred += count;
    if (count === 0 && buffer.length > 0 && this.#state === 'STOP_COPY') this.#complete = true;
    return count;
  }

  /**
   * Writes all of `bytes` (write(2) until done).
   * @throws VfioError from the kernel: the driver refuses data it cannot
   *   take (a stream from another kind of device, more than it expects).
   */
  write(bytes: Uint8Array): number {
    checkBytes('bytes', bytes);
    this.#checkKind('resuming', 'write');
    const fd = this.fd;
    let done = 0;
    while (done < bytes.length) {
      const count = kernelCall({ syscall: 'write', operation: 'migration data', device: this.device }, () =>
        this.backend.write(fd, bytes.subarray(done)));
      if (count === 0) throw new VfioError('ERR_VFIO_SHORT_IO', `the migration data fd of ${this.device} took 0 of ${bytes.length - done} bytes`, { syscall: 'write', device: this.device });
      done += count;
      this.#transferred += count;
    }
    return done;
  }

  /**
   * VFIO_MIG_GET_PRECOPY_INFO (PRE_COPY and PRE_COPY_P2P only). A reading
   * stream that stopped at the temporary end goes on when data is reported.
   * @throws VfioError EINVAL outside the pre-copy states.
   */
  precopyInfo(): PrecopyInfo {
    this.#checkKind('saving', 'precopyInfo');
    const fd = this.fd;
    const arg = precopyInfoArg();
    kernelCall({ syscall: 'ioctl', operation: 'VFIO_MIG_GET_PRECOPY_INFO', device: this.device }, () =>
      this.backend.ioctl(fd, b.VFIO_MIG_GET_PRECOPY_INFO, arg));
    const answer = decodeAnswer(b.vfio_precopy_info, arg, 'VFIO_MIG_GET_PRECOPY_INFO');
    const info = { initialBytes: answer.initial_bytes, dirtyBytes: answer.dirty_bytes };
    if (info.initialBytes + info.dirtyBytes > 0n) this.#retry();
    return info;
  }

  /**
   * The saving stream as a Readable (one per session; asking again returns
   * it). It reads as its consumer drains it, ends at the end of the stream
   * in STOP_COPY, and closes the session's fd when it ends or is destroyed.
   */
  createReadStream(options?: MigrationStreamOptions): Readable {
    this.#checkKind('saving', 'createReadStream');
    this.assertOpen();
    if (this.#readable) return this.#readable;
    const highWaterMark = streamHighWaterMark(options);
    this.#readable = new Readable({
      highWaterMark,
      read: (size) => this.#fill(size),
      destroy: (error, callback) => {
        this.#waiting = undefined;
        callback(this.#closeQuietly(error));
      },
    });
    return this.#readable;
  }

  /**
   * The resuming side as a Writable (one per session; asking again returns
   * it). Each chunk is written whole before the next; it closes the
   * session's fd when it finishes or is destroyed (the driver keeps what
   * it received until the device leaves RESUMING).
   */
  createWriteStream(options?: MigrationStreamOptions): Writable {
    this.#checkKind('resuming', 'createWriteStream');
    this.assertOpen();
    if (this.#writable) return this.#writable;
    this.#writable = new Writable({
      highWaterMark: streamHighWaterMark(options),
      write: (chunk: Uint8Array, _encoding, callback) => {
        try {
          this.write(chunk);
          callback();
        } catch (error) {
          callback(error as Error);
        }
      },
      destroy: (error, callback) => callback(this.#closeQuietly(error)),
    });
    return this.#writable;
  }

  /** The saving stream's chunks (see createReadStream). */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.createReadStream()[Symbol.asyncIterator]();
  }

  protected errorContext(): { device: string } {
    return { device: this.device };
  }

  protected override releaseDependents(): void {
    // close() called directly: a stream still open ends without its data.
    this.#readable?.destroy();
    this.#writable?.destroy();
  }

  protected override afterClose(): void {
    this.#onClosed();
  }

  get #inPreCopy(): boolean {
    return this.#state === 'PRE_COPY' || this.#state === 'PRE_COPY_P2P';
  }

  /** A Readable read: one read(2) of what the stream asks for. */
  #fill(size: number): void {
    const stream = this.#readable!;
    if (this.closed) return;
    // One scratch buffer per session, and a copy of just what was read: a
    // fresh zero-filled chunk per read(2) cost most of a small save (the
    // bench: mtty's 96-byte save took 3 ms through the stream, 0.3 ms by read()).
    const want = Math.min(Math.max(size, 1), MAX_CHUNK);
    if (!this.#scratch || this.#scratch.length < want) this.#scratch = new Uint8Array(want);
    const buffer = this.#scratch.subarray(0, want);
    let count: number;
    try {
      count = this.read(buffer);
    } catch (error) {
      stream.destroy(error as Error);
      return;
    }
    if (count > 0) {
      stream.push(buffer.slice(0, count));
    } else if (this.#complete || this.#state === 'STOP_COPY') {
      stream.push(null);
    } else {
      // PRE_COPY's temporary end: wait for STOP_COPY or precopyInfo() to report data.
      this.#waiting = size;
    }
  }

  #retry(): void {
    const size = this.#waiting;
    if (size === undefined) return;
    this.#waiting = undefined;
    // Later, not inside the call that changed the state: a push may run the consumer's code.
    queueMicrotask(() => {
      if (!this.closed && this.#readable && !this.#readable.destroyed) this.#fill(size);
    });
  }

  #stateChanged(state: MigrationState): void {
    this.#state = state;
    this.#retry();
  }

  #end(reason: string): void {
    if (this.closed) return;
    const readable = this.#readable;
    if (readable && !readable.destroyed && !this.#complete) {
      readable.destroy(new VfioError('ERR_VFIO_CLOSED', `the migration save of ${this.device} ended before its end of stream after ${this.#transferred} bytes: ${reason}`, {
        device: this.device,
        hint: 'read the data fd to its end (the stream\'s end) before moving the device out of STOP_COPY',
      }));
    }
    this.close();
  }

  /** Closes the fd as a stream's destroy does: a close failure is passed on unless another error came first. */
  #closeQuietly(error: Error | null): Error | null {
    try {
      this.close();
    } catch (closeError) {
      return error ?? (closeError as Error);
    }
    return error;
  }

  #checkKind(kind: MigrationSessionKind, what: string): void {
    if (this.kind !== kind) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `${what}() is for a ${kind} session; this one of ${this.device} is ${this.kind}`, { device: this.device });
    }
  }
}

function streamHighWaterMark(options: MigrationStreamOptions | undefined): number {
  const opts = checkOptions('options', options, streamOptionKeys);
  return opts.highWaterMark === undefined ? DEFAULT_CHUNK : checkInteger('options.highWaterMark', opts.highWaterMark, 1, MAX_CHUNK);
}

/** @internal Wraps a data fd the kernel returned; the Migration keeps the port. */
export function openSession(context: VfioContext, fd: number, device: string, kind: MigrationSessionKind, state: MigrationState, closed: () => void): { session: MigrationSession; port: SessionPort } {
  return construct(context, fd, device, kind, state, closed);
}
