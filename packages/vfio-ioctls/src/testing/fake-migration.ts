/**
 * A migration driver for a fake device (migration v2, as vfio_main.c and a
 * driver such as samples/vfio-mdev/mtty.c implement it): the state machine
 * with the kernel's next-step table, data sessions on their own fds (read
 * until EOF when saving, write when resuming), PRECOPY_INFO and the
 * stop-copy size. The device's state is the bytes of one of its regions, so
 * a save from one fake device restored into another makes their regions equal.
 */
import {
  vfio_precopy_info, VFIO_DEVICE_STATE_ERROR, VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P,
  VFIO_DEVICE_STATE_RESUMING, VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY, VFIO_MIG_GET_PRECOPY_INFO, VFIO_MIGRATION_P2P, VFIO_MIGRATION_PRE_COPY, VFIO_MIGRATION_STOP_COPY,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd, pointerArg, writeBack } from './abi';
import { Errno } from './errno';

/** How a fake device migrates (FakeDeviceSpec.migration). */
export interface FakeMigrationSpec {
  /** VFIO_MIGRATION_* bits; STOP_COPY must be among them. */
  flags: number;
  /** The region whose bytes are the device state (default 0, BAR0). */
  stateRegion?: number;
  /**
   * What read() answers at the temporary end of a PRE_COPY stream: ENOMSG,
   * as vfio.h asks (default), or 0 ('eof'), as mtty does.
   */
  precopyEnd?: 'ENOMSG' | 'eof';
}

/** What the migration model needs of its device. */
export interface MigrationDevice {
  /** The live bytes of region `index`. */
  region(index: number): Uint8Array;
}

const S = {
  ERROR: VFIO_DEVICE_STATE_ERROR, STOP: VFIO_DEVICE_STATE_STOP, RUNNING: VFIO_DEVICE_STATE_RUNNING,
  STOP_COPY: VFIO_DEVICE_STATE_STOP_COPY, RESUMING: VFIO_DEVICE_STATE_RESUMING, RUNNING_P2P: VFIO_DEVICE_STATE_RUNNING_P2P,
  PRE_COPY: VFIO_DEVICE_STATE_PRE_COPY, PRE_COPY_P2P: VFIO_DEVICE_STATE_PRE_COPY_P2P,
};
type StateName = keyof typeof S;
const NAMES = Object.keys(S) as StateName[];

/**
 * vfio_mig_get_next_state()'s table: from a state (row) towards a target,
 * the next single arc, for a device with every optional state. Targets not
 * listed in a row are reached through ERROR, which is refused.
 */
const NEXT: Record<StateName, Partial<Record<StateName, StateName>>> = {
  ERROR: {},
  STOP: { RUNNING: 'RUNNING_P2P', PRE_COPY: 'RUNNING_P2P', PRE_COPY_P2P: 'RUNNING_P2P', STOP_COPY: 'STOP_COPY', RESUMING: 'RESUMING', RUNNING_P2P: 'RUNNING_P2P' },
  RUNNING: { STOP: 'RUNNING_P2P', PRE_COPY: 'PRE_COPY', PRE_COPY_P2P: 'RUNNING_P2P', STOP_COPY: 'RUNNING_P2P', RESUMING: 'RUNNING_P2P', RUNNING_P2P: 'RUNNING_P2P' },
  PRE_COPY: { STOP: 'RUNNING', RUNNING: 'RUNNING', PRE_COPY_P2P: 'PRE_COPY_P2P', STOP_COPY: 'PRE_COPY_P2P', RESUMING: 'RUNNING', RUNNING_P2P: 'RUNNING' },
  PRE_COPY_P2P: { STOP: 'RUNNING_P2P', RUNNING: 'RUNNING_P2P', PRE_COPY: 'PRE_COPY', STOP_COPY: 'STOP_COPY', RESUMING: 'RUNNING_P2P', RUNNING_P2P: 'RUNNING_P2P' },
  STOP_COPY: { STOP: 'STOP', RUNNING: 'STOP', RESUMING: 'STOP', RUNNING_P2P: 'STOP' },
  RESUMING: { STOP: 'STOP', RUNNING: 'STOP', PRE_COPY: 'STOP', PRE_COPY_P2P: 'STOP', STOP_COPY: 'STOP', RUNNING_P2P: 'STOP' },
  RUNNING_P2P: { STOP: 'STOP', RUNNING: 'RUNNING', PRE_COPY: 'RUNNING', PRE_COPY_P2P: 'PRE_COPY_P2P', STOP_COPY: 'STOP', RESUMING: 'STOP' },
};

