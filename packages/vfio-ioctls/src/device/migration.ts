/**
 * Migration v2 of one device: its state (VFIO_DEVICE_FEATURE
 * MIG_DEVICE_STATE), moved one uAPI arc at a time so that a refused arc is
 * named, the data sessions the arcs open, the stop-copy size, and the way
 * out of ERROR (a device reset).
 */
import { featureAnswer, featureArgWith } from '../abi/feature-args';
import { bindings as b } from '../abi/structs';
import { kernelCall } from '../core/context';
import { VfioError } from '../core/errors';
import { illegalConstructor } from '../core/illegal-constructor';
import { rangeError, typeError } from '../core/validate';
import { featureFlags, featureIoctl, type FeatureHost, type MigrationFlags } from './features';
import { isSaving, migrationPath, migrationStates, stateOfValue, stateValue, supportedStates, type MigrationState } from './migration-path';
import { openSession, type MigrationSession, type SessionPort } from './migration-stream';

/** Only this module holds it: the constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('Migration');

let construct: (host: FeatureHost, flags: MigrationFlags) => Migration;
let shutdown: (migration: Migration, reason: string) => void;

/**
 * The migration side of a device that can migrate (device.migration). Its
 * state is the kernel's (read each time); setState() walks the uAPI's arcs
 * to the state asked for and returns the data session the last arc opened:
 * a saving one entering PRE_COPY, PRE_COPY_P2P or STOP_COPY from outside
 * them, a resuming one entering RESUMING. The session is closed when the
 * device leaves its states, is reset or is closed.
 */
export class Migration {
  /** VFIO_DEVICE_FEATURE_MIGRATION's flags. */
  readonly flags: MigrationFlags;
  /** The states the device has (RUNNING, STOP, STOP_COPY, RESUMING, ERROR, and the optional ones its flags name). */
  readonly states: readonly MigrationState[];
  readonly #host: FeatureHost;
  #session: { session: MigrationSession; port: SessionPort } | undefined;

  static {
    construct = (host, flags) => new Migration(constructKey, host, flags);
    shutdown = (migration, reason) => migration.#endSession(reason);
  }

  private constructor(key: symbol, host: FeatureHost, flags: MigrationFlags) {
    if (key !== constructKey) throw illegalConstructor();
    this.#host = host;
    this.flags = flags;
    this.states = supportedStates(flags);
  }

