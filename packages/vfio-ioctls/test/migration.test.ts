/**
 * Migration v2 through the safe API against the fake kernel: the state
 * machine walked arc by arc, saving and resuming through the data fd as
 * streams (with backpressure), PRE_COPY with PRECOPY_INFO, MIG_DATA_SIZE,
 * and the failure paths (a data fd closed early, a save aborted, a refused
 * arc, ERROR and the reset out of it), each leaving nothing open.
 */
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import * as b from 'vfio-bindings';
import { Device, VfioError, type MigrationSession } from '../src';
import type { FakeDeviceSpec } from '../src/testing';
import { EDU, EDU2, expectNothingLeft, kernel, tick, thrownVfio as thrown } from './helpers';

const ALL = b.VFIO_MIGRATION_STOP_COPY | b.VFIO_MIGRATION_P2P | b.VFIO_MIGRATION_PRE_COPY;
const STATE_BYTES = 0x2000;
const RW = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE;

function spec(address: string, group: number, flags = ALL, precopyEnd?: 'ENOMSG' | 'eof'): FakeDeviceSpec {
  return {
    address, group, reset: true,
    regions: [{ index: 0, size: STATE_BYTES, flags: RW }, { index: 7, size: 256 }],
    migration: { flags, precopyEnd },
  };
}

/** Two migratable devices in groups of their own; the source's state is a known pattern. */
function pair(flags = ALL, precopyEnd?: 'ENOMSG' | 'eof') {
  const k = kernel([spec(EDU, 5, flags, precopyEnd), spec(EDU2, 6, flags, precopyEnd)]);
  const source = Device.open(EDU, k.env);
  const target = Device.open(EDU2, k.env);
  const pattern = Uint8Array.from({ length: STATE_BYTES }, (_, i) => (i * 7 + 3) & 0xff);
  source.region(0)!.write(0, pattern);
  return { ...k, source, target, pattern };
}


/** The next 'error' event of a stream. */
async function nextError(emitter: NodeJS.EventEmitter): Promise<unknown> {
  const [error] = await once(emitter, 'error');
  return error;
}

async function collect(session: MigrationSession): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of session) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('the state machine', () => {
  test('setState walks the uAPI arcs one SET at a time and reports each state', () => {
    const { fake, source } = pair();
    const model = fake.device(EDU)!.features.migration!;
    expect(source.migration.state).toBe('RUNNING');
    expect(source.migration.path('STOP')).toEqual(['RUNNING', 'RUNNING_P2P', 'STOP']);
    expect(source.migration.setState('STOP')).toBeUndefined();
    expect(model.arcs).toEqual(['RUNNING>RUNNING_P2P', 'RUNNING_P2P>STOP']);
    expect(source.migration.state).toBe('STOP');
    // Each arc was its own ioctl: the kernel never had to combine them.
    const sets = fake.calls.filter((c) => c.request === b.VFIO_DEVICE_FEATURE).length;
    expect(sets).toBeGreaterThanOrEqual(4);
    source.migration.setState('RUNNING');
    expect(model.arcs.slice(2)).toEqual(['STOP>RUNNING_P2P', 'RUNNING_P2P>RUNNING']);
  });

  test('without P2P the arcs skip RUNNING_P2P; a state the device lacks is a RangeError before any syscall', () => {
    const { fake, source } = pair(b.VFIO_MIGRATION_STOP_COPY);
    const model = fake.device(EDU)!.features.migration!;
    source.migration.setState('STOP');
    expect(model.arcs).toEqual(['RUNNING>STOP']);
    const before = fake.calls.length;
    expect(() => source.migration.setState('RUNNING_P2P')).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => source.migration.setState('ERROR')).toThrow(RangeError);
    expect(() => source.migration.setState('BOGUS' as never)).toThrow(RangeError);
    expect(() => source.migration.setState(3 as never)).toThrow(TypeError);
    expect(fake.calls.length).toBe(before);
  });

  test('STOP_COPY to PRE_COPY has no path: refused before any arc', () => {
    const { fake, source } = pair();
    const session = source.migration.setState('STOP_COPY')!;
    const model = fake.device(EDU)!.features.migration!;
    const arcs = model.arcs.length;
    const error = thrown(() => source.migration.setState('PRE_COPY'));
    expect(error.code).toBe('ERR_VFIO_UNSUPPORTED');
    expect(error.message).toMatch(/no migration arcs lead from STOP_COPY to PRE_COPY/);
    expect(model.arcs.length).toBe(arcs);
    expect(session.closed).toBe(false);
  });

  test('a refused arc names both its states, the path, and where the device is', () => {
    const { fake, source } = pair();
    fake.device(EDU)!.features.migration!.failArc('RUNNING_P2P', 'STOP', 'EIO');
    const error = thrown(() => source.migration.setState('STOP_COPY'));
    expect(error).toMatchObject({ code: 'EIO', operation: 'VFIO_DEVICE_FEATURE', device: EDU });
    expect(error.message).toBe(`EIO: the migration arc RUNNING_P2P -> STOP was refused on ${EDU} (on the way from RUNNING to STOP_COPY: RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY); the device is now in RUNNING_P2P`);
    expect(source.migration.state).toBe('RUNNING_P2P');
    expect(source.migration.session).toBeUndefined();
  });

  test('ERROR: the arc leaves the device there, nothing leads out, reset() returns it to RUNNING', async () => {
    const { fake, env, source, target } = pair();
    fake.device(EDU)!.features.migration!.failArc('STOP', 'STOP_COPY', 'EIO', 'ERROR');
    const error = thrown(() => source.migration.setState('STOP_COPY'));
    expect(error.message).toMatch(/the device is now in ERROR \(hint/);
    expect(error.hint).toMatch(/reset\(\) returns it to RUNNING/);
    expect(source.migration.state).toBe('ERROR');
    expect(thrown(() => source.migration.setState('RUNNING')).hint).toMatch(/reset\(\)/);
    source.migration.reset();
    expect(source.migration.state).toBe('RUNNING');
    // And the device migrates again.
    const saved = await collect(source.migration.setState('STOP_COPY')!);
    expect(saved.length).toBeGreaterThan(STATE_BYTES);
    source.close();
    target.close();
    expectNothingLeft(fake);
    void env;
  });

  test('MIG_DATA_SIZE is the size a STOP_COPY save streams', async () => {
    const { source } = pair();
    const size = source.migration.dataSize();
    const saved = await collect(source.migration.setState('STOP_COPY')!);
    expect(size).toBe(BigInt(saved.length));
  });
});