/** The VFIO_MIGRATION_* bits a state needs (ERROR: never a valid state to be in or ask for). */
function flagsNeeded(state: StateName): number {
  switch (state) {
    case 'ERROR': return -1;
    case 'RUNNING_P2P': return VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P;
    case 'PRE_COPY': return VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY;
    case 'PRE_COPY_P2P': return VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY;
    default: return VFIO_MIGRATION_STOP_COPY;
  }
}

// The stream: a header, then records (tag, length, payload); the last state record wins.
const MAGIC = 0x474d_4b46; // 'FKMG'
const VERSION = 1;
const HEADER = 8;
const RECORD = 8;
const TAG_STATE = 1;
const TAG_END = 2;

/** A data session's file: anon_inode, opened O_RDONLY (saving) or O_WRONLY (resuming), stream_open'ed. */
export class FakeMigrationFile {
  private bytes = new Uint8Array(0);
  /** Read position (saving) or bytes taken (resuming). */
  private position = 0;
  /** Saving: where the initial PRE_COPY data ends. */
  private initialEnd = 0;
  /** Set when the session ends (its arc left the state) or the device is reset or closed: I/O is ENODEV. */
  disabled = false;

  constructor(readonly kind: 'saving' | 'resuming', private readonly owner: FakeMigration) {}

  /** The bytes written so far (resuming). */
  get received(): Uint8Array {
    return this.bytes.subarray(0, this.position);
  }

  /** @internal Saving: appends stream bytes; `initial` marks them PRE_COPY's initial data. */
  append(data: Uint8Array, initial = false): void {
    const grown = new Uint8Array(this.bytes.length + data.length);
    grown.set(this.bytes);
    grown.set(data, this.bytes.length);
    this.bytes = grown;
    if (initial) this.initialEnd = this.bytes.length;
  }

  /** read(2). */
  read(buffer: Uint8Array): number {
    if (this.kind !== 'saving') throw new Errno('EBADF');
    if (this.disabled) throw new Errno('ENODEV');
    const count = Math.min(buffer.length, this.bytes.length - this.position);
    if (count === 0 && buffer.length > 0 && this.owner.inPreCopy && this.owner.precopyEnd === 'ENOMSG') throw new Errno('ENOMSG');
    buffer.set(this.bytes.subarray(this.position, this.position + count));
    this.position += count;
    return count;
  }

  /** write(2): the first 8 bytes must be the stream header, as a driver validates its own. */
  write(buffer: Uint8Array): number {
    if (this.kind !== 'resuming') throw new Errno('EBADF');
    if (this.disabled) throw new Errno('ENODEV');
    this.append(buffer);
    const before = this.position;
    this.position += buffer.length;
    if (before < HEADER && this.position >= HEADER) {
      const view = new DataView(this.bytes.buffer, this.bytes.byteOffset);
      if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== VERSION) {
        this.position = before;
        this.bytes = this.bytes.slice(0, before);
        throw new Errno('EINVAL');
      }
    }
    return buffer.length;
  }

  /** ioctl(2) on the data fd: VFIO_MIG_GET_PRECOPY_INFO (saving files only). */
  ioctl(request: number, arg: number | Uint8Array | undefined): number {
    if (this.kind !== 'saving' || request !== VFIO_MIG_GET_PRECOPY_INFO) throw new Errno('ENOTTY');
    const bytes = pointerArg(arg);
    const minsz = offsetOfEnd(vfio_precopy_info, 'dirty_bytes');
    const info = decodeFixed(vfio_precopy_info, bytes);
    checkArgsz(bytes, info.argsz, minsz);
    if (!this.owner.inPreCopy) throw new Errno('EINVAL');
    if (this.disabled) throw new Errno('ENODEV');
    const initial = Math.max(0, this.initialEnd - this.position);
    const dirty = this.bytes.length - Math.max(this.position, this.initialEnd);
    writeBack(vfio_precopy_info, { argsz: info.argsz, flags: info.flags, initial_bytes: BigInt(initial), dirty_bytes: BigInt(dirty) }, bytes, minsz);
    return 0;
  }
}