  /** The device's migration state (GET MIG_DEVICE_STATE). */
  get state(): MigrationState {
    const arg = featureArgWith(featureFlags('MIG_DEVICE_STATE', 'get'), b.vfio_device_feature_mig_state, { device_state: 0, data_fd: -1 });
    featureIoctl(this.#host, 'MIG_DEVICE_STATE', 'get', arg);
    const value = featureAnswer(b.vfio_device_feature_mig_state, arg, 'VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE').device_state;
    const state = stateOfValue(value);
    if (!state) throw new VfioError('ERR_VFIO_PROTOCOL', `${this.#host.name} reports migration state ${value}, which this library does not know`, { device: this.#host.name });
    return state;
  }

  /** The open data session, if any. */
  get session(): MigrationSession | undefined {
    return this.#session?.session;
  }

  /**
   * The states setState(to) would pass through from `from` (default: the
   * current state), both ends included.
   * @throws RangeError for a state the device lacks; VfioError
   *   ERR_VFIO_UNSUPPORTED when the uAPI has no path (from ERROR, or
   *   STOP_COPY to a pre-copy state).
   */
  path(to: MigrationState, from?: MigrationState): MigrationState[] {
    const target = this.#checkState('to', to);
    if (target === 'ERROR') throw rangeError('to', 'cannot be ERROR: a device only falls into ERROR when an arc fails', 'ERR_INVALID_ARG_VALUE');
    const start = from === undefined ? this.state : this.#checkState('from', from);
    const path = migrationPath(this.flags, start, target);
    if (!path) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `no migration arcs lead from ${start} to ${target} on ${this.#host.name}`, {
        device: this.#host.name,
        operation: 'VFIO_DEVICE_FEATURE',
        hint: start === 'ERROR'
          ? 'the device is in ERROR: reset() returns it to RUNNING'
          : 'the uAPI refuses to leave STOP_COPY for a pre-copy state; go through STOP and RUNNING, which ends the save',
      });
    }
    return path;
  }

  /**
   * Moves the device to `to`, one arc at a time (SET MIG_DEVICE_STATE per
   * arc). Returns the session the last arc opened, or undefined.
   * @throws RangeError for a state the device lacks, or ERROR; VfioError
   *   ERR_VFIO_UNSUPPORTED when no path leads there; a refused arc is the
   *   kernel's error naming both its states and where the device is now
   *   (a device left in ERROR says so: reset() is the way out).
   */
  setState(to: MigrationState): MigrationSession | undefined {
    const path = this.path(to);
    let opened: MigrationSession | undefined;
    for (let i = 1; i < path.length; i++) {
      opened = this.#arc(path[i - 1], path[i], path);
      if (opened && i < path.length - 1) {
        opened.close();
        throw new VfioError('ERR_VFIO_PROTOCOL', `${this.#host.name} opened a data session on the arc ${path[i - 1]} -> ${path[i]}, inside the path ${path.join(' -> ')}`, { device: this.#host.name });
      }
    }
    return opened;
  }

  /**
   * MIG_DATA_SIZE: the driver's estimate of the bytes a STOP_COPY save
   * streams (any state).
   */
  dataSize(): bigint {
    const arg = featureArgWith(featureFlags('MIG_DATA_SIZE', 'get'), b.vfio_device_feature_mig_data_size, { stop_copy_length: 0n });
    featureIoctl(this.#host, 'MIG_DATA_SIZE', 'get', arg);
    return featureAnswer(b.vfio_device_feature_mig_data_size, arg, 'VFIO_DEVICE_FEATURE_MIG_DATA_SIZE').stop_copy_length;
  }

  /**
   * VFIO_DEVICE_RESET, the uAPI's way out of ERROR and of a RESUMING that
   * cannot complete: the device returns to RUNNING and any session ends.
   * Issued even when the device info lacks VFIO_DEVICE_FLAGS_RESET (mdev
   * drivers such as mtty reset their migration state without it).
   */
  reset(): void {
    const fd = this.#host.fd;
    try {
      kernelCall({ syscall: 'ioctl', operation: 'VFIO_DEVICE_RESET', device: this.#host.name }, () =>
        this.#host.context.backend.ioctl(fd, b.VFIO_DEVICE_RESET));
    } finally {
      // Whatever the answer, a session the reset may have ended is no use any more.
      this.#endSession('the device was reset');
    }
  }

  /** One SET MIG_DEVICE_STATE from `from` to `to`, with the session bookkeeping. */
  #arc(from: MigrationState, to: MigrationState, path: MigrationState[]): MigrationSession | undefined {
    const arg = featureArgWith(featureFlags('MIG_DEVICE_STATE', 'set'), b.vfio_device_feature_mig_state, { device_state: stateValue(to), data_fd: -1 });
    try {
      featureIoctl(this.#host, 'MIG_DEVICE_STATE', 'set', arg);
    } catch (error) {
      throw this.#arcError(error, from, to, path);
    }
    // The arc left the session's states: the kernel ended it.
    const current = this.#session;
    if (current && !sessionContinues(current.session.kind, to)) this.#endSession(`the device moved from ${from} to ${to}`);
    else current?.port.stateChanged(to);
    const fd = featureAnswer(b.vfio_device_feature_mig_state, arg, 'VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE').data_fd;
    if (fd < 0) return undefined;
    this.#endSession(`a new session began on the arc ${from} -> ${to}`);
    const kind = to === 'RESUMING' ? 'resuming' : 'saving';
    const opened = openSession(this.#host.context, fd, this.#host.name, kind, to, () => {
      if (this.#session?.session === opened.session) this.#session = undefined;
    });
    this.#session = opened;
    return opened.session;
  }

  /** A refused arc: the kernel's error, naming the arc, the path and where the device is now. */
  #arcError(error: unknown, from: MigrationState, to: MigrationState, path: MigrationState[]): unknown {
    const annotated = VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_DEVICE_FEATURE', device: this.#host.name });
    if (!(annotated instanceof VfioError) || annotated.errno === 0) return annotated;
    let now: MigrationState | undefined;
    try {
      now = this.state;
    } catch {
      now = undefined;
    }
    if (now !== undefined && this.#session && !sessionContinues(this.#session.session.kind, now)) this.#endSession(`the device is now in ${now}`);
    const target = path[path.length - 1];
    const way = path.length > 2 ? ` (on the way from ${path[0]} to ${target}: ${path.join(' -> ')})` : '';
    const where = now === undefined ? '' : `; the device is now in ${now}`;
    return new VfioError(annotated.code, `${annotated.code}: the migration arc ${from} -> ${to} was refused on ${this.#host.name}${way}${where}`, {
      syscall: 'ioctl',
      operation: 'VFIO_DEVICE_FEATURE',
      device: this.#host.name,
      errno: annotated.errno,
      hint: now === 'ERROR'
        ? 'the device is in ERROR: reset() returns it to RUNNING'
        : from === 'RESUMING'
          ? 'the driver refused the data written while RESUMING (incomplete, or from another kind of device); write the whole saved stream, or reset() to abort'
          : undefined,
    });
  }

  #endSession(reason: string): void {
    const current = this.#session;
    this.#session = undefined;
    current?.port.end(reason);
  }

  #checkState(name: string, state: unknown): MigrationState {
    if (typeof state !== 'string') throw typeError(name, 'a migration state name such as \'STOP_COPY\'', state);
    if (!(migrationStates as readonly string[]).includes(state)) {
      throw rangeError(name, `must be one of ${migrationStates.join(', ')}, got ${JSON.stringify(state)}`, 'ERR_INVALID_ARG_VALUE');
    }
    if (!this.states.includes(state as MigrationState)) {
      throw rangeError(name, `is ${state}, which ${this.#host.name} does not have (it has ${this.states.join(', ')})`, 'ERR_INVALID_ARG_VALUE');
    }
    return state as MigrationState;
  }
}

/** Whether a session of `kind` lives on in `state` (the saving group shares one session). */
function sessionContinues(kind: 'saving' | 'resuming', state: MigrationState): boolean {
  return kind === 'saving' ? isSaving(state) : state === 'RESUMING';
}

/** @internal Device makes its Migration once it knows the flags. */
export function newMigration(host: FeatureHost, flags: MigrationFlags): Migration {
  return construct(host, flags);
}

/** @internal The device was reset or is closing: the session ends. */
export function endMigrationSession(migration: Migration, reason: string): void {
  shutdown(migration, reason);
}