describe('save and restore', () => {
  test('STOP_COPY into RESUMING through pipeline(): the target ends with the source\'s state', async () => {
    const { fake, source, target, pattern } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    expect(save.kind).toBe('saving');
    const resume = target.migration.setState('RESUMING')!;
    expect(resume.kind).toBe('resuming');
    await pipeline(save.createReadStream({ highWaterMark: 1024 }), resume.createWriteStream({ highWaterMark: 1024 }));
    expect(save.complete).toBe(true);
    expect(resume.transferred).toBe(save.transferred);
    // The streams' end closed both fds; the sessions go on in the kernel until the arcs below.
    expect(save.closed && resume.closed).toBe(true);
    source.migration.setState('STOP');
    target.migration.setState('RUNNING');
    expect(target.migration.state).toBe('RUNNING');
    expect(target.region(0)!.read(0, STATE_BYTES)).toEqual(pattern);
    source.close();
    target.close();
    expectNothingLeft(fake);
  });

  test('the async iterator and write() by hand; the session closes when the device leaves its state', async () => {
    const { source, target, pattern } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    const data = await collect(save);
    const resume = target.migration.setState('RESUMING')!;
    // Any segmentation: the stream is opaque, its byte order is what counts.
    for (let at = 0; at < data.length; at += 1000) resume.write(data.subarray(at, at + 1000));
    expect(resume.closed).toBe(false);
    target.migration.setState('RUNNING');
    expect(resume.closed).toBe(true);
    expect(target.migration.session).toBeUndefined();
    expect(target.region(0)!.read(0, STATE_BYTES)).toEqual(pattern);
  });

  test('backpressure: the save is read only as fast as its consumer takes it', async () => {
    const { fake, source } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    const stream = save.createReadStream({ highWaterMark: 512 });
    const reads = () => fake.calls.filter((c) => c.syscall === 'read').length;
    stream.pause();
    stream.read(0); // ask for the first fill
    await tick(5);
    const filled = reads();
    expect(filled).toBeGreaterThan(0);
    expect(save.transferred).toBeLessThanOrEqual(1024);
    await tick(5);
    expect(reads()).toBe(filled); // nothing consumed, nothing more read
    const sink = new Writable({ highWaterMark: 256, write: (_chunk, _enc, done) => setImmediate(done) });
    await pipeline(stream, sink);
    expect(save.complete).toBe(true);
    expect(reads()).toBeGreaterThan(STATE_BYTES / 512);
  });

  test('PRE_COPY: initial data, a temporary end, dirty data, then the rest in STOP_COPY', async () => {
    for (const precopyEnd of ['ENOMSG', 'eof'] as const) {
      const { fake, source, target, pattern } = pair(ALL, precopyEnd);
      const save = source.migration.setState('PRE_COPY')!;
      expect(save.kind).toBe('saving');
      const info = save.precopyInfo();
      expect(info.initialBytes).toBeGreaterThan(BigInt(STATE_BYTES));
      expect(info.dirtyBytes).toBe(0n);
      const chunks: Uint8Array[] = [];
      const stream = save.createReadStream();
      stream.on('data', (chunk: Uint8Array) => chunks.push(chunk));
      const ended = once(stream, 'end');
      await tick(5);
      // The initial data is out; the stream waits at the temporary end.
      expect(save.precopyInfo()).toEqual({ initialBytes: 0n, dirtyBytes: 0n });
      expect(stream.readableEnded).toBe(false);
      const initial = save.transferred;
      // The device changes during pre-copy: the stream goes on once that is reported.
      source.region(0)!.writeUint8(0, pattern[0] ^ 0xff);
      pattern[0] ^= 0xff;
      fake.device(EDU)!.features.migration!.dirty();
      expect(save.precopyInfo().dirtyBytes).toBeGreaterThan(0n);
      await tick(5);
      expect(save.transferred).toBeGreaterThan(initial);
      // STOP_COPY through PRE_COPY_P2P: the same session, no new fd.
      expect(source.migration.setState('STOP_COPY')).toBeUndefined();
      expect(source.migration.session).toBe(save);
      await ended;
      expect(save.complete).toBe(true);
      const resume = target.migration.setState('RESUMING')!;
      resume.write(Buffer.concat(chunks));
      target.migration.setState('RUNNING');
      expect(target.region(0)!.read(0, STATE_BYTES)).toEqual(pattern);
      source.close();
      target.close();
      expectNothingLeft(fake);
    }
  });

  test('precopyInfo outside PRE_COPY is the kernel\'s EINVAL; a saving session cannot be written', () => {
    const { source } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    expect(thrown(() => save.precopyInfo())).toMatchObject({ code: 'EINVAL', operation: 'VFIO_MIG_GET_PRECOPY_INFO' });
    expect(thrown(() => save.write(new Uint8Array(1))).code).toBe('ERR_VFIO_UNSUPPORTED');
    expect(thrown(() => save.createWriteStream()).code).toBe('ERR_VFIO_UNSUPPORTED');
  });
});