/** An arc a test makes fail: the driver answers `errno` and leaves the device in `then`. */
interface ArcFault {
  from: StateName;
  to: StateName;
  errno: string;
  then: StateName;
}

/** The migration side of one fake device. */
export class FakeMigration {
  readonly flags: number;
  readonly precopyEnd: 'ENOMSG' | 'eof';
  private readonly stateRegion: number;
  private current: StateName = 'RUNNING';
  private saving: FakeMigrationFile | null = null;
  private resuming: FakeMigrationFile | null = null;
  private readonly faults: ArcFault[] = [];
  /** Arcs taken, in order, as 'FROM>TO' (for tests of the path the library walks). */
  readonly arcs: string[] = [];

  constructor(spec: FakeMigrationSpec, private readonly device: MigrationDevice) {
    if (!(spec.flags & VFIO_MIGRATION_STOP_COPY)) throw new RangeError('migration.flags must include VFIO_MIGRATION_STOP_COPY');
    this.flags = spec.flags;
    this.stateRegion = spec.stateRegion ?? 0;
    this.precopyEnd = spec.precopyEnd ?? 'ENOMSG';
    device.region(this.stateRegion); // throws for a region the device lacks
  }

  /** The current state, by its uAPI name. */
  get state(): StateName {
    return this.current;
  }

  /** @internal In PRE_COPY or PRE_COPY_P2P. */
  get inPreCopy(): boolean {
    return this.current === 'PRE_COPY' || this.current === 'PRE_COPY_P2P';
  }

  /** The next step from `from` to `to` fails with `errno`, leaving the device in `then` (default: `from`; 'ERROR' models a failed arc the driver cannot undo). */
  failArc(from: StateName, to: StateName, errno: string, then: StateName = from): void {
    this.faults.push({ from, to, errno, then });
  }

  /** The device state changed during PRE_COPY: its new state is queued as dirty data on the saving stream. */
  dirty(): void {
    if (!this.inPreCopy || !this.saving) throw new Error('dirty() needs a device in PRE_COPY or PRE_COPY_P2P');
    this.saving.append(this.stateRecord());
  }

  /** VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE. */
  getState(): number {
    return S[this.current];
  }

  /**
   * VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE, as a driver's
   * migration_set_state: steps arc by arc to `value`; returns the file the
   * last arc opened (a new data session), if any.
   */
  setState(value: number): FakeMigrationFile | null {
    const target = NAMES.find((name) => S[name] === value);
    if (!target || !this.has(target)) throw new Errno('EINVAL');
    let opened: FakeMigrationFile | null = null;
    while (this.current !== target) {
      if (!this.has(this.current)) throw new Errno('EINVAL');
      let next = NEXT[this.current][target] ?? 'ERROR';
      // Arcs touching states the device lacks are skipped over.
      while (next !== 'ERROR' && !this.has(next)) next = NEXT[next][target] ?? 'ERROR';
      if (next === 'ERROR') throw new Errno('EINVAL');
      opened = this.step(next);
      this.arcs.push(`${this.current}>${next}`);
      this.current = next;
    }
    return opened;
  }

  /** MIG_DATA_SIZE: what a STOP_COPY save streams. */
  dataSize(): number {
    return HEADER + 2 * RECORD + this.device.region(this.stateRegion).length;
  }

  /** VFIO_DEVICE_RESET: back to RUNNING, every session ended. */
  reset(): void {
    this.current = 'RUNNING';
    this.endSessions();
  }

  /** The last device fd closed: sessions end (their fds stay open, answering ENODEV). */
  closed(): void {
    this.endSessions();
  }

  private has(state: StateName): boolean {
    const needed = flagsNeeded(state);
    return needed >= 0 && (this.flags & needed) === needed;
  }

  /** One arc, as a driver's step function. */
  private step(next: StateName): FakeMigrationFile | null {
    const from = this.current;
    const fault = this.faults.findIndex((f) => f.from === from && f.to === next);
    if (fault >= 0) {
      const [spent] = this.faults.splice(fault, 1);
      this.current = spent.then;
      if (spent.then === 'ERROR') this.endSessions();
      throw new Errno(spent.errno);
    }
    const arc = `${from}>${next}`;
    switch (arc) {
      case 'RUNNING>PRE_COPY':
      case 'RUNNING_P2P>PRE_COPY_P2P': {
        const file = new FakeMigrationFile('saving', this);
        file.append(this.header(), true);
        file.append(this.stateRecord(), true);
        this.saving = file;
        return file;
      }
      case 'STOP>STOP_COPY':
        this.saving = new FakeMigrationFile('saving', this);
        this.saving.append(this.header());
        this.finishSave();
        return this.saving;
      case 'PRE_COPY_P2P>STOP_COPY':
      case 'PRE_COPY>STOP_COPY':
        // The session goes on: the same fd streams the rest.
        this.finishSave();
        return null;
      case 'STOP>RESUMING':
        this.resuming = new FakeMigrationFile('resuming', this);
        return this.resuming;
      case 'RESUMING>STOP':
        this.load();
        this.endSessions();
        return null;
      case 'PRE_COPY>RUNNING':
      case 'PRE_COPY_P2P>RUNNING_P2P':
      case 'STOP_COPY>STOP':
        this.endSessions();
        return null;
      default:
        // RUNNING <-> RUNNING_P2P, RUNNING_P2P <-> STOP, RUNNING <-> STOP, PRE_COPY <-> PRE_COPY_P2P: nothing to move.
        return null;
    }
  }

  private finishSave(): void {
    this.saving!.append(this.stateRecord());
    this.saving!.append(record(TAG_END, new Uint8Array(0)));
  }

  /** RESUMING -> STOP: the stream must be whole (header, a state record of the region's size, the end record). */
  private load(): void {
    const data = this.resuming!.received;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.length < HEADER || view.getUint32(0, true) !== MAGIC) throw new Errno('EINVAL');
    let state: Uint8Array | undefined;
    let at = HEADER;
    let ended = false;
    while (at + RECORD <= data.length && !ended) {
      const tag = view.getUint32(at, true);
      const length = view.getUint32(at + 4, true);
      if (at + RECORD + length > data.length) throw new Errno('EINVAL');
      if (tag === TAG_STATE) state = data.subarray(at + RECORD, at + RECORD + length);
      ended = tag === TAG_END;
      at += RECORD + length;
    }
    const region = this.device.region(this.stateRegion);
    if (!ended || !state || state.length !== region.length) throw new Errno('EINVAL');
    region.set(state);
  }

  private endSessions(): void {
    for (const file of [this.saving, this.resuming]) if (file) file.disabled = true;
    this.saving = null;
    this.resuming = null;
  }

  private header(): Uint8Array {
    const bytes = new Uint8Array(HEADER);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, VERSION, true);
    return bytes;
  }

  private stateRecord(): Uint8Array {
    return record(TAG_STATE, this.device.region(this.stateRegion));
  }
}

function record(tag: number, payload: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(RECORD + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, tag, true);
  view.setUint32(4, payload.length, true);
  bytes.set(payload, RECORD);
  return bytes;
}