describe('failure paths leave nothing open', () => {
  test('a save aborted: leaving STOP_COPY before the end fails the stream and closes the fd', async () => {
    const { fake, source, target } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    const stream = save.createReadStream({ highWaterMark: 256 });
    stream.pause();
    stream.read(0);
    await tick(5);
    const failed = nextError(stream);
    source.migration.setState('STOP');
    const error = (await failed) as VfioError;
    expect(error).toMatchObject({ code: 'ERR_VFIO_CLOSED', device: EDU });
    expect(error.message).toMatch(/ended before its end of stream after \d+ bytes: the device moved from STOP_COPY to STOP/);
    expect(save.closed).toBe(true);
    source.close();
    target.close();
    expectNothingLeft(fake);
  });

  test('the data fd closed early: the save can start again, and the resume is refused until reset', async () => {
    const { fake, source, target, pattern } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    const partial = new Uint8Array(100);
    expect(save.read(partial)).toBe(100);
    save.close();
    expect(source.migration.session).toBeUndefined();
    source.migration.setState('RUNNING');
    const again = await collect(source.migration.setState('STOP_COPY')!);

    const resume = target.migration.setState('RESUMING')!;
    resume.write(again.subarray(0, 100));
    resume.close();
    const error = thrown(() => target.migration.setState('RUNNING'));
    expect(error.message).toMatch(/arc RESUMING -> STOP was refused .*the device is now in RESUMING/);
    expect(error.hint).toMatch(/reset\(\) to abort/);
    target.migration.reset();
    expect(target.migration.state).toBe('RUNNING');
    const retry = target.migration.setState('RESUMING')!;
    retry.write(again);
    target.migration.setState('RUNNING');
    expect(target.region(0)!.read(0, STATE_BYTES)).toEqual(pattern);
    source.close();
    target.close();
    expectNothingLeft(fake);
  });

  test('a stream the driver refuses fails the writable and closes the fd', async () => {
    const { fake, source, target } = pair();
    const resume = target.migration.setState('RESUMING')!;
    const writable = resume.createWriteStream();
    const failed = nextError(writable);
    writable.write(Buffer.from('not a migration stream'));
    const error = (await failed) as VfioError;
    expect(error).toMatchObject({ code: 'EINVAL', syscall: 'write' });
    await tick();
    expect(resume.closed).toBe(true);
    expect(target.migration.session).toBeUndefined();
    target.migration.reset();
    source.close();
    target.close();
    expectNothingLeft(fake);
  });

  test('closing the device closes its session, failing an unfinished save', async () => {
    const { fake, source, target } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    const stream = save.createReadStream({ highWaterMark: 128 });
    stream.pause();
    const failed = nextError(stream);
    source.close();
    expect(((await failed) as VfioError).message).toMatch(/the device was closed/);
    expect(save.closed).toBe(true);
    target.migration.setState('RESUMING');
    target.close();
    expectNothingLeft(fake);
  });

  test('Device.reset() ends the session too', () => {
    const { source } = pair();
    const save = source.migration.setState('STOP_COPY')!;
    source.reset();
    expect(save.closed).toBe(true);
    expect(source.migration.state).toBe('RUNNING');
  });
});
